/* Address spaces on images built here: 1-D paging, paging over EPT and over
 * NPT (every page size in both dimensions), hostile entries, the cache. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "pte.h"
#include "ram.h"
#include "space.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define RAM_SIZE (64 * MiB)

struct image {
    char path[64];
    struct ms_ram *ram;
    uint64_t next_free; /* bump allocator for guest-physical pages */
};

static uint64_t alloc_page(struct image *im)
{
    uint64_t p = im->next_free;
    im->next_free += 4096;
    uint8_t zero[4096] = {0};
    ms_ram_write(im->ram, p, zero, sizeof(zero), NULL, NULL);
    return p;
}

static void put64(struct image *im, uint64_t gpa, uint64_t v)
{
    ms_ram_write(im->ram, gpa, &v, 8, NULL, NULL);
}

static uint64_t get64(struct image *im, uint64_t gpa)
{
    uint64_t v = 0;
    ms_ram_read(im->ram, gpa, &v, 8, NULL, NULL);
    return v;
}

/* Maps va -> pa in a table tree rooted at root (an address in `space`
 * terms, converted to guest-physical by `to_phys`), creating tables. */
typedef uint64_t (*to_phys_fn)(void *arg, uint64_t addr);
struct mapper {
    struct image *im;
    bool ept;
    unsigned levels;
    uint64_t root;      /* in the tree's own table address space */
    to_phys_fn to_phys; /* tree address -> guest-physical */
    void *to_phys_arg;
    uint64_t (*alloc)(struct mapper *m); /* a new table, returned in tree address space */
    void *alloc_arg;
};

static uint64_t table_flags(const struct mapper *m)
{
    return m->ept ? (EPT_READ | EPT_WRITE | EPT_EXEC) : (PTE_P | PTE_RW | PTE_US);
}

static void map_page(struct mapper *m, uint64_t va, uint64_t pa, unsigned leaf_level,
                     uint64_t leaf_flags)
{
    uint64_t table = m->root;
    for (unsigned level = m->levels; level > leaf_level; level--) {
        unsigned idx = (va >> (12 + 9 * (level - 1))) & 511;
        uint64_t ea = m->to_phys(m->to_phys_arg, table + idx * 8);
        uint64_t e = get64(m->im, ea);
        if (!(e & 7)) {
            uint64_t t = m->alloc(m);
            e = t | table_flags(m);
            put64(m->im, ea, e);
        }
        table = e & PTE_ADDR_MASK;
    }
    unsigned idx = (va >> (12 + 9 * (leaf_level - 1))) & 511;
    uint64_t large = leaf_level > 1 ? (m->ept ? EPT_LARGE : PTE_PS) : 0;
    put64(m->im, m->to_phys(m->to_phys_arg, table + idx * 8), pa | leaf_flags | large);
}

static uint64_t identity(void *arg, uint64_t a)
{
    (void)arg;
    return a;
}

static uint64_t alloc_phys(struct mapper *m)
{
    return alloc_page(m->im);
}

/* The nested guest's tables live in nested-physical memory: translate their
 * addresses through the second stage space. */
static uint64_t via_space(void *arg, uint64_t a)
{
    struct ms_xlat x;
    if (ms_space_translate(arg, a, &x, NULL, NULL) != 0)
        return UINT64_MAX;
    return x.phys;
}

static void image_open(struct image *im)
{
    strcpy(im->path, "/tmp/test_space.XXXXXX");
    int fd = mkstemp(im->path);
    if (fd < 0 || ftruncate(fd, RAM_SIZE) != 0)
        abort();
    close(fd);
    struct ms_layout l = {.count = 1, .regions = {{0, RAM_SIZE, 0, 0}}};
    struct ms_err err;
    if (ms_ram_open_file(&im->ram, im->path, &l, NULL, MS_RAM_WRITABLE, &err) != 0)
        abort();
    im->next_free = 0x10000;
}

static void image_close(struct image *im)
{
    ms_ram_close(im->ram);
    unlink(im->path);
}

