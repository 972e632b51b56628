/* GDB's remote serial protocol as pure functions over bytes, no I/O: an
 * incremental decoder of the byte stream ($payload#cs packets, '%'
 * notifications, '+'/'-' acks, the interrupt byte 0x03; '}' escapes and '*'
 * run-length counts undone, checksums verified, a size limit), a packet
 * encoder, hex helpers, and parsers of the packets a proxy looks into
 * (memory, breakpoints, thread ids, stop replies). Everything here reads
 * hostile input: bounded, never trusting a length (fuzzed by
 * tests/fuzz/fuzz_rsp.c). */
#ifndef MEMSRV_RSP_H
#define MEMSRV_RSP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ms_rsp_event {
    MS_RSP_NONE,         /* every byte given was consumed; no event completed */
    MS_RSP_PACKET,       /* a packet with a good checksum: payload in the decoder */
    MS_RSP_NOTIFY,       /* a '%' notification with a good checksum (payload likewise) */
    MS_RSP_ACK,          /* '+' */
    MS_RSP_NAK,          /* '-' */
    MS_RSP_INTERRUPT,    /* 0x03 between packets */
    MS_RSP_BAD_CHECKSUM, /* a packet whose checksum did not match (payload kept) */
    MS_RSP_MALFORMED,    /* a bad run-length count, non-hex checksum, or '$' mid-packet */
    MS_RSP_TOO_LONG,     /* the payload passed the limit: the rest of it is skipped */
};

struct ms_rsp_decoder {
    uint8_t *buf; /* the payload, decoded; NUL-terminated after a PACKET/NOTIFY */
    size_t len;   /* its length */
    size_t max;   /* the limit; buf holds max + 1 bytes */
    /* Internal state. */
    int state;
    bool bad;      /* the packet being read is malformed (reported at its end) */
    bool notify;   /* it started with '%' */
    uint8_t sum;   /* checksum of the raw bytes so far */
    uint8_t want;  /* the checksum sent (high nibble first) */
    uint64_t junk; /* bytes outside packets that meant nothing (counted, dropped) */
};

/* buf must hold max + 1 bytes (max >= 1). */
void ms_rsp_decoder_init(struct ms_rsp_decoder *d, uint8_t *buf, size_t max);

/* Consumes bytes from in until one event completes or all len are used;
 * returns how many were consumed and sets *ev. After MS_RSP_PACKET,
 * MS_RSP_NOTIFY or MS_RSP_BAD_CHECKSUM, d->buf/d->len hold the payload until
 * the next call. Call again with the rest of the input. */
size_t ms_rsp_decode(struct ms_rsp_decoder *d, const uint8_t *in, size_t len,
                     enum ms_rsp_event *ev);

/* The largest frame ms_rsp_encode can make of len payload bytes. */
#define MS_RSP_FRAME_MAX(len) (2 * (size_t)(len) + 4)

/* Frames payload as start ('$' or '%') payload '#' checksum, escaping the
 * bytes that cannot appear raw ('$', '#', '}', '*'). Returns the frame's
 * length, or 0 when it does not fit in out_size. */
size_t ms_rsp_encode(uint8_t *out, size_t out_size, char start, const void *payload, size_t len);

/* ---- hex ---- */

/* Two lowercase hex digits per byte; out holds 2 * n bytes (no NUL). */
void ms_rsp_hex_encode(char *out, const void *in, size_t n);
/* nchars hex digits (even) into nchars / 2 bytes; -1 on an odd count or a
 * non-hex digit. */
int ms_rsp_hex_decode(void *out, const char *in, size_t nchars);
/* A big-endian hex number of 1 to 16 digits at *p, advancing *p past it
 * (never past end); -1 when there is none or it is longer. */
int ms_rsp_hex_u64(const char **p, const char *end, uint64_t *value);
/* A register as GDB's p/g packets carry it: target byte order (little
 * endian), 1 to 8 bytes as 2 to 16 hex digits. -1 otherwise. */
int ms_rsp_hex_le(const char *in, size_t nchars, uint64_t *value);

/* ---- packets a proxy looks into ---- */

/* m ADDR,LEN / M ADDR,LEN:HEX / X ADDR,LEN:BIN */
struct ms_rsp_mem {
    char kind; /* 'm', 'M' or 'X' */
    uint64_t addr, len;
    const uint8_t *data; /* M: the hex digits; X: the binary bytes (unescaped) */
    size_t data_len;     /* M: 2 * len digits; X: len bytes */
};
/* -1 when the packet is not a well-formed memory packet (lengths checked
 * against the data carried; addr + len must not wrap). */
int ms_rsp_parse_mem(const uint8_t *pkt, size_t len, struct ms_rsp_mem *out);

/* Z TYPE,ADDR,KIND[;...] and z TYPE,ADDR,KIND */
struct ms_rsp_break {
    bool insert;   /* Z, else z */
    unsigned type; /* 0 software, 1 hardware, 2 write, 3 read, 4 access watchpoint */
    uint64_t addr, kind;
    size_t tail; /* offset of what follows KIND (";cond..." or the end) */
};
int ms_rsp_parse_break(const uint8_t *pkt, size_t len, struct ms_rsp_break *out);

/* A thread id: [pPID.]TID, each hex, or -1 (all) / 0 (any). */
struct ms_rsp_thread {
    bool has_pid;
    int64_t pid, tid; /* -1 all, 0 any */
};
/* Parses a thread id at *p, advancing it; -1 when malformed. */
int ms_rsp_parse_thread(const char **p, const char *end, struct ms_rsp_thread *out);

/* A stop reply: S SIG, T SIG [n:r;]..., W/X (the process ended). */
struct ms_rsp_stop {
    char kind;      /* 'S', 'T', 'W' or 'X' */
    unsigned signo; /* S/T: the signal; W: exit status; X: the signal */
    bool has_thread;
    struct ms_rsp_thread thread; /* T: its thread:ID, if any */
    bool watch;                  /* T: a watch/rwatch/awatch hit */
    bool swbreak, hwbreak;       /* T: the stub said which kind of breakpoint */
};
/* -1 when the payload is not a stop reply. */
int ms_rsp_parse_stop(const uint8_t *pkt, size_t len, struct ms_rsp_stop *out);

/* Whether a payload starts with prefix (then followed by the end or one of
 * the bytes in seps, when seps is given). */
bool ms_rsp_is(const uint8_t *pkt, size_t len, const char *prefix, const char *seps);

#endif
