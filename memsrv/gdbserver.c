#include "gdbserver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "rsp.h"
#include "strbuf.h"

#define READ_MAX ((MS_GDB_PACKET_MAX - 8) / 2) /* bytes of an m reply */
#define THREADS_PER_REPLY 256
_Static_assert(READ_MAX * 2 < MS_GDB_PACKET_MAX, "an m reply fits a packet");

/* The registers of the target description, in its order (= GDB's numbers). */
struct reg_desc {
    unsigned bytes;
    int reg; /* enum ms_reg, or -1: never known (x87) */
};

static const struct reg_desc regs_desc[] = {
    {8, MS_REG_RAX},
    {8, MS_REG_RBX},
    {8, MS_REG_RCX},
    {8, MS_REG_RDX},
    {8, MS_REG_RSI},
    {8, MS_REG_RDI},
    {8, MS_REG_RBP},
    {8, MS_REG_RSP},
    {8, MS_REG_R8},
    {8, MS_REG_R9},
    {8, MS_REG_R10},
    {8, MS_REG_R11},
    {8, MS_REG_R12},
    {8, MS_REG_R13},
    {8, MS_REG_R14},
    {8, MS_REG_R15},
    {8, MS_REG_RIP},
    {4, MS_REG_RFLAGS},
    {4, MS_REG_CS},
    {4, MS_REG_SS},
    {4, MS_REG_DS},
    {4, MS_REG_ES},
    {4, MS_REG_FS},
    {4, MS_REG_GS},
    {10, -1},
    {10, -1},
    {10, -1},
    {10, -1},
    {10, -1},
    {10, -1},
    {10, -1},
    {10, -1}, /* st0-7 */
    {4, -1},
    {4, -1},
    {4, -1},
    {4, -1},
    {4, -1},
    {4, -1},
    {4, -1},
    {4, -1}, /* fctrl..fop */
    {8, MS_REG_FS_BASE},
    {8, MS_REG_GS_BASE},
    {8, MS_REG_K_GS_BASE},
    {8, MS_REG_CR0},
    {8, MS_REG_CR2},
    {8, MS_REG_CR3},
    {8, MS_REG_CR4},
    {8, MS_REG_CR8},
    {8, MS_REG_EFER},
};
#define NREGS (sizeof(regs_desc) / sizeof(regs_desc[0]))

/* GDB's i386:x86-64 core (x87 included: GDB requires it), the segment
 * bases, and the system registers QEMU's gdbstub offers. */
