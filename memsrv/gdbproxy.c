/* The GDB proxy (gdbproxy.h). GDB talks all-stop RSP: one request, one
 * reply, except that a resume's reply is the stop. So everything but a
 * resume is handled synchronously (GDB's packet in, QEMU exchanges, GDB's
 * reply out), and the poll loop only waits for GDB's next packet or, while
 * the guest runs, for QEMU's stop reply and GDB's interrupt byte. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "gdbproxy.h"
#include "rsp.h"

#define GDB_PACKET_MAX 0x10000  /* offered to GDB as PacketSize */
#define QEMU_PACKET_MAX 0x10000 /* longest packet taken from QEMU (it sends < 4 KiB) */
#define QEMU_LINE_MAX 4000      /* QEMU reads packets into 4096 bytes */
#define QEMU_READ_CHUNK 2048    /* it answers E22 to m over 2048 bytes */
#define QEMU_WRITE_CHUNK 1024   /* an M's hex must fit its line */
#define IO_CHUNK 65536
#define MAX_VCPUS 64
#define MAX_BREAKS 64
#define RESUME_MAX 256 /* longest resume kept to re-issue after an other-level hit */
#define RETRIES 3

/* QEMU's x86-64 register numbers (gdb-xml/i386-64bit.xml). */
enum {
    REG_RSP = 7,
    REG_RIP = 0x10,
    REG_CR0 = 0x1b,
    REG_CR3 = 0x1d,
    REG_CR4 = 0x1e,
    REG_EFER = 0x20
};
#define CR0_PG (1ULL << 31)
#define CR4_LA57 (1ULL << 12)
#define CR4_VMXE (1ULL << 13)
#define EFER_LMA (1ULL << 10)
#define EFER_SVME (1ULL << 12)

/* What a stop showed of one vCPU (thread). */
struct vcpu {
    struct ms_rsp_thread id;
    int level;  /* 1 or 2; 0: could not tell (memory goes to QEMU) */
    bool local; /* memory is read from the file through h */
    bool has_rip;
    uint64_t rip;
    ms_handle h;
    char why[256];
};

/* A breakpoint or watchpoint GDB inserted. GDB removes every breakpoint at
 * a stop and inserts it again at the next resume, so an entry outlives its
 * removal: the level it was first inserted in is the level it is meant for
 * (a later stop, perhaps in the other level, says nothing of that). */
struct brk {
    bool used, inserted;
    bool hw;       /* QEMU got Z1 (or a watchpoint): it takes a debug register */
    bool lifted;   /* removed by the proxy to step off an other-level hit */
    unsigned type; /* as GDB asked: 0 software, 1 hardware, 2-4 watchpoints */
    uint64_t addr, kind;
    int level; /* the level GDB viewed at its first insertion; 0: unknown */
};

enum accel { ACCEL_UNASKED, ACCEL_KVM, ACCEL_OTHER };

/* One peer's input: bytes read, not yet decoded. */
struct peer {
    int fd;
    uint8_t *in;
    size_t off, len;
    struct ms_rsp_decoder dec;
};

struct ms_gdbproxy {
    struct ms_gdbproxy_opts o;
    struct peer q, g;
    int gdb_out;
    uint8_t *frame, *last; /* an encoded packet; the last one sent to GDB (ack mode) */
    size_t frame_cap, last_len;
    unsigned naks;
    uint8_t *reply; /* a reply to GDB being built */
    uint8_t *data;  /* memory bytes */
    bool noack, running;
    bool step_over;             /* the run is the proxy's step off an other-level hit */
    bool interrupted;           /* GDB sent the interrupt byte during this run */
    uint8_t resume[RESUME_MAX]; /* GDB's last resume, when a continue (else empty) */
    size_t resume_len;
    unsigned silent;      /* other-level hits resumed since GDB's resume */
    int64_t silent_since; /* now_ms() at the first of them */
    bool told_silent;     /* GDB was told about them (once a session) */
    enum accel accel;     /* what QEMU's monitor said (asked at the first Z0 in L1) */
    char *capture;        /* console output of QEMU being collected, or NULL */
    size_t capture_len, capture_cap;
    struct vcpu vcpus[MAX_VCPUS];
    unsigned nvcpus;
    struct ms_rsp_thread cur; /* the thread QEMU's g/p/m packets address */
    int said_level;           /* the level last told to GDB; -1: none yet */
    /* QEMU inserts every breakpoint in every vCPU: each one in use takes a
     * debug register in each vCPU, so one count holds for all of them. */
    struct brk breaks[MAX_BREAKS];
    unsigned regs_used;
    bool told_readonly;
    struct ms_gdbproxy_stats stats;
    struct ms_err scratch;
};

/* Handlers return 0, a negative MS_E* code (QEMU is unusable: the session
 * ends with it), or GDB_GONE. */
#define GDB_GONE 1

