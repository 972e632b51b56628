/* Fuzzes the VMCB / HSAVE / vmcs12 / EPT-tree scanner on an arbitrary RAM
 * image (every candidate it verifies walks tables from hostile bytes), and
 * the scan for the VMCBs of one nCR3 (bt --cpu on a nested guest). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "discover.h"
#include "ram.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4096 || size > (1u << 20))
        return 0;
    size_t len = size & ~(size_t)4095;
    /* One memfd for every run, rewritten in place: a new one each time
     * (its pages allocated, then freed at close) cost a third of the time. */
    static int fd = -1;
    if (fd < 0 && (fd = memfd_create("fuzz_discover", 0)) < 0)
        return 0;
    if (ftruncate(fd, (off_t)len) != 0 || pwrite(fd, data, len, 0) != (ssize_t)len)
        return 0;
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    struct ms_layout layout = {.regions = {{0, len, 0, 0}}, .count = 1};
    struct ms_ram *ram = NULL;
    struct ms_err err;
    if (ms_ram_open_file(&ram, path, &layout, NULL, 0, &err) == 0) {
        struct ms_candidate c[8];
        unsigned n = 0;
        if (ms_discover(ram, c, 8, &n, NULL, NULL, &err) == 0) {
            for (unsigned i = 0; i < n && i < 8; i++)
                if (!memchr(c[i].evidence, '\0', sizeof(c[i].evidence)) ||
                    (i > 0 && c[i].score > c[i - 1].score))
                    abort(); /* unterminated evidence, or not sorted */
            /* the VMCBs of the best one's nCR3 (bt --cpu's scan) */
            struct ms_vmcb_state v[4];
            unsigned nv = 0;
            uint64_t ncr3 = n ? c[0].root : 0;
            if (ms_discover_vmcbs(ram, ncr3, v, 4, &nv, &err) == 0)
                for (unsigned i = 0; i < nv && i < 4; i++)
                    if (((v[i].cand.root ^ ncr3) & ~0xfffULL) ||
                        v[i].regs.known != MS_CPU_SAVE_AREA)
                        abort(); /* another guest's VMCB, or a state not marked partial */
        }
        ms_ram_close(ram);
    }
    return 0;
}
