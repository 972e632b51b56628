#include "orc.h"

#include <stdlib.h>
#include <string.h>

void ms_orc_entry_decode(const uint8_t *b, struct ms_orc_entry *out)
{
    out->sp_offset = (int16_t)(uint16_t)(b[0] | b[1] << 8);
    out->bp_offset = (int16_t)(uint16_t)(b[2] | b[3] << 8);
    out->sp_reg = b[4] & 0xf;
    out->bp_reg = b[4] >> 4;
    out->type = b[5] & 0x3;
    out->end = (b[5] >> 2) & 1;
}

int ms_orc_table_decode(struct ms_orc_table *t, uint64_t ip_addr, const uint8_t *ip_bytes,
                        size_t ip_len, const uint8_t *orc_bytes, size_t orc_len, size_t max_entries,
                        struct ms_err *err)
{
    memset(t, 0, sizeof(*t));
    if (ip_len % 4 || orc_len % MS_ORC_ENTRY_SIZE)
        return ms_err_set(err, MS_EFORMAT,
                          "ORC tables of %zu and %zu bytes: not whole 4- and 6-byte entries",
                          ip_len, orc_len);
    size_t n = ip_len / 4;
    if (n != orc_len / MS_ORC_ENTRY_SIZE)
        return ms_err_set(err, MS_EFORMAT,
                          "ORC tables disagree: %zu ips (.orc_unwind_ip) but %zu entries "
                          "(.orc_unwind)",
                          n, orc_len / MS_ORC_ENTRY_SIZE);
    if (n == 0 || n > max_entries)
        return ms_err_set(err, MS_EFORMAT, "ORC table of %zu entries (at most %zu expected)", n,
                          max_entries);
    t->ips = malloc(n * sizeof(*t->ips));
    t->entries = malloc(n * sizeof(*t->entries));
    if (!t->ips || !t->entries) {
        ms_orc_table_free(t);
        return ms_err_set(err, MS_ENOMEM, "out of memory for %zu ORC entries", n);
    }
    for (size_t i = 0; i < n; i++) {
        int32_t rel;
        memcpy(&rel, ip_bytes + 4 * i, 4);
        /* unsigned wrap-around: the kernel's (unsigned long)ip + *ip */
        t->ips[i] = ip_addr + 4 * (uint64_t)i + (uint64_t)(int64_t)rel;
        if (i && t->ips[i] < t->ips[i - 1]) {
            uint64_t prev = t->ips[i - 1], cur = t->ips[i];
            ms_orc_table_free(t);
            return ms_err_set(err, MS_EFORMAT,
                              "ORC ip table not sorted at entry %zu (0x%llx after 0x%llx): not an "
                              "ORC table, or a damaged one",
                              i, (unsigned long long)cur, (unsigned long long)prev);
        }
        ms_orc_entry_decode(orc_bytes + MS_ORC_ENTRY_SIZE * i, &t->entries[i]);
    }
    t->count = n;
    t->text_start = t->ips[0];
    t->text_end = t->ips[n - 1] + 1;
    return 0;
}

void ms_orc_table_slide(struct ms_orc_table *t, uint64_t slide)
{
    for (size_t i = 0; i < t->count; i++)
        t->ips[i] += slide;
    t->text_start += slide;
    t->text_end += slide;
}

void ms_orc_table_free(struct ms_orc_table *t)
{
    free(t->ips);
    free(t->entries);
    memset(t, 0, sizeof(*t));
}

const struct ms_orc_entry *ms_orc_table_find(const struct ms_orc_table *t, uint64_t ip)
{
    if (!t->count || ip < t->text_start || ip >= t->text_end || ip < t->ips[0])
        return NULL;
    size_t lo = 0, hi = t->count; /* first index with ips[i] > ip */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->ips[mid] <= ip)
            lo = mid + 1;
        else
            hi = mid;
    }
    return &t->entries[lo - 1];
}

