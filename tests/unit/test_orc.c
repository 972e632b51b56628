/* The ORC unwinder on synthetic tables and stacks built here the way objtool
 * and the kernel lay them out (orc_types.h, unwind_orc.c): entry decoding,
 * table decoding and lookup, CALL/REGS/REGS_PARTIAL frames, the ends of a
 * stack, and hostile tables and stacks (loops, sp going down, garbage
 * entries, reads off the stack, a depth cap). */
#include <stdlib.h>

#include "check.h"
#include "orc.h"

#define TEXT 0xffffffff81000000ULL
#define STACK_LO 0xffffc90000010000ULL
#define STACK_SIZE 0x4000
#define IRQ_LO 0xffffc90000100000ULL

struct mem {
    uint64_t lo[2];
    uint8_t bytes[2][STACK_SIZE];
    unsigned reads;
};

static int mem_read(void *arg, uint64_t addr, void *buf, size_t len, struct ms_err *err)
{
    struct mem *m = arg;
    m->reads++;
    for (int i = 0; i < 2; i++)
        if (addr >= m->lo[i] && addr - m->lo[i] <= STACK_SIZE &&
            len <= STACK_SIZE - (addr - m->lo[i])) {
            memcpy(buf, m->bytes[i] + (addr - m->lo[i]), len);
            return 0;
        }
    return ms_err_set(err, MS_EUNMAPPED, "unmapped 0x%llx", (unsigned long long)addr);
}

static void put(struct mem *m, uint64_t addr, uint64_t v)
{
    for (int i = 0; i < 2; i++)
        if (addr >= m->lo[i] && addr - m->lo[i] + 8 <= STACK_SIZE)
            memcpy(m->bytes[i] + (addr - m->lo[i]), &v, 8);
}

static void pack(uint8_t *b, int16_t spo, int16_t bpo, unsigned spr, unsigned bpr, unsigned type,
                 unsigned end)
{
    b[0] = (uint8_t)spo;
    b[1] = (uint8_t)((uint16_t)spo >> 8);
    b[2] = (uint8_t)bpo;
    b[3] = (uint8_t)((uint16_t)bpo >> 8);
    b[4] = (uint8_t)(spr | bpr << 4);
    b[5] = (uint8_t)(type | end << 2);
}

/* The synthetic kernel text, one ORC entry per row. */
enum {
    F_LEAF = 0x000,     /* at entry: CFA = sp + 8 */
    F_LEAF_BODY = 0x10, /* after push bp; sub $8: CFA = sp + 24, bp at CFA - 16 */
    F_MID = 0x100,      /* CFA = sp + 16, bp at CFA - 16 */
    F_ENTRY = 0x200,    /* pt_regs at sp */
    F_IRET = 0x280,     /* iret frame at sp */
    F_FORK = 0x300,     /* UNDEFINED + end: ret_from_fork's kernel-thread path */
    F_BPFRAME = 0x380,  /* CFA = bp + 16 */
    F_R10 = 0x3c0,      /* CFA = r10 (needs pt_regs) */
    F_INDIRECT = 0x3e0, /* CFA = *(sp) + 8 */
    F_END = 0x400,      /* a terminator: UNDEFINED, not end */
};

struct row {
    uint64_t off;
    int16_t spo, bpo;
    unsigned spr, bpr, type, end;
};

