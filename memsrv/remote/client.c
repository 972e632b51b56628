/* The remote backend of a target: a `memsrv serve` over a UNIX socket or
 * TCP, one request at a time. A transport error (the server gone, or silent
 * past the timeout, a broken frame) closes the connection: every later call
 * fails with MS_EIO, none blocks. */
#include "error.h"
#include "strbuf.h"
#include "target_backend.h"
#include "vfs.h"
#include "wire.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <sched.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <sys/un.h>
#include <unistd.h>

/* How long a client polls for an answer before it sleeps in recv(). */
#define SPIN_NS 50000L
/* Responses up to this size arrive in one recv. */
#define RESP_BUFFER (64u << 10)
/* A server that stops answering without closing (SIGSTOPped, a dead TCP
 * peer) must not hang GDB: calls give up after this long without progress. */
#define DEFAULT_TIMEOUT_MS 30000u
#define MAX_HANDLES 256
/* Reads larger than this go as several requests (a response must fit
 * MS_WIRE_MAX_RESPONSE). */
#define READ_CHUNK (MS_WIRE_MAX_RESPONSE / 2)

struct ms_client {
    int fd;
    uint32_t next_id;
    struct ms_wbuf req; /* request being built */
    uint8_t *resp;      /* last response frame: header, then payload */
    size_t resp_len, resp_cap;
    unsigned timeout_ms; /* longest wait for one send or recv */
};

struct remote {
    struct ms_target base;
    struct ms_client c;
    struct ms_stack stacks[MAX_HANDLES + 1]; /* as described, by handle */
    bool known[MAX_HANDLES + 1];
    /* ms_target_info's storage */
    char *where, *vmcoreinfo;
    struct ms_target_region *regions;
    struct ms_cpu_state *cpus;
    char **sources;
    uint64_t *source_sizes;
};

static int connect_unix(const char *path, struct ms_err *err)
{
    struct sockaddr_un sa;
    int rc0 = ms_wire_unix_addr(&sa, path, err);
    if (rc0)
        return rc0;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return ms_err_set(err, MS_EIO, "cannot connect to %s: %s (is `memsrv serve` running?)",
                          path, strerror(e));
    }
    return fd;
}

static int connect_tcp(const char *spec, struct ms_err *err)
{
    char host[256];
    const char *port;
    if (ms_wire_split_hostport(spec, host, sizeof(host), &port, err))
        return ms_err_prefix(err, "tcp:");
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g != 0)
        return ms_err_set(err, MS_EINVAL, "tcp:%s: %s", spec, gai_strerror(g));
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = fd < 0 ? -1 : connect(fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (rc != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return ms_err_set(err, MS_EIO, "cannot connect to %s: %s", spec, strerror(e));
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* errno after a failed send/recv, as a message: a timeout names itself. */
static int io_error(const struct ms_client *c, const char *what, struct ms_err *err)
{
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return ms_err_set(err, MS_EIO,
                          "memsrv did not answer within %u ms (stopped, or overloaded?); "
                          "the connection is closed",
                          c->timeout_ms);
    return ms_err_set(err, MS_EIO, "%s memsrv: %s", what, strerror(errno));
}

static int send_all(struct ms_client *c, const uint8_t *p, size_t n, struct ms_err *err)
{
    while (n) {
        ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return io_error(c, "send to", err);
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* One recv of at most n bytes at p; adds what came to *got. */
static int recv_some(struct ms_client *c, uint8_t *p, size_t n, size_t *got, struct ms_err *err)
{
    for (;;) {
        ssize_t k = recv(c->fd, p, n, 0);
        if (k > 0) {
            *got += (size_t)k;
            return 0;
        }
        if (k == 0)
            return ms_err_set(err, MS_EPROTO,
                              "memsrv closed the connection (bad token, a malformed request, "
                              "or the server stopped)");
        if (errno != EINTR)
            return io_error(c, "recv from", err);
    }
}

/* Most answers come within tens of microseconds; sleeping in recv() for
 * them costs a wake-up that on an idle VM takes longer than the answer
 * (p50 16 us vs 7 us measured on a 2-vCPU cloud VM). So poll without
 * blocking for a short while first. */
static void wait_briefly(int fd)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 0) != 0)
            return;
        sched_yield(); /* other clients on this core get on with their work */
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) > SPIN_NS)
            return;
    }
}

/* Receives one response frame (header and payload) into c->resp. The first
 * recv asks for all the buffer holds, so a small response costs one call. */
static int recv_frame(struct ms_client *c, struct ms_wire_header *h, struct ms_err *err)
{
    if (c->resp_cap < RESP_BUFFER) {
        uint8_t *p = realloc(c->resp, RESP_BUFFER);
        if (!p)
            return ms_err_set(err, MS_ENOMEM, "out of memory");
        c->resp = p;
        c->resp_cap = RESP_BUFFER;
    }
    size_t got = 0;
    int rc = 0;
    wait_briefly(c->fd);
    while (!rc && got < MS_WIRE_HEADER)
        rc = recv_some(c, c->resp + got, c->resp_cap - got, &got, err);
    if (rc || (rc = ms_wire_parse_header(c->resp, h, err)))
        return rc;
    if (h->length > MS_WIRE_MAX_RESPONSE + (16u << 20))
        return ms_err_set(err, MS_EPROTO, "response of %u bytes is too large", h->length);
    size_t total = MS_WIRE_HEADER + (size_t)h->length;
    if (got > total) /* this client never has two requests in flight */
        return ms_err_set(err, MS_EPROTO, "memsrv sent %zu bytes more than its response",
                          got - total);
    if (total > c->resp_cap) {
        uint8_t *p = realloc(c->resp, total);
        if (!p)
            return ms_err_set(err, MS_ENOMEM, "out of memory");
        c->resp = p;
        c->resp_cap = total;
    }
    while (!rc && got < total)
        rc = recv_some(c, c->resp + got, total - got, &got, err);
    c->resp_len = h->length;
    return rc;
}

