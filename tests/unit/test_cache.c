/* The translation cache must never serve a stale translation once a table
 * entry has been rewritten and ms_ram_flush() called: 1-D paging, paging over
 * EPT (the lower space's cache too), NPT, large pages, unmapping, TLB index
 * aliasing, and a RAM file changed by another writer (a running guest), which
 * is how the tables really change under a live mapping. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "ram.h"
#include "space.h"

#define KiB 1024ULL
#define MiB (1024ULL * KiB)
#define RAM_SIZE (16 * MiB)

#define P 0x1ULL
#define RW 0x2ULL
#define US 0x4ULL
#define PS 0x80ULL
#define EPT_RWX 0x7ULL
#define EPT_WB (6ULL << 3)
#define EPT_LARGE 0x80ULL

/* The RAM file is written through its own descriptor, as QEMU's guest would,
 * while memsrv has it mapped read-only. */
struct img {
    char path[64];
    int fd;
    struct ms_ram *ram;
};

static void put64(struct img *im, uint64_t gpa, uint64_t v)
{
    if (pwrite(im->fd, &v, 8, (off_t)gpa) != 8)
        abort();
}

static void fill(struct img *im, uint64_t gpa, uint8_t byte)
{
    uint8_t page[4096];
    memset(page, byte, sizeof(page));
    for (unsigned i = 0; i < sizeof(page); i += 64)
        page[i] = (uint8_t)(i >> 6); /* not all one byte: catches offset mistakes */
    if (pwrite(im->fd, page, sizeof(page), (off_t)gpa) != (ssize_t)sizeof(page))
        abort();
}

static int img_open(struct img *im)
{
    strcpy(im->path, "/tmp/test_cache_XXXXXX");
    im->fd = mkstemp(im->path);
    if (im->fd < 0 || ftruncate(im->fd, RAM_SIZE) != 0)
        return -1;
    return 0;
}

static int img_map(struct img *im)
{
    struct ms_err err;
    struct ms_layout layout = {.regions = {{0, RAM_SIZE, 0, 0}}, .count = 1};
    int rc = ms_ram_open_file(&im->ram, im->path, &layout, NULL, 0, &err);
    CHECK(rc == 0, "open: %s", err.msg);
    return rc;
}

static void img_close(struct img *im)
{
    ms_ram_close(im->ram);
    close(im->fd);
    unlink(im->path);
}

/* PML4 0x1000 -> PDPT 0x2000 -> PD 0x3000 -> PT 0x4000 (VA 0..2 MiB). */
static void put_path(struct img *im)
{
    put64(im, 0x1000, 0x2000 | P | RW);
    put64(im, 0x2000, 0x3000 | P | RW);
    put64(im, 0x3000, 0x4000 | P | RW);
}

/* Maps the file; a physical space and 4-level paging at CR3 0x1000 over it. */
static int open_paging(struct img *im, struct ms_space **phys, struct ms_space **pg)
{
    struct ms_err err;
    if (img_map(im))
        return -1;
    ms_space_phys(phys, im->ram, &err);
    int rc = ms_space_paging(pg, *phys, 0x1000, 4, &err);
    CHECK(rc == 0, "paging: %s", err.msg);
    return rc;
}

static uint64_t phys_of(struct ms_space *s, uint64_t addr, int *rc_out)
{
    struct ms_xlat x;
    struct ms_err err;
    int rc = ms_space_translate(s, addr, &x, NULL, &err);
    if (rc_out)
        *rc_out = rc;
    return rc ? ~0ULL : x.phys;
}

static uint8_t byte_at(struct ms_space *s, uint64_t addr)
{
    uint8_t b = 0xee;
    struct ms_err err;
    if (ms_space_read(s, addr, &b, 1, NULL, &err))
        return 0xee;
    return b;
}

/* CR3 0x1000: PML4 0x1000 -> PDPT 0x2000 -> PD 0x3000 -> PT 0x4000.
 * VA 0x5000 -> 0x100000 ('A'), then rewritten to 0x101000 ('B'). */
