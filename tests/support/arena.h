/* Fake kernel memory for the walkers' unit tests: size bytes at a kernel
 * address, with a hole [hole_lo, hole_hi) whose reads fail (a page that is
 * not mapped, a node that cannot be read). test_arena_read has the shape of
 * every walker's read callback; its arg is the arena. */
#ifndef TESTS_SUPPORT_ARENA_H
#define TESTS_SUPPORT_ARENA_H

#include <stdint.h>
#include <string.h>

#include "error.h"

struct test_arena {
    uint64_t base;
    uint8_t *bytes;
    size_t size;
    uint64_t hole_lo, hole_hi;
};

static inline int test_arena_read(void *arg, uint64_t addr, void *buf, size_t len, size_t *done,
                                  struct ms_err *err)
{
    const struct test_arena *a = arg;
    if (done)
        *done = 0;
    if (addr < a->base || addr - a->base > a->size || len > a->size - (addr - a->base) ||
        (addr < a->hole_hi && addr + len > a->hole_lo))
        return ms_err_set(err, MS_EUNMAPPED, "0x%llx not mapped", (unsigned long long)addr);
    memcpy(buf, a->bytes + (addr - a->base), len);
    if (done)
        *done = len;
    return 0;
}

static inline void test_arena_put64(struct test_arena *a, uint64_t addr, uint64_t v)
{
    memcpy(a->bytes + (addr - a->base), &v, 8);
}

/* A pointer as a fuzzer picks it with s: item(k) + off for k < n, head for
 * n, then a non-canonical address, NULL, or somewhere unaligned in the
 * arena. */
static inline uint64_t test_arena_pick(const struct test_arena *a, uint8_t s, unsigned n,
                                       uint64_t (*item)(unsigned), uint64_t off, uint64_t head)
{
    unsigned k = s % (n + 4);
    if (k < n)
        return item(k) + off;
    if (k == n)
        return head;
    if (k == n + 1)
        return 0xdead000000000000ULL + s;
    if (k == n + 2)
        return 0;
    return a->base + (uint64_t)s * 7;
}

#endif
