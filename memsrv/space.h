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

enum ms_space_kind {
    MS_SPACE_PHYS,   /* guest-physical, over RAM */
    MS_SPACE_PAGING, /* x86-64 paging rooted at CR3 */
    MS_SPACE_NPT,    /* AMD nested paging rooted at nCR3 (long-mode format) */
    MS_SPACE_EPT,    /* Intel EPT rooted at EPTP */
};

enum ms_perm {
    MS_PERM_R = 1 << 0,
    MS_PERM_W = 1 << 1,
    MS_PERM_X = 1 << 2, /* paging: NX clear on every level; EPT: supervisor execute */
    MS_PERM_U = 1 << 3, /* paging: user-accessible; EPT: user execute (MBEC) */
};

struct ms_xlat {
    uint64_t addr;      /* the address translated */
    uint64_t lower;     /* its address in the lower space */
    uint64_t phys;      /* its guest-physical (RAM) address at the bottom of the stack */
    uint64_t page_size; /* this space's leaf: 4 KiB, 2 MiB or 1 GiB (phys: 4 KiB) */
    unsigned perms;     /* ms_perm bits of this space's walk */
    /* The aligned block around addr that maps linearly all the way down to
     * RAM: the smallest leaf met in any dimension (RAM regions still apply).
     * 0 when unknown (translations that came over the wire). */
    uint64_t linear_size;
};

/* One table entry read during a walk. */
struct ms_trace_entry {
    uint8_t depth;       /* 0: the space asked; 1: its lower space; ... */
    uint8_t kind;        /* enum ms_space_kind of the space whose table this is */
    uint8_t level;       /* 5 = PML5/PML5E ... 1 = PT/PTE */
    uint16_t index;      /* entry index in its table */
    uint64_t entry_addr; /* the entry's address in the walking space's lower space */
    uint64_t entry_phys; /* the entry's guest-physical (RAM) address */
    uint64_t value;      /* the entry as read */
};

#define MS_TRACE_MAX 64 /* 5x5 2-D walk is 35 entries */

struct ms_trace {
    struct ms_trace_entry entries[MS_TRACE_MAX];
    unsigned count;
};

struct ms_tlb_entry {
    uint64_t tag;        /* (addr >> 12) + 1; 0 = empty */
    uint64_t generation; /* ram->generation when filled */
    uint64_t lower_page; /* 4 KiB page in the lower space */
    uint64_t phys_page;  /* 4 KiB page in RAM */
    uint32_t perms;
    uint8_t size_shift;   /* 12, 21 or 30 */
    uint8_t linear_shift; /* log2 of ms_xlat.linear_size */
};

#define MS_TLB_ENTRIES 4096

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

#define MS_PSC_ENTRIES 256 /* per level */

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
int ms_space_write(struct ms_space *space, uint64_t addr, const void *buf, size_t len, size_t *done,
                   struct ms_err *err);

/* One leaf mapping met while enumerating a space (ptdump). */
struct ms_mapping {
    uint64_t addr;  /* first address in this space */
    uint64_t size;  /* leaf page size */
    uint64_t lower; /* its address in the lower space */
    unsigned perms; /* ms_perm bits */
    uint64_t leaf;  /* the leaf entry value */
};

/* Returns non-zero to stop the enumeration (that value is returned). */
typedef int (*ms_mapping_fn)(void *arg, const struct ms_mapping *mapping);

/* Calls fn for every leaf mapping in [start, end] in address order. Tables
 * that cannot be read are skipped and counted in *bad_tables (may be NULL).
 * At most max_tables tables are visited (0 = default of 1<<20), so that a
 * self-referencing table cannot make the walk endless: MS_ELIMIT then. */
int ms_space_enumerate(struct ms_space *space, uint64_t start, uint64_t end, ms_mapping_fn fn,
                       void *arg, uint64_t max_tables, uint64_t *bad_tables, struct ms_err *err);

/* The canonical form of a virtual address for the space's depth (sign
 * extension from bit 47 or 56); other kinds return addr unchanged. */
uint64_t ms_space_canonical(const struct ms_space *space, uint64_t addr);

const char *ms_space_kind_name(enum ms_space_kind kind);
/* "PML5E", "PML4E", "PDPTE", "PDE", "PTE" */
const char *ms_level_name(unsigned level);

#endif