static const struct row rows[] = {
    {F_LEAF, 8, 0, MS_ORC_REG_SP, MS_ORC_REG_UNDEFINED, MS_ORC_TYPE_CALL, 0},
    {F_LEAF_BODY, 24, -16, MS_ORC_REG_SP, MS_ORC_REG_PREV_SP, MS_ORC_TYPE_CALL, 0},
    {F_MID, 16, -16, MS_ORC_REG_SP, MS_ORC_REG_PREV_SP, MS_ORC_TYPE_CALL, 0},
    {F_ENTRY, 0, 0, MS_ORC_REG_SP, MS_ORC_REG_UNDEFINED, MS_ORC_TYPE_REGS, 0},
    {F_IRET, 0, 0, MS_ORC_REG_SP, MS_ORC_REG_UNDEFINED, MS_ORC_TYPE_REGS_PARTIAL, 0},
    {F_FORK, 0, 0, MS_ORC_REG_UNDEFINED, MS_ORC_REG_UNDEFINED, MS_ORC_TYPE_CALL, 1},
    {F_BPFRAME, 16, -16, MS_ORC_REG_BP, MS_ORC_REG_PREV_SP, MS_ORC_TYPE_CALL, 0},
    {F_R10, 0, 0, MS_ORC_REG_R10, MS_ORC_REG_UNDEFINED, MS_ORC_TYPE_CALL, 0},
    {F_INDIRECT, 8, 0, MS_ORC_REG_SP_INDIRECT, MS_ORC_REG_UNDEFINED, MS_ORC_TYPE_CALL, 0},
    {F_END, 0, 0, MS_ORC_REG_UNDEFINED, MS_ORC_REG_UNDEFINED, MS_ORC_TYPE_CALL, 0},
};
#define NROWS (sizeof(rows) / sizeof(rows[0]))

/* Lays the rows out as the kernel image holds them: .orc_unwind_ip at
 * ip_addr with self-relative s32, .orc_unwind beside it. */
static void build(struct ms_orc_table *t, struct ms_err *err)
{
    uint8_t ipb[NROWS * 4], orcb[NROWS * 6];
    uint64_t ip_addr = TEXT + 0x1000000;
    for (size_t i = 0; i < NROWS; i++) {
        int32_t rel = (int32_t)(int64_t)(TEXT + rows[i].off - (ip_addr + 4 * i));
        memcpy(ipb + 4 * i, &rel, 4);
        pack(orcb + 6 * i, rows[i].spo, rows[i].bpo, rows[i].spr, rows[i].bpr, rows[i].type,
             rows[i].end);
    }
    int rc = ms_orc_table_decode(t, ip_addr, ipb, sizeof(ipb), orcb, sizeof(orcb), 1000, err);
    CHECK(rc == 0, "decode: %s", err->msg);
}

static void setup(struct ms_orc_unwinder *u, const struct ms_orc_table *t, struct mem *m)
{
    memset(u, 0, sizeof(*u));
    memset(m, 0, sizeof(*m));
    m->lo[0] = STACK_LO;
    m->lo[1] = IRQ_LO;
    u->tables = t;
    u->ntables = 1;
    u->stacks[0] = (struct ms_orc_stack){STACK_LO, STACK_LO + STACK_SIZE};
    u->nstacks = 1;
    u->read = mem_read;
    u->arg = m;
}

