#include "pte.h"

#include <stdio.h>
#include <string.h>

#include "space.h"

static bool x86_present(uint64_t e)
{
    return e & PTE_P;
}

static bool x86_leaf(uint64_t e, unsigned level)
{
    return level == 1 || ((level == 2 || level == 3) && (e & PTE_PS));
}

static int x86_check(uint64_t e, unsigned level, bool leaf, char *why, size_t n)
{
    if (level >= 4 && (e & PTE_PS)) {
        snprintf(why, n, "PS set in a %s (reserved)", ms_level_name(level));
        return 1;
    }
    if (leaf && level > 1) {
        /* Bits between the PAT bit and the page frame are reserved. */
        uint64_t frame = 1ULL << (12 + 9 * (level - 1));
        uint64_t reserved = (frame - 1) & ~0x1fffULL;
        if (e & reserved) {
            snprintf(why, n, "reserved bits 0x%llx set in a %s %s page",
                     (unsigned long long)(e & reserved), level == 3 ? "1 GiB" : "2 MiB",
                     ms_level_name(level));
            return 1;
        }
    }
    return 0;
}

static unsigned x86_perms(uint64_t e)
{
    unsigned p = MS_PERM_R;
    if (e & PTE_RW)
        p |= MS_PERM_W;
    if (e & PTE_US)
        p |= MS_PERM_U;
    if (!(e & PTE_NX))
        p |= MS_PERM_X;
    return p;
}

const struct ms_pte_format ms_pte_x86 = {"x86-64", x86_present, x86_leaf, x86_check, x86_perms};

/* SDM 29.3.2: an entry is present when any of bits 2:0 is set; an
 * execute-only entry is present. */
static bool ept_present(uint64_t e)
{
    return e & (EPT_READ | EPT_WRITE | EPT_EXEC);
}

static bool ept_leaf(uint64_t e, unsigned level)
{
    return level == 1 || ((level == 2 || level == 3) && (e & EPT_LARGE));
}

static int ept_check(uint64_t e, unsigned level, bool leaf, char *why, size_t n)
{
    /* SDM 29.3.3.1: write without read is a misconfiguration. */
    if ((e & EPT_WRITE) && !(e & EPT_READ)) {
        snprintf(why, n, "EPT misconfiguration: write permission without read");
        return 1;
    }
    if (level >= 4 && (e & 0xf8)) {
        snprintf(why, n, "EPT misconfiguration: reserved bits 7:3 set in a %s",
                 ms_level_name(level));
        return 1;
    }
    if (!leaf && level < 4 && (e & 0x78)) {
        snprintf(why, n, "EPT misconfiguration: reserved bits 6:3 set in a non-leaf %s",
                 ms_level_name(level));
        return 1;
    }
    if (leaf) {
        unsigned mt = (unsigned)((e & EPT_MEMTYPE_MASK) >> EPT_MEMTYPE_SHIFT);
        if (mt == 2 || mt == 3 || mt == 7) {
            snprintf(why, n, "EPT misconfiguration: reserved memory type %u", mt);
            return 1;
        }
        if (level > 1) {
            uint64_t frame = 1ULL << (12 + 9 * (level - 1));
            uint64_t reserved = (frame - 1) & ~0xfffULL;
            if (e & reserved) {
                snprintf(why, n, "EPT misconfiguration: reserved bits 0x%llx set in a %s page",
                         (unsigned long long)(e & reserved), level == 3 ? "1 GiB" : "2 MiB");
                return 1;
            }
        }
    }
    return 0;
}

static unsigned ept_perms(uint64_t e)
{
    unsigned p = 0;
    if (e & EPT_READ)
        p |= MS_PERM_R;
    if (e & EPT_WRITE)
        p |= MS_PERM_W;
    if (e & EPT_EXEC)
        p |= MS_PERM_X;
    if (e & EPT_EXEC_USER)
        p |= MS_PERM_U;
    return p;
}

const struct ms_pte_format ms_pte_ept = {"EPT", ept_present, ept_leaf, ept_check, ept_perms};

static const char *memtype_name(unsigned mt)
{
    static const char *const names[8] = {"UC", "WC", "mt2?", "mt3?", "WT", "WP", "WB", "mt7?"};
    return names[mt & 7];
}

void ms_pte_describe(const struct ms_pte_format *format, uint64_t e, unsigned level, char *out,
                     size_t n)
{
    size_t len = 0;
#define ADD(...)                                                                                   \
    do {                                                                                           \
        int k_ = snprintf(out + len, n > len ? n - len : 0, __VA_ARGS__);                          \
        if (k_ > 0)                                                                                \
            len += (size_t)k_;                                                                     \
    } while (0)
    out[0] = '\0';
    if (!format->present(e)) {
        ADD("not present");
        return;
    }
    bool leaf = format->leaf(e, level);
    if (format == &ms_pte_ept) {
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
