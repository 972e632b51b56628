/* The request handler behind memsrv's server: decodes one request frame,
 * runs it on the shared RAM and space stacks, encodes the response. No I/O
 * here, so it can be fuzzed and tested in-process. */
#ifndef MEMSRV_SERVICE_H
#define MEMSRV_SERVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "ram.h"
#include "space.h"
#include "wire.h"

#define MS_SERVICE_MAX_SPACES 256

struct ms_service_stack {
    struct ms_wire_stack desc;
    struct ms_space *second, *top;
};

struct ms_service {
    struct ms_ram *ram;
    struct ms_space *phys;
    /* Stacks are shared by every client (deduplicated by description) so
     * their translation caches stay warm across sessions. Handle = index + 1;
     * handle 0 is guest-physical. */
    struct ms_service_stack stacks[MS_SERVICE_MAX_SPACES];
    unsigned nstacks;
    bool writable;
    const char *token; /* required in HELLO before anything else; NULL: none */
    uint64_t requests, errors;
};

/* Per-connection state the handler needs. */
struct ms_service_conn {
    bool authed;
};

int ms_service_init(struct ms_service *svc, struct ms_ram *ram, bool writable, const char *token,
                    struct ms_err *err);
void ms_service_fini(struct ms_service *svc);

/* Handles one complete frame (header already validated). Appends the
 * response to out. Returns 0, or MS_EPROTO/MS_EPERM when the connection
 * must be dropped (malformed payload, no auth); err says why. */
int ms_service_request(struct ms_service *svc, struct ms_service_conn *conn,
                       const struct ms_wire_header *h, const uint8_t *payload, struct ms_wbuf *out,
                       struct ms_err *err);

#endif
