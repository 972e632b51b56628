/* Builds RAM images in a temporary file for unit tests and benchmarks: a
 * bump allocator for pages and page-table trees in either format, whose
 * tables live in guest-physical memory or behind another space. */
#ifndef TESTS_SUPPORT_IMAGE_H
#define TESTS_SUPPORT_IMAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "ram.h"
#include "space.h"

struct img {
    char path[64];
    struct ms_ram *ram;
    uint64_t next_free; /* next free guest-physical page */
};

struct img_tree {
    struct img *im;
    bool ept;             /* EPT entry format, else x86-64 long mode */
    unsigned levels;      /* 4 or 5 */
    uint64_t root;        /* top table, in the tree's table space */
    struct ms_space *via; /* space holding the tables; NULL: guest-physical */
    uint64_t next_table;  /* bump pointer in `via` for new tables */
};

/* A sparse writable RAM file of `size` bytes, flat layout. Aborts on failure. */
void img_open(struct img *im, uint64_t size);
void img_close(struct img *im);
uint64_t img_alloc_page(struct img *im);
void img_put64(struct img *im, uint64_t gpa, uint64_t value);
uint64_t img_get64(struct img *im, uint64_t gpa);

/* A new tree with an empty root table (allocated like its other tables). */
void img_tree_init(struct img_tree *t, struct img *im, bool ept, unsigned levels,
                   struct ms_space *via, uint64_t first_table);
/* Maps va -> pa with a leaf at leaf_level (1: 4 KiB, 2: 2 MiB, 3: 1 GiB). */
void img_map(struct img_tree *t, uint64_t va, uint64_t pa, unsigned leaf_level, uint64_t flags);
/* The guest-physical address of the entry for va at `level` (tables must exist). */
uint64_t img_entry_phys(struct img_tree *t, uint64_t va, unsigned level);

/* The EPTP for a tree (WB, walk length from levels, A/D on). */
uint64_t img_eptp(const struct img_tree *t);

#endif
