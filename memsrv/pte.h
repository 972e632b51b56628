/* Page-table entry formats, named as the manuals name them: x86-64 long-mode
 * paging (Intel SDM vol. 3A 4.5; also AMD nested paging, APM vol. 2 15.25)
 * and Intel EPT (SDM vol. 3C 29.3). One walker serves both through this table. */
#ifndef MEMSRV_PTE_H
#define MEMSRV_PTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Long-mode paging entry bits. */
#define PTE_P (1ULL << 0)
#define PTE_RW (1ULL << 1)
#define PTE_US (1ULL << 2)
#define PTE_PWT (1ULL << 3)
#define PTE_PCD (1ULL << 4)
#define PTE_A (1ULL << 5)
#define PTE_D (1ULL << 6)
#define PTE_PS (1ULL << 7)
#define PTE_G (1ULL << 8)
#define PTE_PAT_LARGE (1ULL << 12)
#define PTE_NX (1ULL << 63)

/* EPT entry bits. */
#define EPT_READ (1ULL << 0)
#define EPT_WRITE (1ULL << 1)
#define EPT_EXEC (1ULL << 2)
#define EPT_MEMTYPE_SHIFT 3
#define EPT_MEMTYPE_MASK (7ULL << 3)
#define EPT_IGNORE_PAT (1ULL << 6)
#define EPT_LARGE (1ULL << 7)
#define EPT_ACCESSED (1ULL << 8)
#define EPT_DIRTY (1ULL << 9)
#define EPT_EXEC_USER (1ULL << 10)
#define EPT_SUPPRESS_VE (1ULL << 63)

/* EPTP fields. */
#define EPTP_MEMTYPE_MASK 7ULL
#define EPTP_WALK_LENGTH_SHIFT 3
#define EPTP_WALK_LENGTH_MASK (7ULL << 3)
#define EPTP_AD_ENABLE (1ULL << 6)
#define EPTP_RESERVED_MASK (0xfULL << 8)

/* Bits 51:12: the physical-address field of every format (MAXPHYADDR 52). */
#define PTE_ADDR_MASK 0x000ffffffffff000ULL

struct ms_pte_format {
    const char *name;
    bool (*present)(uint64_t entry);
    /* A leaf ends the walk: level 1, or a large page at level 2 or 3. */
    bool (*leaf)(uint64_t entry, unsigned level);
    /* Non-zero and a reason when the entry has reserved bits set or is an
     * EPT misconfiguration. */
    int (*check)(uint64_t entry, unsigned level, bool leaf, char *why, size_t why_size);
    /* ms_perm bits this entry grants (the walk ANDs them). */
    unsigned (*perms)(uint64_t entry);
};

extern const struct ms_pte_format ms_pte_x86;
extern const struct ms_pte_format ms_pte_ept;

/* Writes a short decoding of the entry ("P RW US A NX ..." or "R W X WB ..."). */
void ms_pte_describe(const struct ms_pte_format *format, uint64_t entry, unsigned level, char *out,
                     size_t out_size);

#endif
