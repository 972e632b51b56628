/* Page-table entry formats, named as the manuals name them: x86-64 long-mode
 * paging (Intel SDM vol. 3A 4.5; also AMD nested paging, APM vol. 2 15.25)
 * and Intel EPT (SDM vol. 3C 29.3). One walker serves both. */
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

enum ms_pte_format {
    MS_PTE_X86, /* long-mode paging, also AMD NPT */
    MS_PTE_EPT,
};

/* The walk's hot path: inline, no indirect calls. An EPT entry is present
 * when any of bits 2:0 is set (SDM 29.3.2), so execute-only is present. */
static inline bool ms_pte_present(enum ms_pte_format f, uint64_t e)
{
    return e & (f == MS_PTE_EPT ? (EPT_READ | EPT_WRITE | EPT_EXEC) : PTE_P);
}

/* A leaf ends the walk: level 1, or a large page at level 2 or 3 (PS and
 * EPT's "large page" are both bit 7). */
static inline bool ms_pte_leaf(uint64_t e, unsigned level)
{
    return level == 1 || ((level == 2 || level == 3) && (e & PTE_PS));
}

/* ms_perm bits this entry grants (the walk ANDs them): R W X U are bits
 * 0-3 of enum ms_perm; EPT's R W X are its bits 2:0 and XU is bit 10. */
static inline unsigned ms_pte_perms(enum ms_pte_format f, uint64_t e)
{
    if (f == MS_PTE_EPT)
        return (unsigned)(e & 7) | (unsigned)((e & EPT_EXEC_USER) >> 7);
    return 1u | (unsigned)(e & PTE_RW) | (unsigned)((e & PTE_US) << 1) | (e & PTE_NX ? 0u : 4u);
}

/* What is wrong with a present entry: reserved bits set (x86), or an EPT
 * misconfiguration (SDM 29.3.3.1). */
enum ms_pte_fault {
    MS_PTE_OK,
    MS_PTE_PS_RESERVED,      /* x86: PS set in a PML4E or PML5E */
    MS_PTE_FRAME_RESERVED,   /* reserved low bits of a 2 MiB / 1 GiB leaf's frame */
    MS_PTE_EPT_WRITE_ONLY,   /* EPT: write permission without read */
    MS_PTE_EPT_TOP_BITS,     /* EPT: bits 7:3 set in a PML4E or PML5E */
    MS_PTE_EPT_NONLEAF_BITS, /* EPT: bits 6:3 set in a non-leaf PDPTE or PDE */
    MS_PTE_EPT_MEMTYPE,      /* EPT: memory type 2, 3 or 7 in a leaf */
};

/* Bits between the attribute bits and a large leaf's frame are reserved
 * (x86 keeps bit 12 for PAT). */
static inline uint64_t ms_pte_frame_reserved(enum ms_pte_format f, uint64_t e, unsigned level)
{
    uint64_t frame = 1ULL << (12 + 9 * (level - 1));
    return e & (frame - 1) & (f == MS_PTE_EPT ? ~0xfffULL : ~0x1fffULL);
}

static inline enum ms_pte_fault ms_pte_fault(enum ms_pte_format f, uint64_t e, unsigned level,
                                             bool leaf)
{
    if (f == MS_PTE_EPT) {
        if ((e & EPT_WRITE) && !(e & EPT_READ))
            return MS_PTE_EPT_WRITE_ONLY;
        if (level >= 4 && (e & 0xf8))
            return MS_PTE_EPT_TOP_BITS;
        if (!leaf && level < 4 && (e & 0x78))
            return MS_PTE_EPT_NONLEAF_BITS;
        unsigned mt = (unsigned)((e & EPT_MEMTYPE_MASK) >> EPT_MEMTYPE_SHIFT);
        if (leaf && (mt == 2 || mt == 3 || mt == 7))
            return MS_PTE_EPT_MEMTYPE;
    } else if (level >= 4 && (e & PTE_PS)) {
        return MS_PTE_PS_RESERVED;
    }
    if (leaf && level > 1 && ms_pte_frame_reserved(f, e, level))
        return MS_PTE_FRAME_RESERVED;
    return MS_PTE_OK;
}

/* Explains a fault ms_pte_fault() found, for an error message. */
void ms_pte_fault_text(enum ms_pte_format f, enum ms_pte_fault fault, uint64_t e, unsigned level,
                       char *why, size_t why_size);

/* Writes a short decoding of the entry ("P RW US A NX ..." or "R W X WB ..."). */
void ms_pte_describe(enum ms_pte_format f, uint64_t entry, unsigned level, char *out,
                     size_t out_size);

#endif
