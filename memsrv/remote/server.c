#include "server.h"

#include "error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define OUT_HIGH_WATER (128u << 20) /* stop reading a client whose replies pile up */
#define SPIN_NS 50000               /* after a request, poll without sleeping this long (ns) */

struct client {
    int fd;
    struct ms_service_conn conn;
    uint8_t *in;
    size_t in_len, in_cap;
    struct ms_wbuf out;
    size_t out_sent;
};

struct ms_server {
    struct ms_service svc;
    int unix_fd, tcp_fd;
    char *unix_path;
    unsigned tcp_port;
    struct client *clients;
    unsigned nclients, max_clients;
};

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int listen_unix(struct ms_server *srv, const char *path, struct ms_err *err)
{
    struct sockaddr_un sa;
    int rc0 = ms_wire_unix_addr(&sa, path, err);
    if (rc0)
        return rc0;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ms_err_set(err, MS_EIO, "socket: %s", strerror(errno));
    /* Replace a stale socket, never another kind of file. */
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            close(fd);
            return ms_err_set(err, MS_EINVAL, "%s exists and is not a socket", path);
        }
        unlink(path);
    }
    /* Created owner-only: the umask covers the window before chmod. */
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (rc != 0 || chmod(path, 0600) != 0 || listen(fd, 64) != 0 || set_nonblock(fd) != 0) {
        int e = errno;
        close(fd);
        return ms_err_set(err, MS_EIO, "cannot listen on %s: %s", path, strerror(e));
    }
    srv->unix_fd = fd;
    srv->unix_path = strdup(path);
    return 0;
}

static int listen_tcp(struct ms_server *srv, const char *spec, struct ms_err *err)
{
    char host[256];
    const char *port;
    if (ms_wire_split_hostport(spec, host, sizeof(host), &port, err))
        return ms_err_prefix(err, "--listen: ");
    if (host[0] == '\0')
        strcpy(host, "127.0.0.1");
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g != 0)
        return ms_err_set(err, MS_EINVAL, "--listen %s: %s (give a numeric address)", spec,
                          gai_strerror(g));
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    int rc = fd < 0 ? -1 : setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (rc == 0)
        rc = bind(fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (rc != 0 || listen(fd, 64) != 0 || set_nonblock(fd) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return ms_err_set(err, MS_EIO, "cannot listen on %s: %s", spec, strerror(e));
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        srv->tcp_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                       : ((struct sockaddr_in *)&ss)->sin_port);
    srv->tcp_fd = fd;
    return 0;
}

