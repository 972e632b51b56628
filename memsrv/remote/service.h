/* The request handler behind memsrv's server: decodes one request frame,
 * runs it on the server's target, encodes the response. No I/O here, so it
 * can be fuzzed and tested in-process. The target keeps the state clients
 * share (space stacks, kernels); a connection keeps only its auth. */
#ifndef MEMSRV_SERVICE_H
#define MEMSRV_SERVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "memsrv.h"
#include "wire.h"

struct ms_service {
    struct ms_target *target; /* not owned */
    const char *token;        /* required in HELLO before anything else; NULL: none */
    uint64_t requests, errors;
};

/* Per-connection state the handler needs. */
struct ms_service_conn {
    bool authed;
};

void ms_service_init(struct ms_service *svc, struct ms_target *target, const char *token);

/* Handles one complete frame (header already validated). Appends the
 * response to out. Returns 0, or MS_EPROTO/MS_EPERM when the connection
 * must be dropped (malformed payload, no auth); err says why. */
int ms_service_request(struct ms_service *svc, struct ms_service_conn *conn,
                       const struct ms_wire_header *h, const uint8_t *payload, struct ms_wbuf *out,
                       struct ms_err *err);

#endif
