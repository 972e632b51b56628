/* The x86-64 ORC unwinder of Linux 6.1 (arch/x86/kernel/unwind_orc.c,
 * arch/x86/include/asm/orc_types.h) over guest memory: decoding of the
 * .orc_unwind_ip / .orc_unwind tables, lookup of an ip, and one unwind step
 * at a time through a read callback. Pure: no kernel structures here, only
 * the tables, the registers and the stacks the caller names. Every step is
 * checked (sp inside a given stack and increasing on it, ip in a table's
 * text, a depth cap), so a hostile stack ends a trace with an error, never
 * a loop. */
#ifndef MEMSRV_ORC_H
#define MEMSRV_ORC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* orc_types.h (6.1): base registers and frame types. */
enum ms_orc_reg {
    MS_ORC_REG_UNDEFINED = 0,
    MS_ORC_REG_PREV_SP = 1,
    MS_ORC_REG_DX = 2,
    MS_ORC_REG_DI = 3,
    MS_ORC_REG_BP = 4,
    MS_ORC_REG_SP = 5,
    MS_ORC_REG_R10 = 6,
    MS_ORC_REG_R13 = 7,
    MS_ORC_REG_BP_INDIRECT = 8,
    MS_ORC_REG_SP_INDIRECT = 9,
};

enum ms_orc_type {
    MS_ORC_TYPE_CALL = 0,         /* ip = *(CFA - 8), sp = CFA */
    MS_ORC_TYPE_REGS = 1,         /* a full pt_regs at CFA */
    MS_ORC_TYPE_REGS_PARTIAL = 2, /* an iret frame (pt_regs from ip on) at CFA */
};

#define MS_ORC_ENTRY_SIZE                                                                          \
    6 /* packed: s16 sp_offset, s16 bp_offset, sp_reg:4 bp_reg:4 type:2 end:1 */

struct ms_orc_entry {
    int16_t sp_offset, bp_offset;
    uint8_t sp_reg, bp_reg, type;
    bool end;
};

/* Decodes one packed 6-byte entry (little-endian bitfields). */
void ms_orc_entry_decode(const uint8_t *bytes, struct ms_orc_entry *out);

/* One text range's table (vmlinux or a module): ips[i] is the first address
 * entries[i] covers, sorted as the kernel sorted them. */
struct ms_orc_table {
    uint64_t *ips;
    struct ms_orc_entry *entries;
    size_t count;
    uint64_t text_start, text_end; /* [start, end): the code it describes */
};

/* Decodes the parallel tables: ip_bytes are .orc_unwind_ip (self-relative
 * s32, the table lying at ip_addr; add `slide` to every ip afterwards for
 * a table read from the vmlinux file), orc_bytes .orc_unwind. The counts
 * must agree and not exceed max_entries. */
int ms_orc_table_decode(struct ms_orc_table *t, uint64_t ip_addr, const uint8_t *ip_bytes,
                        size_t ip_len, const uint8_t *orc_bytes, size_t orc_len, size_t max_entries,
                        struct ms_err *err);
/* Moves every ip and the text range by slide (KASLR). */
void ms_orc_table_slide(struct ms_orc_table *t, uint64_t slide);
void ms_orc_table_free(struct ms_orc_table *t);

/* The entry covering ip: the rightmost entry starting at or below it (the
 * kernel's __orc_find). NULL below the first entry or outside the text. */
const struct ms_orc_entry *ms_orc_table_find(const struct ms_orc_table *t, uint64_t ip);

/* pt_regs (x86-64), in the kernel's order. */
struct ms_orc_regs {
    uint64_t r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di, orig_ax;
    uint64_t ip, cs, flags, sp, ss;
};
#define MS_ORC_PT_REGS_SIZE 168
#define MS_ORC_IRET_OFFSET 128 /* offsetof(pt_regs, ip) */
#define MS_ORC_IRET_SIZE 40

typedef int (*ms_orc_read_fn)(void *arg, uint64_t addr, void *buf, size_t len, struct ms_err *err);

struct ms_orc_stack {
    uint64_t lo, hi; /* [lo, hi) */
};

#define MS_ORC_MAX_STACKS 8
#define MS_ORC_DEPTH_DEFAULT 128

/* What an unwind may use: the tables (their text ranges say which ips are
 * kernel code), the stacks the task may be on, and memory. */
struct ms_orc_unwinder {
    const struct ms_orc_table *tables;
    size_t ntables;
    struct ms_orc_stack stacks[MS_ORC_MAX_STACKS];
    size_t nstacks;
    ms_orc_read_fn read;
    void *arg;
    unsigned max_depth; /* frames; 0: MS_ORC_DEPTH_DEFAULT */
};

/* unwind_orc.c's struct unwind_state, with pt_regs copied off the stack. */
struct ms_orc_state {
    uint64_t ip, sp, bp;
    bool signal;    /* ip is not a return address: look it up as is */
    bool has_regs;  /* regs holds the pt_regs of the last REGS/REGS_PARTIAL frame */
    bool full_regs; /* ... all of it (REGS), not only the iret part */
    bool has_prev_regs;
    bool bp_unknown; /* bp was not saved (a VMCB's state): a frame that needs it stops */
    struct ms_orc_regs regs, prev_regs;
    uint64_t regs_addr;   /* where regs lie on the stack */
    int stack;            /* index in the unwinder's stacks of sp, -1 unknown */
    unsigned stacks_seen; /* bit per stack left behind: a stack is never re-entered */
    unsigned depth;       /* steps so far */
};

/* A state for a task switched out by __switch_to_asm: its
 * inactive_task_frame's ret_addr and bp, sp just above the frame; signal
 * when ret_addr is ret_from_fork (a task that never ran). */
void ms_orc_state_init(struct ms_orc_state *s, uint64_t ip, uint64_t sp, uint64_t bp, bool signal);
/* A state from a full pt_regs at regs_addr (0 when not on a stack). */
void ms_orc_state_init_regs(struct ms_orc_state *s, const struct ms_orc_regs *regs,
                            uint64_t regs_addr);

/* pt_regs from user mode: the end of a kernel stack. */
bool ms_orc_regs_user(const struct ms_orc_regs *regs);

/* One step: 1 with s at the caller's frame, 0 at the stack's end (an
 * UNDEFINED+end entry, or user-mode pt_regs: s->has_regs then says so),
 * or a negative code with *err saying why the unwind cannot go on. */
int ms_orc_step(const struct ms_orc_unwinder *u, struct ms_orc_state *s, struct ms_err *err);

#endif
