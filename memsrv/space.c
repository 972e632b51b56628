#include "space.h"

#include <stdlib.h>
#include <string.h>

#include "pte.h"

#define PAGE_SHIFT 12
#define PAGE_SIZE (1ULL << PAGE_SHIFT)
#define PAGE_MASK (~(PAGE_SIZE - 1))
/* Guest-physical is linear throughout: only RAM regions bound a run. */
#define PHYS_LINEAR_SIZE (1ULL << 62)

const char *ms_space_kind_name(enum ms_space_kind kind)
{
    switch (kind) {
    case MS_SPACE_PHYS:
        return "phys";
    case MS_SPACE_PAGING:
        return "paging";
    case MS_SPACE_NPT:
        return "NPT";
    case MS_SPACE_EPT:
        return "EPT";
    }
    return "?";
}

static enum ms_pte_format format_of(const struct ms_space *s)
{
    return s->kind == MS_SPACE_EPT ? MS_PTE_EPT : MS_PTE_X86;
}

static struct ms_space *space_new(enum ms_space_kind kind, struct ms_space *lower,
                                  struct ms_ram *ram, struct ms_err *err)
{
    struct ms_space *s = calloc(1, sizeof(*s));
    if (!s) {
        ms_err_set(err, MS_ENOMEM, "out of memory");
        return NULL;
    }
    s->kind = kind;
    s->lower = lower;
    s->ram = ram;
    if (kind != MS_SPACE_PHYS) {
        s->tlb = calloc(MS_TLB_ENTRIES, sizeof(*s->tlb));
        if (!s->tlb) {
            free(s);
            ms_err_set(err, MS_ENOMEM, "out of memory");
            return NULL;
        }
    }
    return s;
}

int ms_space_phys(struct ms_space **out, struct ms_ram *ram, struct ms_err *err)
{
    *out = space_new(MS_SPACE_PHYS, NULL, ram, err);
    return *out ? 0 : MS_ENOMEM;
}

static int new_walked(struct ms_space **out, enum ms_space_kind kind, struct ms_space *lower,
                      uint64_t root, unsigned levels, struct ms_err *err)
{
    *out = NULL;
    if (!lower)
        return ms_err_set(err, MS_EINVAL, "a %s space needs a lower space",
                          ms_space_kind_name(kind));
    if (levels != 4 && levels != 5)
        return ms_err_set(err, MS_EINVAL, "paging depth must be 4 or 5, not %u", levels);
    struct ms_space *s = space_new(kind, lower, lower->ram, err);
    if (!s)
        return MS_ENOMEM;
    s->psc = calloc((size_t)(levels - 1) * MS_PSC_ENTRIES, sizeof(*s->psc));
    if (!s->psc) {
        ms_space_free(s);
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    }
    s->root = root;
    s->root_table = root & PTE_ADDR_MASK;
    s->levels = levels;
    *out = s;
    return 0;
}

int ms_space_paging(struct ms_space **out, struct ms_space *lower, uint64_t cr3, unsigned levels,
                    struct ms_err *err)
{
    return new_walked(out, MS_SPACE_PAGING, lower, cr3, levels, err);
}

int ms_space_npt(struct ms_space **out, struct ms_space *lower, uint64_t ncr3, unsigned levels,
                 struct ms_err *err)
{
    return new_walked(out, MS_SPACE_NPT, lower, ncr3, levels, err);
}

