#include "pte.h"

#include <stdio.h>
#include <string.h>

#include "memsrv.h"

/* The SDM's names for the entries of each level (pte.h's level numbers). */
const char *ms_level_name(unsigned level)
{
    static const char *const names[] = {"?", "PTE", "PDE", "PDPTE", "PML4E", "PML5E"};
    return level <= 5 ? names[level] : "?";
}

static const char *memtype_name(unsigned mt)
{
    static const char *const names[8] = {"UC", "WC", "mt2?", "mt3?", "WT", "WP", "WB", "mt7?"};
    return names[mt & 7];
}

void ms_pte_fault_text(enum ms_pte_format f, enum ms_pte_fault fault, uint64_t e, unsigned level,
                       char *why, size_t n)
{
    const char *large = level == 3 ? "1 GiB" : "2 MiB";
    switch (fault) {
    case MS_PTE_OK:
        snprintf(why, n, "no fault");
        return;
    case MS_PTE_PS_RESERVED:
        snprintf(why, n, "PS set in a %s (reserved)", ms_level_name(level));
        return;
    case MS_PTE_FRAME_RESERVED:
        snprintf(why, n, "%sreserved bits 0x%llx set in a %s %s page",
                 f == MS_PTE_EPT ? "EPT misconfiguration: " : "",
                 (unsigned long long)ms_pte_frame_reserved(f, e, level), large,
                 ms_level_name(level));
        return;
    case MS_PTE_EPT_WRITE_ONLY:
        snprintf(why, n, "EPT misconfiguration: write permission without read");
        return;
    case MS_PTE_EPT_TOP_BITS:
        snprintf(why, n, "EPT misconfiguration: reserved bits 7:3 set in a %s",
                 ms_level_name(level));
        return;
    case MS_PTE_EPT_NONLEAF_BITS:
        snprintf(why, n, "EPT misconfiguration: reserved bits 6:3 set in a non-leaf %s",
                 ms_level_name(level));
        return;
    case MS_PTE_EPT_MEMTYPE:
        snprintf(why, n, "EPT misconfiguration: reserved memory type %u",
                 (unsigned)((e & EPT_MEMTYPE_MASK) >> EPT_MEMTYPE_SHIFT));
        return;
    }
    snprintf(why, n, "unknown fault %d", (int)fault);
}

void ms_pte_describe(enum ms_pte_format f, uint64_t e, unsigned level, char *out, size_t n)
{
    size_t len = 0;
#define ADD(...)                                                                                   \
    do {                                                                                           \
        int k_ = snprintf(out + len, n > len ? n - len : 0, __VA_ARGS__);                          \
        if (k_ > 0)                                                                                \
            len += (size_t)k_;                                                                     \
    } while (0)
    out[0] = '\0';
    if (!ms_pte_present(f, e)) {
        ADD("not present");
        return;
    }
    bool leaf = ms_pte_leaf(e, level);
    if (f == MS_PTE_EPT) {
        ADD("%s%s%s", e & EPT_READ ? "R" : "-", e & EPT_WRITE ? "W" : "-",
            e & EPT_EXEC ? "X" : "-");
        if (e & EPT_EXEC_USER)
            ADD(" XU");
        if (leaf)
            ADD(" %s%s", memtype_name((unsigned)(e >> EPT_MEMTYPE_SHIFT)),
                e & EPT_IGNORE_PAT ? " IPAT" : "");
        if (level > 1 && leaf)
            ADD(" %s", level == 3 ? "1G" : "2M");
        if (e & EPT_ACCESSED)
            ADD(" A");
        if (leaf && (e & EPT_DIRTY))
            ADD(" D");
        if (e & EPT_SUPPRESS_VE)
            ADD(" SVE");
    } else {
        ADD("P %s %s", e & PTE_RW ? "RW" : "RO", e & PTE_US ? "U" : "S");
        if (e & PTE_PWT)
            ADD(" PWT");
        if (e & PTE_PCD)
            ADD(" PCD");
        if (e & PTE_A)
            ADD(" A");
        if (leaf && (e & PTE_D))
            ADD(" D");
        if (level > 1 && leaf)
            ADD(" PS(%s)", level == 3 ? "1G" : "2M");
        if (leaf && (e & PTE_G))
            ADD(" G");
        if (e & PTE_NX)
            ADD(" NX");
    }
#undef ADD
}
