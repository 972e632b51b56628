#include "client.h"

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
        const char *msg = "";
        uint32_t n = 0;
        ms_rbuf_str(r, &msg, &n);
        ms_err_set(err, (int)status, "%.*s", (int)n, msg);
        return (int)status;
    }
    return 0;
}

int ms_client_connect(struct ms_client *c, const char *address, const char *token,
                      struct ms_err *err)
{
    memset(c, 0, sizeof(*c));
    c->fd = strncmp(address, "tcp:", 4) == 0 ? connect_tcp(address + 4, err)
                                             : connect_unix(address, err);
    if (c->fd < 0)
        return c->fd;
    int rc = ms_client_set_timeout(c, MS_CLIENT_TIMEOUT_MS, err);
    if (rc) {
        ms_client_close(c);
        return rc;
    }
    size_t f = begin(c);
    ms_wbuf_str(&c->req, token ? token : "", token ? strlen(token) : 0);
    struct ms_rbuf r;
    rc = exchange(c, f, MS_OP_HELLO, &r, err);
    uint32_t version = 0;
    if (!rc && (!ms_rbuf_u32(&r, &version) || !ms_rbuf_u32(&r, &c->server_flags) ||
                !ms_rbuf_u64(&r, &c->ram_size)))
        rc = ms_err_set(err, MS_EPROTO, "short HELLO response");
    if (rc) {
        ms_client_close(c);
        return rc;
    }
    return 0;
}

int ms_client_set_timeout(struct ms_client *c, unsigned timeout_ms, struct ms_err *err)
{
    struct timeval tv = {(time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000};
    if (c->fd < 0)
        return ms_err_set(err, MS_EIO, "not connected to memsrv");
    if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)
        return ms_err_set(err, MS_EIO, "setting the memsrv socket timeout: %s", strerror(errno));
    c->timeout_ms = timeout_ms;
    return 0;
}

void ms_client_close(struct ms_client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    ms_wbuf_free(&c->req);
    free(c->resp);
    c->resp = NULL;
    c->resp_len = c->resp_cap = 0;
}

int ms_client_space(struct ms_client *c, const struct ms_wire_stack *s, uint32_t *handle,
                    struct ms_err *err)
{
    size_t f = begin(c);
    ms_wbuf_u8(&c->req, s->second);
    ms_wbuf_u8(&c->req, s->second_levels);
    ms_wbuf_u8(&c->req, s->has_cr3);
    ms_wbuf_u8(&c->req, s->levels);
    ms_wbuf_u64(&c->req, s->second_root);
    ms_wbuf_u64(&c->req, s->cr3);
    struct ms_rbuf r;
    int rc = exchange(c, f, MS_OP_SPACE, &r, err);
    if (!rc && !ms_rbuf_u32(&r, handle))
        rc = ms_err_set(err, MS_EPROTO, "short SPACE response");
    return rc;
}

int ms_client_readv(struct ms_client *c, uint32_t handle, unsigned count, const uint64_t *addrs,
                    const uint32_t *lens, void *const *bufs, int *statuses, size_t *dones,
                    struct ms_err *err)
{
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, handle);
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
        if (status) {
            const char *msg;
            uint32_t n;
            if (!ms_rbuf_str(&r, &msg, &n))
                return ms_err_set(err, MS_EPROTO, "malformed READ response");
            if (count == 1)
                ms_err_set(err, (int)status, "%.*s", (int)n, msg);
        }
    }
    return 0;
}

int ms_client_read(struct ms_client *c, uint32_t handle, uint64_t addr, void *buf, size_t len,
                   size_t *done, struct ms_err *err)
{
    if (len > MS_WIRE_MAX_RESPONSE)
        return ms_err_set(err, MS_EINVAL, "read of %zu bytes: split it (at most %u per request)",
                          len, MS_WIRE_MAX_RESPONSE);
    uint32_t l32 = (uint32_t)len;
    int status = 0;
    size_t d = 0;
    void *bufs[1] = {buf};
    int rc = ms_client_readv(c, handle, 1, &addr, &l32, bufs, &status, &d, err);
    if (done)
        *done = d;
    return rc ? rc : status;
}

