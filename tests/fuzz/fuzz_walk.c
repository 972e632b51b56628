/* Fuzzes the walkers: the input describes a few table entries in a small
 * RAM (128 pages, made once), the stack to build over it (paging, EPT,
 * NPT, depths, a split layout) and the addresses to translate, read and
 * enumerate. Only the entries an input wrote are zeroed for the next one,
 * so an input costs its walks, not a RAM image (about 15,000 inputs a
 * second with sanitizers, against 300 for a 512 KiB image per input).
 *
 * Header (little-endian, 104 bytes):
 *   u8  flags: bits 1:0 second stage (0 none, 1 EPT, 2 NPT, 3 EPT),
 *              bit 2 first-stage paging, bit 3 paging 5-level,
 *              bit 4 NPT 5-level, bit 5 split layout (pages 64+ at 4 GiB)
 *   u8  naddrs (at most 8)
 *   u8  cr3_sel, root2_sel (value selectors, below)
 *   u8  pad[4]
 *   u64 cr3_bits, root2_bits
 *   u64 addrs[8]
 *   u64 enum_start, enum_end
 * then writes of 12 bytes: u8 page, u8 sel, u16 index, u64 bits: the
 * entry at index (mod 512) of page (mod 128) becomes value(sel, bits).
 * value(sel, bits) is the address of page sel (mod 128) OR bits when sel
 * < 0x80, else bits alone (any address: outside RAM, unaligned, ...).
 * A page's address: page * 4 KiB, or in the split layout 4 GiB + (page -
 * 64) * 4 KiB for pages 64 and up. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ram.h"
#include "space.h"

#define HDR 104 /* sizeof(struct hdr) */
#define WRITE 12
#define NPAGES 128
#define PAGE 4096
#define RAM_BYTES (NPAGES * PAGE)
#define MAX_MAPPINGS 64 /* enumerate: enough to cover a walk's branches */
#define MAX_TABLES 16

struct hdr {
    uint8_t flags, naddrs, cr3_sel, root2_sel, pad[4];
    uint64_t cr3_bits, root2_bits, addrs[8], enum_start, enum_end;
};

/* The RAM, made once: one file, mapped here for writing and opened under
 * both layouts. */
struct world {
    uint8_t *mem;
    struct ms_ram *ram[2];          /* one region; split at 4 GiB */
    uint32_t written[NPAGES * 512]; /* entries the last input wrote: cleared before the next */
    size_t nwritten;
};