static void say(struct ms_gdbproxy *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct ms_gdbproxy *p, const char *fmt, ...)
{
    if (!p->o.log)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    p->o.log(p->o.log_arg, msg);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *b = buf;
    while (len) {
        ssize_t n = write(fd, b, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        b += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads what is there (waiting up to timeout_ms, -1 forever) unless bytes
 * are still buffered: 1 bytes, 0 none yet, -1 end of file or error. */
static int peer_fill(struct peer *pe, int timeout_ms)
{
    if (pe->off < pe->len)
        return 1;
    struct pollfd pfd = {pe->fd, POLLIN, 0};
    int r = poll(&pfd, 1, timeout_ms);
    if (r <= 0)
        return r < 0 && errno != EINTR ? -1 : 0;
    ssize_t n = read(pe->fd, pe->in, IO_CHUNK);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 0 : -1;
    if (n == 0)
        return -1;
    pe->off = 0;
    pe->len = (size_t)n;
    return 1;
}

/* The next event in the bytes buffered (NONE when they are used up). */
static enum ms_rsp_event peer_next(struct peer *pe)
{
    enum ms_rsp_event ev = MS_RSP_NONE;
    while (ev == MS_RSP_NONE && pe->off < pe->len)
        pe->off += ms_rsp_decode(&pe->dec, pe->in + pe->off, pe->len - pe->off, &ev);
    return ev;
}

/* ---- QEMU ---- */

static int qemu_gone(struct ms_gdbproxy *p, struct ms_err *err)
{
    (void)p;
    return ms_err_set(err, MS_EIO, "QEMU's gdbstub closed the connection (did QEMU exit?)");
}

/* The next event from QEMU within the deadline. */
static int qemu_event(struct ms_gdbproxy *p, int64_t deadline, enum ms_rsp_event *ev,
                      struct ms_err *err)
{
    for (;;) {
        *ev = peer_next(&p->q);
        if (*ev != MS_RSP_NONE)
            return 0;
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return ms_err_set(err, MS_EIO, "QEMU's gdbstub did not answer within %u ms",
                              p->o.timeout_ms);
        int r = peer_fill(&p->q, (int)left);
        if (r < 0)
            return qemu_gone(p, err);
    }
}

static int64_t qemu_deadline(const struct ms_gdbproxy *p)
{
    return now_ms() + p->o.timeout_ms;
}

/* Sends a packet and waits for QEMU's ack (resending on a nak). */
static int qemu_send(struct ms_gdbproxy *p, const void *payload, size_t len, struct ms_err *err)
{
    size_t n = ms_rsp_encode(p->frame, p->frame_cap, '$', payload, len);
    if (n == 0 || n > QEMU_LINE_MAX)
        return ms_err_set(err, MS_ELIMIT, "a %zu-byte packet is too long for QEMU's gdbstub", len);
    for (unsigned tries = 0;; tries++) {
        if (write_all(p->q.fd, p->frame, n))
            return qemu_gone(p, err);
        int64_t deadline = qemu_deadline(p);
        enum ms_rsp_event ev;
        do {
            int rc = qemu_event(p, deadline, &ev, err);
            if (rc)
                return rc;
            if (ev == MS_RSP_PACKET || ev == MS_RSP_BAD_CHECKSUM || ev == MS_RSP_MALFORMED)
                return ms_err_set(err, MS_EPROTO,
                                  "QEMU's gdbstub sent a packet where its ack was due");
        } while (ev != MS_RSP_ACK && ev != MS_RSP_NAK);
        if (ev == MS_RSP_ACK)
            return 0;
        if (tries == RETRIES)
            return ms_err_set(err, MS_EPROTO, "QEMU's gdbstub refused a packet %u times",
                              RETRIES + 1);
    }
}

static bool is_console(const uint8_t *pkt, size_t len)
{
    if (len < 3 || pkt[0] != 'O' || len % 2 == 0)
        return false;
    for (size_t i = 1; i < len; i++)
        if (!strchr("0123456789abcdefABCDEF", pkt[i]) || pkt[i] == 0)
            return false;
    return true;
}

static int gdb_send(struct ms_gdbproxy *p, const void *payload, size_t len);

/* QEMU's next packet, acked; its console output ('O' packets, from
 * `monitor` commands) is collected in p->capture when set, else goes to GDB
 * when forward is set. The payload stays in p->q.dec until the next read
 * from QEMU. */
static int qemu_recv(struct ms_gdbproxy *p, bool forward, const uint8_t **pkt, size_t *len,
                     struct ms_err *err)
{
    int64_t deadline = qemu_deadline(p);
    unsigned bad = 0;
    for (;;) {
        enum ms_rsp_event ev;
        int rc = qemu_event(p, deadline, &ev, err);
        if (rc)
            return rc;
        if (ev == MS_RSP_TOO_LONG)
            return ms_err_set(err, MS_EPROTO, "QEMU's gdbstub sent a packet over %u bytes",
                              QEMU_PACKET_MAX);
        if (ev == MS_RSP_BAD_CHECKSUM || ev == MS_RSP_MALFORMED) {
            p->stats.bad_from_qemu++;
            if (++bad > RETRIES)
                return ms_err_set(err, MS_EPROTO, "QEMU's gdbstub sent %u malformed packets", bad);
            if (write_all(p->q.fd, "-", 1))
                return qemu_gone(p, err);
            continue;
        }
        if (ev != MS_RSP_PACKET)
            continue; /* stray acks, notifications */
        if (write_all(p->q.fd, "+", 1))
            return qemu_gone(p, err);
        if (is_console(p->q.dec.buf, p->q.dec.len)) {
            size_t text = (p->q.dec.len - 1) / 2;
            if (p->capture && p->capture_len + text <= p->capture_cap &&
                ms_rsp_hex_decode(p->capture + p->capture_len, (const char *)p->q.dec.buf + 1,
                                  p->q.dec.len - 1) == 0)
                p->capture_len += text;
            else if (forward && gdb_send(p, p->q.dec.buf, p->q.dec.len))
                return GDB_GONE;
            continue;
        }
        *pkt = p->q.dec.buf;
        *len = p->q.dec.len;
        return 0;
    }
}

static int qemu_exchange(struct ms_gdbproxy *p, const void *req, size_t len, bool forward,
                         const uint8_t **reply, size_t *rlen, struct ms_err *err)
{
    p->stats.qemu_exchanges++;
    int rc = qemu_send(p, req, len, err);
    return rc ? rc : qemu_recv(p, forward, reply, rlen, err);
}

static int qemu_exchange_str(struct ms_gdbproxy *p, const char *req, const uint8_t **reply,
                             size_t *rlen, struct ms_err *err)
{
    return qemu_exchange(p, req, strlen(req), false, reply, rlen, err);
}

static bool is_ok(const uint8_t *pkt, size_t len)
{
    return len == 2 && pkt[0] == 'O' && pkt[1] == 'K';
}

/* ---- GDB ---- */

static int gdb_send(struct ms_gdbproxy *p, const void *payload, size_t len)
{
    size_t n = ms_rsp_encode(p->frame, p->frame_cap, '$', payload, len);
    if (n == 0)
        return GDB_GONE; /* cannot happen: replies are built within the limit */
    if (write_all(p->gdb_out, p->frame, n))
        return GDB_GONE;
    if (!p->noack) {
        memcpy(p->last, p->frame, n);
        p->last_len = n;
    }
    return 0;
}

static int gdb_send_str(struct ms_gdbproxy *p, const char *s)
{
    return gdb_send(p, s, strlen(s));
}

/* A console message GDB prints (only while it waits for a stop). */
static int gdb_console(struct ms_gdbproxy *p, const char *text)
{
    size_t n = strlen(text);
    if (n > 1000)
        n = 1000;
    p->reply[0] = 'O';
    ms_rsp_hex_encode((char *)p->reply + 1, text, n);
    return gdb_send(p, p->reply, 1 + 2 * n);
}

/* ---- which level the vCPU is in ---- */

static bool same_thread(const struct ms_rsp_thread *a, const struct ms_rsp_thread *b)
{
    return a->has_pid == b->has_pid && (!a->has_pid || a->pid == b->pid) && a->tid == b->tid;
}

static int read_reg(struct ms_gdbproxy *p, unsigned reg, uint64_t *value, bool *ok,
                    struct ms_err *err)
{
    char req[16];
    snprintf(req, sizeof(req), "p%x", reg);
    const uint8_t *r;
    size_t n;
    int rc = qemu_exchange_str(p, req, &r, &n, err);
    if (rc)
        return rc;
    if (ms_rsp_hex_le((const char *)r, n, value))
        *ok = false;
    return 0;
}

/* Which of addrs (bit i for addrs[i]) translate to RAM through stack s;
 * *h its handle. */
static unsigned mapped(struct ms_gdbproxy *p, const struct ms_stack *s, const uint64_t *addrs,
                       unsigned count, ms_handle *h)
{
    struct ms_xlat x[2];
    int st[2];
    if (count > 2 || ms_target_space(p->o.target, s, h, &p->scratch) ||
        ms_target_translate(p->o.target, *h, count, addrs, x, st, NULL, &p->scratch))
        return 0;
    unsigned bits = 0;
    for (unsigned i = 0; i < count; i++)
        bits |= (st[i] == 0) << i;
    return bits;
}

/* "rip 0x.. maps through NPT + CR3 only" and the like. */
static void describe(char *out, size_t size, const char *name, uint64_t addr, bool l1, bool l2,
                     const char *second)
{
    snprintf(out, size, "%s %#" PRIx64 " maps %s%s%s", name, addr,
             l1 && l2 ? "both ways"
             : l2     ? "through "
             : l1     ? "through CR3 alone only"
                      : "neither way",
             l2 && !l1 ? second : "", l2 && !l1 ? " + CR3 only" : "");
}

static const char *second_name(enum ms_second s)
{
    return s == MS_SECOND_EPT ? "EPT" : "NPT";
}

/* Reads the vCPU's registers and decides its level from evidence: which
 * stack maps its rip and rsp to RAM (the second stage + CR3, or CR3 alone);
 * when both do, the virtualization-enable bit (a hypervisor has it set, its
 * guest normally not). */
static int evaluate(struct ms_gdbproxy *p, struct vcpu *v, struct ms_err *err)
{
    uint64_t rip = 0, rsp = 0, cr0 = 0, cr3 = 0, cr4 = 0, efer = 0;
    bool ok = true;
    int rc = read_reg(p, REG_RIP, &rip, &ok, err);
    if (!rc && !ok) {
        /* QEMU answers p only after its client read the target description
         * (GDB does at connect; a client with its own may not). */
        const uint8_t *r;
        size_t n;
        rc = qemu_exchange_str(p, "qXfer:features:read:target.xml:0,1", &r, &n, err);
        ok = true;
        if (!rc)
            rc = read_reg(p, REG_RIP, &rip, &ok, err);
    }
    if (!rc)
        rc = read_reg(p, REG_RSP, &rsp, &ok, err);
    if (!rc)
        rc = read_reg(p, REG_CR0, &cr0, &ok, err);
    if (!rc)
        rc = read_reg(p, REG_CR3, &cr3, &ok, err);
    if (!rc)
        rc = read_reg(p, REG_CR4, &cr4, &ok, err);
    if (!rc)
        rc = read_reg(p, REG_EFER, &efer, &ok, err);
    if (rc)
        return rc;
    v->level = 0;
    v->local = false;
    if (!ok) {
        snprintf(v->why, sizeof(v->why),
                 "QEMU did not give rip/rsp/cr0/cr3/cr4/efer (registers 0x10, 7, 0x1b, 0x1d, "
                 "0x1e, 0x20): memory goes to QEMU");
        return 0;
    }
    v->has_rip = true;
    v->rip = rip;
    bool nested = p->o.nested.second != MS_SECOND_NONE;
    if ((cr0 & CR0_PG) && !(efer & EFER_LMA)) {
        v->level = nested ? 0 : 1;
        snprintf(v->why, sizeof(v->why),
                 "32-bit paging (CR0 %#" PRIx64 " EFER %#" PRIx64
                 ") is not walked here: memory goes to QEMU",
                 cr0, efer);
        return 0;
    }
    struct ms_stack l1 = {0};
    l1.first = (cr0 & CR0_PG) ? MS_FIRST_CR3 : MS_FIRST_NONE;
    l1.cr3 = cr3 & ~0xfffULL;
    l1.levels = (cr4 & CR4_LA57) ? 5 : 4;
    struct ms_stack l2 = p->o.nested;
    l2.first = l1.first;
    l2.cr3 = l1.cr3;
    l2.levels = l1.levels;
    uint64_t addrs[2] = {rip, rsp};
    ms_handle h1 = 0, h2 = 0;
    unsigned m1 = mapped(p, &l1, addrs, 2, &h1), m2 = nested ? mapped(p, &l2, addrs, 2, &h2) : 0;
    unsigned n1 = (m1 & 1) + (m1 >> 1), n2 = (m2 & 1) + (m2 >> 1);
    const char *sn = second_name(p->o.nested.second);
    bool enabled = p->o.nested.second == MS_SECOND_EPT ? (cr4 & CR4_VMXE) : (efer & EFER_SVME);
    const char *bit = p->o.nested.second == MS_SECOND_EPT ? "CR4.VMXE" : "EFER.SVME";
    char a_rip[96], a_rsp[96];
    describe(a_rip, sizeof(a_rip), "rip", rip, m1 & 1, m2 & 1, sn);
    describe(a_rsp, sizeof(a_rsp), "rsp", rsp, m1 & 2, m2 & 2, sn);
    if (!nested) {
        v->level = 1;
        snprintf(v->why, sizeof(v->why), "no second stage given");
    } else if (n2 != n1 || n1 > 0) {
        v->level = n2 > n1 ? 2 : n1 > n2 ? 1 : enabled ? 1 : 2;
        snprintf(v->why, sizeof(v->why), "CR3 %#" PRIx64 ": %s, %s%s%s%s", cr3, a_rip, a_rsp,
                 n1 == n2 ? "; " : "", n1 == n2 ? bit : "",
                 n1 == n2 ? (enabled ? " set" : " clear") : "");
    } else {
        snprintf(v->why, sizeof(v->why), "CR3 %#" PRIx64 ": %s, %s: memory goes to QEMU", cr3,
                 a_rip, a_rsp);
    }
    if (v->level == 1 && n1 > 0) {
        v->local = true;
        v->h = h1;
    } else if (v->level == 2) {
        v->local = true;
        v->h = h2;
    }
    return 0;
}

/* The vCPU QEMU's memory packets address, evaluated once per stop. */
static int current(struct ms_gdbproxy *p, struct vcpu **out, struct ms_err *err)
{
    for (unsigned i = 0; i < p->nvcpus; i++) {
        if (same_thread(&p->vcpus[i].id, &p->cur)) {
            *out = &p->vcpus[i];
            return 0;
        }
    }
    if (p->nvcpus == MAX_VCPUS)
        p->nvcpus = 0;
    struct vcpu *v = &p->vcpus[p->nvcpus++];
    memset(v, 0, sizeof(*v));
    v->id = p->cur;
    *out = v;
    return evaluate(p, v, err);
}

/* "p1.2", "-1": a thread id as a packet names it. */
static void thread_text(char *out, size_t size, const struct ms_rsp_thread *t)
{
    char tid[24];
    if (t->tid < 0)
        snprintf(tid, sizeof(tid), "-1");
    else
        snprintf(tid, sizeof(tid), "%" PRIx64, (uint64_t)t->tid);
    if (!t->has_pid)
        snprintf(out, size, "%s", tid);
    else if (t->pid < 0)
        snprintf(out, size, "p-1.%s", tid);
    else
        snprintf(out, size, "p%" PRIx64 ".%s", (uint64_t)t->pid, tid);
}

/* Points QEMU's g/p/m packets at thread t: *ok when QEMU took it. */
static int select_thread(struct ms_gdbproxy *p, const struct ms_rsp_thread *t, bool *ok,
                         struct ms_err *err)
{
    char req[64] = "Hg";
    thread_text(req + 2, sizeof(req) - 2, t);
    const uint8_t *r;
    size_t n;
    int rc = qemu_exchange_str(p, req, &r, &n, err);
    *ok = !rc && is_ok(r, n);
    if (*ok)
        p->cur = *t;
    return rc;
}

/* Thread t's vCPU, evaluated (each vCPU has its own CR3, and may be in
 * either level): QEMU is pointed at t for that, then back at the thread
 * GDB chose. *out is NULL when QEMU does not know t. */
static int thread_vcpu(struct ms_gdbproxy *p, const struct ms_rsp_thread *t, struct vcpu **out,
                       struct ms_err *err)
{
    *out = NULL;
    for (unsigned i = 0; i < p->nvcpus; i++)
        if (same_thread(&p->vcpus[i].id, t)) {
            *out = &p->vcpus[i];
            return 0;
        }
    struct ms_rsp_thread was = p->cur;
    bool ok;
    int rc = select_thread(p, t, &ok, err);
    if (rc || !ok)
        return rc;
    rc = current(p, out, err);
    if (!rc)
        rc = select_thread(p, &was, &ok, err);
    return rc;
}

/* The guest is about to run: nothing read so far holds. */
static int forget_stop(struct ms_gdbproxy *p)
{
    p->nvcpus = 0;
    if (ms_target_flush(p->o.target, &p->scratch))
        say(p, "flushing the RAM file's caches failed: %s", p->scratch.msg);
    return 0;
}

/* ---- memory ---- */

static int send_hex(struct ms_gdbproxy *p, const uint8_t *bytes, size_t n)
{
    ms_rsp_hex_encode((char *)p->reply, bytes, n);
    return gdb_send(p, p->reply, 2 * n);
}

/* Reads [addr, addr + len) through QEMU from offset got on; returns the
 * bytes it gave (stopping at its first error). */
static int qemu_read(struct ms_gdbproxy *p, uint64_t addr, size_t len, size_t *got,
                     struct ms_err *err)
{
    while (*got < len) {
        size_t chunk = len - *got < QEMU_READ_CHUNK ? len - *got : QEMU_READ_CHUNK;
        char req[48];
        snprintf(req, sizeof(req), "m%" PRIx64 ",%zx", addr + *got, chunk);
        const uint8_t *r;
        size_t n;
        int rc = qemu_exchange_str(p, req, &r, &n, err);
        if (rc)
            return rc;
        if (n == 0 || n % 2 || n / 2 > chunk ||
            ms_rsp_hex_decode(p->data + *got, (const char *)r, n))
            return 0; /* an error (E..) or nothing */
        *got += n / 2;
        if (n / 2 < chunk)
            return 0;
    }
    return 0;
}

static int on_read(struct ms_gdbproxy *p, const struct ms_rsp_mem *m, struct ms_err *err)
{
    size_t len = m->len < GDB_PACKET_MAX / 2 ? (size_t)m->len : GDB_PACKET_MAX / 2;
    struct vcpu *v;
    int rc = current(p, &v, err);
    if (rc)
        return rc;
    size_t done = 0;
    if (v->local) {
        ms_target_read(p->o.target, v->h, m->addr, p->data, len, &done, &p->scratch);
        if (done == len || v->level == 2) {
            p->stats.mem_local++;
            return done ? send_hex(p, p->data, done) : gdb_send_str(p, "E14");
        }
    }
    /* L1 memory the file does not back (MMIO), or a level not told. */
    p->stats.mem_forwarded++;
    rc = qemu_read(p, m->addr, len, &done, err);
    if (rc)
        return rc;
    return done ? send_hex(p, p->data, done) : gdb_send_str(p, "E14");
}

static int qemu_write(struct ms_gdbproxy *p, uint64_t addr, const uint8_t *bytes, size_t len,
                      bool *ok, struct ms_err *err)
{
    *ok = true;
    for (size_t off = 0; off < len; off += QEMU_WRITE_CHUNK) {
        size_t chunk = len - off < QEMU_WRITE_CHUNK ? len - off : QEMU_WRITE_CHUNK;
        int h = snprintf((char *)p->reply, 64, "M%" PRIx64 ",%zx:", addr + off, chunk);
        ms_rsp_hex_encode((char *)p->reply + h, bytes + off, chunk);
        const uint8_t *r;
        size_t n;
        int rc = qemu_exchange(p, p->reply, (size_t)h + 2 * chunk, false, &r, &n, err);
        if (rc)
            return rc;
        if (!is_ok(r, n)) {
            *ok = false;
            return 0;
        }
    }
    return 0;
}

static int on_write(struct ms_gdbproxy *p, const struct ms_rsp_mem *m, struct ms_err *err)
{
    const uint8_t *bytes = m->data;
    if (m->kind == 'M') {
        if (ms_rsp_hex_decode(p->data, (const char *)m->data, m->data_len)) {
            p->stats.bad_from_gdb++;
            say(p, "GDB sent an M packet with non-hex data");
            return gdb_send_str(p, "E01");
        }
        bytes = p->data;
    }
    if (m->len == 0)
        return gdb_send_str(p, "OK"); /* GDB's probe for X */
    if (!p->o.writable) {
        if (!p->told_readonly)
            say(p,
                "refused GDB's write of %" PRIu64 " bytes at %#" PRIx64
                ": the proxy was started without --writable (said once)",
                m->len, m->addr);
        p->told_readonly = true;
        return gdb_send_str(p, "E0d");
    }
    struct vcpu *v;
    int rc = current(p, &v, err);
    if (rc)
        return rc;
    bool ok;
    if (v->level == 2) {
        size_t done = 0;
        ok = ms_target_write(p->o.target, v->h, m->addr, bytes, m->len, &done, &p->scratch) == 0;
        if (!ok)
            say(p, "write at %#" PRIx64 " in L2: %s", m->addr, p->scratch.msg);
        p->stats.mem_local++;
    } else {
        /* L1 through QEMU: it also drops code it translated from those bytes. */
        rc = qemu_write(p, m->addr, bytes, m->len, &ok, err);
        if (rc)
            return rc;
        p->stats.mem_forwarded++;
    }
    forget_stop(p);
    return gdb_send_str(p, ok ? "OK" : "E14");
}

/* ---- breakpoints ---- */

static bool is_exec(unsigned type)
{
    return type <= 1;
}

/* The entry for GDB's Z/z (inserted, or remembered from an earlier insertion). */
static struct brk *find_break(struct ms_gdbproxy *p, const struct ms_rsp_break *b)
{
    for (unsigned i = 0; i < MAX_BREAKS; i++) {
        struct brk *e = &p->breaks[i];
        if (e->used && e->type == b->type && e->addr == b->addr && e->kind == b->kind)
            return e;
    }
    return NULL;
}

/* A free entry, else one only remembered; NULL when all are inserted. */
static struct brk *new_break(struct ms_gdbproxy *p)
{
    struct brk *spare = NULL;
    for (unsigned i = 0; i < MAX_BREAKS; i++) {
        struct brk *e = &p->breaks[i];
        if (!e->used)
            return e;
        if (!e->inserted && !spare)
            spare = e;
    }
    return spare;
}

static void forget_breaks(struct ms_gdbproxy *p)
{
    memset(p->breaks, 0, sizeof(p->breaks));
    p->regs_used = 0;
}

/* Whether QEMU runs its vCPUs under KVM, asked once of its monitor (`info
 * kvm`). There a software breakpoint is an 0xCC that QEMU writes (and later
 * restores) through CR3 alone: wrong whenever the vCPU is in L2 at that
 * moment. Under TCG QEMU writes no byte for one. */
static int under_kvm(struct ms_gdbproxy *p, bool *kvm, struct ms_err *err)
{
    if (p->o.hw_breakpoints) {
        *kvm = true;
        return 0;
    }
    if (p->accel == ACCEL_UNASKED) {
        char out[256];
        p->capture = out;
        p->capture_len = 0;
        p->capture_cap = sizeof(out) - 1;
        const uint8_t *r;
        size_t n;
        int rc = qemu_exchange_str(p, "qRcmd,696e666f206b766d", &r, &n, err); /* info kvm */
        p->capture = NULL;
        if (rc)
            return rc;
        out[p->capture_len] = '\0';
        out[strcspn(out, "\r\n")] = '\0';
        bool told = strstr(out, "kvm support: ") != NULL;
        p->accel = !told || strstr(out, "kvm support: enabled") ? ACCEL_KVM : ACCEL_OTHER;
        if (!told)
            say(p,
                "could not tell whether QEMU runs under KVM (its monitor's `info kvm` said "
                "'%.80s'): software breakpoints in L1 are made hardware, as under KVM",
                out);
        else
            say(p, "QEMU says '%s': software breakpoints in L1 %s", out,
                p->accel == ACCEL_KVM ? "are made hardware" : "stay software");
    }
    *kvm = p->accel == ACCEL_KVM;
    return 0;
}

/* Sends Z or z for an entry as QEMU knows it: 0 when QEMU said OK. */
static int qemu_break(struct ms_gdbproxy *p, const struct brk *e, bool insert, bool *ok,
                      struct ms_err *err)
{
    char req[64];
    snprintf(req, sizeof(req), "%c%u,%" PRIx64 ",%" PRIx64, insert ? 'Z' : 'z',
             e->hw && e->type == 0 ? 1 : e->type, e->addr, e->kind);
    const uint8_t *r;
    size_t n;
    int rc = qemu_exchange_str(p, req, &r, &n, err);
    *ok = !rc && is_ok(r, n);
    return rc;
}

static const char *level_name(int level)
{
    return level == 2 ? "L2" : level == 1 ? "L1" : "an unknown level";
}

static int on_break(struct ms_gdbproxy *p, const uint8_t *pkt, size_t len,
                    const struct ms_rsp_break *b, struct ms_err *err)
{
    struct brk *e = find_break(p, b);
    bool hw = b->type != 0, inserted = e && e->inserted;
    int level = 0;
    if (inserted) {
        hw = e->hw; /* GDB inserting it again, or removing it */
    } else if (b->insert && is_exec(b->type)) {
        struct vcpu *v;
        int rc = current(p, &v, err);
        if (rc)
            return rc;
        level = e && e->level ? e->level : v->level;
        /* Where QEMU would write the 0xCC now: through CR3 alone is right
         * only in L1, and there only when QEMU writes none (TCG). */
        bool kvm = true;
        if (!hw && v->level == 1 && (rc = under_kvm(p, &kvm, err)))
            return rc;
        hw = hw || v->level != 1 || kvm;
    }
    if (b->insert && !inserted) {
        if (hw && p->regs_used >= p->o.debug_regs) {
            say(p, "no debug register left for a %s at %#" PRIx64 " (%u in use)",
                b->type >= 2 ? "watchpoint" : "hardware breakpoint", b->addr, p->regs_used);
            return gdb_send_str(p, "E0e");
        }
        if (!e && !(e = new_break(p)) && hw) {
            say(p, "the proxy keeps at most %u breakpoints and watchpoints: %#" PRIx64 " refused",
                MAX_BREAKS, b->addr);
            return gdb_send_str(p, "E0e");
        }
    }
    memcpy(p->reply, pkt, len);
    if (hw && b->type == 0)
        p->reply[1] = '1';
    const uint8_t *r;
    size_t n;
    int rc = qemu_exchange(p, p->reply, len, false, &r, &n, err);
    if (rc)
        return rc;
    if (is_ok(r, n) && e && b->insert && !inserted) {
        if (!e->used || e->type != b->type || e->addr != b->addr || e->kind != b->kind)
            *e = (struct brk){.used = true, .type = b->type, .addr = b->addr, .kind = b->kind};
        e->level = level;
        e->inserted = true;
        e->hw = hw;
        p->regs_used += hw;
        p->stats.hw_from_sw += hw && b->type == 0;
    } else if (is_ok(r, n) && inserted && !b->insert) {
        e->inserted = false;
        p->regs_used -= e->hw;
    }
    return gdb_send(p, r, n);
}

/* The breakpoint a stop in the vCPU's level was not meant for: GDB's
 * continue stopped (SIGTRAP, no watchpoint) with the pc at execution
 * breakpoints, none of them set in this level. NULL otherwise. */
static const struct brk *other_level_hit(const struct ms_gdbproxy *p, const struct vcpu *v,
                                         const struct ms_rsp_stop *st)
{
    if (st->kind != 'T' || st->signo != 5 || st->watch || !p->resume_len || v->level == 0 ||
        !v->has_rip)
        return NULL;
    const struct brk *hit = NULL;
    for (unsigned i = 0; i < MAX_BREAKS; i++) {
        const struct brk *e = &p->breaks[i];
        if (!e->used || !e->inserted || !is_exec(e->type) || e->addr != v->rip)
            continue;
        if (e->level == v->level || e->level == 0)
            return NULL;
        hit = e;
    }
    return hit;
}

/* Lifts the breakpoints at pc and single-steps the stopped vCPU off it (as
 * GDB steps off its own): the stop it ends with puts them back (restore_lifted)
 * and resumes GDB's continue. *done is false when QEMU refused. */
static int step_over(struct ms_gdbproxy *p, uint64_t pc, const struct ms_rsp_stop *st, bool *done,
                     struct ms_err *err)
{
    *done = false;
    for (unsigned i = 0; i < MAX_BREAKS; i++) {
        struct brk *e = &p->breaks[i];
        if (!e->used || !e->inserted || !is_exec(e->type) || e->addr != pc)
            continue;
        bool ok;
        int rc = qemu_break(p, e, false, &ok, err);
        if (rc)
            return rc;
        if (!ok) {
            say(p, "QEMU refused to lift the breakpoint at %#" PRIx64 " to step off it", pc);
            return 0;
        }
        e->lifted = true;
    }
    char req[64] = "s";
    const struct ms_rsp_thread *t = &st->thread;
    if (st->has_thread && t->tid > 0 && (!t->has_pid || t->pid > 0)) {
        if (t->has_pid)
            snprintf(req, sizeof(req), "vCont;s:p%" PRIx64 ".%" PRIx64, (uint64_t)t->pid,
                     (uint64_t)t->tid);
        else
            snprintf(req, sizeof(req), "vCont;s:%" PRIx64, (uint64_t)t->tid);
    }
    forget_stop(p);
    int rc = qemu_send(p, req, strlen(req), err);
    if (rc)
        return rc;
    p->running = p->step_over = *done = true;
    if (!p->silent++)
        p->silent_since = now_ms();
    p->stats.silent_resumes++;
    return 0;
}

/* Puts back what step_over lifted. */
static int restore_lifted(struct ms_gdbproxy *p, struct ms_err *err)
{
    for (unsigned i = 0; i < MAX_BREAKS; i++) {
        struct brk *e = &p->breaks[i];
        if (!e->used || !e->lifted)
            continue;
        e->lifted = false;
        bool ok;
        int rc = qemu_break(p, e, true, &ok, err);
        if (rc)
            return rc;
        if (!ok) {
            say(p,
                "QEMU refused the breakpoint at %#" PRIx64 " back after stepping off it: "
                "it is gone",
                e->addr);
            e->inserted = false;
            p->regs_used -= e->hw;
        }
    }
    return 0;
}

/* ---- everything else ---- */

/* QEMU's features, with ours: a larger PacketSize and no-ack mode. */
static int on_supported(struct ms_gdbproxy *p, const uint8_t *r, size_t n)
{
    size_t out = 0, i = 0;
    while (i < n) {
        const uint8_t *semi = memchr(r + i, ';', n - i);
        size_t end = semi ? (size_t)(semi - r) : n;
        if (!ms_rsp_is(r + i, end - i, "PacketSize", "=") &&
            !ms_rsp_is(r + i, end - i, "QStartNoAckMode", "+-?") && end > i) {
            memcpy(p->reply + out, r + i, end - i);
            out += end - i;
            p->reply[out++] = ';';
        }
        i = end + 1;
    }
    out += (size_t)snprintf((char *)p->reply + out, 64, "PacketSize=%x;QStartNoAckMode+",
                            GDB_PACKET_MAX);
    return gdb_send(p, p->reply, out);
}

static bool is_resume(const uint8_t *pkt, size_t len)
{
    return (len >= 1 && strchr("cCsS", pkt[0]) && pkt[0]) || ms_rsp_is(pkt, len, "vCont", ";");
}

/* A resume that only continues, from where the vCPUs are: c, C SIG, or a
 * vCont whose every action is c or C. The proxy may issue it again. */
static bool is_continue(const uint8_t *pkt, size_t len)
{
    if (len >= 1 && (pkt[0] == 'c' || pkt[0] == 'C'))
        return (pkt[0] == 'c' && len == 1) || (pkt[0] == 'C' && !memchr(pkt, ';', len));
    if (!ms_rsp_is(pkt, len, "vCont", ";") || len < 7)
        return false;
    for (size_t i = 5; i < len; i++)
        if (pkt[i] == ';' && (i + 1 == len || (pkt[i + 1] != 'c' && pkt[i + 1] != 'C')))
            return false;
    return true;
}

static int tell_level(struct ms_gdbproxy *p, struct vcpu *v)
{
    if (v->level == p->said_level)
        return 0;
    p->said_level = v->level;
    char msg[400];
    snprintf(msg, sizeof(msg), "memsrv: stopped in %s; %s\n",
             v->level == 2   ? "L2 (nested guest)"
             : v->level == 1 ? "L1"
                             : "an unknown level",
             v->why);
    return gdb_console(p, msg);
}

/* A stop reply (S or T) turned into the one for GDB's interrupt byte. */
static void as_interrupt(uint8_t *stop, size_t len)
{
    if (len >= 3) {
        stop[1] = '0';
        stop[2] = '2';
    }
}

/* GDB's continue again, after the proxy stepped off an other-level hit. */
static int resume_again(struct ms_gdbproxy *p, struct ms_err *err)
{
    forget_stop(p);
    int rc = qemu_send(p, p->resume, p->resume_len, err);
    if (!rc)
        p->running = true;
    return rc;
}

/* A hit of a breakpoint set for the other level: resumed without GDB
 * hearing of it (told once), unless GDB interrupted meanwhile or such hits
 * came in a row for other_level_ms (a hot path of that level runs the
 * address: the stop is shown rather than looping unseen). *resumed says
 * which. */
static int on_other_level_hit(struct ms_gdbproxy *p, const struct vcpu *v, const struct brk *hit,
                              const struct ms_rsp_stop *st, uint8_t *stop, size_t len,
                              bool *resumed, struct ms_err *err)
{
    *resumed = false;
    char msg[256];
    if (p->interrupted) {
        as_interrupt(stop, len);
        return 0;
    }
    int64_t streak_ms = p->silent ? now_ms() - p->silent_since : 0;
    if (streak_ms >= p->o.other_level_ms) {
        snprintf(msg, sizeof(msg),
                 "memsrv: breakpoint at %#" PRIx64 " hit in %s, set for %s, %u times in a row "
                 "in %.1f s: this stop is shown (%s runs that address often)\n",
                 hit->addr, level_name(v->level), level_name(hit->level), p->silent + 1,
                 streak_ms / 1000.0, level_name(v->level));
        say(p, "%.*s", (int)strlen(msg) - 9, msg + 8);
        return gdb_console(p, msg);
    }
    if (!p->told_silent) {
        p->told_silent = true;
        snprintf(msg, sizeof(msg),
                 "memsrv: breakpoint at %#" PRIx64 " hit in %s, set for %s: resumed (said once: "
                 "such hits are not shown)\n",
                 hit->addr, level_name(v->level), level_name(hit->level));
        say(p, "%.*s", (int)strlen(msg) - 9, msg + 8);
        int rc = gdb_console(p, msg);
        if (rc)
            return rc;
    }
    int rc = step_over(p, hit->addr, st, resumed, err);
    if (!rc && !*resumed)
        rc = restore_lifted(p, err); /* QEMU refused: GDB hears of the stop */
    return rc;
}

/* QEMU's stop reply after a resume: evaluate the stopped vCPU, tell GDB
 * (or, after a hit in the level a breakpoint was not set for, resume). */
static int on_stop(struct ms_gdbproxy *p, const uint8_t *pkt, size_t len, struct ms_err *err)
{
    p->running = false;
    bool stepped = p->step_over;
    p->step_over = false;
    int rc;
    struct ms_rsp_stop st;
    uint8_t copy[256];
    if (len > sizeof(copy)) {
        say(p, "QEMU's stop reply is %zu bytes long: passed on unread", len);
        rc = gdb_send(p, pkt, len);
        return rc || !stepped ? rc : restore_lifted(p, err);
    }
    memcpy(copy, pkt, len); /* the exchanges below reuse QEMU's buffer */
    bool parsed = ms_rsp_parse_stop(copy, len, &st) == 0;
    if (stepped && (rc = restore_lifted(p, err)))
        return rc;
    if (parsed && (st.kind == 'T' || st.kind == 'S')) {
        if (st.has_thread)
            p->cur = st.thread; /* QEMU points its g/p/m packets at the stopped vCPU */
        if (stepped && p->interrupted)
            as_interrupt(copy, len);
        else if (stepped && st.kind == 'T' && st.signo == 5 && !st.watch)
            return resume_again(p, err);
        struct vcpu *v;
        rc = current(p, &v, err);
        if (rc)
            return rc;
        const struct brk *hit = stepped ? NULL : other_level_hit(p, v, &st);
        bool resumed = false;
        if (hit && (rc = on_other_level_hit(p, v, hit, &st, copy, len, &resumed, err)))
            return rc;
        if (resumed)
            return 0;
        rc = tell_level(p, v);
        if (rc)
            return rc;
    }
    return gdb_send(p, copy, len);
}

static int on_gdb_packet(struct ms_gdbproxy *p, const uint8_t *pkt, size_t len, struct ms_err *err)
{
    const uint8_t *r;
    size_t n;
    int rc;
    p->stats.gdb_packets++;
    if (p->running) {
        say(p, "GDB sent '%.20s' while the guest runs: ignored (all-stop mode)", (const char *)pkt);
        return 0;
    }
    if (ms_rsp_is(pkt, len, "QStartNoAckMode", NULL)) {
        rc = gdb_send_str(p, "OK");
        p->noack = true;
        return rc;
    }
    if (is_resume(pkt, len)) {
        forget_stop(p);
        rc = qemu_send(p, pkt, len, err);
        if (rc)
            return rc;
        p->running = true;
        p->interrupted = false;
        p->silent = 0;
        p->resume_len = is_continue(pkt, len) && len <= RESUME_MAX ? len : 0;
        memcpy(p->resume, pkt, p->resume_len);
        return 0;
    }
    if (len >= 1 && pkt[0] == 'D') {
        forget_stop(p);   /* QEMU resumes the guest on a detach */
        forget_breaks(p); /* and drops every breakpoint */
    }
    if (len == 1 && pkt[0] == 'k') {
        rc = qemu_send(p, pkt, len, err); /* QEMU exits without a reply */
        return rc ? rc : GDB_GONE;
    }
    struct ms_rsp_mem m;
    if (len && (pkt[0] == 'm' || pkt[0] == 'M' || pkt[0] == 'X')) {
        if (ms_rsp_parse_mem(pkt, len, &m)) {
            p->stats.bad_from_gdb++;
            say(p, "GDB sent a malformed memory packet '%.40s'", (const char *)pkt);
            return gdb_send_str(p, "E01");
        }
        return m.kind == 'm' ? on_read(p, &m, err) : on_write(p, &m, err);
    }
    if (len > QEMU_LINE_MAX) {
        say(p, "GDB's %zu-byte packet '%.20s' is too long for QEMU's gdbstub", len,
            (const char *)pkt);
        return gdb_send_str(p, "E01");
    }
    struct ms_rsp_break b;
    if (len && (pkt[0] == 'Z' || pkt[0] == 'z')) {
        if (ms_rsp_parse_break(pkt, len, &b)) {
            p->stats.bad_from_gdb++;
            say(p, "GDB sent a malformed breakpoint packet '%.40s'", (const char *)pkt);
            return gdb_send_str(p, "E01");
        }
        return on_break(p, pkt, len, &b, err);
    }
    rc = qemu_exchange(p, pkt, len, true, &r, &n, err);
    if (rc)
        return rc;
    if (ms_rsp_is(pkt, len, "qSupported", ":"))
        return on_supported(p, r, n);
    uint8_t text[256];
    const char *tid = (const char *)pkt + strlen("qThreadExtraInfo,");
    struct ms_rsp_thread asked;
    if (ms_rsp_is(pkt, len, "qThreadExtraInfo", ",") && p->o.nested.second != MS_SECOND_NONE &&
        n % 2 == 0 && n / 2 + 32 < sizeof(text) &&
        ms_rsp_hex_decode(text, (const char *)r, n) == 0 &&
        ms_rsp_parse_thread(&tid, (const char *)pkt + len, &asked) == 0) {
        /* QEMU's "CPU#1 [running]", and the level that vCPU is in (the
         * exchanges reuse QEMU's reply buffer: its text is copied first) */
        size_t tlen = n / 2;
        struct vcpu *v = NULL;
        if ((rc = thread_vcpu(p, &asked, &v, err)))
            return rc;
        if (v)
            tlen += (size_t)snprintf((char *)text + tlen, 32, ", %s", level_name(v->level));
        return send_hex(p, text, tlen);
    }
    if (len >= 2 && pkt[0] == 'H' && pkt[1] == 'g' && is_ok(r, n)) {
        const char *s = (const char *)pkt + 2;
        struct ms_rsp_thread t;
        if (ms_rsp_parse_thread(&s, (const char *)pkt + len, &t) == 0)
            p->cur = t;
    }
    if (len == 1 && pkt[0] == '?') {
        /* QEMU drops every breakpoint on '?' (GDB's first contact). */
        forget_breaks(p);
        uint8_t copy[256];
        if (n > sizeof(copy))
            return gdb_send(p, r, n);
        memcpy(copy, r, n);
        struct vcpu *v;
        forget_stop(p);
        rc = current(p, &v, err);
        if (rc)
            return rc;
        /* GDB takes no console message here: only the log hears it. */
        say(p, "the vCPU is in %s; %s",
            v->level == 2   ? "L2 (nested guest)"
            : v->level == 1 ? "L1"
                            : "an unknown level",
            v->why);
        return gdb_send(p, copy, n);
    }
    return gdb_send(p, r, n);
}

/* QEMU's packets while no request is out: the stop reply of a run, console
 * output, or a stop GDB did not ask for (the VM stopped from QMP). */
static int on_qemu_packet(struct ms_gdbproxy *p, struct ms_err *err)
{
    const uint8_t *pkt = p->q.dec.buf;
    size_t len = p->q.dec.len;
    if (write_all(p->q.fd, "+", 1))
        return qemu_gone(p, err);
    if (is_console(pkt, len))
        return p->running ? gdb_send(p, pkt, len) : 0;
    struct ms_rsp_stop st;
    if (p->running && ms_rsp_parse_stop(pkt, len, &st) == 0)
        return on_stop(p, pkt, len, err);
    forget_stop(p);
    say(p, "QEMU sent '%.40s' that GDB did not ask for: dropped", (const char *)pkt);
    return 0;
}

static int on_gdb_event(struct ms_gdbproxy *p, enum ms_rsp_event ev, struct ms_err *err)
{
    switch (ev) {
    case MS_RSP_NONE:
    case MS_RSP_NOTIFY:
        return 0;
    case MS_RSP_ACK:
        p->naks = 0;
        return 0;
    case MS_RSP_NAK:
        if (p->noack || p->last_len == 0)
            return 0;
        if (++p->naks > RETRIES) {
            say(p, "GDB refused the same packet %u times: not resent", p->naks);
            return 0;
        }
        return write_all(p->gdb_out, p->last, p->last_len) ? GDB_GONE : 0;
    case MS_RSP_INTERRUPT:
        if (!p->running)
            return 0;
        p->interrupted = true;
        return write_all(p->q.fd, "\x03", 1) ? qemu_gone(p, err) : 0;
    case MS_RSP_PACKET:
        if (!p->noack && write_all(p->gdb_out, "+", 1))
            return GDB_GONE;
        return on_gdb_packet(p, p->g.dec.buf, p->g.dec.len, err);
    case MS_RSP_BAD_CHECKSUM:
    case MS_RSP_MALFORMED:
    case MS_RSP_TOO_LONG:
        p->stats.bad_from_gdb++;
        say(p, "GDB sent %s: %s",
            ev == MS_RSP_TOO_LONG       ? "a packet over the PacketSize offered"
            : ev == MS_RSP_BAD_CHECKSUM ? "a packet with a bad checksum"
                                        : "a malformed packet",
            p->noack ? "answered with an error" : "asked to resend");
        if (!p->noack)
            return write_all(p->gdb_out, "-", 1) ? GDB_GONE : 0;
        return gdb_send_str(p, "E01");
    }
    return 0;
}

/* A new GDB finds the guest running (the last one left mid-run): stop it,
 * as a fresh connection to QEMU's stub would. */
static int stop_leftover_run(struct ms_gdbproxy *p, struct ms_err *err)
{
    if (!p->running)
        return 0;
    if (write_all(p->q.fd, "\x03", 1))
        return qemu_gone(p, err);
    const uint8_t *r;
    size_t n;
    int rc = qemu_recv(p, false, &r, &n, err);
    if (rc)
        return rc;
    p->running = false;
    forget_stop(p);
    if (!p->step_over)
        return 0;
    p->step_over = false;
    return restore_lifted(p, err);
}

int ms_gdbproxy_session(struct ms_gdbproxy *p, int gdb_in, int gdb_out, struct ms_err *err)
{
    p->g.fd = gdb_in;
    p->g.off = p->g.len = 0;
    ms_rsp_decoder_init(&p->g.dec, p->g.dec.buf, GDB_PACKET_MAX);
    p->gdb_out = gdb_out;
    p->noack = false;
    p->last_len = 0;
    p->naks = 0;
    p->said_level = -1;
    p->told_silent = false;
    int rc = stop_leftover_run(p, err);
    if (rc)
        return rc;
    for (;;) {
        if (p->g.off == p->g.len && p->q.off == p->q.len) {
            struct pollfd fds[2] = {{gdb_in, POLLIN, 0}, {p->q.fd, POLLIN, 0}};
            if (poll(fds, 2, -1) < 0 && errno != EINTR)
                return ms_err_set(err, MS_EIO, "poll: %s", strerror(errno));
        }
        int r = peer_fill(&p->g, 0);
        if (r < 0)
            return 0; /* GDB went away */
        for (enum ms_rsp_event ev; r > 0 && (ev = peer_next(&p->g)) != MS_RSP_NONE;) {
            rc = on_gdb_event(p, ev, err);
            if (rc == GDB_GONE)
                return 0;
            if (rc)
                return rc;
        }
        r = peer_fill(&p->q, 0);
        if (r < 0)
            return qemu_gone(p, err);
        for (enum ms_rsp_event ev; r > 0 && (ev = peer_next(&p->q)) != MS_RSP_NONE;) {
            if (ev != MS_RSP_PACKET)
                continue;
            rc = on_qemu_packet(p, err);
            if (rc == GDB_GONE)
                return 0;
            if (rc)
                return rc;
        }
    }
}

int ms_gdbproxy_new(struct ms_gdbproxy **out, const struct ms_gdbproxy_opts *opts, int qemu_fd,
                    struct ms_err *err)
{
    *out = NULL;
    if (!opts->target)
        return ms_err_set(err, MS_EINVAL, "the proxy needs a target (the RAM file)");
    struct ms_gdbproxy *p = calloc(1, sizeof(*p));
    if (!p)
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    p->o = *opts;
    if (!p->o.debug_regs)
        p->o.debug_regs = 4;
    if (!p->o.timeout_ms)
        p->o.timeout_ms = 10000;
    if (!p->o.other_level_ms)
        p->o.other_level_ms = 10000;
    p->frame_cap = MS_RSP_FRAME_MAX(GDB_PACKET_MAX);
    p->frame = malloc(p->frame_cap);
    p->last = malloc(p->frame_cap);
    p->reply = malloc(GDB_PACKET_MAX + 64);
    p->data = malloc(GDB_PACKET_MAX);
    p->q.in = malloc(IO_CHUNK);
    p->g.in = malloc(IO_CHUNK);
    uint8_t *qbuf = malloc(QEMU_PACKET_MAX + 1), *gbuf = malloc(GDB_PACKET_MAX + 1);
    if (!p->frame || !p->last || !p->reply || !p->data || !p->q.in || !p->g.in || !qbuf || !gbuf) {
        free(qbuf);
        free(gbuf);
        ms_gdbproxy_free(p);
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    }
    ms_rsp_decoder_init(&p->q.dec, qbuf, QEMU_PACKET_MAX);
    ms_rsp_decoder_init(&p->g.dec, gbuf, GDB_PACKET_MAX);
    p->q.fd = qemu_fd;
    p->g.fd = -1;
    p->said_level = -1;
    *out = p;
    return 0;
}

void ms_gdbproxy_free(struct ms_gdbproxy *p)
{
    if (!p)
        return;
    free(p->frame);
    free(p->last);
    free(p->reply);
    free(p->data);
    free(p->q.in);
    free(p->g.in);
    free(p->q.dec.buf);
    free(p->g.dec.buf);
    free(p);
}

void ms_gdbproxy_stats(const struct ms_gdbproxy *p, struct ms_gdbproxy_stats *out)
{
    *out = p->stats;
}