static size_t begin(struct ms_client *c)
{
    c->req.len = 0;
    c->req.failed = false;
    return ms_wbuf_begin_frame(&c->req);
}

/* Sends the request and receives the whole response frame into c->resp. */
static int transfer(struct ms_client *c, uint16_t op, uint32_t id, struct ms_err *err)
{
    int rc = send_all(c, c->req.data, c->req.len, err);
    if (rc)
        return rc;
    struct ms_wire_header h;
    if ((rc = recv_frame(c, &h, err)))
        return rc;
    if (h.id != id || h.op != (op | MS_WIRE_REPLY))
        return ms_err_set(err, MS_EPROTO, "response %u/op %u does not answer request %u/op %u",
                          h.id, h.op, id, op);
    return 0;
}

/* Sends the request built in c->req and receives its response; *r reads the
 * payload after the status word (and its message), or fails every read when
 * no response came. Returns the transport error, or the request's own status
 * with its message. A transport error closes the connection. */
static int exchange(struct ms_client *c, size_t frame, uint16_t op, struct ms_rbuf *r,
                    struct ms_err *err)
{
    *r = (struct ms_rbuf){NULL, 0, 0, true}; /* no response: every read of it fails */
    if (c->fd < 0)
        return ms_err_set(err, MS_EIO,
                          "not connected to memsrv (the connection was closed, or "
                          "lost after an error)");
    uint32_t id = ++c->next_id;
    ms_wbuf_end_frame(&c->req, frame, op, id);
    if (c->req.failed)
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    int rc = transfer(c, op, id, err);
    if (rc) {
        /* The stream may stop mid-frame: nothing after this can be trusted. */
        close(c->fd);
        c->fd = -1;
        return rc;
    }
    *r = (struct ms_rbuf){c->resp + MS_WIRE_HEADER, c->resp_len, 0, false};
    uint32_t status = 0;
    if (!ms_rbuf_u32(r, &status))
        return ms_err_set(err, MS_EPROTO, "empty response");
    if (status) {
        ms_wire_get_err(r, (int)status, err);
        return err->code;
    }
    return 0;
}

static struct remote *R(struct ms_target *t)
{
    return (struct remote *)t;
}

static int set_timeout(struct ms_client *c, unsigned timeout_ms, struct ms_err *err)
{
    struct timeval tv = {(time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000};
    if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)
        return ms_err_set(err, MS_EIO, "setting the memsrv socket timeout: %s", strerror(errno));
    c->timeout_ms = timeout_ms;
    return 0;
}

static int remote_space(struct ms_target *t, const struct ms_stack *s, ms_handle *out,
                        struct ms_err *err)
{
    struct remote *rm = R(t);
    size_t f = begin(&rm->c);
    ms_wire_put_stack(&rm->c.req, s);
    struct ms_rbuf r;
    int rc = exchange(&rm->c, f, MS_OP_SPACE, &r, err);
    if (!rc && !ms_rbuf_u32(&r, out))
        rc = ms_err_set(err, MS_EPROTO, "short SPACE response");
    if (!rc && *out <= MAX_HANDLES) {
        rm->stacks[*out] = *s;
        rm->known[*out] = true;
    }
    return rc;
}

static int remote_stack(struct ms_target *t, ms_handle h, struct ms_stack *out, struct ms_err *err)
{
    struct remote *rm = R(t);
    if (h == 0) {
        *out = (struct ms_stack){0};
        return 0;
    }
    /* A kernel's root is the server's to find (and may change at a reboot). */
    if (h <= MAX_HANDLES && rm->known[h] && rm->stacks[h].first != MS_FIRST_KERNEL) {
        *out = rm->stacks[h];
        return 0;
    }
    size_t f = begin(&rm->c);
    ms_wbuf_u32(&rm->c.req, h);
    struct ms_rbuf r;
    int rc = exchange(&rm->c, f, MS_OP_STACK, &r, err);
    if (!rc && !ms_wire_get_stack(&r, out))
        rc = ms_err_set(err, MS_EPROTO, "short STACK response");
    return rc;
}

static int remote_readv(struct ms_target *t, ms_handle h, unsigned count, const uint64_t *addrs,
                        const uint32_t *lens, void *const *bufs, int *statuses, size_t *dones,
                        struct ms_err *err)
{
    struct ms_client *c = &R(t)->c;
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, h);
    ms_wbuf_u32(&c->req, count);
    for (unsigned i = 0; i < count; i++) {
        ms_wbuf_u64(&c->req, addrs[i]);
        ms_wbuf_u32(&c->req, lens[i]);
    }
    struct ms_rbuf r;
    int rc = exchange(c, f, MS_OP_READ, &r, err);
    if (rc)
        return rc;
    for (unsigned i = 0; i < count; i++) {
        uint32_t status = 0, done = 0;
        ms_rbuf_u32(&r, &status);
        ms_rbuf_u32(&r, &done);
        const uint8_t *p = done <= lens[i] ? ms_rbuf_bytes(&r, done) : NULL;
        if (!p && done)
            r.bad = true;
        if (r.bad)
            return ms_err_set(err, MS_EPROTO, "malformed READ response");
        memcpy(bufs[i], p, done);
        statuses[i] = (int)status;
        dones[i] = done;
        struct ms_err item;
        if (status && !ms_wire_get_err(&r, (int)status, count == 1 ? err : &item))
            return ms_err_set(err, MS_EPROTO, "malformed READ response");
    }
    return 0;
}

