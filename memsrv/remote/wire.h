/* memsrv's wire protocol (docs/protocol.md): frames of a 16-byte header and
 * a little-endian payload; encoding and bounds-checked decoding helpers
 * shared by the server and the client. */
#ifndef MEMSRV_WIRE_H
#define MEMSRV_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>

#include "memsrv.h"

#define MS_WIRE_MAGIC 0x5652534dU /* "MSRV" */
#define MS_WIRE_VERSION 2         /* 2: errors carry hint and fault; SPACE names a first stage */
#define MS_WIRE_HEADER 16
#define MS_WIRE_MAX_REQUEST (1u << 20)   /* a request payload over this drops the client */
#define MS_WIRE_MAX_RESPONSE (64u << 20) /* a response is cut (per item errors) above this */
#define MS_WIRE_MAX_WRITE (MS_WIRE_MAX_REQUEST - 64) /* WRITE bytes fitting one request */
#define MS_WIRE_REPLY 0x8000                         /* op bit set on responses */

enum ms_op {
    MS_OP_HELLO = 1,        /* token -> version, flags, RAM size */
    MS_OP_SPACE = 2,        /* stack description -> handle */
    MS_OP_READ = 3,         /* handle, [addr, len]... -> [status, bytes]... */
    MS_OP_TRANSLATE = 4,    /* handle, trace?, [addr]... -> [status, xlat(, trace)]... */
    MS_OP_FLUSH = 5,        /* re-check the file size, drop every cached translation */
    MS_OP_STATS = 6,        /* -> counters */
    MS_OP_WRITE = 7,        /* handle, addr, bytes (only on a --writable server) */
    MS_OP_X = 8,            /* handle, addr, "FMT" -> GDB x text */
    MS_OP_VTOP = 9,         /* handle, addr -> report text */
    MS_OP_PTDUMP = 10,      /* handle, start, end -> report text */
    MS_OP_DMESG = 11,       /* handle, style, max level -> log text, ring health */
    MS_OP_SYMBOL = 12,      /* handle, name -> runtime address */
    MS_OP_ADDRSYM = 13,     /* handle, address -> symbol name, offset */
    MS_OP_INFO = 14,        /* -> RAM layout, sources, dump CPUs and VMCOREINFO note */
    MS_OP_DISCOVER = 15,    /* max -> nested-guest candidates */
    MS_OP_TASKS = 16,       /* handle -> the kernel's task list */
    MS_OP_STACK = 17,       /* handle -> its stack, a kernel root resolved */
    MS_OP_TYPES = 18,       /* handle, question, "flags", "name" -> text (the kernel's types) */
    MS_OP_BACKTRACE = 19,   /* handle, pids -> bt report text */
    MS_OP_TASK_REGS = 20,   /* handle, task -> its registers and where they came from */
    MS_OP_UNWIND_STEP = 21, /* handle, frame -> more?, the caller's frame */
    MS_OP_MODULES = 22,     /* handle -> the kernel's module list */
    MS_OP_PRINT = 23,       /* handle, "fmt", "expr" -> GDB's print text */
    MS_OP_MAPS = 24,        /* handle, pid -> the process's memory map */
    MS_OP_FILE = 25,   /* handle, question, path, offset, len -> a file's bytes, or a directory */
    MS_OP_KERNEL = 26, /* handle -> release, slide, phys_base, root, levels, symbols */
    MS_OP_DMESG_NEXT = 27, /* handle, style, max level, cursor -> new records' text, lost, cursor */
    MS_OP_CPU_BACKTRACE = 28, /* handle, cpu -> bt report text of the task on that CPU */
};

/* MS_OP_FILE's questions. */
enum ms_wire_file {
    MS_WIRE_FILE_READ = 0, /* offset, len -> size, mode, inode, holes, bytes */
    MS_WIRE_FILE_LIST = 1, /* -> the directory's entries */
};

/* MS_OP_TYPES' questions. */
enum ms_wire_types {
    MS_WIRE_TYPES_SOURCE = 0, /* -> where the struct layouts came from */
    MS_WIRE_TYPES_PTYPE = 1,  /* flags, type name -> GDB's ptype text */
};

struct ms_wire_header {
    uint32_t magic;
    uint16_t version;
    uint16_t op;
    uint32_t id;
    uint32_t length; /* payload bytes after the header */
};

/* An output buffer that grows; `failed` once an allocation failed. */
struct ms_wbuf {
    uint8_t *data;
    size_t len, cap;
    bool failed;
};