static void test_paging(void)
{
    struct img im;
    if (img_open(&im))
        return;
    put_path(&im);
    put64(&im, 0x4000 + 5 * 8, 0x100000 | P | RW);
    fill(&im, 0x100000, 'A');
    fill(&im, 0x101000, 'B');
    fill(&im, 0x400000, 'L');
    if (img_map(&im))
        return;
    struct ms_space *phys, *pg;
    struct ms_err err;
    ms_space_phys(&phys, im.ram, &err);
    CHECK(ms_space_paging(&pg, phys, 0x1000 | 0x123, 4, &err) == 0, "%s", err.msg);

    CHECK_EQ_U64(phys_of(pg, 0x5010, NULL), 0x100010, "first walk");
    CHECK_EQ_U64(phys_of(pg, 0x5020, NULL), 0x100020, "second (cached)");
    CHECK(pg->stats.hits >= 1, "the cache was used (hits %llu)",
          (unsigned long long)pg->stats.hits);
    CHECK(byte_at(pg, 0x5001) == 'A', "read A");

    /* The guest rewrites its PTE; after the flush the new page shows. */
    put64(&im, 0x4000 + 5 * 8, 0x101000 | P | RW);
    ms_ram_flush(im.ram);
    CHECK_EQ_U64(phys_of(pg, 0x5010, NULL), 0x101010, "after rewrite + flush");
    CHECK(byte_at(pg, 0x5001) == 'B', "read B after flush");

    /* A trace walk never uses the cache, flush or not. */
    put64(&im, 0x4000 + 5 * 8, 0x100000 | P | RW);
    struct ms_trace trace;
    struct ms_xlat x;
    CHECK(ms_space_translate(pg, 0x5010, &x, &trace, &err) == 0, "%s", err.msg);
    CHECK_EQ_U64(x.phys, 0x100010, "traced walk sees the table as it is");
    CHECK(trace.count == 4, "4 entries traced, got %u", trace.count);
    ms_ram_flush(im.ram);

    /* Unmapped: the cached translation must not survive. */
    CHECK_EQ_U64(phys_of(pg, 0x5010, NULL), 0x100010, "mapped again");
    put64(&im, 0x4000 + 5 * 8, 0);
    ms_ram_flush(im.ram);
    int rc;
    phys_of(pg, 0x5010, &rc);
    CHECK(rc == MS_EUNMAPPED, "unmapped after flush: rc %d", rc);
    CHECK(byte_at(pg, 0x5001) == 0xee, "read of an unmapped page fails");

    /* A 4 KiB table replaced by a 2 MiB leaf (PD[0]): every VA of the
     * range follows, including ones cached under the old 4 KiB entry. */
    put64(&im, 0x4000 + 5 * 8, 0x100000 | P | RW);
    ms_ram_flush(im.ram);
    CHECK_EQ_U64(phys_of(pg, 0x5000, NULL), 0x100000, "4K again");
    put64(&im, 0x3000, 0x400000 | P | RW | PS);
    ms_ram_flush(im.ram);
    CHECK_EQ_U64(phys_of(pg, 0x5000, NULL), 0x405000, "2M leaf after flush");
    CHECK(byte_at(pg, 0x1) == 'L', "2M leaf read");

    /* A higher-level rewrite (PML4E) invalidates everything below it. */
    put64(&im, 0x6000, 0x7000 | P | RW);        /* second PDPT -> its PD */
    put64(&im, 0x7000, 0x800000 | P | RW | PS); /* 2 MiB at 0x800000 */
    put64(&im, 0x1000, 0x6000 | P | RW);
    ms_ram_flush(im.ram);
    CHECK_EQ_U64(phys_of(pg, 0x5000, NULL), 0x805000, "PML4E rewrite");

    ms_space_free(pg);
    ms_space_free(phys);
    img_close(&im);
}