static void test_paging_1d(unsigned levels)
{
    struct image im;
    image_open(&im);
    uint64_t cr3 = alloc_page(&im);
    struct mapper m = {&im, false, levels, cr3, identity, NULL, alloc_phys, NULL};
    uint64_t va4k = levels == 5 ? 0xff11000000042000ULL : 0xffff888000042000ULL;
    map_page(&m, va4k, 0x300000, 1, PTE_P | PTE_RW | PTE_NX);
    map_page(&m, 0x400000, 0x800000, 2, PTE_P | PTE_US);
    map_page(&m, 0x40000000, 0, 3, PTE_P | PTE_RW);
    put64(&im, 0x300000 + 0x10, 0x1122334455667788ULL);

    struct ms_space *phys, *pg;
    struct ms_err err;
    ms_space_phys(&phys, im.ram, &err);
    CHECK(ms_space_paging(&pg, phys, cr3 | 0x18 /* PWT|PCD */, levels, &err) == 0, "%s", err.msg);
    struct ms_xlat x;
    struct ms_trace tr;
    CHECK(ms_space_translate(pg, va4k + 0x10, &x, &tr, &err) == 0, "%s", err.msg);
    CHECK_EQ_U64(x.phys, 0x300010, "4K phys");
    CHECK_EQ_U64(x.page_size, 4096, "4K size");
    CHECK(x.perms == (MS_PERM_R | MS_PERM_W), "perms %x", x.perms);
    CHECK(tr.count == levels, "trace %u entries", tr.count);
    uint64_t v = 0;
    CHECK(ms_space_read(pg, va4k + 0x10, &v, 8, NULL, &err) == 0, "%s", err.msg);
    CHECK_EQ_U64(v, 0x1122334455667788ULL, "read");
    CHECK(ms_space_translate(pg, 0x400000 + 0x12345, &x, NULL, &err) == 0, "%s", err.msg);
    CHECK_EQ_U64(x.phys, 0x812345, "2M phys");
    CHECK_EQ_U64(x.page_size, 2 * MiB, "2M size");
    CHECK(x.perms == (MS_PERM_R | MS_PERM_X | MS_PERM_U), "2M perms %x", x.perms);
    CHECK(ms_space_translate(pg, 0x40000000 + 0x1234567, &x, NULL, &err) == 0, "%s", err.msg);
    CHECK_EQ_U64(x.phys, 0x1234567, "1G phys");
    CHECK_EQ_U64(x.page_size, GiB, "1G size");
    /* Unmapped and non-canonical addresses. */
    CHECK(ms_space_translate(pg, 0x7000000000ULL, &x, NULL, &err) == MS_EUNMAPPED, "%s", err.msg);
    CHECK(strstr(err.msg, "not present") != NULL, "message: %s", err.msg);
    uint64_t noncanon = levels == 5 ? 0x0100000000000000ULL : 0x0000800000000000ULL;
    CHECK(ms_space_translate(pg, noncanon, &x, NULL, &err) == MS_EUNMAPPED, "noncanon");
    /* A read crossing into an unmapped page stops at its first byte. */
    uint8_t buf[64];
    size_t done = 0;
    map_page(&m, 0x600000, 0x900000, 1, PTE_P);
    CHECK(ms_space_read(pg, 0x600ff0, buf, sizeof(buf), &done, &err) == MS_EUNMAPPED, "cross");
    CHECK(done == 16, "done %zu", done);
    CHECK(strstr(err.msg, "0x601000") != NULL, "names first unmapped byte: %s", err.msg);

    /* Cache: rewrite a leaf; stale until flush, new after. */
    CHECK(ms_space_translate(pg, 0x600000, &x, NULL, &err) == 0, "%s", err.msg);
    CHECK_EQ_U64(x.phys, 0x900000, "before rewrite");
    map_page(&m, 0x600000, 0xa00000, 1, PTE_P);
    ms_ram_flush(im.ram);
    CHECK(ms_space_translate(pg, 0x600000, &x, NULL, &err) == 0, "%s", err.msg);
    CHECK_EQ_U64(x.phys, 0xa00000, "after rewrite+flush");

    /* Reserved: PS in a PML4E; a 2 MiB leaf with reserved bits. */
    uint64_t pml4 = cr3;
    if (levels == 5)
        pml4 = get64(&im, cr3) & PTE_ADDR_MASK;
    uint64_t e0 = get64(&im, pml4);
    put64(&im, pml4, e0 | PTE_PS);
    ms_ram_flush(im.ram);
    CHECK(ms_space_translate(pg, 0x400000, &x, NULL, &err) == MS_ERESERVED, "PS in PML4E: %s",
          err.msg);
    put64(&im, pml4, e0);
    map_page(&m, 0x400000, 0x800000 | 0x2000, 2, PTE_P);
    ms_ram_flush(im.ram);
    CHECK(ms_space_translate(pg, 0x400000, &x, NULL, &err) == MS_ERESERVED, "2M reserved: %s",
          err.msg);
    /* A table outside RAM. */
    map_page(&m, 0x400000, 0x800000, 2, PTE_P);
    uint64_t pdpt_e_addr = 0;
    {
        struct ms_trace t2;
        ms_space_translate(pg, 0x400000, &x, &t2, &err);
        pdpt_e_addr = t2.entries[t2.count - 2].entry_phys;
    }
    uint64_t saved = get64(&im, pdpt_e_addr);
    put64(&im, pdpt_e_addr, (16 * GiB) | PTE_P | PTE_RW);
    ms_ram_flush(im.ram);
    CHECK(ms_space_translate(pg, 0x400000, &x, NULL, &err) == MS_EOUTSIDE, "outside: %s", err.msg);
    put64(&im, pdpt_e_addr, saved);
    ms_space_free(pg);
    ms_space_free(phys);
    image_close(&im);
}

