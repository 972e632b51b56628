/* GDB remote protocol: the stream decoder (framing, escapes, run-length
 * counts, checksums, limits, resync), the encoder, hex helpers and the packet
 * parsers. Frames are written out by hand from GDB's manual (Remote
 * Protocol, Overview) and checked against QEMU's and GDB's readers. */
#include <stdlib.h>

#include "check.h"
#include "rsp.h"

#define MAX 64

struct dec {
    struct ms_rsp_decoder d;
    uint8_t buf[MAX + 1];
};

static void dec_init(struct dec *x)
{
    ms_rsp_decoder_init(&x->d, x->buf, MAX);
}

/* Feeds text whole; returns the first event and how much was consumed. */
static enum ms_rsp_event feed(struct dec *x, const char *text, size_t *used)
{
    enum ms_rsp_event ev;
    size_t n = ms_rsp_decode(&x->d, (const uint8_t *)text, strlen(text), &ev);
    if (used)
        *used = n;
    return ev;
}

/* Feeds text one byte at a time; returns the first event (or NONE). */
static enum ms_rsp_event feed_bytes(struct dec *x, const char *text)
{
    for (size_t i = 0; text[i]; i++) {
        enum ms_rsp_event ev;
        size_t n = ms_rsp_decode(&x->d, (const uint8_t *)text + i, 1, &ev);
        if (n != 1)
            return MS_RSP_NONE;
        if (ev != MS_RSP_NONE)
            return ev;
    }
    return MS_RSP_NONE;
}

static void expect_packet(const char *frame, const char *payload)
{
    struct dec x;
    dec_init(&x);
    size_t used;
    enum ms_rsp_event ev = feed(&x, frame, &used);
    CHECK(ev == MS_RSP_PACKET && used == strlen(frame), "%s: event %d used %zu", frame, ev, used);
    CHECK(x.d.len == strlen(payload) && !memcmp(x.d.buf, payload, x.d.len) && x.d.buf[x.d.len] == 0,
          "%s: payload '%.*s'", frame, (int)x.d.len, x.d.buf);
    dec_init(&x);
    ev = feed_bytes(&x, frame);
    CHECK(ev == MS_RSP_PACKET && x.d.len == strlen(payload) && !memcmp(x.d.buf, payload, x.d.len),
          "%s byte by byte: event %d", frame, ev);
}

static void expect_event(const char *frame, enum ms_rsp_event want)
{
    struct dec x;
    dec_init(&x);
    enum ms_rsp_event ev = feed(&x, frame, NULL);
    CHECK(ev == want, "%s: event %d, want %d", frame, ev, want);
    dec_init(&x);
    ev = feed_bytes(&x, frame);
    CHECK(ev == want, "%s byte by byte: event %d, want %d", frame, ev, want);
}