/* TLB index aliasing: two pages MS_TLB_ENTRIES pages apart share a slot;
 * each must get its own translation, before and after a flush. */
static void test_alias(void)
{
    struct img im;
    if (img_open(&im))
        return;
    uint64_t va2 = (uint64_t)MS_TLB_ENTRIES * 4096; /* 16 MiB with 4096 entries */
    put64(&im, 0x1000, 0x2000 | P | RW);
    put64(&im, 0x2000, 0x3000 | P | RW);
    put64(&im, 0x3000, 0x4000 | P | RW);                            /* PD[0] */
    put64(&im, 0x3000 + 8 * (va2 >> 21), 0x5000 | P | RW);          /* PD[8] */
    put64(&im, 0x4000 + 8 * 1, 0x100000 | P);                       /* va 0x1000 */
    put64(&im, 0x5000 + 8 * ((va2 >> 12) & 511) + 8, 0x200000 | P); /* va2 + 0x1000 */
    struct ms_space *phys, *pg;
    if (open_paging(&im, &phys, &pg))
        return;
    for (int round = 0; round < 3; round++) {
        CHECK_EQ_U64(phys_of(pg, 0x1008, NULL), 0x100008, "alias A");
        CHECK_EQ_U64(phys_of(pg, va2 + 0x1008, NULL), 0x200008, "alias B");
        CHECK_EQ_U64(phys_of(pg, 0x1010, NULL), 0x100010, "alias A again");
        if (round == 1) {
            put64(&im, 0x4000 + 8 * 1, 0x300000 | P);
            ms_ram_flush(im.ram);
            CHECK_EQ_U64(phys_of(pg, 0x1008, NULL), 0x300008, "alias A moved");
            put64(&im, 0x4000 + 8 * 1, 0x100000 | P);
            ms_ram_flush(im.ram);
        }
    }
    ms_space_free(pg);
    ms_space_free(phys);
    img_close(&im);
}

/* Paging over EPT: the EPT space's own cache must also be dropped. L2 tables
 * at L2-GPA 0x1000.. (EPT identity 2 MiB leaf at 0); L2 VA 0x5000 -> L2-GPA
 * 0x10000; then EPT PD[0] becomes a page table that sends 0x10000 to
 * L1 0x12000. */
