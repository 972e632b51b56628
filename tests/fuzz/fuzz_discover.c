/* Fuzzes the VMCB / HSAVE / vmcs12 / EPT-tree scanner on an arbitrary RAM
 * image (every candidate it verifies walks tables from hostile bytes), and
 * bt --cpu's scans on a nested guest: the VMCBs (or vmcs12s) of one root,
 * then L1's KVM's copies of their registers. */
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
            /* the vCPUs of the best one's root (bt --cpu's scan) */
            struct ms_vcpu_state v[4];
            unsigned nv = 0;
            uint64_t root = n ? c[0].root : 0;
            enum ms_cand_kind kind =
                n && c[0].kind == MS_CAND_VMCS12 ? MS_CAND_VMCS12 : MS_CAND_VMCB;
            if (ms_discover_vcpu_states(ram, kind, root, v, 4, &nv, &err) == 0)
                for (unsigned i = 0; i < nv && i < 4; i++)
                    if (((v[i].cand.root ^ root) & ~0xfffULL) || v[i].cand.kind != kind ||
                        v[i].regs.known !=
                            (kind == MS_CAND_VMCB ? MS_CPU_SAVE_AREA : MS_CPU_VMCS12))
                        abort(); /* another guest's, or a state not marked partial */
            /* and their registers from L1's KVM's copies */
            uint64_t rip0 = nv ? v[0].regs.rip : 0, rsp0 = nv ? v[0].regs.rsp : 0;
            if (ms_discover_saved_gprs(ram, v, nv < 4 ? nv : 4, &err) == 0 && nv &&
                (v[0].regs.rip != rip0 || v[0].regs.rsp != rsp0))
                abort(); /* the saved state's own rip and rsp are kept */
        }
        ms_ram_close(ram);
    }
    return 0;
}