int ms_space_ept(struct ms_space **out, struct ms_space *lower, uint64_t eptp, struct ms_err *err)
{
    *out = NULL;
    unsigned walk = (unsigned)((eptp & EPTP_WALK_LENGTH_MASK) >> EPTP_WALK_LENGTH_SHIFT) + 1;
    unsigned mt = (unsigned)(eptp & EPTP_MEMTYPE_MASK);
    if (walk != 4 && walk != 5)
        return ms_err_set(err, MS_EINVAL,
                          "EPTP 0x%llx: page-walk length %u (bits 5:3 = %u) is not 4 or 5",
                          (unsigned long long)eptp, walk, walk - 1);
    if (mt != 0 && mt != 6)
        return ms_err_set(err, MS_EINVAL,
                          "EPTP 0x%llx: memory type %u (bits 2:0) is neither UC (0) nor WB (6); "
                          "is this really an EPTP?",
                          (unsigned long long)eptp, mt);
    if (eptp & EPTP_RESERVED_MASK)
        return ms_err_set(err, MS_EINVAL, "EPTP 0x%llx: reserved bits 11:8 are set",
                          (unsigned long long)eptp);
    int rc = new_walked(out, MS_SPACE_EPT, lower, eptp, walk, err);
    if (!rc)
        (*out)->ept_ad = eptp & EPTP_AD_ENABLE;
    return rc;
}

void ms_space_free(struct ms_space *space)
{
    if (!space)
        return;
    free(space->tlb);
    free(space->psc);
    free(space);
}

uint64_t ms_space_canonical(const struct ms_space *space, uint64_t addr)
{
    if (space->kind != MS_SPACE_PAGING)
        return addr;
    unsigned bits = space->levels == 5 ? 57 : 48;
    return (uint64_t)((int64_t)(addr << (64 - bits)) >> (64 - bits));
}

static uint64_t level_shift(unsigned level)
{
    return PAGE_SHIFT + 9 * (level - 1);
}

static int translate_at(struct ms_space *s, uint64_t addr, struct ms_xlat *out,
                        struct ms_trace *trace, unsigned depth, struct ms_err *err);

/* Reads one table entry at `entry_addr` of s's lower space. Runs inside the
 * walk's SIGBUS guard, so it may load from the mapping directly. */
static int read_entry(struct ms_space *s, uint64_t entry_addr, uint64_t *value,
                      uint64_t *entry_phys, struct ms_trace *trace, unsigned depth,
                      struct ms_err *err)
{
    s->stats.table_reads++;
    uint64_t phys = entry_addr;
    if (s->lower->kind != MS_SPACE_PHYS) {
        struct ms_xlat x;
        int rc = translate_at(s->lower, entry_addr, &x, trace, depth + 1, err);
        if (rc)
            return rc;
        phys = x.phys;
    }
    *entry_phys = phys;
    const uint8_t *p = ms_ram_ptr(s->ram, phys, 8);
    if (!p)
        return ms_err_set(err, MS_EOUTSIDE, "guest-physical address 0x%llx is not in RAM",
                          (unsigned long long)phys);
    memcpy(value, p, 8);
    return 0;
}

static void trace_add(struct ms_trace *trace, const struct ms_trace_entry *e)
{
    if (trace->count < MS_TRACE_MAX)
        trace->entries[trace->count++] = *e;
}

static unsigned perms_all(void)
{
    return MS_PERM_R | MS_PERM_W | MS_PERM_X | MS_PERM_U;
}

/* The cache slot for the level-`level` table that translates addr. */
static struct ms_psc_entry *psc_slot(const struct ms_space *s, uint64_t addr, unsigned level,
                                     uint64_t *tag)
{
    *tag = (addr >> level_shift(level + 1)) + 1;
    return &s->psc[(level - 1) * MS_PSC_ENTRIES + (*tag & (MS_PSC_ENTRIES - 1))];
}

/* The deepest cached table on addr's path: its level, address, and the
 * permissions granted above it. Leaves *level etc. alone on a miss. */
static void psc_lookup(const struct ms_space *s, uint64_t addr, unsigned *level, uint64_t *table,
                       unsigned *perms)
{
    if (s->psc_generation != s->ram->generation) /* nothing filled since the last flush */
        return;
    for (unsigned l = 1; l < s->levels; l++) {
        uint64_t tag;
        const struct ms_psc_entry *e = psc_slot(s, addr, l, &tag);
        if (e->tag == tag && e->generation == s->ram->generation) {
            *level = l;
            *table = e->table;
            *perms = e->perms;
            return;
        }
    }
}