static void test_ept(bool npt)
{
    struct img im;
    if (img_open(&im))
        return;
    uint64_t root2 = 0x800000, pdpt2 = 0x801000, pd2 = 0x802000, pt2 = 0x803000;
    uint64_t tbl = npt ? (P | RW | US) : EPT_RWX;
    uint64_t leaf4k = npt ? (P | RW | US) : (EPT_RWX | EPT_WB);
    uint64_t leaf2m = npt ? (P | RW | US | PS) : (EPT_RWX | EPT_WB | EPT_LARGE);
    put64(&im, root2, pdpt2 | tbl);
    put64(&im, pdpt2, pd2 | tbl);
    put64(&im, pd2, 0x0 | leaf2m); /* L2-GPA [0, 2M) -> L1 [0, 2M) */
    /* L2 paging */
    put_path(&im);
    put64(&im, 0x4000 + 5 * 8, 0x10000 | P | RW);
    fill(&im, 0x10000, 'X');
    fill(&im, 0x12000, 'Y');
    /* the replacement EPT page table: identity except 0x10000 -> 0x12000 */
    for (uint64_t i = 0; i < 512; i++)
        put64(&im, pt2 + 8 * i, (i * 4096) | leaf4k);
    put64(&im, pt2 + 8 * 0x10, 0x12000 | leaf4k);
    if (img_map(&im))
        return;
    struct ms_space *phys, *second, *pg;
    struct ms_err err;
    ms_space_phys(&phys, im.ram, &err);
    int rc = npt ? ms_space_npt(&second, phys, root2, 4, &err)
                 : ms_space_ept(&second, phys, root2 | 6 | (3 << 3) | 0x40, &err);
    CHECK(rc == 0, "%s", err.msg);
    CHECK(ms_space_paging(&pg, second, 0x1000, 4, &err) == 0, "%s", err.msg);
    CHECK_EQ_U64(phys_of(pg, 0x5008, NULL), 0x10008, "2-D before");
    CHECK_EQ_U64(phys_of(second, 0x10008, NULL), 0x10008, "second stage before");
    CHECK(byte_at(pg, 0x5001) == 'X', "read X");
    CHECK(byte_at(pg, 0x5001) == 'X', "read X (cached)");
    CHECK(pg->stats.hits >= 1, "first-stage cache used");

    put64(&im, pd2, pt2 | tbl); /* the hypervisor remaps one page */
    ms_ram_flush(im.ram);
    CHECK_EQ_U64(phys_of(second, 0x10008, NULL), 0x12008, "second stage after flush");
    CHECK_EQ_U64(phys_of(pg, 0x5008, NULL), 0x12008, "2-D after flush");
    CHECK(byte_at(pg, 0x5001) == 'Y', "read Y after flush");
    /* the L2 tables themselves still resolve through the new EPT table */
    CHECK_EQ_U64(phys_of(pg, 0x5ff8, NULL), 0x12ff8, "2-D, other offset");

    /* The hypervisor unmaps the guest's PT page (L2-GPA 0x4000): the 2-D
     * walk must now fail in the second dimension, not reuse the old walk. */
    put64(&im, pt2 + 8 * 4, 0);
    ms_ram_flush(im.ram);
    phys_of(pg, 0x5008, &rc);
    CHECK(rc == MS_EUNMAPPED, "guest PT unmapped by the second stage: rc %d", rc);

    ms_space_free(pg);
    ms_space_free(second);
    ms_space_free(phys);
    img_close(&im);
}

/* Many addresses in the cache, then every table rewritten at once. */
static void test_bulk(void)
{
    struct img im;
    if (img_open(&im))
        return;
    put64(&im, 0x1000, 0x2000 | P | RW);
    put64(&im, 0x2000, 0x3000 | P | RW);
    for (uint64_t t = 0; t < 8; t++) {
        put64(&im, 0x3000 + 8 * t, (0x10000 + t * 0x1000) | P | RW);
        for (uint64_t i = 0; i < 512; i++)
            put64(&im, 0x10000 + t * 0x1000 + 8 * i,
                  (0x400000 + ((t * 512 + i) % 2048) * 4096) | P);
    }
    struct ms_space *phys, *pg;
    if (open_paging(&im, &phys, &pg))
        return;
    unsigned bad = 0;
    for (uint64_t p = 0; p < 8 * 512; p++)
        bad += phys_of(pg, p * 4096 + 8, NULL) != 0x400000 + (p % 2048) * 4096 + 8;
    CHECK(bad == 0, "%u wrong before", bad);
    for (uint64_t t = 0; t < 8; t++)
        for (uint64_t i = 0; i < 512; i++)
            put64(&im, 0x10000 + t * 0x1000 + 8 * i,
                  (0x400000 + ((t * 512 + i + 7) % 2048) * 4096) | P);
    ms_ram_flush(im.ram);
    bad = 0;
    for (uint64_t p = 0; p < 8 * 512; p++)
        bad += phys_of(pg, p * 4096 + 8, NULL) != 0x400000 + ((p + 7) % 2048) * 4096 + 8;
    CHECK(bad == 0, "%u stale after flush", bad);
    ms_space_free(pg);
    ms_space_free(phys);
    img_close(&im);
}

/* The paging-structure cache: a walk of a neighbouring page reads only its
 * PTE; after the guest repoints a PDE and the flush, the new table is used;
 * a traced walk still reads every entry. Then paging over EPT, where the
 * EPT's own structure cache must follow a rewritten EPT PDE. */
