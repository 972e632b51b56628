/* Address spaces on images built here: 1-D paging, paging over EPT and over
 * NPT (every page size in both dimensions), hostile entries, the cache. */
#include <stdint.h>
#include <string.h>

#include "../support/image.h"
#include "check.h"
#include "pte.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define RAM_SIZE (64 * MiB)

static int count_mapping(void *arg, const struct ms_mapping *m)
{
    (void)m;
    ++*(uint64_t *)arg;
    return 0;
}

static void test_paging_1d(unsigned levels)
{
    struct img im;
    img_open(&im, RAM_SIZE);
    struct img_tree t;
    img_tree_init(&t, &im, false, levels, NULL, 0);
    uint64_t va4k = levels == 5 ? 0xff11000000042000ULL : 0xffff888000042000ULL;
    img_map(&t, va4k, 0x300000, 1, PTE_P | PTE_RW | PTE_NX);
    img_map(&t, 0x400000, 0x800000, 2, PTE_P | PTE_US);
    img_map(&t, 0x40000000, 0, 3, PTE_P | PTE_RW);
    img_put64(&im, 0x300000 + 0x10, 0x1122334455667788ULL);

    struct ms_space *phys, *pg;
    struct ms_err err;
    ms_space_phys(&phys, im.ram, &err);
    CHECK(ms_space_paging(&pg, phys, t.root | 0x18 /* PWT|PCD */, levels, &err) == 0, "%s",
          err.msg);
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
    img_map(&t, 0x600000, 0x900000, 1, PTE_P);
    CHECK(ms_space_read(pg, 0x600ff0, buf, sizeof(buf), &done, &err) == MS_EUNMAPPED, "cross");
    CHECK(done == 16, "done %zu", done);
    CHECK(strstr(err.msg, "0x601000") != NULL, "names first unmapped byte: %s", err.msg);

    /* Cache: a rewritten leaf shows after a flush. */
    CHECK(ms_space_translate(pg, 0x600000, &x, NULL, &err) == 0, "%s", err.msg);
    CHECK_EQ_U64(x.phys, 0x900000, "before rewrite");
    img_map(&t, 0x600000, 0xa00000, 1, PTE_P);
    ms_ram_flush(im.ram);
    CHECK(ms_space_translate(pg, 0x600000, &x, NULL, &err) == 0, "%s", err.msg);
    CHECK_EQ_U64(x.phys, 0xa00000, "after rewrite+flush");

    /* Reserved: PS in the top-level entry; a 2 MiB leaf with reserved bits. */
    uint64_t top = img_entry_phys(&t, 0x400000, levels);
    uint64_t e0 = img_get64(&im, top);
    img_put64(&im, top, e0 | PTE_PS);
    ms_ram_flush(im.ram);
    CHECK(ms_space_translate(pg, 0x400000, &x, NULL, &err) == MS_ERESERVED, "PS at top: %s",
          err.msg);
    img_put64(&im, top, e0);
    img_map(&t, 0x400000, 0x800000 | 0x2000, 2, PTE_P);
    ms_ram_flush(im.ram);
    CHECK(ms_space_translate(pg, 0x400000, &x, NULL, &err) == MS_ERESERVED, "2M reserved: %s",
          err.msg);
    /* A table outside RAM. */
    img_map(&t, 0x400000, 0x800000, 2, PTE_P);
    uint64_t pdpte = img_entry_phys(&t, 0x400000, 3);
    uint64_t saved = img_get64(&im, pdpte);
    img_put64(&im, pdpte, (16 * GiB) | PTE_P | PTE_RW);
    ms_ram_flush(im.ram);
    CHECK(ms_space_translate(pg, 0x400000, &x, NULL, &err) == MS_EOUTSIDE, "outside: %s", err.msg);
    /* Tables that point to themselves: a walk still ends (it is
     * depth-bounded); enumeration, whose work grows as 16^levels here, stops
     * at its table budget. */
    uint64_t pml_top = t.root;
    img_put64(&im, pdpte, saved);
    for (unsigned i = 100; i < 116; i++)
        img_put64(&im, pml_top + 8 * i, pml_top | PTE_P | PTE_RW);
    ms_ram_flush(im.ram);
    CHECK(ms_space_translate(pg, ms_space_canonical(pg, 100ULL << (12 + 9 * (levels - 1))), &x,
                             NULL, &err) != 0,
          "self-map resolves to a non-leaf chain");
    uint64_t bad = 0, mappings = 0;
    int rc = ms_space_enumerate(pg, 0, UINT64_MAX, count_mapping, &mappings, 1000, &bad, &err);
    CHECK(rc == MS_ELIMIT, "enumerate over a self-map stops at the budget: rc %d", rc);
    ms_space_free(pg);
    ms_space_free(phys);
    img_close(&im);
}