static int remote_read(struct ms_target *t, ms_handle h, uint64_t addr, void *buf, size_t len,
                       size_t *done, struct ms_err *err)
{
    int rc = 0;
    while (!rc && *done < len) {
        size_t n = len - *done < READ_CHUNK ? len - *done : READ_CHUNK, got = 0;
        uint32_t n32 = (uint32_t)n;
        uint64_t at = addr + *done;
        void *bufs[1] = {(uint8_t *)buf + *done};
        int status = 0;
        rc = remote_readv(t, h, 1, &at, &n32, bufs, &status, &got, err);
        *done += got;
        if (!rc)
            rc = status;
    }
    return rc;
}

static int remote_write(struct ms_target *t, ms_handle h, uint64_t addr, const void *buf,
                        size_t len, size_t *done, struct ms_err *err)
{
    struct ms_client *c = &R(t)->c;
    int rc = 0;
    while (!rc && *done < len) {
        size_t n = len - *done < MS_WIRE_MAX_WRITE ? len - *done : MS_WIRE_MAX_WRITE;
        size_t f = begin(c);
        ms_wbuf_u32(&c->req, h);
        ms_wbuf_u64(&c->req, addr + *done);
        ms_wbuf_str(&c->req, (const char *)buf + *done, n);
        struct ms_rbuf r;
        rc = exchange(c, f, MS_OP_WRITE, &r, err);
        /* The bytes written (before a failure too) follow the status. */
        uint32_t d = 0;
        if (ms_rbuf_u32(&r, &d) && d <= n)
            *done += d;
    }
    return rc;
}

static int remote_translate(struct ms_target *t, ms_handle h, unsigned count, const uint64_t *addrs,
                            struct ms_xlat *out, int *statuses, struct ms_trace *trace,
                            struct ms_err *err)
{
    struct ms_client *c = &R(t)->c;
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, h);
    ms_wbuf_u8(&c->req, trace ? 1 : 0);
    ms_wbuf_u32(&c->req, count);
    for (unsigned i = 0; i < count; i++)
        ms_wbuf_u64(&c->req, addrs[i]);
    struct ms_rbuf r;
    int rc = exchange(c, f, MS_OP_TRANSLATE, &r, err);
    if (rc)
        return rc;
    if (trace)
        trace->count = 0;
    for (unsigned i = 0; i < count; i++) {
        uint32_t status = 0;
        ms_rbuf_u32(&r, &status);
        statuses[i] = (int)status;
        out[i] = (struct ms_xlat){addrs[i], 0, 0, 0, 0, 0};
        if (status) {
            struct ms_err item;
            ms_wire_get_err(&r, (int)status, i == 0 ? err : &item);
        } else {
            ms_rbuf_u64(&r, &out[i].lower);
            ms_rbuf_u64(&r, &out[i].phys);
            ms_rbuf_u64(&r, &out[i].page_size);
            ms_rbuf_u32(&r, &out[i].perms);
        }
        if (trace) {
            uint8_t n = 0;
            ms_rbuf_u8(&r, &n);
            for (unsigned k = 0; k < n; k++) {
                struct ms_trace_entry e;
                ms_rbuf_u8(&r, &e.depth);
                ms_rbuf_u8(&r, &e.kind);
                ms_rbuf_u8(&r, &e.level);
                ms_rbuf_u16(&r, &e.index);
                ms_rbuf_u64(&r, &e.entry_addr);
                ms_rbuf_u64(&r, &e.entry_phys);
                ms_rbuf_u64(&r, &e.value);
                if (i == 0 && k < MS_TRACE_MAX)
                    trace->entries[k] = e;
            }
            if (i == 0)
                trace->count = n < MS_TRACE_MAX ? n : MS_TRACE_MAX;
        }
        if (r.bad)
            return ms_err_set(err, MS_EPROTO, "malformed TRANSLATE response");
    }
    return 0;
}

static int text_op(struct ms_client *c, size_t f, uint16_t op, struct ms_strbuf *out,
                   struct ms_rbuf *r, struct ms_err *err)
{
    int rc = exchange(c, f, op, r, err);
    const char *s;
    uint32_t n;
    /* A failed report still carries the text written before the error. */
    if (ms_rbuf_str(r, &s, &n))
        ms_strbuf_append(out, s, n);
    else if (!rc)
        return ms_err_set(err, MS_EPROTO, "malformed text response");
    return rc;
}

static int remote_x(struct ms_target *t, ms_handle h, const struct ms_xfmt *xf, uint64_t addr,
                    struct ms_strbuf *out, uint64_t *next, struct ms_err *err)
{
    struct ms_client *c = &R(t)->c;
    char spec[32]; /* the defaults resolved here: the server needs none */
    snprintf(spec, sizeof(spec), "%llu%c%c", (unsigned long long)xf->count, xf->format, xf->size);
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, h);
    ms_wbuf_u64(&c->req, addr);
    ms_wbuf_str(&c->req, spec, strlen(spec));
    struct ms_rbuf r;
    int rc = text_op(c, f, MS_OP_X, out, &r, err);
    ms_rbuf_u64(&r, next);
    return rc;
}

