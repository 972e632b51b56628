/* Fuzzes the ORC table decoder and the unwinder. Input: a 24-byte header
 * (byte 0: entry count n (1..64); byte 1: flags (bit 0 signal, bit 1 start
 * from a pt_regs on the stack, bit 2 second stack); bytes 2-3: start ip
 * offset; 4-5: start sp offset; 6-13: bp; 14-23 unused), then n 4-byte
 * .orc_unwind_ip values, n 6-byte .orc_unwind entries, then the stack's
 * bytes. The ip table is decoded as given (at TEXT) and, when the decoder
 * refuses it, replaced by evenly spaced ips so the unwinder always runs.
 * Checked: every read stays inside the stacks, every unwind ends within the
 * depth cap, sp grows on a stack. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "orc.h"

#define TEXT 0xffffffff81000000ULL
#define STACK_LO 0xffffc90000010000ULL
#define STACK_SIZE 4096
#define IRQ_LO 0xffffc90000100000ULL
#define IRQ_SIZE 1024

struct mem {
    uint8_t stack[STACK_SIZE];
    uint8_t irq[IRQ_SIZE];
};

static int mem_read(void *arg, uint64_t addr, void *buf, size_t len, struct ms_err *err)
{
    struct mem *m = arg;
    if (addr >= STACK_LO && addr - STACK_LO <= STACK_SIZE && len <= STACK_SIZE - (addr - STACK_LO))
        memcpy(buf, m->stack + (addr - STACK_LO), len);
    else if (addr >= IRQ_LO && addr - IRQ_LO <= IRQ_SIZE && len <= IRQ_SIZE - (addr - IRQ_LO))
        memcpy(buf, m->irq + (addr - IRQ_LO), len);
    else
        abort(); /* the unwinder must never ask outside the stacks it was given */
    (void)err;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 24)
        return 0;
    size_t n = 1 + data[0] % 64;
    unsigned flags = data[1];
    uint16_t ipo, spo;
    uint64_t bp;
    memcpy(&ipo, data + 2, 2);
    memcpy(&spo, data + 4, 2);
    memcpy(&bp, data + 6, 8);
    const uint8_t *rest = data + 24;
    size_t left = size - 24;
    uint8_t ipb[64 * 4] = {0}, orcb[64 * 6] = {0};
    size_t take = left < n * 4 ? left : n * 4;
    memcpy(ipb, rest, take);
    rest += take;
    left -= take;
    take = left < n * 6 ? left : n * 6;
    memcpy(orcb, rest, take);
    rest += take;
    left -= take;
    static struct mem m;
    memset(&m, 0, sizeof(m));
    take = left < sizeof(m) ? left : sizeof(m);
    memcpy(&m, rest, take);

    struct ms_err err;
    struct ms_orc_table t;
    if (ms_orc_table_decode(&t, TEXT, ipb, n * 4, orcb, n * 6, 64, &err) < 0) {
        for (size_t i = 0; i < n; i++) {
            int32_t rel = (int32_t)(16 * i - 4 * i);
            memcpy(ipb + 4 * i, &rel, 4);
        }
        if (ms_orc_table_decode(&t, TEXT, ipb, n * 4, orcb, n * 6, 64, &err) < 0)
            abort();
    }
    if (t.count != n)
        abort();
    struct ms_orc_unwinder u = {0};
    u.tables = &t;
    u.ntables = 1;
    u.stacks[0] = (struct ms_orc_stack){STACK_LO, STACK_LO + STACK_SIZE};
    u.nstacks = 1;
    if (flags & 4)
        u.stacks[u.nstacks++] = (struct ms_orc_stack){IRQ_LO, IRQ_LO + IRQ_SIZE};
    u.read = mem_read;
    u.arg = &m;
    u.max_depth = 64;
    struct ms_orc_state s;
    uint64_t sp = STACK_LO + spo % STACK_SIZE;
    if (flags & 2) {
        struct ms_orc_regs r;
        memcpy(&r, m.stack + (spo % (STACK_SIZE - sizeof(r))), sizeof(r));
        ms_orc_state_init_regs(&s, &r, sp);
    } else {
        ms_orc_state_init(&s, TEXT + ipo % (16 * n + 16), sp, bp, flags & 1);
    }
    int rc;
    unsigned steps = 0;
    uint64_t prev = s.sp;
    int prev_stack = -1;
    while ((rc = ms_orc_step(&u, &s, &err)) == 1) {
        if (++steps > 64)
            abort();
        bool user = s.has_regs && ms_orc_regs_user(&s.regs);
        if (!user && prev_stack == s.stack && s.sp <= prev)
            abort();
        prev = s.sp;
        prev_stack = s.stack;
    }
    if (rc > 0 || (rc < 0 && !err.msg[0]))
        abort();
    ms_orc_table_free(&t);
    return 0;
}