static void test_decode(void)
{
    struct ms_orc_entry e;
    uint8_t b[6];
    pack(b, -200, 300, MS_ORC_REG_BP_INDIRECT, MS_ORC_REG_PREV_SP, MS_ORC_TYPE_REGS_PARTIAL, 1);
    ms_orc_entry_decode(b, &e);
    CHECK(e.sp_offset == -200 && e.bp_offset == 300 && e.sp_reg == 8 && e.bp_reg == 1 &&
              e.type == 2 && e.end,
          "entry fields %d %d %u %u %u %d", e.sp_offset, e.bp_offset, e.sp_reg, e.bp_reg, e.type,
          e.end);
    /* a real 6.1 entry: ff 00 f0 ff 15 00 would be sp+255, bp at prev_sp-16, call */
    const uint8_t real[6] = {0x10, 0x00, 0xf0, 0xff, 0x15, 0x00};
    ms_orc_entry_decode(real, &e);
    CHECK(e.sp_offset == 16 && e.bp_offset == -16 && e.sp_reg == MS_ORC_REG_SP &&
              e.bp_reg == MS_ORC_REG_PREV_SP && e.type == MS_ORC_TYPE_CALL && !e.end,
          "objtool's common entry");

    struct ms_err err;
    struct ms_orc_table t;
    build(&t, &err);
    CHECK(t.count == NROWS, "count %zu", t.count);
    CHECK_EQ_U64(t.ips[0], TEXT, "first ip");
    CHECK_EQ_U64(t.ips[NROWS - 1], TEXT + F_END, "last ip");
    CHECK(ms_orc_table_find(&t, TEXT - 1) == NULL, "below the first entry");
    CHECK(ms_orc_table_find(&t, TEXT + 0xf) == &t.entries[0], "inside the first");
    CHECK(ms_orc_table_find(&t, TEXT + F_MID + 0x7f) == &t.entries[2], "inside mid");
    CHECK(ms_orc_table_find(&t, TEXT + F_END + 1) == NULL, "past the text");
    ms_orc_table_slide(&t, 0x2000000);
    CHECK(ms_orc_table_find(&t, TEXT + 0x2000000 + F_MID) == &t.entries[2], "slid");
    CHECK(ms_orc_table_find(&t, TEXT + F_MID) == NULL, "not at the old address");
    ms_orc_table_free(&t);

    /* duplicates: the rightmost wins (weak terminators sort first) */
    uint8_t ipb[12], orcb[18];
    const int32_t rels[3] = {0xf0, 0x100 - 4, 0x100 - 8}; /* ips 0xf0, 0x100, 0x100 */
    for (int i = 0; i < 3; i++) {
        memcpy(ipb + 4 * i, &rels[i], 4);
        pack(orcb + 6 * i, (int16_t)(8 * (i + 1)), 0, MS_ORC_REG_SP, 0, 0, 0);
    }
    CHECK(ms_orc_table_decode(&t, 0, ipb, 12, orcb, 18, 10, &err) == 0, "dups: %s", err.msg);
    CHECK(ms_orc_table_find(&t, 0x100)->sp_offset == 24, "rightmost duplicate");
    ms_orc_table_free(&t);

    CHECK(ms_orc_table_decode(&t, 0, ipb, 12, orcb, 12, 10, &err) == MS_EFORMAT, "counts differ");
    CHECK(ms_orc_table_decode(&t, 0, ipb, 11, orcb, 18, 10, &err) == MS_EFORMAT, "ragged ips");
    CHECK(ms_orc_table_decode(&t, 0, ipb, 0, orcb, 0, 10, &err) == MS_EFORMAT, "empty");
    CHECK(ms_orc_table_decode(&t, 0, ipb, 12, orcb, 18, 2, &err) == MS_EFORMAT, "too many");
    int32_t down = 0; /* ip 8, below 0x100 */
    memcpy(ipb + 8, &down, 4);
    CHECK(ms_orc_table_decode(&t, 0, ipb, 12, orcb, 18, 10, &err) == MS_EFORMAT && !t.ips,
          "unsorted rejected");
}