static void test_structure_cache(void)
{
    struct img im;
    if (img_open(&im))
        return;
    /* 1-D: PML4 0x1000 -> PDPT 0x2000 -> PD 0x3000 -> PT 0x4000 or 0x5000. */
    put_path(&im);
    for (uint64_t i = 0; i < 512; i++) {
        put64(&im, 0x4000 + 8 * i, (0x200000 + i * 4096) | P | RW);
        put64(&im, 0x5000 + 8 * i, (0x600000 + i * 4096) | P | RW);
    }
    struct ms_space *phys, *pg;
    if (open_paging(&im, &phys, &pg))
        return;
    struct ms_err err;
    CHECK_EQ_U64(phys_of(pg, 0x3008, NULL), 0x203008, "first walk");
    uint64_t reads = pg->stats.table_reads;
    CHECK_EQ_U64(phys_of(pg, 0x7008, NULL), 0x207008, "neighbour");
    CHECK_EQ_U64(pg->stats.table_reads - reads, 1, "a neighbour's walk reads only its PTE");
    struct ms_trace trace;
    struct ms_xlat x;
    CHECK(ms_space_translate(pg, 0x9008, &x, &trace, &err) == 0, "traced: %s", err.msg);
    CHECK_EQ_U64(trace.count, 4, "a traced walk reads every level");
    put64(&im, 0x3000, 0x5000 | P | RW);
    ms_ram_flush(im.ram);
    CHECK_EQ_U64(phys_of(pg, 0x7008, NULL), 0x607008, "PDE repointed + flush: new PT");
    CHECK_EQ_U64(phys_of(pg, 0xb008, NULL), 0x60b008, "a page not walked before, new PT");
    put64(&im, 0x3000, 0);
    ms_ram_flush(im.ram);
    int rc = 0;
    phys_of(pg, 0x7008, &rc);
    CHECK(rc == MS_EUNMAPPED, "PDE cleared + flush: unmapped (rc %d)", rc);
    ms_space_free(pg);

    /* 2-D: EPT PML4 0x10000 -> PDPT 0x11000 -> PD 0x12000 -> PT 0x13000
     * (nested-physical 0..2 MiB -> 0x800000..) or PT 0x14000 (-> 0xa00000..).
     * The nested guest's tables identity-map VA 0..2 MiB at nested-physical
     * 0x1000.. (PML4 0x1000 etc.). */
    for (uint64_t gpa = 0x1000; gpa < 0x6000; gpa += 8)
        put64(&im, gpa, 0);
    put64(&im, 0x10000, 0x11000 | EPT_RWX);
    put64(&im, 0x11000, 0x12000 | EPT_RWX);
    put64(&im, 0x12000, 0x13000 | EPT_RWX);
    for (uint64_t i = 0; i < 512; i++) {
        put64(&im, 0x13000 + 8 * i, (0x800000 + i * 4096) | EPT_RWX | EPT_WB);
        put64(&im, 0x14000 + 8 * i, (0xa00000 + i * 4096) | EPT_RWX | EPT_WB);
    }
    /* Nested tables at nested-physical 0x1000..0x4000, i.e. 0x801000... */
    put64(&im, 0x801000, 0x2000 | P | RW);
    put64(&im, 0x802000, 0x3000 | P | RW);
    put64(&im, 0x803000, 0x4000 | P | RW);
    for (uint64_t i = 0; i < 512; i++)
        put64(&im, 0x804000 + 8 * i, (i * 4096) | P | RW);
    /* The same tables where the second EPT PT puts them. */
    put64(&im, 0xa01000, 0x2000 | P | RW);
    put64(&im, 0xa02000, 0x3000 | P | RW);
    put64(&im, 0xa03000, 0x4000 | P | RW);
    for (uint64_t i = 0; i < 512; i++)
        put64(&im, 0xa04000 + 8 * i, (i * 4096) | P | RW);
    ms_ram_flush(im.ram);
    struct ms_space *ept, *l2;
    CHECK(ms_space_ept(&ept, phys, 0x10000 | (3 << 3) | 6, &err) == 0, "%s", err.msg);
    ms_space_paging(&l2, ept, 0x1000, 4, &err);
    CHECK_EQ_U64(phys_of(l2, 0x20010, NULL), 0x820010, "2-D first walk");
    reads = ept->stats.table_reads;
    CHECK_EQ_U64(phys_of(l2, 0x21010, NULL), 0x821010, "2-D neighbour");
    CHECK_EQ_U64(ept->stats.table_reads - reads, 1, "the EPT walk of a neighbour reads one entry");
    put64(&im, 0x12000, 0x14000 | EPT_RWX);
    ms_ram_flush(im.ram);
    CHECK_EQ_U64(phys_of(l2, 0x21010, NULL), 0xa21010, "EPT PDE repointed + flush");
    ms_space_free(l2);
    ms_space_free(ept);
    ms_space_free(phys);
    img_close(&im);
}

