/* memsrv gdbproxy: GDB's remote protocol between GDB and QEMU's gdbstub,
 * with the nested guest's memory served from the RAM file (gdbproxy.h). */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "gdbproxy.h"

static void log_stderr(void *arg, const char *msg)
{
    (void)arg;
    fprintf(stderr, "memsrv: %s\n", msg);
}

static void nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* fails harmlessly on UNIX */
}

/* HOST:PORT into its parts (the last ':' splits, so [::1]:1234 works). */
static int split_address(struct cli *cli, const char *what, const char *addr, char *host,
                         size_t hsize, const char **port)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || !colon[1] || (size_t)(colon - addr) >= hsize)
        return ms_err_set(&cli->err, MS_EINVAL, "%s wants HOST:PORT, not '%s'", what, addr);
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    *port = colon + 1;
    return 0;
}

/* QEMU's gdbstub: HOST:PORT, or a UNIX socket's path (containing '/'). */
static int connect_qemu(struct cli *cli, const char *addr)
{
    if (strchr(addr, '/')) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(addr) >= sizeof(sa.sun_path))
            return ms_err_set(&cli->err, MS_EINVAL, "--qemu: socket path too long: %s", addr);
        strcpy(sa.sun_path, addr);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
            ms_err_set(&cli->err, MS_EIO, "cannot connect to QEMU's gdbstub at %s: %s", addr,
                       strerror(errno));
            if (fd >= 0)
                close(fd);
            return -1;
        }
        return fd;
    }
    char host[256];
    const char *port;
    if (split_address(cli, "--qemu", addr, host, sizeof(host), &port))
        return -1;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g) {
        ms_err_set(&cli->err, MS_EIO, "--qemu %s: %s", addr, gai_strerror(g));
        return -1;
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen)) {
            saved = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        ms_err_set(&cli->err, MS_EIO,
                   "cannot connect to QEMU's gdbstub at %s: %s (is QEMU running with -gdb?)", addr,
                   strerror(saved));
        return -1;
    }
    nodelay(fd);
    return fd;
}

static int listen_on(struct cli *cli, const char *addr)
{
    char host[256];
    const char *port;
    if (split_address(cli, "--listen", addr, host, sizeof(host), &port))
        return -1;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g) {
        ms_err_set(&cli->err, MS_EIO, "--listen %s: %s", addr, gai_strerror(g));
        return -1;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol), one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 1)) {
        ms_err_set(&cli->err, MS_EIO, "--listen %s: %s", addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char h[NI_MAXHOST], s[NI_MAXSERV];
    if (!getsockname(fd, (struct sockaddr *)&ss, &sl) &&
        !getnameinfo((struct sockaddr *)&ss, sl, h, sizeof(h), s, sizeof(s),
                     NI_NUMERICHOST | NI_NUMERICSERV))
        fprintf(stderr, "memsrv: gdbproxy listening on %s:%s (target remote %s:%s)\n", h, s, h, s);
    return fd;
}

/* SECONDS (a fraction allowed, up to a day) into milliseconds; 0 if bad. */
static unsigned parse_wait(const char *text)
{
    char *end;
    errno = 0;
    double s = strtod(text, &end);
    if (errno || end == text || *end || !(s > 0) || s > 86400)
        return 0;
    return (unsigned)ceil(s * 1000);
}

int cmd_gdbproxy(struct cli *cli, int argc, char **argv)
{
    const char *qemu = NULL, *listen_addr = NULL;
    bool use_stdio = false, hw_breakpoints = false;
    unsigned other_level_ms = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--qemu") && i + 1 < argc)
            qemu = argv[++i];
        else if (!strcmp(argv[i], "--listen") && i + 1 < argc)
            listen_addr = argv[++i];
        else if (!strcmp(argv[i], "--stdio"))
            use_stdio = true;
        else if (!strcmp(argv[i], "--hw-breakpoints"))
            hw_breakpoints = true;
        else if (!strcmp(argv[i], "--other-level-wait") && i + 1 < argc) {
            if (!(other_level_ms = parse_wait(argv[++i])))
                return cli_usage("--other-level-wait takes seconds, more than 0 and at most "
                                 "86400: how long hits in the other level are resumed unseen");
        } else
            return cli_usage("usage: gdbproxy --qemu HOST:PORT (--listen HOST:PORT | --stdio) "
                             "--ram F [--eptp E | --ncr3 N [--npt-levels 4|5]] [--writable] "
                             "[--hw-breakpoints] [--other-level-wait SECONDS]");
    }
    if (!qemu || use_stdio == (listen_addr != NULL))
        return cli_usage("gdbproxy needs --qemu HOST:PORT and one of --listen HOST:PORT, --stdio");
    if (cli->connect || cli->dump_path)
        return cli_usage("gdbproxy serves a live guest: give --ram FILE (QEMU's RAM file)");
    if (cli->has_cr3)
        return cli_usage("gdbproxy reads CR3 from the vCPU at each stop: drop --cr3");
    if (cli_open(cli))
        return cli_fail(cli);
    signal(SIGPIPE, SIG_IGN);
    int lfd = -1, qfd = connect_qemu(cli, qemu);
    if (qfd < 0)
        return cli_fail(cli);
    struct ms_gdbproxy_opts o = {0};
    o.target = cli->t;
    o.nested = cli->stack;
    o.writable = cli->writable;
    o.hw_breakpoints = hw_breakpoints;
    o.other_level_ms = other_level_ms;
    o.log = log_stderr;
    struct ms_gdbproxy *p;
    if (ms_gdbproxy_new(&p, &o, qfd, &cli->err)) {
        close(qfd);
        return cli_fail(cli);
    }
    int rc = 0;
    if (use_stdio) {
        rc = ms_gdbproxy_session(p, 0, 1, &cli->err);
    } else if ((lfd = listen_on(cli, listen_addr)) < 0) {
        rc = -1;
    } else {
        /* One GDB at a time; the next may come when it leaves. */
        while (rc == 0) {
            int gfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
            if (gfd < 0) {
                if (errno == EINTR)
                    continue;
                rc = ms_err_set(&cli->err, MS_EIO, "accept: %s", strerror(errno));
                break;
            }
            nodelay(gfd);
            rc = ms_gdbproxy_session(p, gfd, gfd, &cli->err);
            close(gfd);
            if (rc == 0)
                fprintf(stderr, "memsrv: GDB disconnected; waiting for the next\n");
        }
    }
    ms_gdbproxy_free(p);
    close(qfd);
    if (lfd >= 0)
        close(lfd);
    return rc ? cli_fail(cli) : 0;
}
