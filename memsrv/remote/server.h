/* memsrv's server: one process, many clients, a UNIX socket (0600) by
 * default, TCP only when asked and then only with a token. */
#ifndef MEMSRV_SERVER_H
#define MEMSRV_SERVER_H

#include <stdbool.h>

#include "memsrv.h"
#include "service.h"

struct ms_server_opts {
    const char *socket_path; /* UNIX socket to create (NULL: none) */
    const char *listen;      /* "HOST:PORT" for TCP (NULL: none); needs token */
    const char *token;       /* shared secret clients send in HELLO */
    unsigned max_clients;    /* 0: 256 */
};

struct ms_server;

/* Serves target (not owned: it must outlive the server); writes only when
 * the target was opened writable. */
int ms_server_new(struct ms_server **out, struct ms_target *target,
                  const struct ms_server_opts *opts, struct ms_err *err);
/* Serves until stop_fd becomes readable (a self-pipe written from a signal
 * handler), then closes every client. */
int ms_server_run(struct ms_server *srv, int stop_fd, struct ms_err *err);
/* The TCP port actually bound (for "HOST:0"), or 0. */
unsigned ms_server_tcp_port(const struct ms_server *srv);
void ms_server_free(struct ms_server *srv);

#endif
