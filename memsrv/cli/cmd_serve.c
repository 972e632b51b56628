#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "server.h"

/* The self-pipe the signal handler writes to; a signal handler can reach
 * nothing else. */
static int stop_pipe[2] = {-1, -1};

static void on_stop(int sig)
{
    (void)sig;
    char c = 1;
    if (write(stop_pipe[1], &c, 1) < 0) {
        /* nothing to do: the pipe is full, a stop is already pending */
    }
}

int cmd_serve(struct cli *cli, int argc, char **argv)
{
    const char *socket_path = NULL, *listen = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--socket") && i + 1 < argc)
            socket_path = argv[++i];
        else if (!strcmp(argv[i], "--listen") && i + 1 < argc)
            listen = argv[++i];
        else
            return cli_usage("usage: serve --ram F [--socket PATH] [--listen HOST:PORT "
                             "--token-file F] [--writable] [--vmlinux F | --system-map F]");
    }
    if (cli->connect)
        return cli_usage("serve and --connect do not mix");
    char token[256];
    if (cli_read_token(cli, token, sizeof(token)))
        return cli_fail(cli);
    /* Kernels are opened on the first request that needs one; the symbol
     * file is checked now, so a wrong path fails here, not in a client. */
    const char *symbols = cli->vmlinux ? cli->vmlinux : cli->system_map;
    if (cli_open(cli))
        return cli_fail(cli);
    char default_path[4096];
    if (!socket_path && !listen) {
        const char *src = cli->ram_path ? cli->ram_path : cli->dump_path;
        const char *run = getenv("XDG_RUNTIME_DIR");
        char copy[4096];
        snprintf(copy, sizeof(copy), "%s", src);
        if (run && *run)
            snprintf(default_path, sizeof(default_path), "%s/memsrv-%s.sock", run, basename(copy));
        else
            snprintf(default_path, sizeof(default_path), "%s.sock", src);
        socket_path = default_path;
    }
    struct ms_server_opts opts = {
        .socket_path = socket_path, .listen = listen, .token = token[0] ? token : NULL};
    struct ms_server *srv;
    if (ms_server_new(&srv, cli->t, &opts, &cli->err))
        return cli_fail(cli);
    if (pipe(stop_pipe) != 0) {
        ms_server_free(srv);
        return cli_usage("pipe failed");
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    fprintf(stderr, "memsrv: serving %s", cli->ram_path ? cli->ram_path : cli->dump_path);
    if (socket_path)
        fprintf(stderr, " on %s", socket_path);
    if (listen)
        fprintf(stderr, " on tcp %s (port %u)", listen, ms_server_tcp_port(srv));
    fprintf(stderr, "%s", cli->writable ? " (writable)" : " (read-only)");
    fprintf(stderr, "%s%s\n", symbols ? ", kernel symbols from " : "", symbols ? symbols : "");
    int rc = ms_server_run(srv, stop_pipe[0], &cli->err);
    ms_server_free(srv);
    close(stop_pipe[0]);
    close(stop_pipe[1]);
    return rc ? cli_fail(cli) : 0;
}