static struct world *world(void)
{
    static struct world w;
    static int state; /* 0 not yet, 1 ready, -1 failed */
    if (state)
        return state > 0 ? &w : NULL;
    state = -1;
    int fd = memfd_create("fuzz_walk", 0);
    if (fd < 0 || ftruncate(fd, RAM_BYTES) != 0)
        return NULL;
    w.mem = mmap(NULL, RAM_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (w.mem == MAP_FAILED)
        return NULL;
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    struct ms_layout one = {.count = 1}, split = {.count = 2};
    one.regions[0] = (struct ms_region){0, RAM_BYTES, 0, 0};
    split.regions[0] = (struct ms_region){0, RAM_BYTES / 2, 0, 0};
    split.regions[1] = (struct ms_region){1ULL << 32, RAM_BYTES / 2, RAM_BYTES / 2, 0};
    struct ms_err err;
    if (ms_ram_open_file(&w.ram[0], path, &one, NULL, 0, &err) != 0 ||
        ms_ram_open_file(&w.ram[1], path, &split, NULL, 0, &err) != 0)
        return NULL;
    state = 1;
    return &w;
}

static uint64_t page_addr(unsigned page, bool split)
{
    page %= NPAGES;
    if (split && page >= NPAGES / 2)
        return (1ULL << 32) + (uint64_t)(page - NPAGES / 2) * PAGE;
    return (uint64_t)page * PAGE;
}

static uint64_t value(uint8_t sel, uint64_t bits, bool split)
{
    return sel < 0x80 ? page_addr(sel, split) | bits : bits;
}

static int count_fn(void *arg, const struct ms_mapping *m)
{
    unsigned *n = arg;
    (void)m;
    return ++*n >= MAX_MAPPINGS; /* enough: stop */
}

/* The space stack an input asks for; *top is NULL when it cannot be
 * built (a bad EPTP, say). */
struct stack {
    struct ms_space *phys, *second, *pg, *top;
};

static void stack_build(struct stack *st, struct ms_ram *ram, const struct hdr *h, bool split)
{
    struct ms_err err; /* constructors' messages: formatted, not checked */
    memset(st, 0, sizeof(*st));
    if (ms_space_phys(&st->phys, ram, &err) != 0)
        return;
    unsigned s2 = h->flags & 3;
    uint64_t root2 = value(h->root2_sel, h->root2_bits, split);
    struct ms_space *top = st->phys;
    if ((s2 == 1 || s2 == 3) && ms_space_ept(&st->second, st->phys, root2, &err) != 0)
        return;
    if (s2 == 2 && ms_space_npt(&st->second, st->phys, root2, (h->flags & 0x10) ? 5 : 4, &err) != 0)
        return;
    if (st->second)
        top = st->second;
    if (h->flags & 4) {
        uint64_t cr3 = value(h->cr3_sel, h->cr3_bits, split);
        if (ms_space_paging(&st->pg, top, cr3, (h->flags & 8) ? 5 : 4, &err) != 0)
            return;
        top = st->pg;
    }
    st->top = top;
}

static void stack_free(struct stack *st)
{
    ms_space_free(st->pg);
    ms_space_free(st->second);
    ms_space_free(st->phys);
}

static void run(struct ms_ram *ram, const struct hdr *h, bool split)
{
    struct ms_err err;
    struct stack st;
    stack_build(&st, ram, h, split);
    struct ms_space *top = st.top;
    if (!top) {
        stack_free(&st);
        return;
    }
    unsigned n = h->naddrs > 8 ? 8 : h->naddrs;
    for (int round = 0; round < 2; round++) {
        for (unsigned i = 0; i < n; i++) {
            struct ms_xlat x;
            struct ms_trace trace;
            uint8_t buf[80];
            size_t done = 0;
            int rc1 = ms_space_translate(top, h->addrs[i], &x, NULL, NULL);
            uint64_t p1 = rc1 ? 0 : x.phys;
            int rc2 = ms_space_translate(top, h->addrs[i], &x, &trace, &err);
            /* cached and traced walks must agree */
            if (rc1 != rc2 || (!rc1 && p1 != x.phys))
                abort();
            if (!rc2 && !ms_ram_contains(ram, x.phys, 1))
                abort();
            if (trace.count > MS_TRACE_MAX)
                abort();
            int rc = ms_space_read(top, h->addrs[i] - 8, buf, sizeof(buf), &done, NULL);
            if (done > sizeof(buf) || (rc == 0 && done != sizeof(buf)))
                abort();
        }
        ms_ram_flush(ram);
    }
    if (top->kind != MS_SPACE_PHYS) {
        unsigned count = 0;
        uint64_t bad = 0;
        uint64_t lo = h->enum_start, hi = h->enum_end;
        if (lo > hi) {
            uint64_t t = lo;
            lo = hi;
            hi = t;
        }
        ms_space_enumerate(top, lo, hi, count_fn, &count, MAX_TABLES, &bad, &err);
    }
    stack_free(&st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct world *w = world();
    if (!w || size < HDR)
        return 0;
    struct hdr h;
    memcpy(&h, data, sizeof(h));
    bool split = h.flags & 0x20;
    uint64_t *entries = (uint64_t *)w->mem;
    for (size_t i = 0; i < w->nwritten; i++)
        entries[w->written[i]] = 0;
    w->nwritten = 0;
    for (size_t o = HDR; o + WRITE <= size && w->nwritten < NPAGES * 512; o += WRITE) {
        uint8_t page = data[o] % NPAGES, sel = data[o + 1];
        uint16_t index;
        uint64_t bits;
        memcpy(&index, data + o + 2, 2);
        memcpy(&bits, data + o + 4, 8);
        /* the file holds pages in order; the layout only moves their addresses */
        uint32_t at = (uint32_t)page * 512 + index % 512;
        entries[at] = value(sel, bits, split);
        w->written[w->nwritten++] = at;
    }
    run(w->ram[split], &h, split);
    return 0;
}