/* A kernel thread asleep: leaf <- mid <- ret_from_fork-like end. */
static void test_call_chain(void)
{
    struct ms_err err;
    struct ms_orc_table t;
    build(&t, &err);
    struct ms_orc_unwinder u;
    struct mem m;
    setup(&u, &t, &m);
    uint64_t sp0 = STACK_LO + 0x3e00;
    /* leaf's body: CFA = sp0 + 24; bp saved at CFA - 16; return into mid */
    put(&m, sp0 + 8, 0x1111);
    put(&m, sp0 + 16, TEXT + F_MID + 0x20);
    /* mid: CFA = sp0 + 24 + 16; bp at CFA - 16; return into the fork stub */
    put(&m, sp0 + 24, 0x2222);
    put(&m, sp0 + 32, TEXT + F_FORK + 0x8);
    struct ms_orc_state s;
    ms_orc_state_init(&s, TEXT + F_LEAF_BODY + 0x10, sp0, 0, false);
    CHECK(ms_orc_step(&u, &s, &err) == 1, "step 1: %s", err.msg);
    CHECK_EQ_U64(s.ip, TEXT + F_MID + 0x20, "ip 1");
    CHECK_EQ_U64(s.sp, sp0 + 24, "sp 1");
    CHECK_EQ_U64(s.bp, 0x1111, "bp 1");
    CHECK(ms_orc_step(&u, &s, &err) == 1, "step 2: %s", err.msg);
    CHECK_EQ_U64(s.ip, TEXT + F_FORK + 0x8, "ip 2");
    CHECK_EQ_U64(s.bp, 0x2222, "bp 2");
    CHECK(ms_orc_step(&u, &s, &err) == 0, "end at UNDEFINED+end: %s", err.msg);
    CHECK(s.depth == 2, "depth %u", s.depth);

    /* a task that never ran: ret_addr is the fork stub itself (signal) */
    ms_orc_state_init(&s, TEXT + F_FORK, sp0, 0, true);
    CHECK(ms_orc_step(&u, &s, &err) == 0, "fresh task ends at once");
    /* without signal, ip - 1 falls in the previous entry: not the end */
    ms_orc_state_init(&s, TEXT + F_FORK, sp0, 0, false);
    CHECK(ms_orc_step(&u, &s, &err) != 0, "ip - 1 lookup");

    /* CFA from bp */
    put(&m, sp0 + 0x100, 0x3333);
    put(&m, sp0 + 0x108, TEXT + F_FORK + 1);
    ms_orc_state_init(&s, TEXT + F_BPFRAME + 4, sp0, sp0 + 0x100, false);
    CHECK(ms_orc_step(&u, &s, &err) == 1 && s.sp == sp0 + 0x110 && s.bp == 0x3333,
          "bp-based CFA: %s", err.msg);
    /* the same frame from a VMCB's state (no rbp): a clear stop, no guess */
    ms_orc_state_init(&s, TEXT + F_BPFRAME + 4, sp0, 0, true);
    s.bp_unknown = true;
    CHECK(ms_orc_step(&u, &s, &err) < 0 && strstr(err.msg, "needs bp") != NULL, "bp unknown: %s",
          err.msg);
    /* a call frame that restores bp from the stack makes it known */
    ms_orc_state_init(&s, TEXT + F_LEAF_BODY + 0x10, sp0, 0, false);
    s.bp_unknown = true;
    CHECK(ms_orc_step(&u, &s, &err) == 1 && !s.bp_unknown, "sp-based frame without bp: %s",
          err.msg);

    /* SP_INDIRECT: CFA = *(sp) + 8 */
    uint64_t low = STACK_LO + 0x1000;
    put(&m, low, low + 0x200);
    put(&m, low + 0x200, TEXT + F_FORK + 1);
    ms_orc_state_init(&s, TEXT + F_INDIRECT + 4, low, 0, false);
    CHECK(ms_orc_step(&u, &s, &err) == 1 && s.sp == low + 0x208, "sp indirect: %s", err.msg);
    ms_orc_table_free(&t);
}

static void put_regs(struct mem *m, uint64_t at, uint64_t ip, uint64_t cs, uint64_t sp, uint64_t bp,
                     uint64_t r10)
{
    struct ms_orc_regs r;
    memset(&r, 0, sizeof(r));
    r.ip = ip;
    r.cs = cs;
    r.sp = sp;
    r.bp = bp;
    r.r10 = r10;
    r.ss = 0x2b;
    const uint64_t *w = (const uint64_t *)&r;
    for (size_t i = 0; i < sizeof(r) / 8; i++)
        put(m, at + 8 * i, w[i]);
}