static void test_framing(void)
{
    expect_packet("$g#67", "g");
    expect_packet("$OK#9a", "OK");
    expect_packet("$#00", "");
    expect_packet("$m1000,4#8e", "m1000,4");
    expect_packet("xyz$g#67", "g"); /* junk before a packet is dropped */
    expect_packet("$g#67", "g");
    /* Escapes: }] is '}', }\x03 is '#', }\x04 is '$', }\x0a is '*'. */
    expect_packet("$X0,4:}]}\x03}\x04}\x0a#84", "X0,4:}#$*");
    /* Run-length: "0* " is four zeros, "0*\"" six (GDB's example). */
    expect_packet("$0* #7a", "0000");
    expect_packet("$0*\"00#dc", "00000000");
    /* A count after an escaped byte repeats the byte itself. */
    expect_packet("$}]* #24", "}}}}");

    expect_event("+", MS_RSP_ACK);
    expect_event("-", MS_RSP_NAK);
    expect_event("\x03", MS_RSP_INTERRUPT);
    expect_event("%Stop:T05#99", MS_RSP_NOTIFY);
    expect_event("$g#68", MS_RSP_BAD_CHECKSUM);
    expect_event("$g#6x", MS_RSP_MALFORMED);
    expect_event("$*!#4b", MS_RSP_MALFORMED);     /* a count with nothing to repeat */
    expect_event("$0*\x1f#79", MS_RSP_MALFORMED); /* count below ' ' */
    expect_event("$0*#5a", MS_RSP_MALFORMED);     /* '#' where the count should be */

    /* Acks between packets are events of their own, in order. */
    struct dec x;
    dec_init(&x);
    const char *s = "+$OK#9a-\x03";
    size_t used, off = 0;
    enum ms_rsp_event want[] = {MS_RSP_ACK, MS_RSP_PACKET, MS_RSP_NAK, MS_RSP_INTERRUPT};
    for (unsigned i = 0; i < 4; i++) {
        enum ms_rsp_event ev = feed(&x, s + off, &used);
        CHECK(ev == want[i], "event %u: %d, want %d", i, ev, want[i]);
        off += used;
    }
    CHECK(off == strlen(s), "consumed %zu of %zu", off, strlen(s));

    /* '$' inside a packet restarts: the old one is reported malformed. */
    dec_init(&x);
    s = "$m10$OK#9a";
    CHECK(feed(&x, s, &used) == MS_RSP_MALFORMED && used == 5, "restart: used %zu", used);
    CHECK(feed(&x, s + used, NULL) == MS_RSP_PACKET && x.d.len == 2, "packet after restart");
}

static void test_limit(void)
{
    struct dec x;
    dec_init(&x);
    char big[3 * MAX];
    big[0] = '$';
    memset(big + 1, 'a', MAX + 10);
    strcpy(big + 1 + MAX + 10, "#00$OK#9a");
    size_t used;
    enum ms_rsp_event ev = feed(&x, big, &used);
    CHECK(ev == MS_RSP_TOO_LONG && used == MAX + 2, "too long: event %d used %zu", ev, used);
    ev = feed(&x, big + used, &used);
    CHECK(ev == MS_RSP_PACKET && x.d.len == 2 && !memcmp(x.d.buf, "OK", 2),
          "after an over-long packet: event %d", ev);
    /* Exactly max bytes fit. */
    dec_init(&x);
    uint8_t payload[MAX], frame[MS_RSP_FRAME_MAX(MAX)];
    memset(payload, 'b', MAX);
    size_t n = ms_rsp_encode(frame, sizeof(frame), '$', payload, MAX);
    ev = MS_RSP_NONE;
    ms_rsp_decode(&x.d, frame, n, &ev);
    CHECK(ev == MS_RSP_PACKET && x.d.len == MAX, "max-sized packet: event %d", ev);
    /* A run-length count past the limit. */
    dec_init(&x);
    memset(payload, 'c', MAX - 2);
    n = ms_rsp_encode(frame, sizeof(frame), '$', payload, MAX - 2);
    memcpy(frame + n - 3, "*~#00", 5); /* checksum never reached */
    ms_rsp_decode(&x.d, frame, n + 2, &ev);
    CHECK(ev == MS_RSP_TOO_LONG, "run-length past the limit: event %d", ev);
}