const char ms_gdb_target_xml[] =
    "<?xml version=\"1.0\"?>\n"
    "<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n"
    "<target version=\"1.0\">\n"
    "<architecture>i386:x86-64</architecture>\n"
    "<osabi>GNU/Linux</osabi>\n"
    "<feature name=\"org.gnu.gdb.i386.core\">\n"
    "<flags id=\"i386_eflags\" size=\"4\">"
    "<field name=\"CF\" start=\"0\" end=\"0\"/><field name=\"\" start=\"1\" end=\"1\"/>"
    "<field name=\"PF\" start=\"2\" end=\"2\"/><field name=\"AF\" start=\"4\" end=\"4\"/>"
    "<field name=\"ZF\" start=\"6\" end=\"6\"/><field name=\"SF\" start=\"7\" end=\"7\"/>"
    "<field name=\"TF\" start=\"8\" end=\"8\"/><field name=\"IF\" start=\"9\" end=\"9\"/>"
    "<field name=\"DF\" start=\"10\" end=\"10\"/><field name=\"OF\" start=\"11\" end=\"11\"/>"
    "<field name=\"NT\" start=\"14\" end=\"14\"/><field name=\"RF\" start=\"16\" end=\"16\"/>"
    "<field name=\"VM\" start=\"17\" end=\"17\"/><field name=\"AC\" start=\"18\" end=\"18\"/>"
    "<field name=\"VIF\" start=\"19\" end=\"19\"/><field name=\"VIP\" start=\"20\" end=\"20\"/>"
    "<field name=\"ID\" start=\"21\" end=\"21\"/></flags>\n"
    "<reg name=\"rax\" bitsize=\"64\" type=\"int64\"/>\n"
    "<reg name=\"rbx\" bitsize=\"64\" type=\"int64\"/>\n"
    "<reg name=\"rcx\" bitsize=\"64\" type=\"int64\"/>\n"
    "<reg name=\"rdx\" bitsize=\"64\" type=\"int64\"/>\n"
    "<reg name=\"rsi\" bitsize=\"64\" type=\"int64\"/>\n"
    "<reg name=\"rdi\" bitsize=\"64\" type=\"int64\"/>\n"
    "<reg name=\"rbp\" bitsize=\"64\" type=\"data_ptr\"/>\n"
    "<reg name=\"rsp\" bitsize=\"64\" type=\"data_ptr\"/>\n"
    "<reg name=\"r8\" bitsize=\"64\" type=\"int64\"/>\n"
    "<reg name=\"r9\" bitsize=\"64\" type=\"int64\"/>\n"
    "<reg name=\"r10\" bitsize=\"64\" type=\"int64\"/>\n"
    "<reg name=\"r11\" bitsize=\"64\" type=\"int64\"/>\n"
    "<reg name=\"r12\" bitsize=\"64\" type=\"int64\"/>\n"
    "<reg name=\"r13\" bitsize=\"64\" type=\"int64\"/>\n"
    "<reg name=\"r14\" bitsize=\"64\" type=\"int64\"/>\n"
    "<reg name=\"r15\" bitsize=\"64\" type=\"int64\"/>\n"
    "<reg name=\"rip\" bitsize=\"64\" type=\"code_ptr\"/>\n"
    "<reg name=\"eflags\" bitsize=\"32\" type=\"i386_eflags\"/>\n"
    "<reg name=\"cs\" bitsize=\"32\" type=\"int32\"/>\n"
    "<reg name=\"ss\" bitsize=\"32\" type=\"int32\"/>\n"
    "<reg name=\"ds\" bitsize=\"32\" type=\"int32\"/>\n"
    "<reg name=\"es\" bitsize=\"32\" type=\"int32\"/>\n"
    "<reg name=\"fs\" bitsize=\"32\" type=\"int32\"/>\n"
    "<reg name=\"gs\" bitsize=\"32\" type=\"int32\"/>\n"
    "<reg name=\"st0\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "<reg name=\"st1\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "<reg name=\"st2\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "<reg name=\"st3\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "<reg name=\"st4\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "<reg name=\"st5\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "<reg name=\"st6\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "<reg name=\"st7\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "<reg name=\"fctrl\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "<reg name=\"fstat\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "<reg name=\"ftag\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "<reg name=\"fiseg\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "<reg name=\"fioff\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "<reg name=\"foseg\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "<reg name=\"fooff\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "<reg name=\"fop\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "</feature>\n"
    "<feature name=\"org.gnu.gdb.i386.segments\">\n"
    "<reg name=\"fs_base\" bitsize=\"64\" type=\"int\"/>\n"
    "<reg name=\"gs_base\" bitsize=\"64\" type=\"int\"/>\n"
    "</feature>\n"
    "<feature name=\"org.nested.memsrv.i386.sys\">\n"
    "<reg name=\"k_gs_base\" bitsize=\"64\" type=\"int\" group=\"system\"/>\n"
    "<reg name=\"cr0\" bitsize=\"64\" type=\"int\" group=\"system\"/>\n"
    "<reg name=\"cr2\" bitsize=\"64\" type=\"int\" group=\"system\"/>\n"
    "<reg name=\"cr3\" bitsize=\"64\" type=\"int\" group=\"system\"/>\n"
    "<reg name=\"cr4\" bitsize=\"64\" type=\"int\" group=\"system\"/>\n"
    "<reg name=\"cr8\" bitsize=\"64\" type=\"int\" group=\"system\"/>\n"
    "<reg name=\"efer\" bitsize=\"64\" type=\"int\" group=\"system\"/>\n"
    "</feature>\n"
    "</target>\n";

struct thread {
    struct ms_task task;
    uint64_t tid;
    bool loaded; /* regs read (or found unreadable) */
    struct ms_task_regs regs;
};