int ms_client_translate(struct ms_client *c, uint32_t handle, unsigned count, const uint64_t *addrs,
                        struct ms_xlat *out, int *statuses, struct ms_trace *trace,
                        struct ms_err *err)
{
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, handle);
    ms_wbuf_u8(&c->req, trace ? 1 : 0);
    ms_wbuf_u32(&c->req, count);
    for (unsigned i = 0; i < count; i++)
        ms_wbuf_u64(&c->req, addrs[i]);
    struct ms_rbuf r;
    int rc = exchange(c, f, MS_OP_TRANSLATE, &r, err);
    if (rc)
        return rc;
    for (unsigned i = 0; i < count; i++) {
        uint32_t status = 0;
        ms_rbuf_u32(&r, &status);
        statuses[i] = (int)status;
        out[i] = (struct ms_xlat){addrs[i], 0, 0, 0, 0};
        if (status) {
            const char *msg;
            uint32_t n;
            if (ms_rbuf_str(&r, &msg, &n) && (count == 1 || i == 0))
                ms_err_set(err, (int)status, "%.*s", (int)n, msg);
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

int ms_client_write(struct ms_client *c, uint32_t handle, uint64_t addr, const void *buf,
                    size_t len, size_t *done, struct ms_err *err)
{
    if (done)
        *done = 0;
    if (len > MS_WIRE_MAX_WRITE)
        return ms_err_set(err, MS_EINVAL, "write of %zu bytes: split it (at most %u per request)",
                          len, MS_WIRE_MAX_WRITE);
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, handle);
    ms_wbuf_u64(&c->req, addr);
    ms_wbuf_str(&c->req, buf, len);
    struct ms_rbuf r;
    int rc = exchange(c, f, MS_OP_WRITE, &r, err);
    /* The bytes written (before a failure too) follow the status. */
    uint32_t d = 0;
    if (ms_rbuf_u32(&r, &d) && d <= len && done)
        *done = d;
    return rc;
}

int ms_client_flush(struct ms_client *c, struct ms_err *err)
{
    size_t f = begin(c);
    struct ms_rbuf r;
    return exchange(c, f, MS_OP_FLUSH, &r, err);
}

static int text_op(struct ms_client *c, size_t f, uint16_t op, struct ms_strbuf *out,
                   struct ms_err *err)
{
    struct ms_rbuf r;
    int rc = exchange(c, f, op, &r, err);
    const char *s;
    uint32_t n;
    /* A failed report still carries the text written before the error. */
    if (ms_rbuf_str(&r, &s, &n))
        ms_strbuf_append(out, s, n);
    else if (!rc)
        return ms_err_set(err, MS_EPROTO, "malformed text response");
    return rc;
}

int ms_client_x(struct ms_client *c, uint32_t handle, const char *fmt, uint64_t addr,
                struct ms_strbuf *out, struct ms_err *err)
{
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, handle);
    ms_wbuf_u64(&c->req, addr);
    ms_wbuf_str(&c->req, fmt, strlen(fmt));
    return text_op(c, f, MS_OP_X, out, err);
}

int ms_client_vtop(struct ms_client *c, uint32_t handle, uint64_t addr, struct ms_strbuf *out,
                   struct ms_err *err)
{
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, handle);
    ms_wbuf_u64(&c->req, addr);
    return text_op(c, f, MS_OP_VTOP, out, err);
}

int ms_client_ptdump(struct ms_client *c, uint32_t handle, uint64_t start, uint64_t end,
                     struct ms_strbuf *out, struct ms_err *err)
{
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, handle);
    ms_wbuf_u64(&c->req, start);
    ms_wbuf_u64(&c->req, end);
    return text_op(c, f, MS_OP_PTDUMP, out, err);
}

/* A str field into a fixed buffer (cut to fit, NUL-terminated). */
static bool get_cstr(struct ms_rbuf *r, char *dst, size_t size)
{
    const char *s;
    uint32_t n;
    if (!ms_rbuf_str(r, &s, &n))
        return false;
    snprintf(dst, size, "%.*s", (int)n, s);
    return true;
}

int ms_client_dmesg(struct ms_client *c, uint32_t handle, const struct ms_dmesg_opts *opts,
                    struct ms_strbuf *text, struct ms_client_dmesg *info, struct ms_err *err)
{
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, handle);
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
    if (!get_cstr(&r, info->first_bad, sizeof(info->first_bad)) ||
        !get_cstr(&r, info->how, sizeof(info->how)))
        return ms_err_set(err, MS_EPROTO, "malformed DMESG response");
    info->consistent = consistent != 0;
    ms_strbuf_append(text, s, n);
    return text->failed ? ms_err_set(err, MS_ENOMEM, "out of memory") : 0;
}

int ms_client_symbol(struct ms_client *c, uint32_t handle, const char *name, uint64_t *addr,
                     struct ms_err *err)
{
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, handle);
    ms_wbuf_str(&c->req, name, strlen(name));
    struct ms_rbuf r;
    int rc = exchange(c, f, MS_OP_SYMBOL, &r, err);
    if (!rc && !ms_rbuf_u64(&r, addr))
        rc = ms_err_set(err, MS_EPROTO, "short SYMBOL response");
    return rc;
}

int ms_client_addr_symbol(struct ms_client *c, uint32_t handle, uint64_t addr,
                          struct ms_strbuf *name, uint64_t *offset, struct ms_err *err)
{
    size_t f = begin(c);
    ms_wbuf_u32(&c->req, handle);
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

int ms_client_stats(struct ms_client *c, struct ms_client_stats *st, struct ms_err *err)
{
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