static int remote_vtop(struct ms_target *t, ms_handle h, uint64_t addr, struct ms_strbuf *out,
                       struct ms_err *err)
{
    struct ms_client *c = &R(t)->c;
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, h);
    ms_wbuf_u64(&c->req, addr);
    struct ms_rbuf r;
    return text_op(c, f, MS_OP_VTOP, out, &r, err);
}

static int remote_ptdump(struct ms_target *t, ms_handle h, uint64_t start, uint64_t end,
                         struct ms_strbuf *out, struct ms_err *err)
{
    struct ms_client *c = &R(t)->c;
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, h);
    ms_wbuf_u64(&c->req, start);
    ms_wbuf_u64(&c->req, end);
    struct ms_rbuf r;
    return text_op(c, f, MS_OP_PTDUMP, out, &r, err);
}

static int remote_flush(struct ms_target *t, struct ms_err *err)
{
    struct ms_client *c = &R(t)->c;
    size_t f = begin(c);
    struct ms_rbuf r;
    return exchange(c, f, MS_OP_FLUSH, &r, err);
}

static int remote_stats(struct ms_target *t, struct ms_target_stats *st, struct ms_err *err)
{
    struct ms_client *c = &R(t)->c;
    size_t f = begin(c);
    struct ms_rbuf r;
    int rc = exchange(c, f, MS_OP_STATS, &r, err);
    if (rc)
        return rc;
    ms_rbuf_u64(&r, &st->requests);
    ms_rbuf_u64(&r, &st->errors);
    ms_rbuf_u64(&r, &st->generation);
    ms_rbuf_u64(&r, &st->hits);
    ms_rbuf_u64(&r, &st->misses);
    ms_rbuf_u64(&r, &st->walks);
    ms_rbuf_u64(&r, &st->table_reads);
    return r.bad ? ms_err_set(err, MS_EPROTO, "short STATS response") : 0;
}

static int remote_enumerate(struct ms_target *t, ms_handle h, uint64_t start, uint64_t end,
                            ms_mapping_fn fn, void *arg, uint64_t max_tables, uint64_t *bad_tables,
                            struct ms_err *err)
{
    (void)h, (void)start, (void)end, (void)fn, (void)arg, (void)max_tables, (void)bad_tables;
    return ms_err_set(err, MS_EINVAL,
                      "enumerating mappings needs the memory in this process: %s serves "
                      "page-table dumps as text (ptdump) instead",
                      t->info.where);
}

static int remote_discover(struct ms_target *t, struct ms_candidate *out, unsigned max,
                           unsigned *count, struct ms_err *err)
{
    struct ms_client *c = &R(t)->c;
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, max);
    struct ms_rbuf r;
    int rc = exchange(c, f, MS_OP_DISCOVER, &r, err);
    if (rc)
        return rc;
    uint32_t found = 0, sent = 0;
    ms_rbuf_u32(&r, &found);
    ms_rbuf_u32(&r, &sent);
    if (sent > max || sent > found)
        r.bad = true;
    for (uint32_t i = 0; i < sent && !r.bad; i++)
        ms_wire_get_candidate(&r, &out[i]);
    if (r.bad)
        return ms_err_set(err, MS_EPROTO, "malformed DISCOVER response");
    *count = found;
    return 0;
}

static int remote_dmesg(struct ms_target *t, ms_handle h, const struct ms_dmesg_opts *opts,
                        struct ms_strbuf *text, struct ms_dmesg_info *info, struct ms_err *err)
{
    struct ms_client *c = &R(t)->c;
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, h);
    ms_wbuf_u8(&c->req, (uint8_t)opts->style);
    ms_wbuf_u8(&c->req, (uint8_t)(int8_t)opts->max_level);
    struct ms_rbuf r;
    int rc = exchange(c, f, MS_OP_DMESG, &r, err);
    if (rc)
        return rc;
    const char *s = NULL;
    uint32_t n = 0;
    uint8_t consistent = 0;
    ms_rbuf_str(&r, &s, &n);
    ms_rbuf_u64(&r, &info->records);
    ms_rbuf_u64(&r, &info->bad);
    ms_rbuf_u64(&r, &info->lost);
    ms_rbuf_u64(&r, &info->incomplete);
    ms_rbuf_u64(&r, &info->truncated);
    ms_rbuf_u32(&r, &info->retries);
    ms_rbuf_u8(&r, &consistent);
    if (!ms_rbuf_cstr(&r, info->first_bad, sizeof(info->first_bad)) ||
        !ms_rbuf_cstr(&r, info->how, sizeof(info->how)))
        return ms_err_set(err, MS_EPROTO, "malformed DMESG response");
    info->consistent = consistent != 0;
    ms_strbuf_append(text, s, n);
    return text->failed ? ms_err_set(err, MS_ENOMEM, "out of memory") : 0;
}

static void put_cursor(struct ms_wbuf *w, const struct ms_dmesg_cursor *c)
{
    ms_wbuf_u64(w, c->next_seq);
    ms_wbuf_u8(w, c->started);
    ms_wbuf_u64(w, c->stall_seq);
    ms_wbuf_u32(w, c->stalls);
}