void ms_wbuf_free(struct ms_wbuf *b);
void ms_wbuf_put(struct ms_wbuf *b, const void *p, size_t n);
/* Appends n uninitialised bytes and returns them (NULL once failed). */
uint8_t *ms_wbuf_grow(struct ms_wbuf *b, size_t n);
void ms_wbuf_u8(struct ms_wbuf *b, uint8_t v);
void ms_wbuf_u16(struct ms_wbuf *b, uint16_t v);
void ms_wbuf_u32(struct ms_wbuf *b, uint32_t v);
void ms_wbuf_u64(struct ms_wbuf *b, uint64_t v);
/* u32 length + bytes */
void ms_wbuf_str(struct ms_wbuf *b, const char *s, size_t n);
/* Reserves room for a header at the current end; returns its offset. */
size_t ms_wbuf_begin_frame(struct ms_wbuf *b);
/* Fills in the header reserved at `at` with the payload that follows it. */
void ms_wbuf_end_frame(struct ms_wbuf *b, size_t at, uint16_t op, uint32_t id);

/* A bounds-checked reader over a payload: every get fails (returns false and
 * sets `bad`) once the payload is exhausted, so decoders check once at the end. */
struct ms_rbuf {
    const uint8_t *p;
    size_t len, pos;
    bool bad;
};

bool ms_rbuf_u8(struct ms_rbuf *r, uint8_t *v);
bool ms_rbuf_u16(struct ms_rbuf *r, uint16_t *v);
bool ms_rbuf_u32(struct ms_rbuf *r, uint32_t *v);
bool ms_rbuf_u64(struct ms_rbuf *r, uint64_t *v);
/* A pointer to n bytes inside the payload. */
const uint8_t *ms_rbuf_bytes(struct ms_rbuf *r, size_t n);
/* u32 length + bytes; *s points into the payload (not NUL-terminated). */
bool ms_rbuf_str(struct ms_rbuf *r, const char **s, uint32_t *n);

/* The payloads both sides share, encoded and decoded side by side. A
 * decoder sets r->bad on a short or malformed payload; values are checked
 * by whoever uses them (ms_stack_check, ...). */

/* A status word; when not 0, the message, hint and faulting address. */
void ms_wire_put_err(struct ms_wbuf *b, int status, const struct ms_err *err);
/* What follows a status word written on its own. */
void ms_wire_put_err_body(struct ms_wbuf *b, const struct ms_err *err);
/* Reads what follows a non-zero status into err (code = status). */
bool ms_wire_get_err(struct ms_rbuf *r, int status, struct ms_err *err);

void ms_wire_put_stack(struct ms_wbuf *b, const struct ms_stack *s);
bool ms_wire_get_stack(struct ms_rbuf *r, struct ms_stack *s);
void ms_wire_put_candidate(struct ms_wbuf *b, const struct ms_candidate *c);
bool ms_wire_get_candidate(struct ms_rbuf *r, struct ms_candidate *c);
void ms_wire_put_task(struct ms_wbuf *b, const struct ms_task *t);
bool ms_wire_get_task(struct ms_rbuf *r, struct ms_task *t);
/* A module and its users' names (from l->users). */
void ms_wire_put_module(struct ms_wbuf *b, const struct ms_module_list *l,
                        const struct ms_module *m);
/* Decodes one module onto the end of l (its users into l->users). */
bool ms_wire_get_module(struct ms_rbuf *r, struct ms_module_list *l);
/* A memory area and its name (from l->names). */
void ms_wire_put_vma(struct ms_wbuf *b, const struct ms_vma_list *l, const struct ms_vma *v);
/* Decodes one memory area onto the end of l. */
bool ms_wire_get_vma(struct ms_rbuf *r, struct ms_vma_list *l);
void ms_wire_put_cpu(struct ms_wbuf *b, const struct ms_cpu_state *c);
bool ms_wire_get_cpu(struct ms_rbuf *r, struct ms_cpu_state *c);
/* Registers: u64 valid, u8 n, n x u64 (ms_reg order). A decoder keeps the
 * first MS_REG_COUNT and drops the valid bits past them. */
void ms_wire_put_regs(struct ms_wbuf *b, const struct ms_regs *regs);
bool ms_wire_get_regs(struct ms_rbuf *r, struct ms_regs *regs);
/* A frame: registers, u8 flags (bit 0 exact, bit 1 user). */
void ms_wire_put_frame(struct ms_wbuf *b, const struct ms_frame *f);
bool ms_wire_get_frame(struct ms_rbuf *r, struct ms_frame *f);
/* A string into a fixed buffer (cut to fit, NUL-terminated). */
bool ms_rbuf_cstr(struct ms_rbuf *r, char *dst, size_t size);

/* Fills a UNIX socket address; MS_EINVAL when the path does not fit. */
int ms_wire_unix_addr(struct sockaddr_un *sa, const char *path, struct ms_err *err);

/* Splits "HOST:PORT" (the last colon, so "[::1]"-less IPv6 works too);
 * an empty host stays empty. */
int ms_wire_split_hostport(const char *spec, char *host, size_t host_size, const char **port,
                           struct ms_err *err);

/* Decodes and validates a header. Returns 0, or MS_EPROTO with a reason. */
int ms_wire_parse_header(const uint8_t *p, struct ms_wire_header *h, struct ms_err *err);

#endif
