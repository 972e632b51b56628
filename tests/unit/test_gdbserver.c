/* The gdbserver's replies over a synthetic source (three tasks, one of them
 * an idle task, registers known or not, memory readable in part): what GDB
 * reads (thread list and extra info, g/p with unknown registers as 'x', m
 * with partial reads, the target description), what it may not do (writes,
 * breakpoints, resuming), and the framing (acks, NAK resend, no-ack mode,
 * bad and malformed packets). Replies are checked against GDB's manual
 * (Remote Protocol: Packets, General Query Packets). */
#include <stdlib.h>

#include "check.h"
#include "gdbserver.h"
#include "rsp.h"
#include "strbuf.h"

static bool no_list;

static int tasks(void *arg, struct ms_task **out, size_t *count, struct ms_err *err)
{
    (void)arg;
    if (no_list)
        return ms_err_set(err, MS_ENOTFOUND, "no task list here");
    static const struct ms_task t[] = {
        {0xffffffff82a1aa40, 0, 0, 0, 0, 0, "swapper/0"},
        {0xff11000003df20c0, 1, 1, 0, 1, 0, "init"},
        {0xff11000003df0000, 2, 2, 0, 1, 0, "kthreadd"},
    };
    *out = malloc(sizeof(t));
    if (!*out)
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    memcpy(*out, t, sizeof(t));
    *count = 3;
    return 0;
}

static int regs(void *arg, const struct ms_task *task, struct ms_task_regs *out, struct ms_err *err)
{
    (void)arg;
    memset(out, 0, sizeof(*out));
    if (task->pid == 2)
        return ms_err_set(err, MS_EUNMAPPED, "kthreadd's stack is unmapped");
    out->source = MS_REGS_FRAME;
    out->regs.v[MS_REG_RIP] = 0xffffffff81a10e3d;
    out->regs.v[MS_REG_RSP] = 0xffa0000000013c80;
    out->regs.v[MS_REG_CS] = 0x10;
    out->regs.valid = 1ull << MS_REG_RIP | 1ull << MS_REG_RSP | 1ull << MS_REG_CS;
    return 0;
}

/* 16 readable bytes at 0x1000: 00 01 02 ... */
static int read_mem(void *arg, uint64_t addr, void *buf, size_t len, size_t *done,
                    struct ms_err *err)
{
    (void)arg;
    size_t ok = 0;
    while (ok < len && addr + ok >= 0x1000 && addr + ok < 0x1010) {
        ((uint8_t *)buf)[ok] = (uint8_t)(addr + ok - 0x1000);
        ok++;
    }
    *done = ok;
    return ok == len ? 0 : ms_err_set(err, MS_EUNMAPPED, "unmapped");
}

static int text_at(void *arg, uint64_t *addr, struct ms_err *err)
{
    (void)arg;
    *addr = 0xffffffff8a200000ULL;
    return no_list ? ms_err_set(err, MS_ENOTFOUND, "no kernel here") : 0;
}

static struct ms_gdbserver *server(void)
{
    struct ms_gdb_source src = {NULL, tasks, regs, read_mem, text_at};
    struct ms_gdbserver *g = NULL;
    CHECK(ms_gdbserver_new(&g, &src, NULL) == 0, "new");
    return g;
}

/* The reply payload to one packet, as a string (static). */
static const char *ask(struct ms_gdbserver *g, const char *pkt)
{
    static char text[MS_GDB_PACKET_MAX + 1];
    struct ms_strbuf r;
    ms_strbuf_init(&r);
    ms_gdbserver_packet(g, (const uint8_t *)pkt, strlen(pkt), &r);
    snprintf(text, sizeof(text), "%s", ms_strbuf_str(&r));
    ms_strbuf_free(&r);
    return text;
}