static void test_regs(void)
{
    struct ms_err err;
    struct ms_orc_table t;
    build(&t, &err);
    struct ms_orc_unwinder u;
    struct mem m;
    setup(&u, &t, &m);
    uint64_t sp0 = STACK_LO + 0x2000;
    /* a syscall: mid returns into the entry code, pt_regs from user mode */
    uint64_t regs = sp0 + 16;
    put(&m, sp0 + 8, TEXT + F_ENTRY + 0x10);
    put_regs(&m, regs, 0x401000, 0x33, 0x7ffff000, 0x7ffff100, 0);
    struct ms_orc_state s;
    ms_orc_state_init(&s, TEXT + F_MID + 4, sp0, 0, false);
    CHECK(ms_orc_step(&u, &s, &err) == 1, "into entry: %s", err.msg);
    CHECK(ms_orc_step(&u, &s, &err) == 1, "pt_regs: %s", err.msg);
    CHECK(s.has_regs && s.full_regs && ms_orc_regs_user(&s.regs), "user regs");
    CHECK_EQ_U64(s.ip, 0x401000, "user ip");
    CHECK_EQ_U64(s.regs_addr, regs, "regs addr");
    CHECK_EQ_U64(s.bp, 0x7ffff100, "bp from regs");
    CHECK(ms_orc_step(&u, &s, &err) == 0, "user mode ends");

    /* an interrupt of kernel code: continue at regs->ip, where R10 is a
     * base register read from those regs */
    put_regs(&m, regs, TEXT + F_R10 + 4, 0x10, sp0 + 0x400, 0, sp0 + 0x500);
    put(&m, sp0 + 0x4f8, TEXT + F_FORK + 1);
    ms_orc_state_init(&s, TEXT + F_MID + 4, sp0, 0, false);
    CHECK(ms_orc_step(&u, &s, &err) == 1 && ms_orc_step(&u, &s, &err) == 1, "kernel regs: %s",
          err.msg);
    CHECK(!ms_orc_regs_user(&s.regs) && s.ip == TEXT + F_R10 + 4 && s.signal, "at regs->ip");
    CHECK(ms_orc_step(&u, &s, &err) == 1 && s.sp == sp0 + 0x500, "R10 base: %s", err.msg);
    CHECK(ms_orc_step(&u, &s, &err) == 0, "then the end");

    /* R10 with no pt_regs saved */
    ms_orc_state_init(&s, TEXT + F_R10 + 4, sp0, 0, false);
    CHECK(ms_orc_step(&u, &s, &err) == MS_EFORMAT && strstr(err.msg, "r10"), "no regs: %s",
          err.msg);

    /* an iret frame (REGS_PARTIAL) from user mode */
    put(&m, sp0 + 8, TEXT + F_IRET + 0x10);
    uint64_t iret[5] = {0x402000, 0x33, 0x246, 0x7fff0000, 0x2b};
    for (int i = 0; i < 5; i++)
        put(&m, sp0 + 16 + 8 * i, iret[i]);
    ms_orc_state_init(&s, TEXT + F_MID + 4, sp0, 0, false);
    CHECK(ms_orc_step(&u, &s, &err) == 1 && ms_orc_step(&u, &s, &err) == 1, "iret: %s", err.msg);
    CHECK(s.has_regs && !s.full_regs && s.ip == 0x402000 && s.regs_addr == sp0 + 16 - 128,
          "iret regs");
    CHECK(ms_orc_step(&u, &s, &err) == 0, "iret user ends");
    ms_orc_table_free(&t);
}

