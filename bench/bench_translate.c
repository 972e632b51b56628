/* Translations per second (1-D and 2-D, 4- and 5-level) and bulk nested
 * reads against memcpy from the same mapping (the ceiling), on a synthetic
 * image whose pages are all 4 KiB and scattered in both dimensions: the
 * worst case for a walker. Three cache states:
 *   cached  random addresses in a working set that fits the translation cache
 *   miss    random addresses over 4x the translation cache: most translations
 *           miss it, the paging-structure caches stay warm (a scan of memory)
 *   cold    every cache flushed before each translation (a first touch)
 * Prints a table with ratios. */
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
#define CONTIG_VA 0xffff888000000000ULL /* a direct map: contiguous in both dimensions */

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
     * guest-physical 256..384 MiB; then nested-physical 128..192 MiB onto
     * guest-physical 384..448 MiB in order. */
    struct img_tree ept;
    img_tree_init(&ept, &s->im, true, ept_levels, NULL, 0);
    const unsigned np = 32768;
    const uint64_t ept_flags = EPT_READ | EPT_WRITE | EPT_EXEC | (6ULL << EPT_MEMTYPE_SHIFT);
    for (unsigned i = 0; i < np; i++)
        img_map(&ept, (uint64_t)i * 4096, 256 * MiB + ((i * 7919ULL) % np) * 4096, 1, ept_flags);
    for (unsigned i = 0; i < PAGES; i++)
        img_map(&ept, 128 * MiB + (uint64_t)i * 4096, 384 * MiB + (uint64_t)i * 4096, 1, ept_flags);
    if (ms_space_ept(&s->second, s->phys, img_eptp(&ept), &err) != 0)
        abort();
    /* Nested guest: PAGES pages at VA_BASE onto scattered nested-physical
     * pages, and PAGES pages at CONTIG_VA onto 128..192 MiB in order. */
    struct img_tree l2;
    img_tree_init(&l2, &s->im, false, levels, s->second, 0x1000);
    for (unsigned i = 0; i < PAGES; i++) {
        img_map(&l2, VA_BASE + (uint64_t)i * 4096, 64 * MiB + ((i * 40503ULL) % PAGES) * 4096, 1,
                PTE_P | PTE_RW);
        img_map(&l2, CONTIG_VA + (uint64_t)i * 4096, 128 * MiB + (uint64_t)i * 4096, 1,
                PTE_P | PTE_RW);
    }
    /* The same tables walked as a single-level guest: the L2 tables sit in
     * nested-physical memory, so build a 1-D copy in guest-physical RAM. */
    struct img_tree one;
    img_tree_init(&one, &s->im, false, levels, NULL, 0);
    for (unsigned i = 0; i < PAGES; i++) {
        img_map(&one, VA_BASE + (uint64_t)i * 4096, 256 * MiB + ((i * 40503ULL) % PAGES) * 4096, 1,
                PTE_P | PTE_RW);
        img_map(&one, CONTIG_VA + (uint64_t)i * 4096, 384 * MiB + (uint64_t)i * 4096, 1,
                PTE_P | PTE_RW);
    }
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
    struct {
        const char *label;
        struct ms_space *sp;
        uint64_t va;
        bool contiguous; /* maps the bytes memcpy copies: checked against them */
        double best;
    } cases[] = {
        {"1-D, pages scattered", s->first_1d, VA_BASE, false, 1e9},
        {"2-D (EPT), pages scattered", s->first_2d, VA_BASE, false, 1e9},
        {"1-D, pages contiguous", s->first_1d, CONTIG_VA, true, 1e9},
        {"2-D (EPT), pages contiguous", s->first_2d, CONTIG_VA, true, 1e9},
    };
    const size_t ncases = sizeof(cases) / sizeof(cases[0]);
    /* Rounds interleave the ceiling and every case, so that a busy moment
     * on the machine does not favour one of them; the best round counts. */
    double best_memcpy = 1e9;
    for (int round = 0; round < 7; round++) {
        double t0 = now();
        memcpy(ref, src, len);
        double t = now() - t0;
        if (t < best_memcpy)
            best_memcpy = t;
        for (size_t i = 0; i < ncases; i++) {
            t0 = now();
            if (ms_space_read(cases[i].sp, cases[i].va, buf, len, NULL, NULL) != 0)
                abort();
            t = now() - t0;
            if (t < cases[i].best)
                cases[i].best = t;
            if (cases[i].contiguous && memcmp(buf, ref, len) != 0) {
                fprintf(stderr, "bench: %s differs from the mapping\n", cases[i].label);
                exit(1);
            }
        }
    }
    double mb = len / 1e6;
    printf("\nbulk read of %zu MiB of virtual memory, 4 KiB pages:\n", len >> 20);
    printf("  %-30s %8.0f MB/s  (the ceiling)\n", "memcpy from the mapping", mb / best_memcpy);
    for (size_t i = 0; i < ncases; i++)
        printf("  %-30s %8.0f MB/s  %5.2fx of memcpy\n", cases[i].label, mb / cases[i].best,
               best_memcpy / cases[i].best);
    free(buf);
    free(ref);
}

static void random_addrs(uint64_t *addrs, unsigned n, unsigned pages)
{
    for (unsigned i = 0; i < n; i++)
        addrs[i] = VA_BASE + (next_rand() % pages) * 4096 + (next_rand() & 4095);
}

int main(void)
{
    static uint64_t addrs[1 << 20];
    const unsigned n = sizeof(addrs) / sizeof(addrs[0]);
    printf("translations per second, one core:\n");
    printf("  %-16s %10s %10s %10s\n", "levels", "cached", "miss", "cold");
    for (unsigned levels = 4; levels <= 5; levels++) {
        struct setup s;
        build(&s, levels, levels);
        struct {
            const char *dim;
            struct ms_space *sp;
        } dims[] = {{"1-D", s.first_1d}, {"2-D", s.first_2d}};
        for (unsigned d = 0; d < 2; d++) {
            random_addrs(addrs, n, CACHED_PAGES);
            double cached = rate(dims[d].sp, addrs, n, false, 3);
            random_addrs(addrs, n, PAGES);
            double miss = rate(dims[d].sp, addrs, n, false, 3);
            double cold = rate(dims[d].sp, addrs, n / 8, true, 3);
            char label[32];
            snprintf(label, sizeof(label), "%s %u x %u", dims[d].dim, levels, d ? levels : 0);
            if (!d)
                snprintf(label, sizeof(label), "1-D %u", levels);
            printf("  %-16s %9.1fM %9.1fM %9.2fM\n", label, cached / 1e6, miss / 1e6, cold / 1e6);
        }
        if (levels == 4)
            bulk(&s);
        destroy(&s);
        if (levels == 4)
            printf("\n  %-16s %10s %10s %10s\n", "levels", "cached", "miss", "cold");
    }
    printf("(cached: random addresses in %d pages, the translation cache holds %d; miss: random\n"
           " addresses in %d pages; cold: every cache flushed before each translation)\n",
           CACHED_PAGES, MS_TLB_ENTRIES, PAGES);
    return 0;
}
