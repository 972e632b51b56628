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
#define MS_SERVICE_CHECK_MAX 4096 /* bytes compared to tell a rebooted guest */

struct ms_kernel;

struct ms_service_stack {
    struct ms_wire_stack desc;
    struct ms_space *second, *top;
};

/* The Linux kernel of one guest-physical space (RAM, or a nested guest's
 * second stage), opened on the first DMESG/SYMBOL/ADDRSYM that needs it
 * (finding it can scan all of RAM) and kept: its slide and symbols hold
 * while it runs. After a FLUSH, guest bytes that name this boot (the
 * VMCOREINFO text, with KERNELOFFSET; else linux_banner and its page
 * mapping) are compared again, and a kernel whose bytes changed (the guest
 * rebooted) is opened anew. */
struct ms_service_kernel {
    struct ms_wire_stack key; /* second, second_levels, second_root: the space */
    struct ms_space *phys;
    struct ms_kernel *k;
    uint64_t generation; /* RAM generation of the last check */
    uint64_t check_pa;   /* guest-physical address of the checked bytes */
    uint64_t check_va;   /* linux_banner (must still map to check_pa), or 0 */
    size_t check_len;    /* 0: nothing can change (a dump's note) */
    uint8_t check[MS_SERVICE_CHECK_MAX];
    bool kallsyms_tried;        /* no symbol file: the kernel's kallsyms, read once */
    struct ms_err kallsyms_err; /* why reading them failed (code 0: they did not) */
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
    const char *token;   /* required in HELLO before anything else; NULL: none */
    const char *symbols; /* vmlinux or System.map for every kernel, or NULL */
    struct ms_service_kernel *kernels[MS_SERVICE_MAX_SPACES + 1];
    unsigned nkernels;
    uint64_t requests, errors;
};

/* Per-connection state the handler needs. */
struct ms_service_conn {
    bool authed;
};

/* symbols: the kernel's vmlinux or System.map (NULL: VMCOREINFO and
 * kallsyms only); used for the kernel of every space. */
int ms_service_init(struct ms_service *svc, struct ms_ram *ram, bool writable, const char *token,
                    const char *symbols, struct ms_err *err);
void ms_service_fini(struct ms_service *svc);

/* Handles one complete frame (header already validated). Appends the
 * response to out. Returns 0, or MS_EPROTO/MS_EPERM when the connection
 * must be dropped (malformed payload, no auth); err says why. */
int ms_service_request(struct ms_service *svc, struct ms_service_conn *conn,
                       const struct ms_wire_header *h, const uint8_t *payload, struct ms_wbuf *out,
                       struct ms_err *err);

#endif