static void test_hostile(void)
{
    struct ms_err err;
    struct ms_orc_table t;
    build(&t, &err);
    struct ms_orc_unwinder u;
    struct mem m;
    setup(&u, &t, &m);
    uint64_t sp0 = STACK_LO + 0x1000;
    struct ms_orc_state s;
    int rc;

    /* an indirect sp that points back down the stack */
    put(&m, sp0, sp0 - 0x100);
    put(&m, sp0 - 0x100, TEXT + F_INDIRECT + 1);
    ms_orc_state_init(&s, TEXT + F_INDIRECT + 4, sp0, 0, false);
    CHECK(ms_orc_step(&u, &s, &err) == MS_EFORMAT && strstr(err.msg, "wrong direction"),
          "sp going down: %s", err.msg);

    /* every word of the stack a return address into leaf: each step moves
     * 8 bytes up, so the depth cap ends it */
    for (uint64_t a = STACK_LO; a < STACK_LO + STACK_SIZE; a += 8)
        put(&m, a, TEXT + F_LEAF + 1);
    u.max_depth = 50;
    ms_orc_state_init(&s, TEXT + F_LEAF + 1, STACK_LO, 0, true);
    unsigned steps = 0;
    while ((rc = ms_orc_step(&u, &s, &err)) == 1)
        steps++;
    CHECK(rc == MS_ELIMIT && steps == 50, "depth cap: rc %d after %u", rc, steps);
    u.max_depth = 0;
    ms_orc_state_init(&s, TEXT + F_LEAF + 1, STACK_LO, 0, true);
    steps = 0;
    while ((rc = ms_orc_step(&u, &s, &err)) == 1)
        steps++;
    CHECK(rc == MS_ELIMIT && steps == MS_ORC_DEPTH_DEFAULT, "default cap: %u", steps);

    /* running off the top of the stack: the read is refused */
    u.max_depth = 100000;
    m.reads = 0;
    ms_orc_state_init(&s, TEXT + F_LEAF + 1, STACK_LO + STACK_SIZE - 64, 0, true);
    while ((rc = ms_orc_step(&u, &s, &err)) == 1)
        ;
    CHECK(rc == MS_EFORMAT && strstr(err.msg, "outside the task's stacks"), "off the top: %s",
          err.msg);
    CHECK(m.reads < 20, "no read outside the stack (%u reads)", m.reads);
    u.max_depth = 0;

    /* a return address that is not kernel text */
    memset(m.bytes, 0, sizeof(m.bytes));
    put(&m, sp0 - 8, 0xdeadbeef);
    ms_orc_state_init(&s, TEXT + F_LEAF + 1, sp0 - 8, 0, true);
    CHECK(ms_orc_step(&u, &s, &err) == MS_EFORMAT && strstr(err.msg, "not kernel text"),
          "garbage ip: %s", err.msg);
    /* an ip no table covers */
    ms_orc_state_init(&s, 0x1234, sp0, 0, true);
    CHECK(ms_orc_step(&u, &s, &err) == MS_ENOTFOUND, "no ORC data: %s", err.msg);
    /* sp outside every stack */
    ms_orc_state_init(&s, TEXT + F_LEAF + 1, 0xffff888000000000ULL, 0, true);
    CHECK(ms_orc_step(&u, &s, &err) == MS_EFORMAT, "sp off-stack: %s", err.msg);
    /* the terminator entry (UNDEFINED without end) */
    ms_orc_state_init(&s, TEXT + F_END, sp0, 0, true);
    CHECK(ms_orc_step(&u, &s, &err) == MS_EFORMAT && strstr(err.msg, "undefined"), "terminator: %s",
          err.msg);
    /* a pt_regs that would straddle the stack's top */
    put(&m, STACK_LO + STACK_SIZE - 0x40, TEXT + F_ENTRY + 1);
    ms_orc_state_init(&s, TEXT + F_LEAF + 1, STACK_LO + STACK_SIZE - 0x40, 0, true);
    CHECK(ms_orc_step(&u, &s, &err) == 1, "into entry: %s", err.msg);
    CHECK(ms_orc_step(&u, &s, &err) == MS_EFORMAT, "pt_regs past the top: %s", err.msg);

    /* garbage entries: bad type, bad registers */
    uint8_t ipb[8] = {0}, orcb[12];
    int32_t rel0 = 0x7000000, rel1 = rel0 + 0x100 - 4;
    memcpy(ipb, &rel0, 4);
    memcpy(ipb + 4, &rel1, 4);
    struct ms_orc_table g;
    const unsigned bad[][3] = {{MS_ORC_REG_SP, 0, 3}, {15, 0, 0}, {MS_ORC_REG_SP, 7, 0}};
    for (size_t i = 0; i < 3; i++) {
        pack(orcb, 8, 0, bad[i][0], bad[i][1], bad[i][2], 0);
        pack(orcb + 6, 0, 0, 0, 0, 0, 1);
        CHECK(ms_orc_table_decode(&g, TEXT - 0x7000000, ipb, 8, orcb, 12, 10, &err) == 0,
              "garbage decodes");
        u.tables = &g;
        put(&m, sp0, TEXT + 0x10);
        ms_orc_state_init(&s, TEXT + 0x10, sp0 - 8, 0, true);
        rc = ms_orc_step(&u, &s, &err);
        CHECK(rc == MS_EFORMAT, "garbage entry %zu: rc %d %s", i, rc, err.msg);
        ms_orc_table_free(&g);
    }
    u.tables = &t;

    /* two stacks: leaving the IRQ stack for the task stack is fine; coming
     * back to the IRQ stack is a loop */
    u.stacks[1] = (struct ms_orc_stack){IRQ_LO, IRQ_LO + STACK_SIZE};
    u.nstacks = 2;
    uint64_t isp = IRQ_LO + 0x100;
    put(&m, isp, sp0);                   /* indirect: CFA = *(sp) + 8 */
    put(&m, sp0, TEXT + F_INDIRECT + 1); /* ... on the task stack */
    put(&m, sp0 + 8, isp - 0x40);        /* and again back to the IRQ stack */
    put(&m, isp - 0x40, TEXT + F_FORK + 1);
    ms_orc_state_init(&s, TEXT + F_INDIRECT + 4, isp, 0, false);
    CHECK(ms_orc_step(&u, &s, &err) == 1 && s.stack == 0, "irq -> task: %s", err.msg);
    CHECK(ms_orc_step(&u, &s, &err) == MS_EFORMAT && strstr(err.msg, "re-enters"),
          "task -> irq again: %s", err.msg);
    ms_orc_table_free(&t);
}

