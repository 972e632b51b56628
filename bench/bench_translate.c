/* Translations per second (1-D and 2-D, 4- and 5-level, cached and
 * uncached) and bulk nested reads against memcpy from the same mapping (the
 * ceiling), on a synthetic image: every page 4 KiB in both dimensions and
 * scattered, the worst case for a walker. Prints a table with ratios. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../tests/support/image.h"
#include "pte.h"

#define MiB (1ULL << 20)
#define PAGES 16384 /* 64 MiB of nested-guest virtual memory */
#define CACHED_PAGES 2048
#define VA_BASE 0xffffc90000000000ULL

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Translations per second over `n` random mapped pages; flush before each
 * one when uncached. */
static double rate(struct ms_space *sp, const uint64_t *addrs, unsigned n, bool uncached,
                   unsigned rounds)
{
    struct ms_xlat x;
    double best = 0;
    for (unsigned r = 0; r < rounds; r++) {
        double t0 = now();
        for (unsigned i = 0; i < n; i++) {
            if (uncached)
                ms_ram_flush(sp->ram);
            if (ms_space_translate(sp, addrs[i], &x, NULL, NULL) != 0) {
                fprintf(stderr, "bench: translation of 0x%" PRIx64 " failed\n", addrs[i]);
                exit(1);
            }
        }
        double per_s = n / (now() - t0);
        if (per_s > best)
            best = per_s;
    }
    return best;
}

struct setup {
    struct img im;
    struct ms_space *phys, *second, *first_1d, *first_2d;
};

static void build(struct setup *s, unsigned levels, unsigned ept_levels)
{
    img_open(&s->im, 512 * MiB);
    struct ms_err err;
    ms_space_phys(&s->phys, s->im.ram, &err);
    /* Second stage: nested-physical 0..128 MiB, 4 KiB pages scattered over
     * guest-physical 256..384 MiB. */
    struct img_tree ept;
    img_tree_init(&ept, &s->im, true, ept_levels, NULL, 0);
    const unsigned np = 32768;
    for (unsigned i = 0; i < np; i++)
        img_map(&ept, (uint64_t)i * 4096, 256 * MiB + ((i * 7919ULL) % np) * 4096, 1,
                EPT_READ | EPT_WRITE | EPT_EXEC | (6ULL << EPT_MEMTYPE_SHIFT));
    if (ms_space_ept(&s->second, s->phys, img_eptp(&ept), &err) != 0)
        abort();
    /* Nested guest: PAGES pages at VA_BASE onto scattered nested-physical pages. */
    struct img_tree l2;
    img_tree_init(&l2, &s->im, false, levels, s->second, 0x1000);
    for (unsigned i = 0; i < PAGES; i++)
        img_map(&l2, VA_BASE + (uint64_t)i * 4096, 64 * MiB + ((i * 40503ULL) % PAGES) * 4096, 1,
                PTE_P | PTE_RW);
    /* The same tables walked as a single-level guest: the L2 tables sit in
     * nested-physical memory, so build a 1-D copy in guest-physical RAM. */
    struct img_tree one;
    img_tree_init(&one, &s->im, false, levels, NULL, 0);
    for (unsigned i = 0; i < PAGES; i++)
        img_map(&one, VA_BASE + (uint64_t)i * 4096, 384 * MiB + ((i * 40503ULL) % PAGES) * 4096, 1,
                PTE_P | PTE_RW);
    if (ms_space_paging(&s->first_2d, s->second, l2.root, levels, &err) != 0 ||
        ms_space_paging(&s->first_1d, s->phys, one.root, levels, &err) != 0)
        abort();
}

static void destroy(struct setup *s)
{
    ms_space_free(s->first_1d);
    ms_space_free(s->first_2d);
    ms_space_free(s->second);
    ms_space_free(s->phys);
    img_close(&s->im);
}

static void bulk(struct setup *s)
{
    size_t len = (size_t)PAGES * 4096;
    uint8_t *buf = malloc(len), *ref = malloc(len);
    const struct ms_region *r = &s->im.ram->layout.regions[0];
    const uint8_t *src = s->im.ram->sources[0].map + r->offset + 384 * MiB;
    double best_memcpy = 1e9, best_1d = 1e9, best_2d = 1e9;
    for (int round = 0; round < 5; round++) {
        double t0 = now();
        memcpy(ref, src, len);
        double t1 = now();
        if (ms_space_read(s->first_1d, VA_BASE, buf, len, NULL, NULL) != 0)
            abort();
        double t2 = now();
        if (ms_space_read(s->first_2d, VA_BASE, buf, len, NULL, NULL) != 0)
            abort();
        double t3 = now();
        if (t1 - t0 < best_memcpy)
            best_memcpy = t1 - t0;
        if (t2 - t1 < best_1d)
            best_1d = t2 - t1;
        if (t3 - t2 < best_2d)
            best_2d = t3 - t2;
    }
    double mb = len / 1e6;
    printf("bulk read %zu MiB, 4 KiB pages scattered:\n", len >> 20);
    printf("  memcpy from the mapping   %8.0f MB/s  (ceiling)\n", mb / best_memcpy);
    printf("  1-D virtual read          %8.0f MB/s  %5.2fx of memcpy\n", mb / best_1d,
           best_memcpy / best_1d);
    printf("  2-D nested read (EPT)     %8.0f MB/s  %5.2fx of memcpy\n", mb / best_2d,
           best_memcpy / best_2d);
    free(buf);
    free(ref);
}

int main(void)
{
    static uint64_t addrs[1 << 20];
    const unsigned n = sizeof(addrs) / sizeof(addrs[0]);
    printf("%-26s %14s %14s %14s %14s\n", "levels (first x second)", "1-D cached/s",
           "1-D uncached/s", "2-D cached/s", "2-D uncached/s");
    for (unsigned levels = 4; levels <= 5; levels++) {
        struct setup s;
        build(&s, levels, levels);
        /* Cached: a working set that fits the cache; uncached: every page,
         * with the cache flushed before each translation. */
        for (unsigned i = 0; i < n; i++)
            addrs[i] = VA_BASE + (next_rand() % CACHED_PAGES) * 4096 + (next_rand() & 4095);
        double c1 = rate(s.first_1d, addrs, n, false, 3);
        double c2 = rate(s.first_2d, addrs, n, false, 3);
        for (unsigned i = 0; i < n; i++)
            addrs[i] = VA_BASE + (next_rand() % PAGES) * 4096 + (next_rand() & 4095);
        double u1 = rate(s.first_1d, addrs, n / 8, true, 3);
        double u2 = rate(s.first_2d, addrs, n / 8, true, 3);
        char label[32];
        snprintf(label, sizeof(label), "%u x %u", levels, levels);
        printf("%-26s %13.1fM %13.2fM %13.1fM %13.2fM\n", label, c1 / 1e6, u1 / 1e6, c2 / 1e6,
               u2 / 1e6);
        if (levels == 4)
            bulk(&s);
        destroy(&s);
    }
    printf("(cached: random addresses in %d pages, the cache holds %d entries; uncached: cache\n"
           " flushed before each translation, random addresses in %d pages)\n",
           CACHED_PAGES, MS_TLB_ENTRIES, PAGES);
    return 0;
}
