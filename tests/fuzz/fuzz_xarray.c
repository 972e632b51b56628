/* Fuzzes the xarray walker on up to 8 synthetic xa_nodes (6.1's layout:
 * shift at 0, slots at 40) built from the input, every slot chosen by a
 * selector byte, over a range of indices from the input.
 *
 * Input: u8 nnodes (1 + n % 8), u8 head selector, u8 max_nodes
 *        (1 + n % 16), u16 first, u16 span (last = first + span), then per
 *        node: u8 shift, 64 slot selectors. Missing bytes read as 0.
 * A selector s, k = s % 8, x = s / 8: 0 empty, 1 a pointer (a struct page),
 * 2 a value entry, 3 a sibling of slot x % 64, 4 node x % nnodes, 5 the
 * retry entry, 6 a node entry outside the arena, 7 x itself as an internal
 * entry. The walk must end; what it hands must be present entries in
 * increasing, non-overlapping ranges that meet [first, last]. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xarray.h"

#define BASE 0xffff888000100000ULL
#define NODE 0x240
#define NODES 8

struct arena {
    uint8_t mem[NODES * NODE];
};

static const struct ms_xa_layout layout = {.shift = 0, .slots = 40};

static int read_arena(void *arg, uint64_t addr, void *buf, size_t len, size_t *done,
                      struct ms_err *err)
{
    const struct arena *a = arg;
    if (done)
        *done = 0;
    if (addr < BASE || addr - BASE > sizeof(a->mem) || len > sizeof(a->mem) - (addr - BASE))
        return ms_err_set(err, MS_EUNMAPPED, "0x%llx not mapped", (unsigned long long)addr);
    memcpy(buf, a->mem + (addr - BASE), len);
    if (done)
        *done = len;
    return 0;
}

static uint64_t entry_of(uint8_t s, unsigned nnodes)
{
    unsigned x = s / 8;
    switch (s % 8) {
    case 0:
        return 0;
    case 1:
        return 0xffffea0000000000ULL + (uint64_t)x * 64;
    case 2:
        return (uint64_t)x << 1 | 1;
    case 3:
        return (uint64_t)(x % 64) << 2 | 2;
    case 4:
        return (BASE + (uint64_t)(x % nnodes) * NODE) | 2;
    case 5:
        return 0x402;
    case 6:
        return 0xffff777000000000ULL | 2;
    default:
        return (uint64_t)x << 2 | 2;
    }
}

struct check {
    uint64_t first, last, next; /* next: the lowest index a new entry may start at */
    bool any;
};

static int check_entry(void *arg, const struct ms_xa_entry *e)
{
    struct check *c = arg;
    if (e->count == 0 || !e->entry || ms_xa_is_value(e->entry) || ms_xa_is_internal(e->entry))
        abort();
    if (c->any && e->index < c->next)
        abort(); /* out of order or overlapping */
    if (e->index > c->last || e->index + (e->count - 1) < c->first)
        abort(); /* outside the range asked */
    c->any = true;
    c->next = e->index + e->count;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t hdr[7] = {0};
    memcpy(hdr, data, size < sizeof(hdr) ? size : sizeof(hdr));
    size_t pos = sizeof(hdr);
    unsigned nnodes = 1 + hdr[0] % NODES;
    static struct arena a;
    memset(&a, 0, sizeof(a));
    for (unsigned n = 0; n < nnodes; n++) {
        uint8_t *node = a.mem + n * NODE;
        node[0] = pos < size ? data[pos] : 0;
        pos++;
        for (unsigned i = 0; i < 64; i++, pos++) {
            uint64_t e = entry_of(pos < size ? data[pos] : 0, nnodes);
            memcpy(node + 40 + i * 8, &e, 8);
        }
    }
    uint64_t head = entry_of(hdr[1], nnodes);
    struct check c = {0};
    c.first = (uint64_t)hdr[3] | (uint64_t)hdr[4] << 8;
    c.last = c.first + ((uint64_t)hdr[5] | (uint64_t)hdr[6] << 8);
    struct ms_err err;
    ms_xa_walk(&layout, head, c.first, c.last, read_arena, &a, 1 + hdr[2] % 16, check_entry, &c,
               &err);
    return 0;
}