/* Random tables and stacks: every unwind ends, within the cap, without a
 * read outside the stacks. */
static void test_random(void)
{
    srand(12345);
    struct mem m;
    struct ms_err err;
    unsigned ends[3] = {0};
    for (int iter = 0; iter < 3000; iter++) {
        uint8_t ipb[64 * 4], orcb[64 * 6];
        size_t n = 1 + (size_t)rand() % 64;
        for (size_t i = 0; i < n; i++) {
            int32_t rel = (int32_t)(0x40 * i - 4 * i);
            memcpy(ipb + 4 * i, &rel, 4);
            for (int j = 0; j < 6; j++)
                orcb[6 * i + j] = (uint8_t)rand();
            orcb[6 * i] &= 0x78; /* small offsets, multiples of 8 */
            orcb[6 * i + 1] = rand() % 4 ? 0 : 0xff;
        }
        struct ms_orc_table t;
        if (ms_orc_table_decode(&t, TEXT, ipb, n * 4, orcb, n * 6, 64, &err) < 0) {
            CHECK(0, "random decode: %s", err.msg);
            continue;
        }
        struct ms_orc_unwinder u;
        setup(&u, &t, &m);
        for (uint64_t a = STACK_LO; a < STACK_LO + STACK_SIZE; a += 8)
            put(&m, a,
                rand() % 3 ? TEXT + (uint64_t)(rand() % (int)(n * 0x40))
                           : STACK_LO + (uint64_t)(rand() % STACK_SIZE));
        struct ms_orc_state s;
        ms_orc_state_init(&s, TEXT + (uint64_t)(rand() % (int)(n * 0x40)),
                          STACK_LO + (uint64_t)(rand() % STACK_SIZE), 0, rand() % 2);
        int rc;
        unsigned steps = 0;
        uint64_t prev = s.sp;
        bool mono = true;
        while ((rc = ms_orc_step(&u, &s, &err)) == 1) {
            steps++;
            if (!s.has_regs || !ms_orc_regs_user(&s.regs))
                mono = mono && s.sp > prev;
            prev = s.sp;
        }
        ends[rc == 0 ? 0 : rc == MS_ELIMIT ? 1 : 2]++;
        if (steps > MS_ORC_DEPTH_DEFAULT || !mono)
            CHECK(0, "iteration %d: %u steps, monotonic %d", iter, steps, mono);
        ms_orc_table_free(&t);
    }
    CHECK(ends[0] + ends[1] + ends[2] == 3000, "all ended");
    printf("random: %u clean ends, %u depth caps, %u errors\n", ends[0], ends[1], ends[2]);
}

int main(void)
{
    test_decode();
    test_call_chain();
    test_regs();
    test_hostile();
    test_random();
    return check_done("test_orc");
}