struct ms_gdbserver {
    struct ms_gdb_source src;
    struct ms_rsp_decoder dec;
    uint8_t buf[MS_GDB_PACKET_MAX + 1];
    bool no_ack;
    bool loaded; /* the task list was asked for */
    struct thread *threads;
    size_t nthreads;
    size_t g_thread;       /* index of Hg's thread */
    size_t list_next;      /* qsThreadInfo's cursor */
    struct ms_strbuf last; /* the last frame sent (resent on '-') */
    struct ms_err problem;
    uint64_t problems;
    char no_tasks[sizeof(
        ((struct ms_err *)0)->msg)]; /* why there is no task list ("" when there is one) */
};

static void note(struct ms_gdbserver *g, const struct ms_err *e)
{
    g->problem = *e;
    g->problems++;
}

const struct ms_err *ms_gdbserver_problem(const struct ms_gdbserver *g, uint64_t *count)
{
    *count = g->problems;
    return &g->problem;
}

int ms_gdbserver_new(struct ms_gdbserver **out, const struct ms_gdb_source *src, struct ms_err *err)
{
    struct ms_gdbserver *g = calloc(1, sizeof(*g));
    if (!g)
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    g->src = *src;
    ms_rsp_decoder_init(&g->dec, g->buf, MS_GDB_PACKET_MAX);
    ms_strbuf_init(&g->last);
    *out = g;
    return 0;
}

void ms_gdbserver_free(struct ms_gdbserver *g)
{
    if (!g)
        return;
    free(g->threads);
    ms_strbuf_free(&g->last);
    free(g);
}

/* ------------------------------------------------------------------ threads */

static void load_threads(struct ms_gdbserver *g)
{
    if (g->loaded)
        return;
    g->loaded = true;
    struct ms_task *tasks = NULL;
    size_t count = 0;
    struct ms_err e;
    ms_err_clear(&e);
    int rc = g->src.tasks(g->src.arg, &tasks, &count, &e);
    if (rc == 0 && count == 0)
        rc = ms_err_set(&e, MS_ENOTFOUND, "the kernel's task list is empty");
    if (rc == 0)
        g->threads = calloc(count, sizeof(*g->threads));
    if (rc == 0 && !g->threads)
        rc = ms_err_set(&e, MS_ENOMEM, "out of memory for %zu threads", count);
    if (rc < 0) {
        /* one thread with no registers: memory stays readable */
        free(tasks);
        ms_err_prefix(&e, "no threads (tasks): ");
        note(g, &e);
        snprintf(g->no_tasks, sizeof(g->no_tasks), "%s", e.msg);
        g->threads = calloc(1, sizeof(*g->threads));
        if (!g->threads)
            return;
        g->threads[0].tid = 1;
        g->threads[0].loaded = true;
        g->nthreads = 1;
        return;
    }
    uint64_t idle = 0;
    for (size_t i = 0; i < count; i++) {
        g->threads[i].task = tasks[i];
        g->threads[i].tid =
            tasks[i].pid > 0 ? (uint64_t)tasks[i].pid : MS_GDB_IDLE_TID_BASE + idle++;
    }
    g->nthreads = count;
    free(tasks);
}

static struct ms_task_regs *thread_regs(struct ms_gdbserver *g, struct thread *th)
{
    if (!th->loaded) {
        th->loaded = true;
        struct ms_err e;
        ms_err_clear(&e);
        if (g->src.regs(g->src.arg, &th->task, &th->regs, &e) < 0) {
            memset(&th->regs, 0, sizeof(th->regs));
            ms_err_prefix(&e, "pid %d (%s): ", th->task.pid, th->task.comm);
            note(g, &e);
        }
    }
    return &th->regs;
}

static struct thread *find_thread(struct ms_gdbserver *g, int64_t tid, size_t *index)
{
    load_threads(g);
    for (size_t i = 0; i < g->nthreads; i++)
        if ((int64_t)g->threads[i].tid == tid) {
            if (index)
                *index = i;
            return &g->threads[i];
        }
    return NULL;
}

/* The thread a stop reply names: the first one on a CPU whose registers a
 * dump holds (the CPU that stopped), else the first. */
static size_t stop_thread(struct ms_gdbserver *g)
{
    load_threads(g);
    for (size_t i = 0; i < g->nthreads; i++)
        if (thread_regs(g, &g->threads[i])->source == MS_REGS_CPU)
            return i;
    return 0;
}