static void psc_fill(struct ms_space *s, uint64_t addr, unsigned level, uint64_t table,
                     unsigned perms)
{
    uint64_t tag;
    struct ms_psc_entry *e = psc_slot(s, addr, level, &tag);
    *e = (struct ms_psc_entry){tag, s->ram->generation, table, perms};
    s->psc_generation = s->ram->generation;
}

static int entry_error(const struct ms_space *s, uint64_t addr, unsigned level, unsigned index,
                       uint64_t entry, uint64_t entry_addr, uint64_t entry_phys, struct ms_err *err)
{
    const char *dim = ms_space_kind_name(s->kind);
    enum ms_pte_format fmt = format_of(s);
    if (!ms_pte_present(fmt, entry))
        return ms_err_set(err, MS_EUNMAPPED,
                          "%s walk of 0x%llx: %s[%u] = 0x%llx at 0x%llx (phys 0x%llx) is not "
                          "present",
                          dim, (unsigned long long)addr, ms_level_name(level), index,
                          (unsigned long long)entry, (unsigned long long)entry_addr,
                          (unsigned long long)entry_phys);
    char why[160];
    ms_pte_fault_text(fmt, ms_pte_fault(fmt, entry, level, ms_pte_leaf(entry, level)), entry, level,
                      why, sizeof(why));
    return ms_err_set(
        err, MS_ERESERVED, "%s walk of 0x%llx: %s[%u] = 0x%llx at 0x%llx (phys 0x%llx): %s", dim,
        (unsigned long long)addr, ms_level_name(level), index, (unsigned long long)entry,
        (unsigned long long)entry_addr, (unsigned long long)entry_phys, why);
}

/* The walk of one dimension. Every entry is read through the lower space,
 * which walks its own tables: the 2-D walk falls out of the recursion. A
 * traced walk reads every entry, so it skips the paging-structure cache. */
static int walk(struct ms_space *s, uint64_t addr, struct ms_xlat *out, struct ms_trace *trace,
                unsigned depth, struct ms_err *err)
{
    const enum ms_pte_format fmt = format_of(s);
    uint64_t table = s->root_table;
    unsigned perms = perms_all();
    unsigned level = s->levels;
    s->stats.walks++;
    if (!trace)
        psc_lookup(s, addr, &level, &table, &perms);
    for (; level >= 1; level--) {
        unsigned index = (unsigned)((addr >> level_shift(level)) & 511);
        uint64_t entry_addr = table + 8ULL * index, entry = 0, entry_phys = 0;
        int rc = read_entry(s, entry_addr, &entry, &entry_phys, trace, depth, err);
        if (rc)
            return ms_err_prefix(err, "%s walk of 0x%llx: reading %s[%u] at 0x%llx: ",
                                 ms_space_kind_name(s->kind), (unsigned long long)addr,
                                 ms_level_name(level), index, (unsigned long long)entry_addr);
        if (trace) {
            struct ms_trace_entry te = {
                (uint8_t)depth, (uint8_t)s->kind, (uint8_t)level, (uint16_t)index,
                entry_addr,     entry_phys,       entry};
            trace_add(trace, &te);
        }
        bool leaf = ms_pte_leaf(entry, level);
        if (!ms_pte_present(fmt, entry) || ms_pte_fault(fmt, entry, level, leaf) != MS_PTE_OK)
            return entry_error(s, addr, level, index, entry, entry_addr, entry_phys, err);
        perms &= ms_pte_perms(fmt, entry);
        if (leaf) {
            uint64_t size = 1ULL << level_shift(level);
            out->addr = addr;
            out->lower = (entry & PTE_ADDR_MASK & ~(size - 1)) | (addr & (size - 1));
            out->page_size = size;
            out->perms = perms;
            return 0;
        }
        table = entry & PTE_ADDR_MASK;
        if (!trace)
            psc_fill(s, addr, level - 1, table, perms);
    }
    return ms_err_set(err, MS_EFORMAT, "walk ended without a leaf"); /* not reached */
}