static uint64_t l2_alloc_fn(struct mapper *m)
{
    uint64_t *next = m->alloc_arg; /* nested tables: a bump pointer in nested-physical space */
    uint64_t t = *next;
    *next += 4096;
    uint64_t zero[512] = {0};
    ms_space_write(m->to_phys_arg, t, zero, 4096, NULL, NULL);
    return t;
}

/* Paging over a second stage: EPT (is_ept) or NPT. */
static void test_2d(bool is_ept, unsigned l2_levels, unsigned second_levels)
{
    struct image im;
    image_open(&im);
    /* Second stage: nested-physical 0..32 MiB scattered over guest-physical
     * 32..64 MiB in 4 KiB pages, plus 2 MiB and 1 GiB leaves elsewhere. */
    uint64_t root = alloc_page(&im);
    struct mapper s2 = {&im, is_ept, second_levels, root, identity, NULL, alloc_phys, NULL};
    uint64_t leaf = is_ept ? (EPT_READ | EPT_WRITE | EPT_EXEC | (6ULL << EPT_MEMTYPE_SHIFT))
                           : (PTE_P | PTE_RW | PTE_US);
    const unsigned npages = 1024; /* 4 MiB of nested-physical in 4 KiB pages */
    for (unsigned i = 0; i < npages; i++) {
        uint64_t gpa = 32 * MiB + ((i * 769) % npages) * 4096; /* a permutation */
        map_page(&s2, (uint64_t)i * 4096, gpa, 1, leaf);
    }
    map_page(&s2, 8 * MiB, 12 * MiB, 2, leaf); /* 2 MiB leaf */
    map_page(&s2, 2 * GiB, 0, 3, leaf);        /* 1 GiB leaf over all RAM */
    if (is_ept)
        map_page(&s2, 0x600000, 0x500000, 1, EPT_EXEC | (6ULL << EPT_MEMTYPE_SHIFT)); /* X-only */
    uint64_t second_root =
        is_ept ? (root | 6 | ((uint64_t)(second_levels - 1) << EPTP_WALK_LENGTH_SHIFT) |
                  EPTP_AD_ENABLE)
               : root;

    struct ms_space *phys, *second, *pg;
    struct ms_err err;
    ms_space_phys(&phys, im.ram, &err);
    int rc = is_ept ? ms_space_ept(&second, phys, second_root, &err)
                    : ms_space_npt(&second, phys, second_root, second_levels, &err);
    CHECK(rc == 0, "%s", err.msg);
    CHECK(second->levels == second_levels, "levels %u", second->levels);

    /* The nested guest's tables live in nested-physical memory from 0x1000 up. */
    uint64_t next_l2_table = 0x2000;
    uint64_t zero[512] = {0};
    ms_space_write(second, 0x1000, zero, 4096, NULL, &err);
    struct mapper l2 = {&im,       false,  l2_levels,   0x1000,
                        via_space, second, l2_alloc_fn, &next_l2_table};
    struct mapper *mp = &l2;
    uint64_t gva = 0x5a5a00042000ULL;
    map_page(mp, gva, 0x2f3000, 1, PTE_P | PTE_RW);
    map_page(mp, 0x200000, 8 * MiB, 2, PTE_P);   /* L2 2M leaf onto S2's 2M leaf */
    map_page(mp, 0x40000000, 2 * GiB, 3, PTE_P); /* L2 1G leaf onto S2's 1G leaf */
    map_page(mp, 0x10000, 0x600000, 1, PTE_P);   /* onto the execute-only EPT leaf */
    const char marker[] = "NESTED-L2-MARKER-6789";
    CHECK(ms_space_write(second, 0x2f3000, marker, sizeof(marker), NULL, &err) == 0, "%s", err.msg);
    rc = ms_space_paging(&pg, second, 0x1000, l2_levels, &err);
    CHECK(rc == 0, "%s", err.msg);

    char got[sizeof(marker)] = "";
    CHECK(ms_space_read(pg, gva, got, sizeof(got), NULL, &err) == 0, "%s", err.msg);
    CHECK(strcmp(got, marker) == 0, "marker read through 2-D walk: '%s'", got);
    struct ms_xlat x;
    struct ms_trace tr;
    CHECK(ms_space_translate(pg, gva, &x, &tr, &err) == 0, "%s", err.msg);
    CHECK_EQ_U64(x.lower, 0x2f3000, "nested-physical");
    CHECK_EQ_U64(x.phys, 32 * MiB + ((0x2f3 * 769) % npages) * 4096, "guest-physical");
    /* Full 2-D walk: each of the L2 entries needs a full second-stage walk,
     * plus one for the final address. */
    unsigned want = l2_levels * (second_levels + 1) + second_levels;
    CHECK(tr.count == want, "trace entries %u, want %u", tr.count, want);
    CHECK(ms_space_translate(pg, 0x200000 + 0x1234, &x, NULL, &err) == 0, "%s", err.msg);
    CHECK_EQ_U64(x.phys, 12 * MiB + 0x1234, "2M over 2M");
    CHECK(ms_space_translate(pg, 0x40000000 + 0x345678, &x, NULL, &err) == 0, "%s", err.msg);
    CHECK_EQ_U64(x.phys, 0x345678, "1G over 1G");
    if (is_ept) {
        CHECK(ms_space_translate(pg, 0x10000, &x, NULL, &err) == 0, "exec-only present: %s",
              err.msg);
        CHECK_EQ_U64(x.phys, 0x500000, "exec-only leaf");
        struct ms_xlat sx;
        CHECK(ms_space_translate(second, 0x600000, &sx, NULL, &err) == 0, "%s", err.msg);
        CHECK(sx.perms == MS_PERM_X, "exec-only perms %x", sx.perms);
        /* Write without read: misconfiguration. */
        map_page(&s2, 0x601000, 0x501000, 1, EPT_WRITE | (6ULL << EPT_MEMTYPE_SHIFT));
        ms_ram_flush(im.ram);
        CHECK(ms_space_translate(second, 0x601000, &sx, NULL, &err) == MS_ERESERVED, "W-only: %s",
              err.msg);
        map_page(&s2, 0x602000, 0x502000, 1, EPT_READ | (2ULL << EPT_MEMTYPE_SHIFT));
        CHECK(ms_space_translate(second, 0x602000, &sx, NULL, &err) == MS_ERESERVED,
              "memtype 2: %s", err.msg);
    }
    /* Unmapped nested-physical page under a mapped L2 entry. */
    map_page(mp, 0x7000, 0x3f00000, 1, PTE_P);
    CHECK(ms_space_translate(pg, 0x7000, &x, NULL, &err) == MS_EUNMAPPED, "%s", err.msg);

    ms_space_free(pg);
    ms_space_free(second);
    ms_space_free(phys);
    image_close(&im);
}

static void test_eptp_validation(void)
{
    struct image im;
    image_open(&im);
    struct ms_space *phys, *s;
    struct ms_err err;
    ms_space_phys(&phys, im.ram, &err);
    CHECK(ms_space_ept(&s, phys, 0x1000 | 6 | (1 << 3), &err) == MS_EINVAL, "walk length 2");
    CHECK(ms_space_ept(&s, phys, 0x1000 | 5 | (3 << 3), &err) == MS_EINVAL, "memtype 5");
    CHECK(ms_space_ept(&s, phys, 0x1000 | 6 | (3 << 3) | 0x100, &err) == MS_EINVAL, "reserved");
    CHECK(ms_space_ept(&s, phys, 0x1000 | 6 | (4 << 3), &err) == 0, "5-level ok: %s", err.msg);
    CHECK(s->levels == 5, "5 levels");
    ms_space_free(s);
    ms_space_free(phys);
    image_close(&im);
}

int main(void)
{
    test_paging_1d(4);
    test_paging_1d(5);
    for (unsigned a = 4; a <= 5; a++)
        for (unsigned b = 4; b <= 5; b++) {
            test_2d(true, a, b);
            test_2d(false, a, b);
        }
    test_eptp_validation();
    return check_done("test_space");
}