/* ------------------------------------------------------------------ replies */

static void put_error(struct ms_strbuf *r, const char *msg)
{
    /* E.text: GDB shows the text (Enn for m, where GDB wants a number) */
    ms_strbuf_printf(r, "E.%s", msg);
}

static void put_reg(struct ms_strbuf *r, const struct ms_task_regs *tr, size_t n)
{
    const struct reg_desc *d = &regs_desc[n];
    char hex[32];
    if (d->reg < 0 || !(tr->regs.valid & (1ull << d->reg))) {
        for (unsigned i = 0; i < d->bytes; i++)
            ms_strbuf_append(r, "xx", 2);
        return;
    }
    uint64_t v = tr->regs.v[d->reg];
    uint8_t le[8];
    for (unsigned i = 0; i < 8; i++)
        le[i] = (uint8_t)(v >> (8 * i));
    ms_rsp_hex_encode(hex, le, d->bytes);
    ms_strbuf_append(r, hex, 2 * d->bytes);
}

static void reply_g(struct ms_gdbserver *g, struct ms_strbuf *r)
{
    load_threads(g);
    if (!g->nthreads)
        return put_error(r, "no threads");
    const struct ms_task_regs *tr = thread_regs(g, &g->threads[g->g_thread]);
    for (size_t n = 0; n < NREGS; n++)
        put_reg(r, tr, n);
}

static void reply_p(struct ms_gdbserver *g, const char *s, const char *end, struct ms_strbuf *r)
{
    uint64_t n;
    load_threads(g);
    if (ms_rsp_hex_u64(&s, end, &n) < 0 || s != end)
        return put_error(r, "malformed p packet");
    if (n >= NREGS)
        return put_error(r, "no such register");
    if (!g->nthreads)
        return put_error(r, "no threads");
    put_reg(r, thread_regs(g, &g->threads[g->g_thread]), (size_t)n);
}

static void reply_m(struct ms_gdbserver *g, const uint8_t *pkt, size_t len, struct ms_strbuf *r)
{
    struct ms_rsp_mem m;
    if (ms_rsp_parse_mem(pkt, len, &m) < 0)
        return put_error(r, "malformed m packet");
    if (m.len > READ_MAX)
        m.len = READ_MAX; /* GDB takes a short reply and asks for the rest */
    uint8_t data[READ_MAX];
    char hex[2 * READ_MAX];
    size_t done = 0;
    struct ms_err e;
    ms_err_clear(&e);
    g->src.read(g->src.arg, m.addr, data, (size_t)m.len, &done, &e);
    if (done > m.len)
        done = 0;
    if (!done && m.len) {
        ms_strbuf_printf(r, "E14"); /* EFAULT: GDB says it cannot access the address */
        return;
    }
    ms_rsp_hex_encode(hex, data, done);
    ms_strbuf_append(r, hex, 2 * done);
}

/* H op thread: g sets whose registers g/p read; c (resume) is accepted and
 * means nothing: nothing runs. */
static void reply_h(struct ms_gdbserver *g, const char *s, const char *end, struct ms_strbuf *r)
{
    if (s == end || (*s != 'g' && *s != 'c'))
        return put_error(r, "malformed H packet");
    char op = *s++;
    struct ms_rsp_thread th;
    if (ms_rsp_parse_thread(&s, end, &th) < 0 || s != end)
        return put_error(r, "malformed thread id");
    size_t index = 0;
    if (op == 'g' && th.tid > 0) {
        if (!find_thread(g, th.tid, &index))
            return put_error(r, "no such thread");
        g->g_thread = index;
    }
    ms_strbuf_printf(r, "OK");
}

static void reply_t(struct ms_gdbserver *g, const char *s, const char *end, struct ms_strbuf *r)
{
    struct ms_rsp_thread th;
    if (ms_rsp_parse_thread(&s, end, &th) < 0 || s != end)
        return put_error(r, "malformed thread id");
    if (!find_thread(g, th.tid, NULL))
        return put_error(r, "no such thread");
    ms_strbuf_printf(r, "OK");
}

