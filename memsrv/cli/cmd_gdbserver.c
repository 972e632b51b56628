#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "gdbserver.h"
#include "strbuf.h"
#include "wire.h"

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One GDB session over a pair of descriptors, until GDB ends it or hangs
 * up. Problems the server meets (a task list that cannot be read) go to
 * stderr as they happen: GDB only shows an error reply's text. */
static int session(struct cli *cli, const struct ms_gdb_source *src, int in, int out)
{
    struct ms_gdbserver *g;
    if (ms_gdbserver_new(&g, src, &cli->err))
        return -1;
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    uint64_t seen = 0;
    static uint8_t buf[65536];
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        bool ended = ms_gdbserver_input(g, buf, (size_t)n, &sb);
        uint64_t count;
        const struct ms_err *e = ms_gdbserver_problem(g, &count);
        if (count != seen)
            fprintf(stderr, "memsrv: gdbserver: %s\n", e->msg);
        seen = count;
        if (write_all(out, ms_strbuf_str(&sb), sb.len) < 0 || ended)
            break;
        ms_strbuf_reset(&sb);
    }
    ms_strbuf_free(&sb);
    ms_gdbserver_free(g);
    return 0;
}

static int listen_tcp(struct cli *cli, const char *spec, unsigned *port_out)
{
    char host[256];
    const char *port;
    if (ms_wire_split_hostport(spec, host, sizeof(host), &port, &cli->err))
        return ms_err_prefix(&cli->err, "--listen: ");
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
    int rc = getaddrinfo(host[0] ? host : "127.0.0.1", port, &hints, &res);
    if (rc != 0)
        return ms_err_set(&cli->err, MS_EINVAL, "--listen %s: %s (give a numeric address)", spec,
                          gai_strerror(rc));
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    rc = fd < 0 ? -1 : setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (rc == 0)
        rc = bind(fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (rc != 0 || listen(fd, 4) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return ms_err_set(&cli->err, MS_EIO, "cannot listen on %s: %s", spec, strerror(e));
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    *port_out = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

/* gdbserver --stdio | --listen HOST:PORT: a read-only GDB remote target
 * over the memory the options name; threads are the kernel's tasks. */
int cmd_gdbserver(struct cli *cli, int argc, char **argv)
{
    bool stdio = false;
    const char *listen_spec = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--stdio"))
            stdio = true;
        else if (!strcmp(argv[i], "--listen") && i + 1 < argc)
            listen_spec = argv[++i];
        else
            return cli_usage("usage: gdbserver (--stdio | --listen HOST:PORT) --ram F|--dump F "
                             "[--eptp E | --ncr3 N] [--cr3 V] [--vmlinux F]");
    }
    if (stdio == (listen_spec != NULL))
        return cli_usage("gdbserver: give --stdio or --listen HOST:PORT");
    if (cli->writable)
        return cli_usage("gdbserver is read-only: drop --writable");
    struct ms_gdb_target b;
    if (cli_open(cli) || cli_kernel_handle(cli, &b.kernel))
        return cli_fail(cli);
    b.t = cli->t;
    /* kernel addresses need no CR3: the kernel's own page tables */
    b.mem = cli->has_cr3 ? cli->h : b.kernel;
    struct ms_gdb_source src;
    ms_gdb_source_target(&src, &b);
    signal(SIGPIPE, SIG_IGN);
    if (stdio)
        return session(cli, &src, 0, 1) ? cli_fail(cli) : 0;
    unsigned port = 0;
    int fd = listen_tcp(cli, listen_spec, &port);
    if (fd < 0)
        return cli_fail(cli);
    fprintf(stderr, "memsrv: gdbserver listening on %s (port %u)\n", listen_spec, port);
    for (;;) {
        int c = accept(fd, NULL, NULL);
        if (c < 0 && errno == EINTR)
            continue;
        if (c < 0) {
            ms_err_set(&cli->err, MS_EIO, "accept: %s", strerror(errno));
            break;
        }
        int rc = session(cli, &src, c, c);
        close(c);
        if (rc)
            break;
    }
    close(fd);
    return cli_fail(cli);
}