static inline int check_address(const struct ms_space *s, uint64_t addr, struct ms_err *err)
{
    if (s->kind == MS_SPACE_PAGING) {
        if (ms_space_canonical(s, addr) != addr)
            return ms_err_set(err, MS_EUNMAPPED,
                              "0x%llx is not a canonical %u-level virtual address",
                              (unsigned long long)addr, s->levels);
    } else if (s->kind != MS_SPACE_PHYS) {
        unsigned bits = (unsigned)level_shift(s->levels) + 9;
        if (addr >> bits)
            return ms_err_set(err, MS_EOUTSIDE,
                              "0x%llx is beyond the %u-bit guest-physical space of a %u-level %s",
                              (unsigned long long)addr, bits, s->levels,
                              ms_space_kind_name(s->kind));
    }
    return 0;
}

static int walk_both(struct ms_space *s, uint64_t addr, struct ms_xlat *out, struct ms_trace *trace,
                     unsigned depth, struct ms_err *err)
{
    int rc = walk(s, addr, out, trace, depth, err);
    if (rc)
        return rc;
    if (s->lower->kind == MS_SPACE_PHYS && ms_ram_region(s->ram, out->lower)) {
        /* The common bottom of a stack, without a call: phys is linear. */
        out->phys = out->lower;
        out->linear_size = out->page_size;
        return 0;
    }
    struct ms_xlat below;
    rc = translate_at(s->lower, out->lower, &below, trace, depth + 1, err);
    if (rc)
        return ms_err_prefix(err, "%s maps 0x%llx to 0x%llx, but: ", ms_space_kind_name(s->kind),
                             (unsigned long long)addr, (unsigned long long)out->lower);
    out->phys = below.phys;
    out->linear_size = below.linear_size < out->page_size ? below.linear_size : out->page_size;
    return 0;
}

/* The translation cache: true and *out filled on a hit. */
static inline bool tlb_hit(struct ms_space *s, uint64_t addr, struct ms_xlat *out)
{
    uint64_t vpn = addr >> PAGE_SHIFT;
    const struct ms_tlb_entry *t = &s->tlb[vpn & (MS_TLB_ENTRIES - 1)];
    if (t->tag != vpn + 1 || t->generation != s->ram->generation)
        return false;
    s->stats.hits++;
    uint64_t off = addr & (PAGE_SIZE - 1);
    *out = (struct ms_xlat){
        addr,     t->lower_page | off,    t->phys_page | off, 1ULL << t->size_shift,
        t->perms, 1ULL << t->linear_shift};
    return true;
}

static void tlb_fill(struct ms_space *s, const struct ms_xlat *x)
{
    uint64_t vpn = x->addr >> PAGE_SHIFT;
    s->tlb[vpn & (MS_TLB_ENTRIES - 1)] = (struct ms_tlb_entry){
        vpn + 1,
        s->ram->generation,
        x->lower & PAGE_MASK,
        x->phys & PAGE_MASK,
        x->perms,
        (uint8_t)__builtin_ctzll(x->page_size),
        (uint8_t)__builtin_ctzll(x->linear_size),
    };
}

/* Reads guest RAM: callers hold the SIGBUS guard (ms_ram_guarded). */
static int translate_at(struct ms_space *s, uint64_t addr, struct ms_xlat *out,
                        struct ms_trace *trace, unsigned depth, struct ms_err *err)
{
    if (s->kind == MS_SPACE_PHYS) {
        if (!ms_ram_region(s->ram, addr))
            return ms_err_set(err, MS_EOUTSIDE, "guest-physical address 0x%llx is not in RAM",
                              (unsigned long long)addr);
        *out = (struct ms_xlat){
            addr, addr, addr, PAGE_SIZE, MS_PERM_R | MS_PERM_W | MS_PERM_X, PHYS_LINEAR_SIZE};
        return 0;
    }
    int rc = check_address(s, addr, err);
    if (rc)
        return rc;
    if (!trace) {
        if (tlb_hit(s, addr, out))
            return 0;
        s->stats.misses++;
    }
    rc = walk_both(s, addr, out, trace, depth, err);
    if (!rc && !trace)
        tlb_fill(s, out);
    return rc;
}