static void reply_thread_list(struct ms_gdbserver *g, bool first, struct ms_strbuf *r)
{
    load_threads(g);
    if (first)
        g->list_next = 0;
    if (g->list_next >= g->nthreads) {
        ms_strbuf_printf(r, "l");
        return;
    }
    ms_strbuf_printf(r, "m");
    for (size_t i = 0; i < THREADS_PER_REPLY && g->list_next < g->nthreads; i++, g->list_next++)
        ms_strbuf_printf(r, "%s%llx", i ? "," : "",
                         (unsigned long long)g->threads[g->list_next].tid);
}

static void reply_extra_info(struct ms_gdbserver *g, const char *s, const char *end,
                             struct ms_strbuf *r)
{
    struct ms_rsp_thread id;
    if (ms_rsp_parse_thread(&s, end, &id) < 0 || s != end)
        return put_error(r, "malformed thread id");
    struct thread *th = find_thread(g, id.tid, NULL);
    if (!th)
        return put_error(r, "no such thread");
    char text[sizeof(g->no_tasks) + 32], comm[17];
    if (g->no_tasks[0]) {
        snprintf(text, sizeof(text), "memory only (%s)", g->no_tasks);
    } else {
        size_t n = 0;
        for (; n < 16 && th->task.comm[n]; n++) {
            unsigned char c = (unsigned char)th->task.comm[n];
            comm[n] = c >= 0x20 && c < 0x7f ? (char)c : '?';
        }
        comm[n] = '\0';
        snprintf(text, sizeof(text), "pid %d %s", th->task.pid, comm);
    }
    char hex[2 * sizeof(text)];
    size_t len = strlen(text);
    ms_rsp_hex_encode(hex, text, len);
    ms_strbuf_append(r, hex, 2 * len);
}

/* qXfer:features:read:ANNEX:OFFSET,LENGTH */
static void reply_features(const char *s, const char *end, struct ms_strbuf *r)
{
    static const char annex[] = "target.xml:";
    uint64_t off, len;
    if ((size_t)(end - s) < sizeof(annex) - 1 || memcmp(s, annex, sizeof(annex) - 1) != 0)
        return put_error(r, "no such annex: only target.xml");
    s += sizeof(annex) - 1;
    if (ms_rsp_hex_u64(&s, end, &off) < 0 || s == end || *s++ != ',' ||
        ms_rsp_hex_u64(&s, end, &len) < 0 || s != end)
        return put_error(r, "malformed qXfer packet");
    size_t total = sizeof(ms_gdb_target_xml) - 1;
    if (off >= total) {
        ms_strbuf_printf(r, "l");
        return;
    }
    size_t n = total - (size_t)off;
    size_t max = MS_GDB_PACKET_MAX / 2; /* escapes may double it */
    if (len < n)
        n = (size_t)len;
    if (max < n)
        n = max;
    ms_strbuf_putc(r, off + n < total ? 'm' : 'l');
    ms_strbuf_append(r, ms_gdb_target_xml + off, n);
}

static const char cannot_run[] = "memsrv gdbserver serves a memory image: it cannot run or step";
static const char read_only[] = "memsrv gdbserver is read-only";

static bool is(const uint8_t *pkt, size_t len, const char *prefix, const char *seps)
{
    return ms_rsp_is(pkt, len, prefix, seps);
}

/* The kernel image moves as one block under KASLR. A vmlinux has several
 * segments (text, data, percpu, init), and for those GDB takes only
 * segment bases: given the first's (the segment _text starts), it moves
 * every segment by the same amount, as `symbol-file vmlinux -o SLIDE`
 * does (Text=/Data= offsets would move .text, .data and .bss alone). An
 * unknown _text is the empty reply: GDB keeps the file's addresses. */
static void reply_offsets(struct ms_gdbserver *g, struct ms_strbuf *r)
{
    uint64_t text = 0;
    struct ms_err e;
    if (!g->src.text)
        return;
    if (g->src.text(g->src.arg, &text, &e) < 0) {
        note(g, &e);
        return;
    }
    ms_strbuf_printf(r, "TextSeg=%llx", (unsigned long long)text);
}