/* Paging over a second stage: EPT (is_ept) or NPT. */
static void test_2d(bool is_ept, unsigned l2_levels, unsigned second_levels)
{
    struct img im;
    img_open(&im, RAM_SIZE);
    /* Second stage: nested-physical 0..4 MiB scattered over guest-physical
     * 32..36 MiB in 4 KiB pages, plus 2 MiB and 1 GiB leaves elsewhere. */
    struct img_tree s2;
    img_tree_init(&s2, &im, is_ept, second_levels, NULL, 0);
    uint64_t leaf = is_ept ? (EPT_READ | EPT_WRITE | EPT_EXEC | (6ULL << EPT_MEMTYPE_SHIFT))
                           : (PTE_P | PTE_RW | PTE_US);
    const unsigned npages = 1024;
    for (unsigned i = 0; i < npages; i++)
        img_map(&s2, (uint64_t)i * 4096, 32 * MiB + ((i * 769) % npages) * 4096, 1, leaf);
    img_map(&s2, 8 * MiB, 12 * MiB, 2, leaf);
    img_map(&s2, 2 * GiB, 0, 3, leaf);
    if (is_ept)
        img_map(&s2, 0x600000, 0x500000, 1, EPT_EXEC | (6ULL << EPT_MEMTYPE_SHIFT));

    struct ms_space *phys, *second, *pg;
    struct ms_err err;
    ms_space_phys(&phys, im.ram, &err);
    int rc = is_ept ? ms_space_ept(&second, phys, img_eptp(&s2), &err)
                    : ms_space_npt(&second, phys, s2.root, second_levels, &err);
    CHECK(rc == 0, "%s", err.msg);
    CHECK(second->levels == second_levels, "levels %u", second->levels);

    /* The nested guest's own tables live in nested-physical memory. */
    struct img_tree l2;
    img_tree_init(&l2, &im, false, l2_levels, second, 0x1000);
    uint64_t gva = 0x5a5a00042000ULL;
    img_map(&l2, gva, 0x2f3000, 1, PTE_P | PTE_RW);
    img_map(&l2, 0x200000, 8 * MiB, 2, PTE_P);   /* 2M over the 2M second-stage leaf */
    img_map(&l2, 0x40000000, 2 * GiB, 3, PTE_P); /* 1G over the 1G second-stage leaf */
    img_map(&l2, 0x10000, 0x600000, 1, PTE_P);   /* onto the execute-only EPT leaf */
    const char marker[] = "NESTED-L2-MARKER-6789";
    CHECK(ms_space_write(second, 0x2f3000, marker, sizeof(marker), NULL, &err) == 0, "%s", err.msg);
    CHECK(ms_space_paging(&pg, second, l2.root, l2_levels, &err) == 0, "%s", err.msg);

    char got[sizeof(marker)] = "";
    CHECK(ms_space_read(pg, gva, got, sizeof(got), NULL, &err) == 0, "%s", err.msg);
    CHECK(strcmp(got, marker) == 0, "marker read through 2-D walk: '%s'", got);
    struct ms_xlat x;
    struct ms_trace tr;
    CHECK(ms_space_translate(pg, gva, &x, &tr, &err) == 0, "%s", err.msg);
    CHECK_EQ_U64(x.lower, 0x2f3000, "nested-physical");
    CHECK_EQ_U64(x.phys, 32 * MiB + ((0x2f3 * 769) % npages) * 4096, "guest-physical");
    /* The full 2-D walk: a second-stage walk per first-stage entry, plus one
     * for the final address. */
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
        img_map(&s2, 0x601000, 0x501000, 1, EPT_WRITE | (6ULL << EPT_MEMTYPE_SHIFT));
        ms_ram_flush(im.ram);
        CHECK(ms_space_translate(second, 0x601000, &sx, NULL, &err) == MS_ERESERVED, "W-only: %s",
              err.msg);
        img_map(&s2, 0x602000, 0x502000, 1, EPT_READ | (2ULL << EPT_MEMTYPE_SHIFT));
        CHECK(ms_space_translate(second, 0x602000, &sx, NULL, &err) == MS_ERESERVED,
              "memtype 2: %s", err.msg);
    }
    /* Linear blocks: the smallest leaf on the way down. A read through a
     * 2 MiB leaf over scattered 4 KiB second-stage pages must copy page by
     * page; one over a 2 MiB second-stage leaf copies the block whole, and
     * stops where the first stage stops mapping. */
    CHECK(ms_space_translate(pg, gva, &x, NULL, &err) == 0, "%s", err.msg);
    CHECK_EQ_U64(x.linear_size, 4096, "4K over 4K: linear 4K");
    CHECK(ms_space_translate(pg, 0x200000 + 0x1234, &x, NULL, &err) == 0, "%s", err.msg);
    CHECK_EQ_U64(x.linear_size, 2 * MiB, "2M over 2M: linear 2M");
    CHECK(ms_space_translate(pg, 0x40000000 + 0x345678, &x, NULL, &err) == 0, "%s", err.msg);
    CHECK_EQ_U64(x.linear_size, GiB, "1G over 1G: linear 1G");
    img_map(&l2, 0x800000, 2 * MiB, 2, PTE_P); /* 2M over scattered 4K pages (no tables) */
    CHECK(ms_space_translate(pg, 0x800000 + 0x5000, &x, NULL, &err) == 0, "%s", err.msg);
    CHECK_EQ_U64(x.page_size, 2 * MiB, "2M first-stage leaf");
    CHECK_EQ_U64(x.linear_size, 4096, "2M over 4K: linear 4K");
    static uint8_t run[2 * 1024 * 1024], page[4096];
    for (uint64_t np = 512; np < npages; np++) { /* each page of the leaf tells itself apart */
        for (unsigned i = 0; i < 4096; i++)
            page[i] = (uint8_t)(np * 7 + i / 16);
        if (np != 0x2f3) /* the marker's page */
            ms_space_write(second, np * 4096, page, 4096, NULL, &err);
    }
    size_t done = 0;
    CHECK(ms_space_read(pg, 0x800000 + 0x800, run, 2 * MiB - 0x800, &done, &err) == 0, "%s",
          err.msg);
    unsigned bad_pages = 0;
    for (uint64_t off = 0; off < 2 * MiB; off += 4096) { /* run[0] is VA 0x800800 */
        uint64_t phys_page = 32 * MiB + (((512 + (off >> 12)) * 769) % npages) * 4096;
        ms_space_read(phys, phys_page, page, 4096, NULL, &err);
        if (off == 0)
            bad_pages += memcmp(run, page + 0x800, 4096 - 0x800) != 0;
        else
            bad_pages += memcmp(run + off - 0x800, page, 4096) != 0;
    }
    CHECK(bad_pages == 0, "%u pages of a 2M-over-4K read differ from their pages", bad_pages);
    rc = ms_space_read(pg, 0x200000 + 0x1000, run, 2 * MiB, &done, &err);
    CHECK(rc == MS_EUNMAPPED && done == 2 * MiB - 0x1000,
          "a 2M block read stops at the first-stage hole: rc %d done 0x%zx", rc, done);
    /* A mapped first-stage entry onto an unmapped nested-physical page. */
    img_map(&l2, 0x7000, 0x3f00000, 1, PTE_P);
    CHECK(ms_space_translate(pg, 0x7000, &x, NULL, &err) == MS_EUNMAPPED, "%s", err.msg);
    ms_space_free(pg);
    ms_space_free(second);
    ms_space_free(phys);
    img_close(&im);
}

static void test_eptp_validation(void)
{
    struct img im;
    img_open(&im, RAM_SIZE);
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
    img_close(&im);
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
