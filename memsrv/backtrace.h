/* Backtraces of a Linux kernel's tasks (x86-64, 6.1): the kernel's ORC
 * tables (from the vmlinux file, else from guest memory through the
 * __start_orc_unwind_ip... symbols), each sleeping task's first frame (the
 * inactive_task_frame at task->thread.sp, left by __switch_to_asm) and its
 * stack (task->stack, THREAD_SIZE), unwound with orc.h; printed as crash's
 * header line and the kernel's own frame format (func+0xoff/0xsize). Struct
 * offsets come from the kernel's typedb (DWARF, or BTF when that fills it). */
#ifndef MEMSRV_BACKTRACE_H
#define MEMSRV_BACKTRACE_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "kernel.h"
#include "orc.h"
#include "strbuf.h"

/* The offsets the unwinder's start needs. */
struct ms_bt_layout {
    uint64_t task_stack;     /* task_struct.stack */
    uint64_t task_thread_sp; /* task_struct.thread + thread_struct.sp */
    uint64_t task_on_cpu;    /* task_struct.on_cpu */
    uint64_t task_cpu;       /* task_struct.thread_info + thread_info.cpu, or task_struct.cpu */
    uint64_t frame_size, frame_bp, frame_ret_addr; /* inactive_task_frame */
    /* its callee-saved registers, for a debugger's view of the thread
     * (UINT64_MAX: not in this kernel's frame) */
    uint64_t frame_bx, frame_r12, frame_r13, frame_r14, frame_r15;
    uint64_t thread_size; /* THREAD_SIZE */
};

/* Fills l from db (the structs of ms_bt_structs must be in it). */
int ms_bt_layout_from_typedb(struct ms_bt_layout *l, const struct ms_typedb *db,
                             struct ms_err *err);
extern const char *const ms_bt_structs[]; /* NULL-terminated */

/* What unwinding a kernel's tasks needs, loaded once per kernel; the
 * modules' part again once the RAM changed (modules come and go). */
struct ms_backtracer {
    /* [0] the vmlinux text's, runtime addresses; then one per module whose
     * ORC tables (struct module's arch.orc_unwind_ip/orc_unwind) were read */
    struct ms_orc_table *tables;
    size_t ntables, cap;
    uint64_t modules_generation; /* the RAM's generation when the modules' were read */
    bool modules_read;
    uint64_t modules_bad; /* modules whose tables could not be read */
    struct ms_bt_layout layout;
    uint64_t ret_from_fork;
    char orc_source[64]; /* "vmlinux" or "guest memory" */
};

enum ms_bt_kind {
    MS_BT_CALL,        /* a return address (the kernel prints it as a trace line) */
    MS_BT_KERNEL_REGS, /* pt_regs of interrupted kernel code: ip = regs->ip */
    MS_BT_USER_REGS,   /* pt_regs from user mode: the end of the kernel stack */
    MS_BT_CPU_REGS,    /* a running task's CPU (ip, sp, flags from a dump's notes) */
};

struct ms_bt_frame {
    enum ms_bt_kind kind;
    uint64_t ip, sp;
    uint64_t cs, ss, flags; /* pt_regs frames */
};

struct ms_backtrace {
    uint64_t task;
    int32_t pid;
    uint32_t cpu;
    char comm[17];
    /* on a CPU at the stop: its saved frame is stale; unwound from the CPU's
     * registers when they are at hand (frames[0] is MS_BT_CPU_REGS), else not */
    bool running;
    /* where a nested guest's registers were saved (its VMCB or vmcs12: the
     * vCPU may have run on in the nested guest since), or NULL */
    const char *saved_by;
    struct ms_bt_frame *frames;
    size_t count, cap;
    int end;       /* 0: the stack's end was reached; else why not (a MS_E* code) */
    char why[512]; /* end != 0: the message */
};

/* Loads k's backtracer (k->bt) unless it is there: the ORC tables, the
 * layout (ms_kernel_need_types) and ret_from_fork. */
int ms_kernel_backtracer(struct ms_kernel *k, struct ms_err *err);
void ms_backtracer_free(struct ms_backtracer *b);

/* One task's trace; a running one's from its CPU's registers in cpus (a
 * dump's notes, indexed by CPU number; NULL: none at hand). A failed unwind
 * is not an error of the call: out->end and out->why say where it stopped,
 * with the frames found before. Errors: what prevents any trace (no ORC
 * tables, no layout, out of memory). */
int ms_kernel_backtrace(struct ms_kernel *k, const struct ms_task *task,
                        const struct ms_cpu_state *cpus, unsigned ncpus, struct ms_backtrace *out,
                        struct ms_err *err);
void ms_backtrace_free(struct ms_backtrace *bt);

/* crash's header and the kernel's frame lines:
 *   PID: 2        TASK: ff11000003df0000  CPU: 0    COMMAND: "kthreadd"
 *    #0 __schedule+0x34d/0xa00
 * pt_regs as the kernel shows them (RIP: 0010:func+0x1/0x2, RSP: ...). */
void ms_backtrace_format(const struct ms_kernel *k, const struct ms_backtrace *bt,
                         struct ms_strbuf *sb);

/* A task's registers (memsrv.h's ms_target_task_regs): its switched-out
 * frame when asleep; when on a CPU, that CPU's registers from cpus (a
 * dump's notes, indexed by CPU number; NULL: none at hand). */
int ms_kernel_task_regs(struct ms_kernel *k, uint64_t task, const struct ms_cpu_state *cpus,
                        unsigned ncpus, struct ms_task_regs *out, struct ms_err *err);

/* One ORC step (memsrv.h's ms_target_unwind_step), reading through mem (an
 * address space where the kernel's addresses map). */
int ms_kernel_unwind_step(struct ms_kernel *k, struct ms_space *mem, const struct ms_frame *in,
                          struct ms_frame *out, struct ms_err *err);

/* `bt`: the tasks with the given pids (all when npids is 0), formatted one
 * after another with a blank line between; running ones from their CPU's
 * registers in cpus (as ms_kernel_backtrace). A pid with no task is an
 * error, after the others are printed. */
int ms_kernel_bt_report(struct ms_kernel *k, const int32_t *pids, size_t npids,
                        const struct ms_cpu_state *cpus, unsigned ncpus, struct ms_strbuf *out,
                        struct ms_err *err);

/* `bt --cpu N`: the task running on cpu (its per-CPU current_task, vcpus.h),
 * formatted as above, from cpus[cpu] when at hand. */
int ms_kernel_cpu_bt_report(struct ms_kernel *k, uint32_t cpu, const struct ms_cpu_state *cpus,
                            unsigned ncpus, struct ms_strbuf *out, struct ms_err *err);

#endif
