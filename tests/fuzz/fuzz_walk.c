/* Fuzzes the walkers: the input is a small RAM image behind a header that
 * chooses the stack (paging, EPT, NPT, depths, a split layout) and the
 * addresses to translate, read and enumerate.
 *
 * Header (little-endian, 104 bytes):
 *   u8  flags: bits 1:0 second stage (0 none, 1 EPT, 2 NPT, 3 EPT),
 *              bit 2 first-stage paging, bit 3 paging 5-level,
 *              bit 4 NPT 5-level, bit 5 split layout (second half at 4 GiB)
 *   u8  naddrs (at most 8)
 *   u8  pad[6]
 *   u64 cr3, u64 root2 (EPTP or nCR3)
 *   u64 addrs[8]
 *   u64 enum_start, u64 enum_end
 * then the RAM bytes (rounded up to a page with zeros). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ram.h"
#include "space.h"

#define HDR 104 /* sizeof(struct hdr) */
#define MAX_RAM (4u << 20)

struct hdr {
    uint8_t flags, naddrs, pad[6];
    uint64_t cr3, root2, addrs[8], enum_start, enum_end;
};

static int count_fn(void *arg, const struct ms_mapping *m)
{
    unsigned *n = arg;
    (void)m;
    return ++*n > 20000; /* enough: stop */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HDR + 8 || size - HDR > MAX_RAM)
        return 0;
    struct hdr h;
    memcpy(&h, data, sizeof(h));
    size_t ram_len = size - HDR;
    size_t file_len = (ram_len + 4095) & ~(size_t)4095;
    int fd = memfd_create("fuzz_walk", 0);
    if (fd < 0)
        return 0;
    if (ftruncate(fd, (off_t)file_len) != 0 ||
        pwrite(fd, data + HDR, ram_len, 0) != (ssize_t)ram_len) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    struct ms_layout layout;
    memset(&layout, 0, sizeof(layout));
    if ((h.flags & 0x20) && file_len >= 8192) {
        uint64_t half = (file_len / 2) & ~4095ULL;
        layout.regions[0] = (struct ms_region){0, half, 0, 0};
        layout.regions[1] = (struct ms_region){1ULL << 32, file_len - half, half, 0};
        layout.count = 2;
    } else {
        layout.regions[0] = (struct ms_region){0, file_len, 0, 0};
        layout.count = 1;
    }
    struct ms_err err;
    struct ms_ram *ram = NULL;
    if (ms_ram_open_file(&ram, path, &layout, NULL, 0, &err) != 0) {
        close(fd);
        return 0;
    }
    struct ms_space *phys = NULL, *second = NULL, *pg = NULL, *top;
    if (ms_space_phys(&phys, ram, &err) != 0)
        goto out;
    top = phys;
    unsigned s2 = h.flags & 3;
    if (s2 == 1 || s2 == 3) {
        if (ms_space_ept(&second, phys, h.root2, &err) != 0)
            goto out;
    } else if (s2 == 2) {
        if (ms_space_npt(&second, phys, h.root2, (h.flags & 0x10) ? 5 : 4, &err) != 0)
            goto out;
    }
    if (second)
        top = second;
    if (h.flags & 4) {
        if (ms_space_paging(&pg, top, h.cr3, (h.flags & 8) ? 5 : 4, &err) != 0)
            goto out;
        top = pg;
    }
    unsigned n = h.naddrs > 8 ? 8 : h.naddrs;
    for (int round = 0; round < 2; round++) {
        for (unsigned i = 0; i < n; i++) {
            struct ms_xlat x;
            struct ms_trace trace;
            uint8_t buf[80];
            size_t done = 0;
            int rc1 = ms_space_translate(top, h.addrs[i], &x, NULL, &err);
            uint64_t p1 = rc1 ? 0 : x.phys;
            int rc2 = ms_space_translate(top, h.addrs[i], &x, &trace, &err);
            /* cached and traced walks must agree */
            if (rc1 != rc2 || (!rc1 && p1 != x.phys))
                abort();
            if (!rc2 && !ms_ram_contains(ram, x.phys, 1))
                abort();
            if (trace.count > MS_TRACE_MAX)
                abort();
            int rc = ms_space_read(top, h.addrs[i] - 8, buf, sizeof(buf), &done, &err);
            if (done > sizeof(buf) || (rc == 0 && done != sizeof(buf)))
                abort();
        }
        ms_ram_flush(ram);
    }
    if (top != phys) {
        unsigned count = 0;
        uint64_t bad = 0;
        uint64_t lo = h.enum_start, hi = h.enum_end;
        if (lo > hi) {
            uint64_t t = lo;
            lo = hi;
            hi = t;
        }
        ms_space_enumerate(top, lo, hi, count_fn, &count, 2048, &bad, &err);
    }
out:
    ms_space_free(pg);
    ms_space_free(second);
    ms_space_free(phys);
    ms_ram_close(ram);
    close(fd);
    return 0;
}