static int remote_dmesg_next(struct ms_target *t, ms_handle h, const struct ms_dmesg_opts *opts,
                             struct ms_dmesg_cursor *cursor, struct ms_strbuf *text, uint64_t *lost,
                             struct ms_err *err)
{
    struct ms_client *c = &R(t)->c;
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, h);
    ms_wbuf_u8(&c->req, (uint8_t)opts->style);
    ms_wbuf_u8(&c->req, (uint8_t)(int8_t)opts->max_level);
    put_cursor(&c->req, cursor);
    struct ms_rbuf r;
    int rc = exchange(c, f, MS_OP_DMESG_NEXT, &r, err);
    if (rc)
        return rc;
    const char *s = NULL;
    uint32_t n = 0;
    uint8_t started = 0;
    struct ms_dmesg_cursor next;
    ms_rbuf_str(&r, &s, &n);
    ms_rbuf_u64(&r, lost);
    ms_rbuf_u64(&r, &next.next_seq);
    ms_rbuf_u8(&r, &started);
    ms_rbuf_u64(&r, &next.stall_seq);
    ms_rbuf_u32(&r, &next.stalls);
    if (r.bad)
        return ms_err_set(err, MS_EPROTO, "malformed DMESG_NEXT response");
    next.started = started != 0;
    *cursor = next;
    ms_strbuf_append(text, s, n);
    return text->failed ? ms_err_set(err, MS_ENOMEM, "out of memory") : 0;
}

static int remote_symbol(struct ms_target *t, ms_handle h, const char *name, uint64_t *addr,
                         struct ms_err *err)
{
    struct ms_client *c = &R(t)->c;
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, h);
    ms_wbuf_str(&c->req, name, strlen(name));
    struct ms_rbuf r;
    int rc = exchange(c, f, MS_OP_SYMBOL, &r, err);
    if (!rc && !ms_rbuf_u64(&r, addr))
        rc = ms_err_set(err, MS_EPROTO, "short SYMBOL response");
    return rc;
}

static int remote_addrsym(struct ms_target *t, ms_handle h, uint64_t addr, struct ms_strbuf *name,
                          uint64_t *offset, struct ms_err *err)
{
    struct ms_client *c = &R(t)->c;
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, h);
    ms_wbuf_u64(&c->req, addr);
    struct ms_rbuf r;
    int rc = exchange(c, f, MS_OP_ADDRSYM, &r, err);
    if (rc)
        return rc;
    const char *s;
    uint32_t n;
    if (!ms_rbuf_str(&r, &s, &n) || !ms_rbuf_u64(&r, offset))
        return ms_err_set(err, MS_EPROTO, "malformed ADDRSYM response");
    ms_strbuf_append(name, s, n);
    return 0;
}

static int remote_types(struct ms_target *t, ms_handle h, unsigned what, const char *flags,
                        const char *name, struct ms_strbuf *out, struct ms_err *err)
{
    struct ms_client *c = &R(t)->c;
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, h);
    ms_wbuf_u8(&c->req, what == MS_TYPES_PTYPE ? MS_WIRE_TYPES_PTYPE : MS_WIRE_TYPES_SOURCE);
    ms_wbuf_str(&c->req, flags, strlen(flags));
    ms_wbuf_str(&c->req, name, strlen(name));
    struct ms_rbuf r;
    return text_op(c, f, MS_OP_TYPES, out, &r, err);
}

static int remote_print(struct ms_target *t, ms_handle h, const char *fmt, const char *expr,
                        struct ms_strbuf *out, struct ms_err *err)
{
    struct ms_client *c = &R(t)->c;
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, h);
    ms_wbuf_str(&c->req, fmt, strlen(fmt));
    ms_wbuf_str(&c->req, expr, strlen(expr));
    struct ms_rbuf r;
    return text_op(c, f, MS_OP_PRINT, out, &r, err);
}

static int remote_tasks(struct ms_target *t, ms_handle h, struct ms_task **tasks, size_t *count,
                        uint64_t *bad, struct ms_err *err)
{
    struct ms_client *c = &R(t)->c;
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, h);
    struct ms_rbuf r;
    int rc = exchange(c, f, MS_OP_TASKS, &r, err);
    /* A walk cut short still sends what it read after its error. */
    uint32_t n = 0;
    ms_rbuf_u64(&r, bad);
    ms_rbuf_u32(&r, &n);
    if (r.bad)
        return rc ? rc : ms_err_set(err, MS_EPROTO, "malformed TASKS response");
    if (n > r.len / 24) /* each task takes at least 24 bytes */
        return ms_err_set(err, MS_EPROTO, "TASKS response claims %u tasks", n);
    *tasks = calloc(n ? n : 1, sizeof(**tasks));
    if (!*tasks)
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < n && !r.bad; i++)
        ms_wire_get_task(&r, &(*tasks)[i]);
    if (r.bad) {
        free(*tasks);
        *tasks = NULL;
        return ms_err_set(err, MS_EPROTO, "malformed TASKS response");
    }
    *count = n;
    return rc;
}