struct translate_call {
    struct ms_space *s;
    uint64_t addr;
    struct ms_xlat *out;
    struct ms_trace *trace;
    struct ms_err *err;
};

static int translate_guarded(void *arg)
{
    struct translate_call *c = arg;
    return translate_at(c->s, c->addr, c->out, c->trace, 0, c->err);
}

int ms_space_translate(struct ms_space *space, uint64_t addr, struct ms_xlat *out,
                       struct ms_trace *trace, struct ms_err *err)
{
    if (trace)
        trace->count = 0;
    /* A hit reads no guest memory, so it needs no SIGBUS guard. */
    else if (space->kind != MS_SPACE_PHYS && check_address(space, addr, NULL) == 0 &&
             tlb_hit(space, addr, out))
        return 0;
    struct ms_err scratch; /* the code must survive a caller's NULL err */
    if (!err)
        err = &scratch;
    struct translate_call c = {space, addr, out, trace, err};
    return ms_ram_guarded(space->ram, translate_guarded, &c, err);
}

struct access_call {
    struct ms_space *s;
    uint64_t addr;
    uint8_t *buf;       /* read into, or NULL */
    const uint8_t *src; /* write from, or NULL */
    size_t len, copied;
    struct ms_err *err;
};

/* Inside the SIGBUS guard: translates one linear block at a time (a large
 * page is one block) and moves each run of blocks that follow each other in
 * one RAM region with one memcpy. */
static int access_guarded(void *arg)
{
    struct access_call *c = arg;
    struct ms_space *s = c->s;
    while (c->copied < c->len) {
        uint64_t at = c->addr + c->copied;
        struct ms_xlat x;
        int rc = translate_at(s, at, &x, NULL, 0, c->err);
        if (rc)
            return rc;
        const struct ms_region *r = ms_ram_region(s->ram, x.phys);
        if (!r) /* translations check their first byte: not expected, but never trusted */
            return ms_err_set(c->err, MS_EOUTSIDE, "guest-physical address 0x%llx is not in RAM",
                              (unsigned long long)x.phys);
        uint64_t region_left = r->len - (x.phys - r->gpa);
        /* The run: to the end of the linear block (a large page copies
         * whole), then following blocks while they continue in RAM. A block
         * that fails to translate ends the run; the next round reports it. */
        uint64_t left = c->len - c->copied;
        uint64_t n = x.linear_size - (at & (x.linear_size - 1));
        while (n < left && n < region_left) {
            struct ms_xlat next;
            if (translate_at(s, at + n, &next, NULL, 0, NULL) != 0 || next.phys != x.phys + n)
                break;
            n += next.linear_size - ((at + n) & (next.linear_size - 1));
        }
        if (n > left)
            n = left;
        if (n > region_left)
            n = region_left;
        uint8_t *p = s->ram->sources[r->source].map + r->offset + (x.phys - r->gpa);
        if (c->src)
            memcpy(p, c->src + c->copied, n);
        else
            memcpy(c->buf + c->copied, p, n);
        c->copied += n;
    }
    return 0;
}

static int space_access(struct ms_space *s, uint64_t addr, void *buf, const void *src, size_t len,
                        size_t *done, struct ms_err *err)
{
    struct ms_err scratch; /* the code must survive a caller's NULL err */
    if (!err)
        err = &scratch;
    struct access_call c = {s, addr, buf, src, len, 0, err};
    int rc = src ? ms_ram_check_writable(s->ram, err) : 0;
    if (!rc)
        rc = ms_ram_guarded(s->ram, access_guarded, &c, err);
    if (rc) {
        ms_err_prefix(err, "cannot access 0x%llx: ", (unsigned long long)(addr + c.copied));
        ms_err_fault(err, addr + c.copied);
    }
    if (done)
        *done = c.copied;
    return rc;
}

