/* A proxy in GDB's remote protocol between GDB and QEMU's gdbstub that
 * makes GDB's own commands right on a nested guest. At every stop it reads
 * the control registers of the vCPU GDB addresses and decides, from
 * evidence, whether it runs L1 or L2 (which stack maps rip and rsp; the
 * virtualization-enable bit when both do); in L2 it serves GDB's memory
 * packets through the 2-D walk from the RAM file and turns software
 * breakpoints into hardware ones (counted: 4 debug registers, each breakpoint
 * taking one in every vCPU), since QEMU's own stub would translate with CR3
 * alone; in L1 too when QEMU runs under KVM (asked of its monitor), where it
 * writes software breakpoints into memory. A hardware breakpoint matches a
 * linear address in either level: a hit in the level it was not set for is
 * stepped over and resumed without GDB seeing it (told once; for at
 * most other_level_ms in a row, then the stop is shown). Every vCPU (GDB's thread) is
 * evaluated on its own, with its own CR3 (an SMP nested guest's vCPUs may
 * each be in either level, each in its own process); qThreadExtraInfo
 * gets the level the thread's vCPU is in (`info threads`). Everything
 * else passes through.
 * GDB is offered no-ack mode and a large PacketSize; QEMU keeps acking.
 *
 * Driven by a poll loop over file descriptors (the caller opens them); the
 * protocol is rsp.h. Nothing here prints: what a user should know goes to
 * the log callback, and to GDB as console ('O') messages where GDB shows
 * them. The caller should ignore SIGPIPE. */
#ifndef MEMSRV_GDBPROXY_H
#define MEMSRV_GDBPROXY_H

#include <stdbool.h>
#include <stdint.h>

#include "memsrv.h"

struct ms_gdbproxy;

struct ms_gdbproxy_opts {
    struct ms_target *target; /* the RAM file (not owned; outlives the proxy) */
    /* The second stage of the nested guest (second, second_root,
     * second_levels; the first stage is read from the vCPU at each stop).
     * MS_SECOND_NONE: the vCPU is always taken to be in L1. */
    struct ms_stack nested;
    bool writable; /* honour M/X (else GDB gets an error) */
    /* Make every software breakpoint hardware, also in L1 (else there only
     * when QEMU's monitor says it runs under KVM). */
    bool hw_breakpoints;
    unsigned debug_regs; /* hardware breakpoints/watchpoints per vCPU; 0: 4 */
    unsigned timeout_ms; /* longest wait on QEMU for an ack or a reply; 0: 10 s */
    /* Hits of a breakpoint set for the other level are stepped over unseen
     * for this long in a row, then the next is shown (that level runs the
     * address often); 0: 10 s. A time, not a count: a hit costs ms under
     * TCG and µs under KVM, and L2 may not reach the address for a while. */
    unsigned other_level_ms;
    void (*log)(void *arg, const char *msg); /* messages for the user; may be NULL */
    void *log_arg;
};

/* qemu_fd: a connected socket to QEMU's gdbstub (owned by the caller). */
int ms_gdbproxy_new(struct ms_gdbproxy **out, const struct ms_gdbproxy_opts *opts, int qemu_fd,
                    struct ms_err *err);
void ms_gdbproxy_free(struct ms_gdbproxy *p);

/* Serves one GDB connection, reading gdb_in and writing gdb_out (a socket
 * twice, or a pipe pair), until GDB goes away: 0. A negative code when QEMU
 * went away, stopped answering, or broke the protocol (err says which): the
 * QEMU connection is then unusable. Breakpoints the proxy inserted outlive
 * a session, as they do in QEMU. */
int ms_gdbproxy_session(struct ms_gdbproxy *p, int gdb_in, int gdb_out, struct ms_err *err);

struct ms_gdbproxy_stats {
    uint64_t gdb_packets, qemu_exchanges;
    uint64_t mem_local, mem_forwarded; /* memory packets served from the file / by QEMU */
    uint64_t hw_from_sw;               /* Z0 turned into Z1 */
    uint64_t silent_resumes;           /* breakpoint hits in the other level, resumed */
    uint64_t bad_from_gdb, bad_from_qemu;
};
void ms_gdbproxy_stats(const struct ms_gdbproxy *p, struct ms_gdbproxy_stats *out);

#endif
