/* Fuzzes the layout parsers: the --map grammar, the layout file, the
 * machine rules and the checks, on arbitrary text. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "layout.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct ms_layout layout;
    struct ms_err err;
    if (ms_layout_parse_map(&layout, text, &err) == 0) {
        if (layout.count > MS_LAYOUT_MAX)
            abort();
        ms_layout_check(&layout, &err);
    }
    int fd = memfd_create("fuzz_layout", 0);
    if (fd >= 0) {
        if (write(fd, data, size) == (ssize_t)size) {
            char path[64];
            snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
            if (ms_layout_load(&layout, path, &err) == 0) {
                if (layout.count > MS_LAYOUT_MAX)
                    abort();
                for (unsigned i = 0; i < layout.count; i++)
                    if (layout.regions[i].len == 0)
                        abort(); /* load is documented to check */
                int out = memfd_create("fuzz_layout_out", 0);
                if (out >= 0) {
                    char opath[64];
                    snprintf(opath, sizeof(opath), "/proc/self/fd/%d", out);
                    struct ms_layout again;
                    if (ms_layout_save(&layout, opath, &err) == 0 &&
                        ms_layout_load(&again, opath, &err) == 0 &&
                        (again.count != layout.count ||
                         memcmp(again.regions, layout.regions,
                                layout.count * sizeof(layout.regions[0]))))
                        abort(); /* save + load must round-trip */
                    close(out);
                }
            }
        }
        close(fd);
    }
    if (size >= 9) {
        uint64_t ram_size;
        memcpy(&ram_size, data, 8);
        ms_layout_for_machine(&layout, (data[8] & 1) ? "pc" : "q35", ram_size, &err);
    }
    free(text);
    return 0;
}
