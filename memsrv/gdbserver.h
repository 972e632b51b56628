/* A read-only GDB remote target over a Linux kernel's memory (`memsrv
 * gdbserver`): GDB's remote serial protocol (rsp.h) answered from a source
 * of tasks, their registers and memory. Threads are the kernel's tasks
 * (thread id = pid; idle tasks, pid 0, get IDLE_TID_BASE + their index);
 * each thread's registers are its switched-out frame, or its CPU's from a
 * dump (memsrv.h's ms_target_task_regs); memory is read through one address
 * space. Nothing can be written or run: writes, breakpoints and resumes get
 * an error reply. No I/O here: bytes in, bytes out, so a test or the fuzz
 * target (tests/fuzz/fuzz_gdbserver.c) drives it like the CLI's loop does.
 * Every packet is hostile input: a malformed one gets an error reply. */
#ifndef MEMSRV_GDBSERVER_H
#define MEMSRV_GDBSERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memsrv.h"

#define MS_GDB_PACKET_MAX 16384         /* PacketSize we announce and accept */
#define MS_GDB_IDLE_TID_BASE 0x40000000 /* above PID_MAX_LIMIT (4M) */

/* What the server serves. tasks: a malloc'd array the server frees (an
 * error: the server offers one thread with no registers, memory still
 * readable). */
struct ms_gdb_source {
    void *arg;
    int (*tasks)(void *arg, struct ms_task **tasks, size_t *count, struct ms_err *err);
    int (*regs)(void *arg, const struct ms_task *task, struct ms_task_regs *out,
                struct ms_err *err);
    int (*read)(void *arg, uint64_t addr, void *buf, size_t len, size_t *done, struct ms_err *err);
    /* Where the kernel's _text is at run time, for qOffsets (NULL: GDB is not told) */
    int (*text)(void *arg, uint64_t *addr, struct ms_err *err);
};

/* The source over a target: tasks and registers from the kernel of the
 * `kernel` handle, memory through `mem`. Lives as long as *b. */
struct ms_gdb_target {
    struct ms_target *t;
    ms_handle mem, kernel;
};
void ms_gdb_source_target(struct ms_gdb_source *src, struct ms_gdb_target *b);

struct ms_gdbserver;

int ms_gdbserver_new(struct ms_gdbserver **out, const struct ms_gdb_source *src,
                     struct ms_err *err);
void ms_gdbserver_free(struct ms_gdbserver *g);

/* Consumes bytes from GDB; appends what to send back to out. Returns true
 * once GDB ended the session (D, k, vKill). */
bool ms_gdbserver_input(struct ms_gdbserver *g, const uint8_t *in, size_t len,
                        struct ms_strbuf *out);

/* One packet's reply payload, unframed (the handler ms_gdbserver_input
 * calls for each packet). Returns true when the packet ends the session. */
bool ms_gdbserver_packet(struct ms_gdbserver *g, const uint8_t *pkt, size_t len,
                         struct ms_strbuf *reply);

/* The last problem met answering (a task list or registers that could not
 * be read), for the front to show; its count changes with each new one. */
const struct ms_err *ms_gdbserver_problem(const struct ms_gdbserver *g, uint64_t *count);

/* The target description sent to GDB (qXfer:features:read:target.xml). */
extern const char ms_gdb_target_xml[];

#endif