static void test_threads(void)
{
    struct ms_gdbserver *g = server();
    CHECK(!strcmp(ask(g, "qfThreadInfo"), "m40000000,1,2"), "%s", ask(g, "qfThreadInfo"));
    CHECK(!strcmp(ask(g, "qsThreadInfo"), "l"), "end of list");
    char hex[64];
    ms_rsp_hex_encode(hex, "pid 2 kthreadd", 14);
    hex[28] = '\0';
    CHECK(!strcmp(ask(g, "qThreadExtraInfo,2"), hex), "%s", ask(g, "qThreadExtraInfo,2"));
    CHECK(ask(g, "qThreadExtraInfo,3")[0] == 'E', "no thread 3");
    CHECK(!strcmp(ask(g, "T1"), "OK") && ask(g, "T5")[0] == 'E', "T");
    CHECK(!strcmp(ask(g, "?"), "T05thread:40000000;"), "%s", ask(g, "?"));
    CHECK(!strcmp(ask(g, "Hg1"), "OK") && !strcmp(ask(g, "qC"), "QC1"), "Hg1");
    CHECK(ask(g, "Hg7")[0] == 'E' && !strcmp(ask(g, "qC"), "QC1"), "Hg of no thread");
    CHECK(!strcmp(ask(g, "Hc-1"), "OK") && !strcmp(ask(g, "Hg0"), "OK"), "Hc-1, Hg0");
    CHECK(ask(g, "Hgxyz")[0] == 'E' && ask(g, "H")[0] == 'E', "malformed H");
    ms_gdbserver_free(g);
    no_list = true;
    g = server();
    CHECK(!strcmp(ask(g, "qfThreadInfo"), "m1"), "one thread without a task list");
    uint64_t n;
    const struct ms_err *e = ms_gdbserver_problem(g, &n);
    CHECK(n == 1 && strstr(e->msg, "no task list here"), "%s", e->msg);
    CHECK(ask(g, "g")[0] == 'x', "no registers");
    ms_gdbserver_free(g);
    no_list = false;
}

static void test_registers(void)
{
    struct ms_gdbserver *g = server();
    ask(g, "Hg1");
    const char *r = ask(g, "g");
    /* rax unknown; rsp (7) and rip (16) little-endian; eflags unknown; cs 4 bytes */
    CHECK(!strncmp(r, "xxxxxxxxxxxxxxxx", 16), "%.16s", r);
    CHECK(!strncmp(r + 7 * 16, "803c01000000a0ff", 16), "%.16s", r + 7 * 16);
    CHECK(!strncmp(r + 16 * 16, "3d0ea181ffffffff", 16), "%.16s", r + 16 * 16);
    CHECK(!strncmp(r + 17 * 16, "xxxxxxxx10000000", 16), "%.16s", r + 17 * 16);
    CHECK(strlen(r) == 2 * (16 * 8 + 8 + 4 + 6 * 4 + 8 * 10 + 8 * 4 + 9 * 8), "g is %zu",
          strlen(r));
    CHECK(!strcmp(ask(g, "p10"), "3d0ea181ffffffff"), "%s", ask(g, "p10"));
    CHECK(!strcmp(ask(g, "p18"), "xxxxxxxxxxxxxxxxxxxx"), "st0: %s", ask(g, "p18"));
    CHECK(ask(g, "p99")[0] == 'E' && ask(g, "pzz")[0] == 'E', "bad p");
    ask(g, "Hg2"); /* its registers cannot be read: all unknown, the problem noted */
    r = ask(g, "g");
    CHECK(strspn(r, "x") == strlen(r), "kthreadd: %.40s", r);
    uint64_t n;
    CHECK(strstr(ms_gdbserver_problem(g, &n)->msg, "pid 2 (kthreadd)"), "problem");
    CHECK(ask(g, "P10=00")[0] == 'E' && ask(g, "G00")[0] == 'E', "register writes refused");
    ms_gdbserver_free(g);
}

static void test_memory(void)
{
    struct ms_gdbserver *g = server();
    CHECK(!strcmp(ask(g, "m1000,4"), "00010203"), "%s", ask(g, "m1000,4"));
    CHECK(!strcmp(ask(g, "m100e,8"), "0e0f"), "partial: %s", ask(g, "m100e,8"));
    CHECK(!strcmp(ask(g, "m2000,8"), "E14"), "%s", ask(g, "m2000,8"));
    CHECK(ask(g, "m1000")[0] == 'E' && ask(g, "mffffffffffffffff,2")[0] == 'E', "bad m");
    CHECK(strlen(ask(g, "m1000,100000")) == 32, "a long read is cut to what is there");
    CHECK(!strncmp(ask(g, "M1000,1:00"), "E.", 2) && !strncmp(ask(g, "X1000,0:"), "E.", 2),
          "writes refused");
    CHECK(strstr(ask(g, "Z0,1000,1"), "no breakpoints") && ask(g, "z0,1000,1")[0] == 'E',
          "breakpoints refused");
    CHECK(strstr(ask(g, "vCont;c"), "cannot run") && strstr(ask(g, "c"), "cannot run") &&
              strstr(ask(g, "s"), "cannot run"),
          "resume refused");
    CHECK(!strcmp(ask(g, "vCont?"), "vCont;c;C;s;S"), "vCont?");
    ms_gdbserver_free(g);
}