int ms_server_new(struct ms_server **out, struct ms_target *target,
                  const struct ms_server_opts *opts, struct ms_err *err)
{
    *out = NULL;
    if (opts->listen && !opts->token)
        return ms_err_set(err, MS_EPERM,
                          "TCP needs a token (--token-file): anyone who can reach the port could "
                          "read guest memory");
    if (!opts->socket_path && !opts->listen)
        return ms_err_set(err, MS_EINVAL, "nothing to listen on");
    struct ms_server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    srv->unix_fd = srv->tcp_fd = -1;
    srv->max_clients = opts->max_clients ? opts->max_clients : 256;
    srv->clients = calloc(srv->max_clients, sizeof(*srv->clients));
    int rc = srv->clients ? 0 : ms_err_set(err, MS_ENOMEM, "out of memory");
    if (!rc)
        ms_service_init(&srv->svc, target, opts->token);
    if (!rc && opts->socket_path)
        rc = listen_unix(srv, opts->socket_path, err);
    if (!rc && opts->listen)
        rc = listen_tcp(srv, opts->listen, err);
    if (rc) {
        ms_server_free(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

unsigned ms_server_tcp_port(const struct ms_server *srv)
{
    return srv->tcp_port;
}

static void drop(struct ms_server *srv, unsigned i)
{
    struct client *c = &srv->clients[i];
    close(c->fd);
    free(c->in);
    ms_wbuf_free(&c->out);
    srv->clients[i] = srv->clients[--srv->nclients];
    memset(&srv->clients[srv->nclients], 0, sizeof(struct client));
}

static void accept_all(struct ms_server *srv, int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (srv->nclients >= srv->max_clients) {
            close(fd); /* full: the client sees the connection close */
            continue;
        }
        if (lfd == srv->tcp_fd) { /* answers are one small segment: send it now */
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        struct client *c = &srv->clients[srv->nclients++];
        memset(c, 0, sizeof(*c));
        c->fd = fd;
        c->conn.authed = srv->svc.token == NULL;
    }
}

/* Handles every complete frame in c->in. Returns false to drop the client. */
static bool process(struct ms_server *srv, struct client *c)
{
    size_t pos = 0;
    while (c->in_len - pos >= MS_WIRE_HEADER && c->out.len - c->out_sent < OUT_HIGH_WATER) {
        struct ms_wire_header h;
        struct ms_err err;
        if (ms_wire_parse_header(c->in + pos, &h, &err) != 0 || h.length > MS_WIRE_MAX_REQUEST)
            return false;
        if (c->in_len - pos - MS_WIRE_HEADER < h.length)
            break;
        if (ms_service_request(&srv->svc, &c->conn, &h, c->in + pos + MS_WIRE_HEADER, &c->out,
                               &err) != 0)
            return false;
        pos += MS_WIRE_HEADER + h.length;
    }
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
    return true;
}

static bool read_client(struct ms_server *srv, struct client *c)
{
    for (;;) {
        if (c->in_cap - c->in_len < 65536) {
            size_t cap = c->in_cap ? c->in_cap * 2 : 131072;
            if (cap > MS_WIRE_MAX_REQUEST + MS_WIRE_HEADER + 65536)
                cap = MS_WIRE_MAX_REQUEST + MS_WIRE_HEADER + 65536;
            if (cap <= c->in_len)
                return process(srv, c) && c->in_len < cap; /* a full frame must fit */
            uint8_t *p = realloc(c->in, cap);
            if (!p)
                return false;
            c->in = p;
            c->in_cap = cap;
        }
        size_t room = c->in_cap - c->in_len;
        ssize_t n = recv(c->fd, c->in + c->in_len, room, 0);
        if (n == 0)
            return false;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        c->in_len += (size_t)n;
        if (!process(srv, c))
            return false;
        /* A short read drained the socket: skip the recv that would only say
         * EAGAIN (poll is level-triggered and reports anything newer). */
        if ((size_t)n < room)
            return true;
    }
}

static bool write_client(struct client *c)
{
    while (c->out_sent < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_sent, c->out.len - c->out_sent, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        c->out_sent += (size_t)n;
    }
    c->out.len = c->out_sent = 0;
    return true;
}

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

int ms_server_run(struct ms_server *srv, int stop_fd, struct ms_err *err)
{
    int64_t last_request_ns = 0;
    struct pollfd *pfds = calloc(srv->max_clients + 3, sizeof(*pfds));
    if (!pfds)
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    for (;;) {
        unsigned n = 0;
        pfds[n++] = (struct pollfd){stop_fd, POLLIN, 0};
        pfds[n++] = (struct pollfd){srv->unix_fd, POLLIN, 0};
        pfds[n++] = (struct pollfd){srv->tcp_fd, POLLIN, 0};
        for (unsigned i = 0; i < srv->nclients; i++) {
            struct client *c = &srv->clients[i];
            short ev = c->out.len - c->out_sent < OUT_HIGH_WATER ? POLLIN : 0;
            if (c->out.len > c->out_sent)
                ev |= POLLOUT;
            pfds[n++] = (struct pollfd){c->fd, ev, 0};
        }
        /* Right after a request the next one usually follows within
         * microseconds (a GDB command is many reads): poll without sleeping
         * for a moment, as a wake-up from sleep costs more than that. */
        int ready = poll(pfds, n, now_ns() - last_request_ns < SPIN_NS ? 0 : -1);
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            free(pfds);
            return ms_err_set(err, MS_EIO, "poll: %s", strerror(errno));
        }
        if (ready == 0) {
            sched_yield();
            continue;
        }
        if (pfds[0].revents)
            break;
        /* Clients first (their indices match pfds), from the end so that
         * drop() moving the last client down does not skip anyone. */
        for (unsigned i = srv->nclients; i-- > 0;) {
            struct client *c = &srv->clients[i];
            short re = pfds[3 + i].revents;
            bool ok = true;
            if (re & (POLLERR | POLLNVAL))
                ok = false;
            if (ok && (re & (POLLIN | POLLHUP))) {
                ok = read_client(srv, c);
                last_request_ns = now_ns();
            }
            if (ok && c->in_len)
                ok = process(srv, c); /* frames held back by the high-water mark */
            if (ok && c->out.len > c->out_sent)
                ok = write_client(c);
            if (!ok || c->out.failed)
                drop(srv, i);
        }
        if (pfds[1].revents & POLLIN)
            accept_all(srv, srv->unix_fd);
        if (pfds[2].revents & POLLIN)
            accept_all(srv, srv->tcp_fd);
    }
    free(pfds);
    while (srv->nclients)
        drop(srv, srv->nclients - 1);
    return 0;
}

void ms_server_free(struct ms_server *srv)
{
    if (!srv)
        return;
    while (srv->nclients)
        drop(srv, srv->nclients - 1);
    free(srv->clients);
    if (srv->unix_fd >= 0) {
        close(srv->unix_fd);
        unlink(srv->unix_path);
    }
    free(srv->unix_path);
    if (srv->tcp_fd >= 0)
        close(srv->tcp_fd);
    free(srv);
}