static void test_encode(void)
{
    uint8_t out[64];
    size_t n = ms_rsp_encode(out, sizeof(out), '$', "OK", 2);
    CHECK(n == 6 && !memcmp(out, "$OK#9a", 6), "encode OK: %.*s", (int)n, out);
    n = ms_rsp_encode(out, sizeof(out), '$', "}#$*", 4);
    CHECK(n == 12 && !memcmp(out, "$}]}\x03}\x04}\x0a#", 9), "escapes: %.*s", (int)n, out);
    CHECK(ms_rsp_encode(out, 5, '$', "OK", 2) == 0, "too small");
    CHECK(ms_rsp_encode(out, 6, '$', "OK", 2) == 6, "just fits");
    CHECK(ms_rsp_encode(out, 5, '$', "#", 1) == 0, "escape does not fit");

    /* Every byte value round-trips, in random packets. */
    srand(7);
    unsigned bad = 0;
    for (unsigned round = 0; round < 2000; round++) {
        uint8_t payload[MAX], frame[MS_RSP_FRAME_MAX(MAX)];
        size_t len = (size_t)rand() % (MAX + 1);
        for (size_t i = 0; i < len; i++)
            payload[i] = (uint8_t)rand();
        size_t fl = ms_rsp_encode(frame, sizeof(frame), '$', payload, len);
        struct dec x;
        dec_init(&x);
        enum ms_rsp_event ev;
        size_t used = ms_rsp_decode(&x.d, frame, fl, &ev);
        if (ev != MS_RSP_PACKET || used != fl || x.d.len != len || memcmp(x.d.buf, payload, len))
            bad++;
    }
    CHECK(bad == 0, "%u of 2000 random packets did not round-trip", bad);
}

static void test_hex(void)
{
    char h[8];
    ms_rsp_hex_encode(h, "\x00\xab\x7f", 3);
    CHECK(!memcmp(h, "00ab7f", 6), "hex encode %.6s", h);
    uint8_t b[4];
    CHECK(ms_rsp_hex_decode(b, "00aB7f", 6) == 0 && b[1] == 0xab && b[2] == 0x7f, "decode");
    CHECK(ms_rsp_hex_decode(b, "0", 1) == -1, "odd count");
    CHECK(ms_rsp_hex_decode(b, "0g", 2) == -1, "non-hex");
    uint64_t v;
    CHECK(ms_rsp_hex_le("0010000000000000", 16, &v) == 0 && v == 0x1000, "le %#llx",
          (unsigned long long)v);
    CHECK(ms_rsp_hex_le("efbe", 4, &v) == 0 && v == 0xbeef, "le short");
    CHECK(ms_rsp_hex_le("001000000000000000", 18, &v) == -1, "le too long");
    CHECK(ms_rsp_hex_le("E14", 3, &v) == -1, "an error is no register");
    const char *s = "ffffffffffffffff,", *p = s;
    CHECK(ms_rsp_hex_u64(&p, s + strlen(s), &v) == 0 && v == UINT64_MAX && *p == ',', "u64 max");
    s = "10000000000000000";
    p = s;
    CHECK(ms_rsp_hex_u64(&p, s + strlen(s), &v) == -1 && p == s, "17 digits");
    s = "12";
    p = s;
    CHECK(ms_rsp_hex_u64(&p, s + 1, &v) == 0 && v == 1, "stops at end");
}

#define P(s) (const uint8_t *)(s), strlen(s)