static int remote_backtrace(struct ms_target *t, ms_handle h, const int32_t *pids, size_t npids,
                            struct ms_strbuf *out, struct ms_err *err)
{
    struct ms_client *c = &R(t)->c;
    if (npids > (MS_WIRE_MAX_REQUEST - 16) / 4)
        return ms_err_set(err, MS_ELIMIT, "%zu pids do not fit one request: ask for fewer", npids);
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, h);
    ms_wbuf_u32(&c->req, (uint32_t)npids);
    for (size_t i = 0; i < npids; i++)
        ms_wbuf_u32(&c->req, (uint32_t)pids[i]);
    struct ms_rbuf r;
    return text_op(c, f, MS_OP_BACKTRACE, out, &r, err);
}

static int remote_kernel_info(struct ms_target *t, ms_handle h, struct ms_kernel_info *out,
                              struct ms_err *err)
{
    struct ms_client *c = &R(t)->c;
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, h);
    struct ms_rbuf r;
    int rc = exchange(c, f, MS_OP_KERNEL, &r, err);
    if (rc)
        return rc;
    bool ok = ms_rbuf_cstr(&r, out->release, sizeof(out->release));
    ms_rbuf_u64(&r, &out->slide);
    ms_rbuf_u64(&r, &out->phys_base);
    ms_rbuf_u64(&r, &out->root);
    ms_rbuf_u32(&r, &out->levels);
    ms_rbuf_u64(&r, &out->symbols);
    ok = ok && ms_rbuf_cstr(&r, out->symbols_from, sizeof(out->symbols_from)) &&
         ms_rbuf_cstr(&r, out->how, sizeof(out->how));
    if (!ok || r.bad)
        return ms_err_set(err, MS_EPROTO, "malformed KERNEL response");
    return 0;
}

static int remote_cpu_backtrace(struct ms_target *t, ms_handle h, uint32_t cpu,
                                struct ms_strbuf *out, struct ms_err *err)
{
    struct ms_client *c = &R(t)->c;
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, h);
    ms_wbuf_u32(&c->req, cpu);
    struct ms_rbuf r;
    return text_op(c, f, MS_OP_CPU_BACKTRACE, out, &r, err);
}

static int remote_task_regs(struct ms_target *t, ms_handle h, uint64_t task,
                            struct ms_task_regs *out, struct ms_err *err)
{
    struct ms_client *c = &R(t)->c;
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, h);
    ms_wbuf_u64(&c->req, task);
    struct ms_rbuf r;
    int rc = exchange(c, f, MS_OP_TASK_REGS, &r, err);
    if (rc)
        return rc;
    uint8_t source = 0, on_cpu = 0;
    ms_rbuf_u8(&r, &source);
    ms_rbuf_u8(&r, &on_cpu);
    ms_rbuf_u32(&r, &out->cpu);
    ms_wire_get_regs(&r, &out->regs);
    if (r.bad || source > MS_REGS_CPU)
        return ms_err_set(err, MS_EPROTO, "malformed TASK_REGS response");
    out->source = (enum ms_regs_source)source;
    out->on_cpu = on_cpu != 0;
    return 0;
}

static int remote_unwind_step(struct ms_target *t, ms_handle h, const struct ms_frame *in,
                              struct ms_frame *out, struct ms_err *err)
{
    struct ms_client *c = &R(t)->c;
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, h);
    ms_wire_put_frame(&c->req, in);
    struct ms_rbuf r;
    int rc = exchange(c, f, MS_OP_UNWIND_STEP, &r, err);
    if (rc)
        return rc;
    uint8_t more = 0;
    ms_rbuf_u8(&r, &more);
    if (!ms_wire_get_frame(&r, out) || more > 1)
        return ms_err_set(err, MS_EPROTO, "malformed UNWIND_STEP response");
    return more;
}

static int remote_modules(struct ms_target *t, ms_handle h, struct ms_module_list *out,
                          struct ms_err *err)
{
    struct ms_client *c = &R(t)->c;
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, h);
    struct ms_rbuf r;
    int rc = exchange(c, f, MS_OP_MODULES, &r, err);
    /* A walk cut short still sends what it read after its error. */
    uint32_t n = 0;
    ms_rbuf_u64(&r, &out->bad);
    ms_rbuf_u32(&r, &n);
    if (!r.bad && n > r.len / 48) /* each module takes at least 48 bytes */
        r.bad = true;
    for (uint32_t i = 0; i < n && !r.bad; i++)
        ms_wire_get_module(&r, out);
    if (r.bad) {
        ms_module_list_free(out);
        return rc ? rc : ms_err_set(err, MS_EPROTO, "malformed MODULES response");
    }
    return rc;
}

static int remote_file_read(struct ms_target *t, ms_handle h, const char *path, uint64_t offset,
                            void *buf, size_t len, struct ms_file_chunk *out, struct ms_err *err)
{
    struct ms_client *c = &R(t)->c;
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, h);
    ms_wbuf_u8(&c->req, MS_WIRE_FILE_READ);
    ms_wbuf_str(&c->req, path, strlen(path));
    ms_wbuf_u64(&c->req, offset);
    ms_wbuf_u32(&c->req, (uint32_t)len);
    struct ms_rbuf r;
    int rc = exchange(c, f, MS_OP_FILE, &r, err);
    if (rc)
        return rc;
    const char *data = NULL;
    uint32_t n = 0;
    ms_rbuf_u64(&r, &out->size);
    ms_rbuf_u32(&r, &out->mode);
    ms_rbuf_u64(&r, &out->inode);
    ms_rbuf_u32(&r, &out->nholes);
    if (out->nholes > MS_FILE_HOLES_MAX)
        r.bad = true;
    for (unsigned i = 0; i < out->nholes && !r.bad; i++) {
        ms_rbuf_u64(&r, &out->holes[i].offset);
        ms_rbuf_u64(&r, &out->holes[i].len);
    }
    ms_rbuf_str(&r, &data, &n);
    if (r.bad || n > len) {
        memset(out, 0, sizeof(*out));
        return ms_err_set(err, MS_EPROTO, "malformed FILE response");
    }
    if (n)
        memcpy(buf, data, n);
    out->len = n;
    return 0;
}