static void test_queries(void)
{
    struct ms_gdbserver *g = server();
    CHECK(strstr(ask(g, "qSupported:multiprocess+;swbreak+"), "qXfer:features:read+"), "qS");
    CHECK(!strcmp(ask(g, "vMustReplyEmpty"), "") && !strcmp(ask(g, "qTStatus"), ""), "empty");
    CHECK(!strcmp(ask(g, "qAttached"), "1") && !strcmp(ask(g, "qSymbol::"), "OK"), "q");
    size_t total = strlen(ms_gdb_target_xml);
    const char *r = ask(g, "qXfer:features:read:target.xml:0,10");
    CHECK(r[0] == 'm' && !strncmp(r + 1, ms_gdb_target_xml, 16), "%s", r);
    char pkt[80];
    snprintf(pkt, sizeof(pkt), "qXfer:features:read:target.xml:%zx,1000", total - 5);
    r = ask(g, pkt);
    CHECK(r[0] == 'l' && !strcmp(r + 1, ms_gdb_target_xml + total - 5), "%s", r);
    snprintf(pkt, sizeof(pkt), "qXfer:features:read:target.xml:%zx,10", total);
    CHECK(!strcmp(ask(g, pkt), "l"), "past the end");
    CHECK(ask(g, "qXfer:features:read:a.xml:0,10")[0] == 'E', "other annex");
    CHECK(ask(g, "qXfer:features:read:target.xml:0;10")[0] == 'E', "malformed qXfer");
    CHECK(strstr(ms_gdb_target_xml, "<reg name=\"k_gs_base\"") &&
              strstr(ms_gdb_target_xml, "<reg name=\"efer\"") &&
              strstr(ms_gdb_target_xml, "i386:x86-64"),
          "description");
    ms_gdbserver_free(g);
}

/* Feeds text; returns what the server sent (static). */
static const char *feed(struct ms_gdbserver *g, const char *in, bool *ended)
{
    static char text[4096];
    struct ms_strbuf out;
    ms_strbuf_init(&out);
    bool e = ms_gdbserver_input(g, (const uint8_t *)in, strlen(in), &out);
    if (ended)
        *ended = e;
    snprintf(text, sizeof(text), "%s", ms_strbuf_str(&out));
    ms_strbuf_free(&out);
    return text;
}

static void test_framing(void)
{
    struct ms_gdbserver *g = server();
    CHECK(!strcmp(feed(g, "$qAttached#8f", NULL), "+$1#31"), "%s", feed(g, "", NULL));
    CHECK(!strcmp(feed(g, "-", NULL), "$1#31"), "NAK: the last reply again");
    CHECK(!strcmp(feed(g, "$qAttached#00", NULL), "-"), "bad checksum: NAK");
    CHECK(!strncmp(feed(g, "$a*#00", NULL), "+$E.malformed", 13), "malformed");
    CHECK(!strcmp(feed(g, "$QStartNoAckMode#b0", NULL), "+$OK#9a"), "no-ack mode");
    CHECK(!strcmp(feed(g, "+$qAttached#8f", NULL), "$1#31"), "no ack now");
    CHECK(!strncmp(feed(g, "$qAttached#00", NULL), "$E.bad checksum", 15), "no-ack: error");
    CHECK(!strcmp(feed(g, "\x03", NULL), ""), "interrupt: nothing runs");
    bool ended = false;
    CHECK(!strcmp(feed(g, "$D#44", &ended), "$OK#9a") && ended, "detach ends");
    ms_gdbserver_free(g);
    g = server();
    CHECK(!strcmp(feed(g, "$k#6b", &ended), "+") && ended, "kill: no reply");
    ms_gdbserver_free(g);
}

/* qOffsets: where the text segment is, or the empty reply. */
static void test_offsets(void)
{
    struct ms_gdbserver *g = server();
    CHECK(!strcmp(ask(g, "qOffsets"), "TextSeg=ffffffff8a200000"), "%s", ask(g, "qOffsets"));
    no_list = true;
    CHECK(!strcmp(ask(g, "qOffsets"), ""), "no kernel: %s", ask(g, "qOffsets"));
    no_list = false;
    ms_gdbserver_free(g);
    struct ms_gdb_source src = {NULL, tasks, regs, read_mem, NULL};
    CHECK(ms_gdbserver_new(&g, &src, NULL) == 0, "new");
    CHECK(!strcmp(ask(g, "qOffsets"), ""), "no slide source");
    ms_gdbserver_free(g);
}

int main(void)
{
    test_offsets();
    test_threads();
    test_registers();
    test_memory();
    test_queries();
    test_framing();
    return check_done("test_gdbserver");
}