/* Reads join physically contiguous pages into one copy; the run must still
 * stop at the first page that does not translate, and at the end of RAM. */
static void test_read_runs(void)
{
    struct img im;
    if (img_open(&im))
        return;
    put_path(&im);
    /* VA 0..40 KiB -> 0x100000.. contiguous; VA 40 KiB not present; VA
     * 44 KiB.. -> the last two pages of RAM, then past its end. */
    for (uint64_t i = 0; i < 10; i++) {
        put64(&im, 0x4000 + 8 * i, (0x100000 + i * 4096) | P | RW);
        fill(&im, 0x100000 + i * 4096, (uint8_t)('a' + i));
    }
    put64(&im, 0x4000 + 8 * 11, (RAM_SIZE - 0x2000) | P | RW);
    put64(&im, 0x4000 + 8 * 12, (RAM_SIZE - 0x1000) | P | RW);
    put64(&im, 0x4000 + 8 * 13, RAM_SIZE | P | RW);
    struct ms_space *phys, *pg;
    if (open_paging(&im, &phys, &pg))
        return;
    struct ms_err err;
    static uint8_t buf[0x10000];
    size_t done = 0;
    int rc = ms_space_read(pg, 0x100, buf, 0x9f00, &done, &err);
    CHECK(rc == 0 && done == 0x9f00, "contiguous run: rc %d done 0x%zx", rc, done);
    unsigned bad = 0;
    for (uint64_t i = 0; i < 0x9f00; i++) {
        uint64_t va = 0x100 + i, off = va & 4095;
        uint8_t want = (off & 63) ? (uint8_t)('a' + (va >> 12)) : (uint8_t)(off >> 6);
        bad += buf[i] != want;
    }
    CHECK(bad == 0, "%u bytes wrong in the run", bad);
    rc = ms_space_read(pg, 0x8000, buf, 0x4000, &done, &err);
    CHECK(rc == MS_EUNMAPPED && done == 0x2000, "stops at the hole: rc %d done 0x%zx (%s)", rc,
          done, err.msg);
    rc = ms_space_read(pg, 0xb000, buf, 0x3000, &done, &err);
    CHECK(rc == MS_EOUTSIDE && done == 0x2000, "stops at the end of RAM: rc %d done 0x%zx (%s)", rc,
          done, err.msg);
    rc = ms_space_read(phys, RAM_SIZE - 0x10, buf, 0x20, &done, &err);
    CHECK(rc == MS_EOUTSIDE && done == 0x10, "phys read past the end: rc %d done 0x%zx", rc, done);
    rc = ms_space_write(pg, 0x100, buf, 8, &done, &err);
    CHECK(rc == MS_EPERM && done == 0, "write on a read-only RAM: rc %d (%s)", rc, err.msg);
    ms_space_free(pg);
    ms_space_free(phys);
    img_close(&im);
}

int main(void)
{
    test_paging();
    test_alias();
    test_ept(false);
    test_ept(true);
    test_bulk();
    test_structure_cache();
    test_read_runs();
    return check_done("test_cache");
}
