/* Fuzzes the remote-protocol decoder and parsers. Byte 0 picks the chunk
 * size the stream is fed in (1..16 bytes, so state carried across calls is
 * exercised); the rest is the stream. Every event must consume at least one
 * byte, every payload must fit the limit and be NUL-terminated, a packet
 * must re-encode and decode to the same bytes, and each payload goes through
 * every packet parser, whose results must lie inside it. */
#include <stdlib.h>
#include <string.h>

#include "rsp.h"

#define LIMIT 512

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void parse_all(const uint8_t *p, size_t n)
{
    struct ms_rsp_mem m;
    if (ms_rsp_parse_mem(p, n, &m) == 0 && m.data && (m.data < p || m.data + m.data_len > p + n))
        abort();
    struct ms_rsp_break b;
    if (ms_rsp_parse_break(p, n, &b) == 0 && (b.tail > n || b.type > 4))
        abort();
    struct ms_rsp_stop st;
    ms_rsp_parse_stop(p, n, &st);
    const char *s = (const char *)p, *q = s;
    struct ms_rsp_thread t;
    if (ms_rsp_parse_thread(&q, s + n, &t) == 0 && (q < s || q > s + n))
        abort();
    uint64_t v;
    q = s;
    if (ms_rsp_hex_u64(&q, s + n, &v) == 0 && (q <= s || q > s + n))
        abort();
    ms_rsp_hex_le(s, n, &v);
    uint8_t bytes[LIMIT / 2];
    ms_rsp_hex_decode(bytes, s, n <= LIMIT ? n : LIMIT);
    ms_rsp_is(p, n, "qSupported", ":");
}

static void roundtrip(const uint8_t *p, size_t n)
{
    static uint8_t frame[MS_RSP_FRAME_MAX(LIMIT)];
    uint8_t buf[LIMIT + 1];
    size_t fl = ms_rsp_encode(frame, sizeof(frame), '$', p, n);
    if (fl == 0)
        abort();
    struct ms_rsp_decoder d;
    ms_rsp_decoder_init(&d, buf, LIMIT);
    enum ms_rsp_event ev;
    size_t used = ms_rsp_decode(&d, frame, fl, &ev);
    if (ev != MS_RSP_PACKET || used != fl || d.len != n || memcmp(d.buf, p, n))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t chunk = 1 + data[0] % 16;
    data++;
    size--;
    uint8_t buf[LIMIT + 1];
    struct ms_rsp_decoder d;
    ms_rsp_decoder_init(&d, buf, LIMIT);
    size_t off = 0;
    while (off < size) {
        size_t n = size - off < chunk ? size - off : chunk;
        enum ms_rsp_event ev;
        size_t used = ms_rsp_decode(&d, data + off, n, &ev);
        if (used == 0 || used > n || (ev == MS_RSP_NONE && used != n))
            abort();
        off += used;
        if (ev == MS_RSP_PACKET || ev == MS_RSP_NOTIFY || ev == MS_RSP_BAD_CHECKSUM) {
            if (d.len > LIMIT || d.buf[d.len] != 0)
                abort();
            parse_all(d.buf, d.len);
            if (ev == MS_RSP_PACKET)
                roundtrip(d.buf, d.len);
        }
    }
    return 0;
}