void ms_orc_state_init(struct ms_orc_state *s, uint64_t ip, uint64_t sp, uint64_t bp, bool signal)
{
    memset(s, 0, sizeof(*s));
    s->ip = ip;
    s->sp = sp;
    s->bp = bp;
    s->signal = signal;
    s->stack = -1;
}

void ms_orc_state_init_regs(struct ms_orc_state *s, const struct ms_orc_regs *regs,
                            uint64_t regs_addr)
{
    ms_orc_state_init(s, regs->ip, regs->sp, regs->bp, true);
    s->regs = *regs;
    s->regs_addr = regs_addr;
    s->has_regs = true;
    s->full_regs = true;
}

bool ms_orc_regs_user(const struct ms_orc_regs *regs)
{
    return (regs->cs & 3) != 0;
}

/* The stack holding sp (its top included: an empty stack's sp), or -1. */
static int stack_of(const struct ms_orc_unwinder *u, uint64_t sp)
{
    for (size_t i = 0; i < u->nstacks; i++)
        if (sp >= u->stacks[i].lo && sp <= u->stacks[i].hi)
            return (int)i;
    return -1;
}

static bool in_text(const struct ms_orc_unwinder *u, uint64_t ip)
{
    for (size_t i = 0; i < u->ntables; i++)
        if (ip >= u->tables[i].text_start && ip < u->tables[i].text_end)
            return true;
    return false;
}

static const struct ms_orc_entry *find(const struct ms_orc_unwinder *u, uint64_t ip)
{
    for (size_t i = 0; i < u->ntables; i++) {
        const struct ms_orc_entry *e = ms_orc_table_find(&u->tables[i], ip);
        if (e)
            return e;
    }
    return NULL;
}

/* The kernel's stack_access_ok + deref: reads only inside a known stack. */
static int read_stack(const struct ms_orc_unwinder *u, uint64_t addr, void *buf, size_t len,
                      const char *what, struct ms_err *err)
{
    bool inside = false;
    for (size_t i = 0; i < u->nstacks && !inside; i++)
        inside = addr >= u->stacks[i].lo && addr < u->stacks[i].hi && len <= u->stacks[i].hi - addr;
    if (!inside)
        return ms_err_set(err, MS_EFORMAT, "%s at 0x%llx is outside the task's stacks", what,
                          (unsigned long long)addr);
    int rc = u->read(u->arg, addr, buf, len, err);
    if (rc < 0)
        return ms_err_prefix(err, "reading %s at 0x%llx: ", what, (unsigned long long)addr);
    return 0;
}

/* unwind_orc.c's get_reg: a register saved in the last full pt_regs. */
static bool get_reg(const struct ms_orc_state *s, size_t off, uint64_t *val)
{
    const struct ms_orc_regs *r = NULL;
    if (s->has_regs && s->full_regs)
        r = &s->regs;
    else if (s->has_regs && s->has_prev_regs)
        r = &s->prev_regs;
    if (!r)
        return false;
    memcpy(val, (const char *)r + off, 8);
    return true;
}

static const char *reg_name(unsigned reg)
{
    static const char *const names[] = {
        "undefined", "prev_sp", "dx", "di", "bp", "sp", "r10", "r13", "bp_indirect", "sp_indirect"};
    return reg < sizeof(names) / sizeof(names[0]) ? names[reg] : "unknown";
}