static void reply_q(struct ms_gdbserver *g, const uint8_t *pkt, size_t len, struct ms_strbuf *r)
{
    const char *s = (const char *)pkt, *end = s + len;
    if (is(pkt, len, "qSupported", ":")) {
        ms_strbuf_printf(r, "PacketSize=%x;qXfer:features:read+;QStartNoAckMode+;vContSupported+",
                         MS_GDB_PACKET_MAX);
    } else if (is(pkt, len, "qAttached", ":")) {
        ms_strbuf_printf(r, "1");
    } else if (is(pkt, len, "qC", NULL)) {
        load_threads(g);
        if (g->nthreads)
            ms_strbuf_printf(r, "QC%llx", (unsigned long long)g->threads[g->g_thread].tid);
    } else if (is(pkt, len, "qfThreadInfo", NULL)) {
        reply_thread_list(g, true, r);
    } else if (is(pkt, len, "qsThreadInfo", NULL)) {
        reply_thread_list(g, false, r);
    } else if (is(pkt, len, "qThreadExtraInfo", ",")) {
        reply_extra_info(g, s + 17 <= end ? s + 17 : end, end, r);
    } else if (len > 20 && memcmp(pkt, "qXfer:features:read:", 20) == 0) {
        reply_features(s + 20, end, r);
    } else if (is(pkt, len, "qSymbol", ":")) {
        ms_strbuf_printf(r, "OK");
    } else if (is(pkt, len, "qOffsets", NULL)) {
        reply_offsets(g, r);
    }
    /* qTStatus, qL, ...: unsupported, the empty reply */
}

static void reply_v(struct ms_gdbserver *g, const uint8_t *pkt, size_t len, struct ms_strbuf *r,
                    bool *end_session)
{
    (void)g;
    if (is(pkt, len, "vCont?", NULL))
        ms_strbuf_printf(r, "vCont;c;C;s;S");
    else if (is(pkt, len, "vCont", ";"))
        put_error(r, cannot_run);
    else if (is(pkt, len, "vKill", ";")) {
        ms_strbuf_printf(r, "OK");
        *end_session = true;
    } else if (is(pkt, len, "vAttach", ";") || is(pkt, len, "vRun", ";"))
        put_error(r, cannot_run);
    /* vMustReplyEmpty, vFile, ...: the empty reply */
}

bool ms_gdbserver_packet(struct ms_gdbserver *g, const uint8_t *pkt, size_t len,
                         struct ms_strbuf *r)
{
    bool end_session = false;
    if (len == 0)
        return false;
    const char *s = (const char *)pkt, *end = s + len;
    switch (pkt[0]) {
    case '?': {
        size_t i = stop_thread(g);
        g->g_thread = i;
        if (g->nthreads)
            ms_strbuf_printf(r, "T05thread:%llx;", (unsigned long long)g->threads[i].tid);
        else
            ms_strbuf_printf(r, "S05");
        break;
    }
    case 'g':
        if (len == 1)
            reply_g(g, r);
        else
            put_error(r, "malformed g packet");
        break;
    case 'p':
        reply_p(g, s + 1, end, r);
        break;
    case 'm':
        reply_m(g, pkt, len, r);
        break;
    case 'H':
        reply_h(g, s + 1, end, r);
        break;
    case 'T':
        reply_t(g, s + 1, end, r);
        break;
    case 'q':
        reply_q(g, pkt, len, r);
        break;
    case 'Q':
        if (is(pkt, len, "QStartNoAckMode", NULL))
            ms_strbuf_printf(r, "OK");
        break;
    case 'v':
        reply_v(g, pkt, len, r, &end_session);
        break;
    case 'G':
    case 'P':
    case 'M':
    case 'X':
        put_error(r, read_only);
        break;
    case 'Z':
    case 'z':
        put_error(r, "memsrv gdbserver is read-only: no breakpoints or watchpoints");
        break;
    case 'c':
    case 'C':
    case 's':
    case 'S':
    case 'i':
    case 'I':
        put_error(r, cannot_run);
        break;
    case 'D':
        ms_strbuf_printf(r, "OK");
        end_session = true;
        break;
    case 'k':
        end_session = true;
        break;
    default:
        break; /* unsupported: the empty reply */
    }
    if (r->failed) {
        ms_strbuf_reset(r);
        put_error(r, "out of memory");
    }
    return end_session;
}

