/* GDB's remote serial protocol: framing, encoding, hex and packet parsers.
 * See rsp.h; the format is GDB's manual, appendix "Remote Protocol",
 * sections Overview (framing, escapes, run-length encoding) and Packets. */
#include <string.h>

#include "rsp.h"
#include "number.h"

enum {
    ST_IDLE,
    ST_DATA,
    ST_ESC,      /* after '}' */
    ST_RLE,      /* after '*' */
    ST_CS1,      /* after '#' */
    ST_CS2,      /* after the checksum's first digit */
    ST_SKIP,     /* an over-long payload's rest */
    ST_SKIP_CS1, /* its checksum */
    ST_SKIP_CS2,
};

/* '*' count c repeats the previous byte c - 29 more times (GDB: "0* " is
 * "0000"); '#' and '$' are not counts, nor anything past '~'. */
#define RLE_BASE 29

void ms_rsp_decoder_init(struct ms_rsp_decoder *d, uint8_t *buf, size_t max)
{
    memset(d, 0, sizeof(*d));
    d->buf = buf;
    d->max = max;
    d->state = ST_IDLE;
}

static void packet_start(struct ms_rsp_decoder *d, bool notify)
{
    d->len = 0;
    d->sum = 0;
    d->want = 0;
    d->bad = false;
    d->notify = notify;
    d->state = ST_DATA;
}

/* Appends count copies of c; false (and the skip state) past the limit. */
static bool store(struct ms_rsp_decoder *d, uint8_t c, size_t count)
{
    if (count > d->max - d->len) {
        d->state = ST_SKIP;
        d->len = 0;
        return false;
    }
    memset(d->buf + d->len, c, count);
    d->len += count;
    return true;
}

size_t ms_rsp_decode(struct ms_rsp_decoder *d, const uint8_t *in, size_t len, enum ms_rsp_event *ev)
{
    *ev = MS_RSP_NONE;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = in[i];
        int v;
        switch (d->state) {
        case ST_IDLE:
            if (c == '$' || c == '%') {
                packet_start(d, c == '%');
            } else if (c == '+') {
                *ev = MS_RSP_ACK;
                return i + 1;
            } else if (c == '-') {
                *ev = MS_RSP_NAK;
                return i + 1;
            } else if (c == 0x03) {
                *ev = MS_RSP_INTERRUPT;
                return i + 1;
            } else {
                d->junk++;
            }
            break;
        case ST_DATA:
            if (c == '#') {
                d->state = ST_CS1;
            } else if (c == '$') {
                /* The sender gave up on the packet (GDB's reader does the same). */
                packet_start(d, false);
                *ev = MS_RSP_MALFORMED;
                return i + 1;
            } else {
                d->sum += c;
                if (c == '}') {
                    d->state = ST_ESC;
                } else if (c == '*') {
                    d->state = ST_RLE;
                } else if (!store(d, c, 1)) {
                    *ev = MS_RSP_TOO_LONG;
                    return i + 1;
                }
            }
            break;
        case ST_ESC:
            d->sum += c;
            d->state = ST_DATA;
            if (!store(d, c ^ 0x20, 1)) {
                *ev = MS_RSP_TOO_LONG;
                return i + 1;
            }
            break;
        case ST_RLE:
            if (c == '#') { /* no count: the packet ended */
                d->bad = true;
                d->state = ST_CS1;
                break;
            }
            if (c == '$') {
                packet_start(d, false);
                *ev = MS_RSP_MALFORMED;
                return i + 1;
            }
            d->sum += c;
            d->state = ST_DATA;
            if (c < ' ' || c > '~' || d->len == 0) {
                d->bad = true;
                break;
            }
            if (!store(d, d->buf[d->len - 1], (size_t)(c - RLE_BASE))) {
                *ev = MS_RSP_TOO_LONG;
                return i + 1;
            }
            break;
        case ST_CS1:
        case ST_CS2:
            if (c == '$') {
                packet_start(d, false);
                *ev = MS_RSP_MALFORMED;
                return i + 1;
            }
            v = ms_hex_digit(c);
            if (v < 0)
                d->bad = true;
            else
                d->want = (uint8_t)(d->want << 4 | v);
            if (d->state == ST_CS1) {
                d->state = ST_CS2;
                break;
            }
            d->state = ST_IDLE;
            d->buf[d->len] = 0;
            if (d->bad)
                *ev = MS_RSP_MALFORMED;
            else if (d->sum != d->want)
                *ev = MS_RSP_BAD_CHECKSUM;
            else
                *ev = d->notify ? MS_RSP_NOTIFY : MS_RSP_PACKET;
            return i + 1;
        case ST_SKIP:
            if (c == '#')
                d->state = ST_SKIP_CS1;
            else if (c == '$')
                packet_start(d, false);
            break;
        case ST_SKIP_CS1:
        case ST_SKIP_CS2:
            if (c == '$')
                packet_start(d, false);
            else
                d->state = d->state == ST_SKIP_CS1 ? ST_SKIP_CS2 : ST_IDLE;
            break;
        }
    }
    return len;
}

