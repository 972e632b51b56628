/* Fuzzes the QEMU dump-guest-memory ELF reader: headers, PT_LOADs, notes
 * (NT_PRSTATUS, QEMU CPU state, VMCOREINFO), on an arbitrary file. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ram.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 20)
        return 0;
    int fd = memfd_create("fuzz_elfdump", 0);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    struct ms_ram *ram = NULL;
    struct ms_err err;
    if (ms_ram_open_dump(&ram, path, 0, &err) == 0) {
        for (unsigned i = 0; i < ram->layout.count; i++) {
            const struct ms_region *r = &ram->layout.regions[i];
            uint8_t buf[64];
            size_t done = 0;
            ms_ram_read(ram, r->gpa, buf, sizeof(buf), &done, &err);
            if (r->len >= 8)
                ms_ram_read(ram, r->gpa + r->len - 8, buf, 16, &done, &err);
            if (done > 16 && done > sizeof(buf))
                abort();
        }
        if (ram->vmcoreinfo && strlen(ram->vmcoreinfo) > ram->vmcoreinfo_len)
            abort();
        (void)ms_ram_size(ram);
        (void)ms_ram_end(ram);
        ms_ram_close(ram);
    }
    close(fd);
    return 0;
}