/* ------------------------------------------------------------------ framing */

static void send_frame(struct ms_gdbserver *g, const char *payload, size_t len,
                       struct ms_strbuf *out)
{
    size_t cap = MS_RSP_FRAME_MAX(len);
    uint8_t *frame = malloc(cap);
    size_t n = frame ? ms_rsp_encode(frame, cap, '$', payload, len) : 0;
    if (!n) {
        static const char oom[] = "E.out of memory";
        uint8_t small[MS_RSP_FRAME_MAX(sizeof(oom))];
        n = ms_rsp_encode(small, sizeof(small), '$', oom, sizeof(oom) - 1);
        ms_strbuf_append(out, (const char *)small, n);
        free(frame);
        return;
    }
    ms_strbuf_append(out, (const char *)frame, n);
    ms_strbuf_reset(&g->last);
    ms_strbuf_append(&g->last, (const char *)frame, n);
    free(frame);
}

bool ms_gdbserver_input(struct ms_gdbserver *g, const uint8_t *in, size_t len,
                        struct ms_strbuf *out)
{
    struct ms_strbuf reply;
    ms_strbuf_init(&reply);
    bool ended = false;
    size_t used = 0;
    while (used < len && !ended) {
        enum ms_rsp_event ev;
        used += ms_rsp_decode(&g->dec, in + used, len - used, &ev);
        ms_strbuf_reset(&reply);
        switch (ev) {
        case MS_RSP_PACKET:
            if (!g->no_ack)
                ms_strbuf_putc(out, '+');
            ended = ms_gdbserver_packet(g, g->dec.buf, g->dec.len, &reply);
            if (is(g->dec.buf, g->dec.len, "k", NULL))
                break; /* k has no reply */
            send_frame(g, ms_strbuf_str(&reply), reply.len, out);
            if (is(g->dec.buf, g->dec.len, "QStartNoAckMode", NULL))
                g->no_ack = true;
            break;
        case MS_RSP_BAD_CHECKSUM:
            if (!g->no_ack) {
                ms_strbuf_putc(out, '-'); /* GDB sends it again */
                break;
            }
            send_frame(g, "E.bad checksum", 14, out);
            break;
        case MS_RSP_MALFORMED:
        case MS_RSP_TOO_LONG: {
            const char *why = ev == MS_RSP_MALFORMED ? "E.malformed packet" : "E.packet too long";
            if (!g->no_ack)
                ms_strbuf_putc(out, '+');
            send_frame(g, why, strlen(why), out);
            break;
        }
        case MS_RSP_NAK:
            if (!g->no_ack && g->last.len)
                ms_strbuf_append(out, g->last.data, g->last.len);
            break;
        default:
            break; /* acks, notifications, an interrupt: nothing runs to stop */
        }
    }
    ms_strbuf_free(&reply);
    return ended;
}

/* ------------------------------------------------------- over a target */

static int target_tasks(void *arg, struct ms_task **tasks, size_t *count, struct ms_err *err)
{
    struct ms_gdb_target *b = arg;
    return ms_target_tasks(b->t, b->kernel, tasks, count, NULL, err);
}

static int target_regs(void *arg, const struct ms_task *task, struct ms_task_regs *out,
                       struct ms_err *err)
{
    struct ms_gdb_target *b = arg;
    return ms_target_task_regs(b->t, b->kernel, task->addr, out, err);
}

static int target_read(void *arg, uint64_t addr, void *buf, size_t len, size_t *done,
                       struct ms_err *err)
{
    struct ms_gdb_target *b = arg;
    return ms_target_read(b->t, b->mem, addr, buf, len, done, err);
}

static int target_text(void *arg, uint64_t *addr, struct ms_err *err)
{
    struct ms_gdb_target *b = arg;
    return ms_target_symbol(b->t, b->kernel, "_text", addr, err);
}

void ms_gdb_source_target(struct ms_gdb_source *src, struct ms_gdb_target *b)
{
    src->arg = b;
    src->tasks = target_tasks;
    src->regs = target_regs;
    src->read = target_read;
    src->text = target_text;
}