int ms_orc_step(const struct ms_orc_unwinder *u, struct ms_orc_state *s, struct ms_err *err)
{
    if (s->has_regs && ms_orc_regs_user(&s->regs))
        return 0;
    unsigned max = u->max_depth ? u->max_depth : MS_ORC_DEPTH_DEFAULT;
    if (s->depth >= max)
        return ms_err_set(err, MS_ELIMIT, "more than %u frames: stopped (a loop?)", max);
    if (s->stack < 0) {
        s->stack = stack_of(u, s->sp);
        if (s->stack < 0)
            return ms_err_set(err, MS_EFORMAT, "sp 0x%llx is outside the task's stacks",
                              (unsigned long long)s->sp);
    }
    /* A return address may follow a call to a noreturn function: the
     * call's own entry is the one that describes the frame. */
    uint64_t at = s->signal ? s->ip : s->ip - 1;
    const struct ms_orc_entry *orc = find(u, at);
    if (!orc)
        return ms_err_set(err, MS_ENOTFOUND, "no ORC data for ip 0x%llx (not kernel text?)",
                          (unsigned long long)s->ip);
    if (orc->sp_reg == MS_ORC_REG_UNDEFINED) {
        if (orc->end)
            return 0;
        return ms_err_set(err, MS_EFORMAT, "ORC entry for ip 0x%llx is undefined",
                          (unsigned long long)s->ip);
    }
    bool needs_bp = orc->sp_reg == MS_ORC_REG_BP || orc->sp_reg == MS_ORC_REG_BP_INDIRECT ||
                    orc->bp_reg == MS_ORC_REG_BP;
    if (s->bp_unknown && needs_bp)
        return ms_err_set(err, MS_ENOTFOUND,
                          "ORC entry for ip 0x%llx needs bp, and the registers at hand lack it",
                          (unsigned long long)s->ip);
    uint64_t sp;
    bool indirect = false;
    switch (orc->sp_reg) {
    case MS_ORC_REG_SP:
        sp = s->sp + (uint64_t)(int64_t)orc->sp_offset;
        break;
    case MS_ORC_REG_BP:
        sp = s->bp + (uint64_t)(int64_t)orc->sp_offset;
        break;
    case MS_ORC_REG_SP_INDIRECT:
        sp = s->sp;
        indirect = true;
        break;
    case MS_ORC_REG_BP_INDIRECT:
        sp = s->bp + (uint64_t)(int64_t)orc->sp_offset;
        indirect = true;
        break;
    case MS_ORC_REG_R10:
    case MS_ORC_REG_R13:
    case MS_ORC_REG_DI:
    case MS_ORC_REG_DX: {
        size_t off = orc->sp_reg == MS_ORC_REG_R10   ? offsetof(struct ms_orc_regs, r10)
                     : orc->sp_reg == MS_ORC_REG_R13 ? offsetof(struct ms_orc_regs, r13)
                     : orc->sp_reg == MS_ORC_REG_DI  ? offsetof(struct ms_orc_regs, di)
                                                     : offsetof(struct ms_orc_regs, dx);
        if (!get_reg(s, off, &sp))
            return ms_err_set(err, MS_EFORMAT,
                              "ORC entry for ip 0x%llx needs %s, and no pt_regs saved it",
                              (unsigned long long)s->ip, reg_name(orc->sp_reg));
        break;
    }
    default:
        return ms_err_set(err, MS_EFORMAT, "ORC entry for ip 0x%llx has sp base register %u",
                          (unsigned long long)s->ip, orc->sp_reg);
    }
    if (indirect) {
        int rc = read_stack(u, sp, &sp, 8, "indirect sp", err);
        if (rc < 0)
            return rc;
        if (orc->sp_reg == MS_ORC_REG_SP_INDIRECT)
            sp += (uint64_t)(int64_t)orc->sp_offset;
    }
    struct ms_orc_state n = *s;
    switch (orc->type) {
    case MS_ORC_TYPE_CALL: {
        int rc = read_stack(u, sp - 8, &n.ip, 8, "return address", err);
        if (rc < 0)
            return rc;
        n.sp = sp;
        n.has_regs = n.has_prev_regs = false;
        n.signal = false;
        break;
    }
    case MS_ORC_TYPE_REGS: {
        uint8_t raw[MS_ORC_PT_REGS_SIZE];
        int rc = read_stack(u, sp, raw, sizeof(raw), "pt_regs", err);
        if (rc < 0)
            return rc;
        memcpy(&n.regs, raw, sizeof(raw));
        n.regs_addr = sp;
        n.ip = n.regs.ip;
        n.sp = n.regs.sp;
        n.has_regs = n.full_regs = n.signal = true;
        n.has_prev_regs = false;
        break;
    }
    case MS_ORC_TYPE_REGS_PARTIAL: {
        uint8_t raw[MS_ORC_IRET_SIZE];
        int rc = read_stack(u, sp, raw, sizeof(raw), "iret frame", err);
        if (rc < 0)
            return rc;
        if (s->has_regs && s->full_regs) {
            n.prev_regs = s->regs;
            n.has_prev_regs = true;
        }
        memset(&n.regs, 0, sizeof(n.regs));
        memcpy(&n.regs.ip, raw, sizeof(raw));
        n.regs_addr = sp - MS_ORC_IRET_OFFSET;
        n.ip = n.regs.ip;
        n.sp = n.regs.sp;
        n.has_regs = n.signal = true;
        n.full_regs = false;
        break;
    }
    default:
        return ms_err_set(err, MS_EFORMAT, "ORC entry for ip 0x%llx has type %u",
                          (unsigned long long)s->ip, orc->type);
    }
    switch (orc->bp_reg) {
    case MS_ORC_REG_UNDEFINED: {
        uint64_t bp;
        if (get_reg(&n, offsetof(struct ms_orc_regs, bp), &bp)) {
            n.bp = bp;
            n.bp_unknown = false;
        }
        break;
    }
    case MS_ORC_REG_PREV_SP: {
        int rc = read_stack(u, sp + (uint64_t)(int64_t)orc->bp_offset, &n.bp, 8, "saved bp", err);
        if (rc < 0)
            return rc;
        n.bp_unknown = false;
        break;
    }
    case MS_ORC_REG_BP: {
        int rc =
            read_stack(u, s->bp + (uint64_t)(int64_t)orc->bp_offset, &n.bp, 8, "saved bp", err);
        if (rc < 0)
            return rc;
        break;
    }
    default:
        return ms_err_set(err, MS_EFORMAT, "ORC entry for ip 0x%llx has bp base register %u",
                          (unsigned long long)s->ip, orc->bp_reg);
    }
    n.depth = s->depth + 1;
    if (n.has_regs && ms_orc_regs_user(&n.regs)) {
        *s = n; /* the user-mode registers end the kernel stack */
        return 1;
    }
    /* Bad ORC data must not make a loop: sp only grows on a stack, and a
     * stack left behind is never entered again. */
    int st = stack_of(u, n.sp);
    if (st < 0)
        return ms_err_set(err, MS_EFORMAT,
                          "unwound sp 0x%llx (from ip 0x%llx) is outside the "
                          "task's stacks",
                          (unsigned long long)n.sp, (unsigned long long)s->ip);
    if (st == s->stack && n.sp <= s->sp)
        return ms_err_set(err, MS_EFORMAT,
                          "stack going in the wrong direction at ip 0x%llx: sp 0x%llx after 0x%llx",
                          (unsigned long long)s->ip, (unsigned long long)n.sp,
                          (unsigned long long)s->sp);
    if (st != s->stack) {
        if (n.stacks_seen & (1u << st))
            return ms_err_set(err, MS_EFORMAT, "unwind re-enters a stack it left (sp 0x%llx)",
                              (unsigned long long)n.sp);
        n.stacks_seen |= 1u << s->stack;
        n.stack = st;
    }
    if (!in_text(u, n.ip))
        return ms_err_set(err, MS_EFORMAT, "%s 0x%llx (sp 0x%llx) is not kernel text",
                          n.has_regs ? "pt_regs ip" : "return address", (unsigned long long)n.ip,
                          (unsigned long long)n.sp);
    *s = n;
    return 1;
}
