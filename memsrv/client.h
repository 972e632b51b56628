/* A memsrv client: the same operations as the library, over the server's
 * socket. Used by `memsrv --connect` and the Python module. */
#ifndef MEMSRV_CLIENT_H
#define MEMSRV_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "dmesg.h"
#include "error.h"
#include "space.h"
#include "strbuf.h"
#include "wire.h"

struct ms_client {
    int fd;
    uint32_t next_id;
    uint32_t server_flags; /* bit 0: writable */
    uint64_t ram_size;
    struct ms_wbuf req; /* request being built */
    uint8_t *resp;      /* last response frame: header, then payload */
    size_t resp_len, resp_cap;
    unsigned timeout_ms; /* longest wait for one send or recv; 0: none */
};

/* A server that stops answering without closing (SIGSTOPped, a dead TCP
 * peer) must not hang GDB: calls give up after this long without progress. */
#define MS_CLIENT_TIMEOUT_MS 30000u

/* address: a UNIX socket path, or "tcp:HOST:PORT". token may be NULL.
 * A transport error (the server gone or silent past the timeout, a broken
 * frame) closes the connection:
 * every later call fails with MS_EIO, none blocks. Not thread-safe: one
 * request at a time per client. */
int ms_client_connect(struct ms_client *c, const char *address, const char *token,
                      struct ms_err *err);
/* Sets the wait limit (MS_CLIENT_TIMEOUT_MS after connecting; 0: wait forever). */
int ms_client_set_timeout(struct ms_client *c, unsigned timeout_ms, struct ms_err *err);
void ms_client_close(struct ms_client *c);

/* Describes (or finds) a stack on the server; handle 0 is guest-physical. */
int ms_client_space(struct ms_client *c, const struct ms_wire_stack *stack, uint32_t *handle,
                    struct ms_err *err);

/* One read. */
int ms_client_read(struct ms_client *c, uint32_t handle, uint64_t addr, void *buf, size_t len,
                   size_t *done, struct ms_err *err);

/* Many reads in one round trip: bufs[i] gets lens[i] bytes from addrs[i];
 * statuses[i] (0 or an MS_E code) and dones[i] say how each went. The call
 * fails only when the exchange itself failed. */
int ms_client_readv(struct ms_client *c, uint32_t handle, unsigned count, const uint64_t *addrs,
                    const uint32_t *lens, void *const *bufs, int *statuses, size_t *dones,
                    struct ms_err *err);

/* Translations in one round trip; trace (may be NULL) for the first address. */
int ms_client_translate(struct ms_client *c, uint32_t handle, unsigned count, const uint64_t *addrs,
                        struct ms_xlat *out, int *statuses, struct ms_trace *trace,
                        struct ms_err *err);

/* At most MS_WIRE_MAX_WRITE bytes; *done (may be NULL) gets the bytes written. */
int ms_client_write(struct ms_client *c, uint32_t handle, uint64_t addr, const void *buf,
                    size_t len, size_t *done, struct ms_err *err);
int ms_client_flush(struct ms_client *c, struct ms_err *err);

/* The server-side text reports (same text as the library's). */
int ms_client_x(struct ms_client *c, uint32_t handle, const char *fmt, uint64_t addr,
                struct ms_strbuf *out, struct ms_err *err);
int ms_client_vtop(struct ms_client *c, uint32_t handle, uint64_t addr, struct ms_strbuf *out,
                   struct ms_err *err);
int ms_client_ptdump(struct ms_client *c, uint32_t handle, uint64_t start, uint64_t end,
                     struct ms_strbuf *out, struct ms_err *err);

/* The guest kernel's log (as ms_dmesg_format writes it) and what the CLI's
 * `dmesg --stats` reports: the ring's health and where the kernel was found.
 * The server opens the kernel of the handle's guest-physical space (its
 * second stage, else RAM) with its own symbol file (`serve --vmlinux`). */
struct ms_client_dmesg {
    uint64_t records, bad, lost, incomplete, truncated;
    uint32_t retries;
    bool consistent;
    char first_bad[160];
    char how[160];
};
int ms_client_dmesg(struct ms_client *c, uint32_t handle, const struct ms_dmesg_opts *opts,
                    struct ms_strbuf *text, struct ms_client_dmesg *info, struct ms_err *err);

/* Kernel symbols of the same kernel (KASLR applied): the server's symbol
 * file, else the kernel's kallsyms. name -> runtime address; address ->
 * the symbol at or below it (name appended to *name) and the offset. */
int ms_client_symbol(struct ms_client *c, uint32_t handle, const char *name, uint64_t *addr,
                     struct ms_err *err);
int ms_client_addr_symbol(struct ms_client *c, uint32_t handle, uint64_t addr,
                          struct ms_strbuf *name, uint64_t *offset, struct ms_err *err);

struct ms_client_stats {
    uint64_t requests, errors, generation, hits, misses, walks, table_reads;
};
int ms_client_stats(struct ms_client *c, struct ms_client_stats *st, struct ms_err *err);

#endif