static int remote_dir_list(struct ms_target *t, ms_handle h, const char *path, struct ms_dir *out,
                           struct ms_err *err)
{
    struct ms_client *c = &R(t)->c;
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, h);
    ms_wbuf_u8(&c->req, MS_WIRE_FILE_LIST);
    ms_wbuf_str(&c->req, path, strlen(path));
    ms_wbuf_u64(&c->req, 0);
    ms_wbuf_u32(&c->req, 0);
    struct ms_rbuf r;
    int rc = exchange(c, f, MS_OP_FILE, &r, err);
    if (rc)
        return rc;
    uint32_t n = 0;
    ms_rbuf_u32(&r, &n);
    if (!r.bad && n > r.len / 24) /* each entry takes at least 24 bytes */
        r.bad = true;
    for (uint32_t i = 0; i < n && !r.bad; i++) {
        struct ms_dirent e = {0};
        const char *name;
        uint32_t len = 0;
        if (!ms_rbuf_str(&r, &name, &len) || len == 0 || len > MS_DIR_NAME_MAX ||
            memchr(name, '\0', len)) {
            r.bad = true;
            break;
        }
        memcpy(e.name, name, len);
        ms_rbuf_u32(&r, &e.mode);
        ms_rbuf_u64(&r, &e.size);
        ms_rbuf_u64(&r, &e.inode);
        if (!r.bad && ms_dir_push(out, &e, NULL) < 0)
            r.bad = true;
    }
    if (r.bad) {
        ms_dir_free(out);
        return ms_err_set(err, MS_EPROTO, "malformed FILE (list) response");
    }
    return 0;
}

static int remote_maps(struct ms_target *t, ms_handle h, int32_t pid, struct ms_vma_list *out,
                       struct ms_err *err)
{
    struct ms_client *c = &R(t)->c;
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, h);
    ms_wbuf_u32(&c->req, (uint32_t)pid);
    struct ms_rbuf r;
    int rc = exchange(c, f, MS_OP_MAPS, &r, err);
    /* A walk cut short still sends what it read after its error. */
    uint32_t n = 0;
    ms_rbuf_u64(&r, &out->bad);
    ms_rbuf_u32(&r, &n);
    if (!r.bad && n > r.len / 57) /* each area takes at least 57 bytes */
        r.bad = true;
    for (uint32_t i = 0; i < n && !r.bad; i++)
        ms_wire_get_vma(&r, out);
    if (r.bad) {
        ms_vma_list_free(out);
        return rc ? rc : ms_err_set(err, MS_EPROTO, "malformed MAPS response");
    }
    return rc;
}

static int remote_set_symbols(struct ms_target *t, const char *path, struct ms_err *err)
{
    (void)path;
    return ms_err_set(err, MS_EINVAL,
                      "the server at %s finds kernels with its own symbol file: give the "
                      "symbol file to `memsrv serve`",
                      t->info.where);
}

static void remote_close(struct ms_target *t)
{
    struct remote *rm = R(t);
    if (rm->c.fd >= 0)
        close(rm->c.fd);
    ms_wbuf_free(&rm->c.req);
    free(rm->c.resp);
    free(rm->where);
    free(rm->vmcoreinfo);
    free(rm->regions);
    free(rm->cpus);
    for (unsigned i = 0; rm->sources && i < rm->base.info.nsources; i++)
        free(rm->sources[i]);
    free(rm->sources);
    free(rm->source_sizes);
    free(rm);
}

/* What the server holds (layout, sources, a dump's CPUs and note), asked
 * once at connect. */