static bool needs_escape(uint8_t c)
{
    return c == '$' || c == '#' || c == '}' || c == '*';
}

size_t ms_rsp_encode(uint8_t *out, size_t out_size, char start, const void *payload, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *p = payload;
    size_t n = 0;
    uint8_t sum = 0;
    if (out_size < 4)
        return 0;
    out[n++] = (uint8_t)start;
    for (size_t i = 0; i < len; i++) {
        bool esc = needs_escape(p[i]);
        if (n + (esc ? 2 : 1) + 3 > out_size)
            return 0;
        if (esc) {
            out[n++] = '}';
            sum += '}';
            out[n++] = p[i] ^ 0x20;
            sum += p[i] ^ 0x20;
        } else {
            out[n++] = p[i];
            sum += p[i];
        }
    }
    out[n++] = '#';
    out[n++] = (uint8_t)digits[sum >> 4];
    out[n++] = (uint8_t)digits[sum & 15];
    return n;
}

/* ---- hex ---- */

void ms_rsp_hex_encode(char *out, const void *in, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *p = in;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
}

int ms_rsp_hex_decode(void *out, const char *in, size_t nchars)
{
    uint8_t *o = out;
    if (nchars % 2)
        return -1;
    for (size_t i = 0; i < nchars; i += 2) {
        int hi = ms_hex_digit((uint8_t)in[i]), lo = ms_hex_digit((uint8_t)in[i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        o[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int ms_rsp_hex_u64(const char **p, const char *end, uint64_t *value)
{
    const char *s = *p;
    uint64_t v = 0;
    unsigned n = 0;
    int d;
    while (s < end && (d = ms_hex_digit((uint8_t)*s)) >= 0) {
        if (++n > 16)
            return -1;
        v = v << 4 | (uint64_t)d;
        s++;
    }
    if (n == 0)
        return -1;
    *p = s;
    *value = v;
    return 0;
}

int ms_rsp_hex_le(const char *in, size_t nchars, uint64_t *value)
{
    uint8_t bytes[8];
    if (nchars < 2 || nchars > 16 || ms_rsp_hex_decode(bytes, in, nchars))
        return -1;
    uint64_t v = 0;
    for (size_t i = nchars / 2; i > 0; i--)
        v = v << 8 | bytes[i - 1];
    *value = v;
    return 0;
}

/* ---- packets ---- */

/* ADDR,LEN at *p; both hex. */
static int addr_len(const char **p, const char *end, uint64_t *addr, uint64_t *len)
{
    if (ms_rsp_hex_u64(p, end, addr) || *p >= end || **p != ',')
        return -1;
    (*p)++;
    if (ms_rsp_hex_u64(p, end, len))
        return -1;
    if (*len > 0 && *addr + (*len - 1) < *addr)
        return -1; /* wraps past 2^64 */
    return 0;
}

int ms_rsp_parse_mem(const uint8_t *pkt, size_t len, struct ms_rsp_mem *out)
{
    const char *p = (const char *)pkt, *end = p + len;
    memset(out, 0, sizeof(*out));
    if (len < 1 || (pkt[0] != 'm' && pkt[0] != 'M' && pkt[0] != 'X'))
        return -1;
    out->kind = (char)pkt[0];
    p++;
    if (addr_len(&p, end, &out->addr, &out->len))
        return -1;
    if (out->kind == 'm')
        return p == end ? 0 : -1;
    if (p >= end || *p != ':')
        return -1;
    p++;
    out->data = (const uint8_t *)p;
    out->data_len = (size_t)(end - p);
    if (out->kind == 'M')
        return out->len <= SIZE_MAX / 2 && out->data_len == 2 * out->len ? 0 : -1;
    return out->data_len == out->len ? 0 : -1;
}

int ms_rsp_parse_break(const uint8_t *pkt, size_t len, struct ms_rsp_break *out)
{
    const char *s = (const char *)pkt, *p = s + 1, *end = s + len;
    uint64_t type;
    memset(out, 0, sizeof(*out));
    if (len < 1 || (pkt[0] != 'Z' && pkt[0] != 'z'))
        return -1;
    out->insert = pkt[0] == 'Z';
    if (ms_rsp_hex_u64(&p, end, &type) || type > 4 || p >= end || *p != ',')
        return -1;
    p++;
    out->type = (unsigned)type;
    if (ms_rsp_hex_u64(&p, end, &out->addr) || p >= end || *p != ',')
        return -1;
    p++;
    if (ms_rsp_hex_u64(&p, end, &out->kind))
        return -1;
    if (p != end && *p != ';')
        return -1;
    out->tail = (size_t)(p - s);
    return 0;
}

/* "-1" or a hex number of at most 15 digits (positive as int64). */
static int thread_part(const char **p, const char *end, int64_t *v)
{
    uint64_t u;
    if (end - *p >= 2 && (*p)[0] == '-' && (*p)[1] == '1') {
        *p += 2;
        *v = -1;
        return 0;
    }
    if (ms_rsp_hex_u64(p, end, &u) || u > INT64_MAX)
        return -1;
    *v = (int64_t)u;
    return 0;
}

int ms_rsp_parse_thread(const char **p, const char *end, struct ms_rsp_thread *out)
{
    const char *s = *p;
    memset(out, 0, sizeof(*out));
    if (s < end && *s == 'p') {
        s++;
        out->has_pid = true;
        if (thread_part(&s, end, &out->pid))
            return -1;
        if (s < end && *s == '.') {
            s++;
            if (thread_part(&s, end, &out->tid))
                return -1;
        } else {
            out->tid = -1; /* pPID alone: all its threads */
        }
    } else if (thread_part(&s, end, &out->tid)) {
        return -1;
    }
    *p = s;
    return 0;
}

static bool starts(const char *p, const char *end, const char *word)
{
    size_t n = strlen(word);
    return (size_t)(end - p) >= n && memcmp(p, word, n) == 0;
}

int ms_rsp_parse_stop(const uint8_t *pkt, size_t len, struct ms_rsp_stop *out)
{
    const char *s = (const char *)pkt, *end = s + len;
    uint8_t sig;
    memset(out, 0, sizeof(*out));
    if (len < 3 || pkt[0] == 0 || !strchr("STWX", pkt[0]) || ms_rsp_hex_decode(&sig, s + 1, 2))
        return -1;
    out->kind = (char)pkt[0];
    out->signo = sig;
    if (out->kind != 'T')
        return 0;
    /* n:r; pairs; unknown ones are skipped, as GDB does. */
    const char *p = s + 3;
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *stop = semi ? semi : end;
        if (starts(p, stop, "thread:")) {
            const char *q = p + 7;
            if (ms_rsp_parse_thread(&q, stop, &out->thread) || q != stop)
                return -1;
            out->has_thread = true;
        } else if (starts(p, stop, "watch:") || starts(p, stop, "rwatch:") ||
                   starts(p, stop, "awatch:")) {
            out->watch = true;
        } else if (starts(p, stop, "swbreak:")) {
            out->swbreak = true;
        } else if (starts(p, stop, "hwbreak:")) {
            out->hwbreak = true;
        }
        p = semi ? semi + 1 : end;
    }
    return 0;
}

bool ms_rsp_is(const uint8_t *pkt, size_t len, const char *prefix, const char *seps)
{
    size_t n = strlen(prefix);
    if (len < n || memcmp(pkt, prefix, n) != 0)
        return false;
    if (len == n)
        return true;
    return seps && pkt[n] && strchr(seps, pkt[n]);
}