static void test_parsers(void)
{
    struct ms_rsp_mem m;
    CHECK(ms_rsp_parse_mem(P("m5a5a00042000,40"), &m) == 0 && m.kind == 'm' &&
              m.addr == 0x5a5a00042000 && m.len == 0x40,
          "m");
    CHECK(ms_rsp_parse_mem(P("M1000,2:abcd"), &m) == 0 && m.len == 2 && m.data_len == 4 &&
              !memcmp(m.data, "abcd", 4),
          "M");
    CHECK(ms_rsp_parse_mem(P("X1000,3:a#}"), &m) == 0 && m.data_len == 3, "X");
    CHECK(ms_rsp_parse_mem(P("X1000,0:"), &m) == 0 && m.len == 0, "X probe");
    CHECK(ms_rsp_parse_mem(P("M1000,2:abc"), &m) == -1, "M short data");
    CHECK(ms_rsp_parse_mem(P("M1000,2"), &m) == -1, "M no data");
    CHECK(ms_rsp_parse_mem(P("m1000"), &m) == -1, "m no length");
    CHECK(ms_rsp_parse_mem(P("m1000,4x"), &m) == -1, "m trailing");
    CHECK(ms_rsp_parse_mem(P("m,4"), &m) == -1, "m no address");
    CHECK(ms_rsp_parse_mem(P("mffffffffffffffff,2"), &m) == -1, "m wraps");
    CHECK(ms_rsp_parse_mem(P("mffffffffffffffff,1"), &m) == 0, "m last byte");
    CHECK(ms_rsp_parse_mem(P("M0,8000000000000000:"), &m) == -1, "M huge");
    CHECK(ms_rsp_parse_mem(P("g"), &m) == -1, "not memory");

    struct ms_rsp_break b;
    CHECK(ms_rsp_parse_break(P("Z0,1003b,1"), &b) == 0 && b.insert && b.type == 0 &&
              b.addr == 0x1003b && b.kind == 1 && b.tail == 10,
          "Z0");
    CHECK(ms_rsp_parse_break(P("z1,ffffffff81000000,1;X3,abc"), &b) == 0 && !b.insert &&
              b.type == 1 && b.tail == 21,
          "z1 with conditions");
    CHECK(ms_rsp_parse_break(P("Z5,1000,1"), &b) == -1, "type 5");
    CHECK(ms_rsp_parse_break(P("Z0,1000"), &b) == -1, "no kind");
    CHECK(ms_rsp_parse_break(P("Z0,1000,1x"), &b) == -1, "trailing");

    struct ms_rsp_thread t;
    const char *s = "p01.02", *p = s;
    CHECK(ms_rsp_parse_thread(&p, s + 6, &t) == 0 && t.has_pid && t.pid == 1 && t.tid == 2 &&
              p == s + 6,
          "p01.02");
    s = "p1.-1";
    p = s;
    CHECK(ms_rsp_parse_thread(&p, s + 5, &t) == 0 && t.tid == -1, "p1.-1");
    s = "p1";
    p = s;
    CHECK(ms_rsp_parse_thread(&p, s + 2, &t) == 0 && t.pid == 1 && t.tid == -1, "pPID alone");
    s = "0";
    p = s;
    CHECK(ms_rsp_parse_thread(&p, s + 1, &t) == 0 && !t.has_pid && t.tid == 0, "any");
    s = "p.1";
    p = s;
    CHECK(ms_rsp_parse_thread(&p, s + 3, &t) == -1, "no pid");

    struct ms_rsp_stop st;
    CHECK(ms_rsp_parse_stop(P("T05thread:p01.02;"), &st) == 0 && st.kind == 'T' && st.signo == 5 &&
              st.has_thread && st.thread.tid == 2,
          "T05");
    CHECK(ms_rsp_parse_stop(P("T05watch:1000;thread:p01.01;"), &st) == 0 && st.watch &&
              st.thread.tid == 1,
          "watch");
    CHECK(ms_rsp_parse_stop(P("T02thread:01;"), &st) == 0 && st.signo == 2 && st.thread.tid == 1,
          "interrupt stop");
    CHECK(ms_rsp_parse_stop(P("S05"), &st) == 0 && st.kind == 'S', "S05");
    CHECK(ms_rsp_parse_stop(P("W00"), &st) == 0 && st.kind == 'W', "W00");
    CHECK(ms_rsp_parse_stop(P("T05thread:zz;"), &st) == -1, "bad thread");
    CHECK(ms_rsp_parse_stop(P("OK"), &st) == -1, "OK is no stop");
    CHECK(ms_rsp_parse_stop(P("T5"), &st) == -1, "short signal");

    CHECK(ms_rsp_is(P("qSupported:multiprocess+"), "qSupported", ":"), "is qSupported:");
    CHECK(ms_rsp_is(P("qSupported"), "qSupported", ":"), "is qSupported");
    CHECK(!ms_rsp_is(P("qSupportedX"), "qSupported", ":"), "not qSupportedX");
    CHECK(ms_rsp_is(P("vCont;c"), "vCont", ";"), "vCont;");
    CHECK(!ms_rsp_is(P("vCont?"), "vCont", ";"), "vCont? is no resume");
}

int main(void)
{
    test_framing();
    test_limit();
    test_encode();
    test_hex();
    test_parsers();
    return check_done("test_rsp");
}