static int fetch_info(struct remote *rm, struct ms_err *err)
{
    struct ms_client *c = &rm->c;
    struct ms_target_info *in = &rm->base.info;
    size_t f = begin(c);
    struct ms_rbuf r;
    int rc = exchange(c, f, MS_OP_INFO, &r, err);
    if (rc)
        return rc;
    uint8_t writable = 0;
    uint32_t nregions = 0, nsources = 0, ncpus = 0;
    const char *vmci;
    uint32_t vmci_len = 0;
    ms_rbuf_u8(&r, &writable);
    ms_rbuf_u64(&r, &in->ram_size);
    ms_rbuf_u64(&r, &in->ram_end);
    ms_rbuf_u32(&r, &nregions);
    if (r.bad || nregions > r.len / 28)
        return ms_err_set(err, MS_EPROTO, "malformed INFO response");
    rm->regions = calloc(nregions + 1, sizeof(*rm->regions));
    if (!rm->regions)
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < nregions; i++) {
        ms_rbuf_u64(&r, &rm->regions[i].gpa);
        ms_rbuf_u64(&r, &rm->regions[i].len);
        ms_rbuf_u64(&r, &rm->regions[i].offset);
        ms_rbuf_u32(&r, &rm->regions[i].source);
    }
    ms_rbuf_u32(&r, &nsources);
    if (r.bad || nsources > r.len / 12)
        return ms_err_set(err, MS_EPROTO, "malformed INFO response");
    rm->sources = calloc(nsources + 1, sizeof(*rm->sources));
    rm->source_sizes = calloc(nsources + 1, sizeof(*rm->source_sizes));
    if (!rm->sources || !rm->source_sizes)
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < nsources && !r.bad; i++) {
        const char *s = "";
        uint32_t n = 0;
        ms_rbuf_str(&r, &s, &n);
        ms_rbuf_u64(&r, &rm->source_sizes[i]);
        if (!(rm->sources[i] = strndup(s, n)))
            return ms_err_set(err, MS_ENOMEM, "out of memory");
        in->nsources = i + 1;
    }
    ms_rbuf_u32(&r, &ncpus);
    if (r.bad || ncpus > r.len / 200)
        return ms_err_set(err, MS_EPROTO, "malformed INFO response");
    rm->cpus = calloc(ncpus + 1, sizeof(*rm->cpus));
    if (!rm->cpus)
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < ncpus; i++)
        ms_wire_get_cpu(&r, &rm->cpus[i]);
    ms_rbuf_str(&r, &vmci, &vmci_len);
    if (r.bad)
        return ms_err_set(err, MS_EPROTO, "malformed INFO response");
    if (vmci_len && !(rm->vmcoreinfo = strndup(vmci, vmci_len)))
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    in->remote = true;
    in->writable = writable != 0;
    in->where = rm->where;
    in->nregions = nregions;
    in->regions = rm->regions;
    in->sources = (const char *const *)rm->sources;
    in->source_sizes = rm->source_sizes;
    in->ncpus = ncpus;
    in->cpus = rm->cpus;
    in->vmcoreinfo = rm->vmcoreinfo;
    in->vmcoreinfo_len = vmci_len;
    return 0;
}

static const struct ms_target_ops remote_ops = {
    .close = remote_close,
    .space = remote_space,
    .stack = remote_stack,
    .readv = remote_readv,
    .read = remote_read,
    .write = remote_write,
    .translate = remote_translate,
    .x = remote_x,
    .vtop = remote_vtop,
    .ptdump = remote_ptdump,
    .flush = remote_flush,
    .stats = remote_stats,
    .enumerate = remote_enumerate,
    .discover = remote_discover,
    .dmesg = remote_dmesg,
    .symbol = remote_symbol,
    .addrsym = remote_addrsym,
    .tasks = remote_tasks,
    .modules = remote_modules,
    .maps = remote_maps,
    .types = remote_types,
    .print = remote_print,
    .file_read = remote_file_read,
    .dir_list = remote_dir_list,
    .dmesg_next = remote_dmesg_next,
    .kernel_info = remote_kernel_info,
    .set_symbols = remote_set_symbols,
    .backtrace = remote_backtrace,
    .task_regs = remote_task_regs,
    .cpu_backtrace = remote_cpu_backtrace,
    .unwind_step = remote_unwind_step,
};

int ms_target_open_remote(struct ms_target **out, const struct ms_target_opts *o,
                          struct ms_err *err)
{
    if (o->symbols)
        return ms_err_set(err, MS_EINVAL,
                          "the server finds kernels with its own symbol file: give the symbol "
                          "file to `memsrv serve`, not to a client");
    if (o->machine || o->map)
        return ms_err_set(err, MS_EINVAL, "a server owns its memory's layout");
    struct remote *rm = calloc(1, sizeof(*rm));
    if (!rm)
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    rm->base.ops = &remote_ops;
    rm->c.fd = -1;
    const char *address = o->connect;
    int rc = (rm->where = strdup(address)) ? 0 : ms_err_set(err, MS_ENOMEM, "out of memory");
    if (!rc) {
        rm->c.fd = strncmp(address, "tcp:", 4) == 0 ? connect_tcp(address + 4, err)
                                                    : connect_unix(address, err);
        rc = rm->c.fd < 0 ? rm->c.fd : 0;
    }
    if (!rc)
        rc = set_timeout(&rm->c, o->timeout_ms ? o->timeout_ms : DEFAULT_TIMEOUT_MS, err);
    if (!rc) {
        size_t f = begin(&rm->c);
        ms_wbuf_str(&rm->c.req, o->token ? o->token : "", o->token ? strlen(o->token) : 0);
        struct ms_rbuf r;
        uint32_t version = 0, flags = 0;
        uint64_t ram_size = 0;
        rc = exchange(&rm->c, f, MS_OP_HELLO, &r, err);
        if (!rc &&
            (!ms_rbuf_u32(&r, &version) || !ms_rbuf_u32(&r, &flags) || !ms_rbuf_u64(&r, &ram_size)))
            rc = ms_err_set(err, MS_EPROTO, "short HELLO response");
        if (!rc && version != MS_WIRE_VERSION)
            rc = ms_err_set(err, MS_EPROTO, "the server speaks protocol %u, this client %u",
                            version, MS_WIRE_VERSION);
    }
    if (!rc)
        rc = fetch_info(rm, err);
    if (!rc && o->writable && !rm->base.info.writable) {
        rc = ms_err_set(err, MS_EPERM, "the server at %s is read-only", address);
        ms_err_hint(err, MS_HINT_WRITABLE);
    }
    if (rc) {
        remote_close(&rm->base);
        return rc;
    }
    *out = &rm->base;
    return 0;
}
