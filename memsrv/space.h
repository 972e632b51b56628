/* Address spaces, stackable: physical (over RAM), x86-64 paging (4/5-level),
 * AMD NPT (long-mode format, nCR3) and Intel EPT (EPTP). A space translates
 * its addresses into its lower space's; every table entry a walk reads is
 * itself read through the lower space, so paging over EPT is the full 2-D
 * walk. Each non-physical space keeps a small translation cache validated
 * by the RAM's generation number. */
#ifndef MEMSRV_SPACE_H
#define MEMSRV_SPACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "ram.h"

struct ms_tlb_entry {
    uint64_t tag;        /* (addr >> 12) + 1; 0 = empty */
    uint64_t generation; /* ram->generation when filled */
    uint64_t lower_page; /* 4 KiB page in the lower space */
    uint64_t phys_page;  /* 4 KiB page in RAM */
    uint32_t perms;
    uint8_t size_shift;   /* 12, 21 or 30 */
    uint8_t linear_shift; /* log2 of ms_xlat.linear_size */
};

/* Powers of two. The fuzz build makes them small: a fuzzer needs the
 * logic (and evictions), not the capacity, and each space's calloc of the
 * full size would cost more than the walks it fuzzes. */
#ifndef MS_TLB_ENTRIES
#define MS_TLB_ENTRIES 4096
#endif

/* Paging-structure cache (the SDM's name, vol. 3A 4.10.3): for a level below
 * the root, which table translates an address prefix, and the permissions
 * the entries above granted. A walk starts at the deepest cached table, so
 * walks of neighbouring pages read one or two entries, not a whole path. */
struct ms_psc_entry {
    uint64_t tag;        /* (addr >> span of the table) + 1; 0 = empty */
    uint64_t generation; /* ram->generation when filled */
    uint64_t table;      /* the table's address in the lower space */
    uint32_t perms;
};

#ifndef MS_PSC_ENTRIES
#define MS_PSC_ENTRIES 256 /* per level */
#endif

struct ms_space_stats {
    uint64_t hits, misses, walks, table_reads;
};

struct ms_space {
    enum ms_space_kind kind;
    struct ms_space *lower; /* NULL for MS_SPACE_PHYS */
    struct ms_ram *ram;
    uint64_t root;            /* CR3/nCR3/EPTP as given */
    uint64_t root_table;      /* top table's address in the lower space */
    unsigned levels;          /* 4 or 5 (0 for phys) */
    bool ept_ad;              /* EPTP bit 6: accessed/dirty flags enabled */
    struct ms_tlb_entry *tlb; /* MS_TLB_ENTRIES, NULL for phys */
    struct ms_psc_entry *psc; /* (levels - 1) x MS_PSC_ENTRIES; [0] holds level-1 tables */
    uint64_t psc_generation;  /* ram->generation at the last fill: older, all stale */
    struct ms_space_stats stats;
};

int ms_space_phys(struct ms_space **out, struct ms_ram *ram, struct ms_err *err);
/* cr3: PCID and flag bits (low 12, and bit 63 "no flush") are masked. levels: 4 or 5. */
int ms_space_paging(struct ms_space **out, struct ms_space *lower, uint64_t cr3, unsigned levels,
                    struct ms_err *err);
int ms_space_npt(struct ms_space **out, struct ms_space *lower, uint64_t ncr3, unsigned levels,
                 struct ms_err *err);
/* The walk length (4 or 5) comes from EPTP bits 5:3. */
int ms_space_ept(struct ms_space **out, struct ms_space *lower, uint64_t eptp, struct ms_err *err);
/* Frees this space only, not its lower spaces. */
void ms_space_free(struct ms_space *space);

/* trace may be NULL; when given, the cache is bypassed and every entry of
 * every dimension is recorded. */
int ms_space_translate(struct ms_space *space, uint64_t addr, struct ms_xlat *out,
                       struct ms_trace *trace, struct ms_err *err);

/* Reads len bytes, crossing pages; stops at the first unreadable byte with
 * an error naming it. *done (may be NULL) gets the bytes read before it. */
int ms_space_read(struct ms_space *space, uint64_t addr, void *buf, size_t len, size_t *done,
                  struct ms_err *err);
/* ms_space_read in the shape of the walkers' read callbacks (tasks.h,
 * modules.h, maps.h, ...): arg is the struct ms_space *. */
int ms_space_read_fn(void *space, uint64_t addr, void *buf, size_t len, size_t *done,
                     struct ms_err *err);
int ms_space_write(struct ms_space *space, uint64_t addr, const void *buf, size_t len, size_t *done,
                   struct ms_err *err);

/* Calls fn for every leaf mapping in [start, end] in address order. Tables
 * that cannot be read are skipped and counted in *bad_tables (may be NULL).
 * At most max_tables tables are visited (0 = default of 1<<20), so that a
 * self-referencing table cannot make the walk endless: MS_ELIMIT then. */
int ms_space_enumerate(struct ms_space *space, uint64_t start, uint64_t end, ms_mapping_fn fn,
                       void *arg, uint64_t max_tables, uint64_t *bad_tables, struct ms_err *err);

/* The canonical form of a virtual address for the space's depth (sign
 * extension from bit 47 or 56); other kinds return addr unchanged. */
uint64_t ms_space_canonical(const struct ms_space *space, uint64_t addr);

#endif