int ms_space_read(struct ms_space *space, uint64_t addr, void *buf, size_t len, size_t *done,
                  struct ms_err *err)
{
    return space_access(space, addr, buf, NULL, len, done, err);
}

int ms_space_write(struct ms_space *space, uint64_t addr, const void *buf, size_t len, size_t *done,
                   struct ms_err *err)
{
    return space_access(space, addr, NULL, buf, len, done, err);
}

struct enum_state {
    struct ms_space *s;
    uint64_t start, end;
    ms_mapping_fn fn;
    void *arg;
    uint64_t tables, max_tables, bad_tables;
    uint64_t *table_buf; /* levels x 512 entries */
};

static int enum_table(struct enum_state *st, uint64_t table, unsigned level, uint64_t base,
                      unsigned perms, struct ms_err *err)
{
    struct ms_space *s = st->s;
    const enum ms_pte_format fmt = format_of(s);
    if (++st->tables > st->max_tables)
        return ms_err_set(err, MS_ELIMIT,
                          "visited more than %llu page tables (a table that maps itself?); "
                          "narrow the range",
                          (unsigned long long)st->max_tables);
    uint64_t *entries = st->table_buf + 512 * (level - 1);
    if (ms_space_read(s->lower, table, entries, PAGE_SIZE, NULL, NULL) != 0) {
        st->bad_tables++;
        return 0;
    }
    uint64_t span = 1ULL << level_shift(level);
    for (unsigned i = 0; i < 512; i++) {
        uint64_t va = base + i * span;
        if (s->kind == MS_SPACE_PAGING)
            va = ms_space_canonical(s, va);
        uint64_t last = va + span - 1;
        if (last < st->start || va > st->end)
            continue;
        uint64_t e = entries[i];
        if (!ms_pte_present(fmt, e))
            continue;
        bool leaf = ms_pte_leaf(e, level);
        if (ms_pte_fault(fmt, e, level, leaf) != MS_PTE_OK) {
            st->bad_tables++;
            continue;
        }
        unsigned p = perms & ms_pte_perms(fmt, e);
        if (leaf) {
            struct ms_mapping m = {va, span, e & PTE_ADDR_MASK & ~(span - 1), p, e};
            int rc = st->fn(st->arg, &m);
            if (rc)
                return rc;
        } else {
            int rc = enum_table(st, e & PTE_ADDR_MASK, level - 1, va, p, err);
            if (rc)
                return rc;
            /* A deeper level reuses its buffer; this level's is intact. */
        }
    }
    return 0;
}

int ms_space_enumerate(struct ms_space *space, uint64_t start, uint64_t end, ms_mapping_fn fn,
                       void *arg, uint64_t max_tables, uint64_t *bad_tables, struct ms_err *err)
{
    if (space->kind == MS_SPACE_PHYS)
        return ms_err_set(err, MS_EINVAL, "a physical space has no page tables to enumerate");
    struct enum_state st = {space, start, end, fn, arg, 0, max_tables ? max_tables : 1u << 20,
                            0,     NULL};
    st.table_buf = malloc(space->levels * 512 * sizeof(uint64_t));
    if (!st.table_buf)
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    int rc = enum_table(&st, space->root_table, space->levels, 0, perms_all(), err);
    free(st.table_buf);
    if (bad_tables)
        *bad_tables = st.bad_tables;
    return rc;
}

int ms_space_read_fn(void *space, uint64_t addr, void *buf, size_t len, size_t *done,
                     struct ms_err *err)
{
    return ms_space_read(space, addr, buf, len, done, err);
}
