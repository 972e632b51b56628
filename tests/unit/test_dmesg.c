/* The printk ring decoders on synthetic rings built here the way the kernel
 * writes them (kernel/printk/printk_ringbuffer.c: data_alloc/get_next_lpos),
 * plus hostile rings, the old log_buf, and the output formats. */
#include <stdlib.h>

#include "check.h"
#include "dmesg.h"

#define CBITS 4 /* 16 descriptors */
#define SBITS 8 /* 256-byte text ring */
#define COUNT (1u << CBITS)
#define DSIZE (1u << SBITS)
#define DESC_SZ 24
#define INFO_SZ 88

struct ring {
    uint8_t descs[COUNT * DESC_SZ];
    uint8_t infos[COUNT * INFO_SZ];
    uint8_t data[DSIZE];
    uint64_t head_id, tail_id, head_lpos;
    uint64_t begin[64]; /* per id, for the test's own bookkeeping */
    uint64_t nrec;
    struct ms_prb_layout l;
};

static void put64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static void layout_61(struct ms_prb_layout *l)
{
    memset(l, 0, sizeof(*l));
    l->desc_size = DESC_SZ;
    l->desc_state_var = 0;
    l->desc_lpos_begin = 8;
    l->desc_lpos_next = 16;
    l->info_size = INFO_SZ;
    l->info_seq = 0;
    l->info_ts_nsec = 8;
    l->info_text_len = 16;
    l->info_facility = 18;
    l->info_flags_level = 19;
    l->info_caller_id = 20;
}

static void ring_init(struct ring *r)
{
    memset(r, 0, sizeof(*r));
    layout_61(&r->l);
}

/* get_next_lpos(): a block that would cross the wrap goes to the start. */
static uint64_t next_lpos(uint64_t lpos, uint64_t size)
{
    uint64_t next = lpos + size;
    if ((lpos >> SBITS) == (next >> SBITS))
        return next;
    return (next & ~(uint64_t)(DSIZE - 1)) + size;
}

/* Appends one finalized record, like prb_reserve + prb_final_commit. */
static uint64_t ring_add(struct ring *r, const char *text, uint8_t level, uint8_t flags,
                         uint64_t ts)
{
    uint64_t id = r->nrec++;
    size_t len = strlen(text);
    uint64_t size = (8 + len + 7) & ~7ULL;
    uint64_t begin = r->head_lpos, next = next_lpos(begin, size);
    uint64_t blk = (next - size) & (DSIZE - 1);
    put64(r->data + (begin & (DSIZE - 1)), id); /* id at begin, also at 0 if wrapped */
    put64(r->data + blk, id);
    memcpy(r->data + blk + 8, text, len);
    r->head_lpos = next;
    r->begin[id] = begin;
    uint8_t *d = r->descs + (id % COUNT) * DESC_SZ;
    put64(d, id | (2ULL << 62)); /* finalized */
    put64(d + 8, begin);
    put64(d + 16, next);
    uint8_t *in = r->infos + (id % COUNT) * INFO_SZ;
    memset(in, 0, INFO_SZ);
    put64(in, id); /* seq == id in this model */
    put64(in + 8, ts);
    uint16_t tl = (uint16_t)len;
    memcpy(in + 16, &tl, 2);
    in[18] = 0;
    in[19] = (uint8_t)(flags | level << 5);
    uint32_t caller = 0x80000000u;
    memcpy(in + 20, &caller, 4);
    r->head_id = id;
    /* the kernel's tail: the oldest record whose data is still intact */
    while (r->tail_id < id &&
           (r->head_lpos - r->begin[r->tail_id] > DSIZE || id - r->tail_id >= COUNT))
        r->tail_id++;
    return id;
}

static struct ms_prb_image image(struct ring *r)
{
    struct ms_prb_image img = {
        .layout = &r->l,
        .count_bits = CBITS,
        .size_bits = SBITS,
        .head_id = r->head_id,
        .tail_id = r->tail_id,
        .descs = r->descs,
        .descs_len = sizeof(r->descs),
        .infos = r->infos,
        .infos_len = sizeof(r->infos),
        .data = r->data,
        .data_len = sizeof(r->data),
    };
    return img;
}

static const char *rec_text(const struct ms_printk_log *log, size_t i, char *buf, size_t cap)
{
    size_t n = log->recs[i].text_len < cap - 1 ? log->recs[i].text_len : cap - 1;
    memcpy(buf, log->text + log->recs[i].text_off, n);
    buf[n] = '\0';
    return buf;
}

static void test_simple(void)
{
    struct ring r;
    ring_init(&r);
    ring_add(&r, "Linux version 6.1", 5, 0, 0);
    ring_add(&r, "second", 6, 0, 1234567000ULL);
    ring_add(&r, "third line", 4, 8 /* LOG_CONT */, 2000000000ULL);
    struct ms_printk_log log;
    ms_printk_log_init(&log);
    struct ms_prb_image img = image(&r);
    struct ms_err err;
    CHECK(ms_prb_decode(&img, &log, &err) == 0, "decode: %s", err.msg);
    CHECK(log.count == 3, "count %zu", log.count);
    CHECK(log.bad == 0, "bad %llu", (unsigned long long)log.bad);
    char b[128];
    if (log.count == 3) {
        CHECK(!strcmp(rec_text(&log, 0, b, sizeof(b)), "Linux version 6.1"), "text0 %s", b);
        CHECK(!strcmp(rec_text(&log, 2, b, sizeof(b)), "third line"), "text2 %s", b);
        CHECK(log.recs[1].level == 6 && log.recs[2].level == 4, "levels");
        CHECK(log.recs[2].flags == 8, "flags %u", log.recs[2].flags);
        CHECK(log.recs[1].ts_nsec == 1234567000ULL, "ts");
    }
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    struct ms_dmesg_opts o = {MS_DMESG_PLAIN, -1};
    ms_dmesg_format(&log, &o, &sb);
    CHECK(!strcmp(ms_strbuf_str(&sb), "[    0.000000] Linux version 6.1\n"
                                      "[    1.234567] second\n"
                                      "[    2.000000] third line\n"),
          "plain: %s", ms_strbuf_str(&sb));
    ms_strbuf_reset(&sb);
    o.style = MS_DMESG_RAW;
    o.max_level = 5;
    ms_dmesg_format(&log, &o, &sb);
    CHECK(!strcmp(ms_strbuf_str(&sb), "<5>[    0.000000] Linux version 6.1\n"
                                      "<4>[    2.000000] third line\n"),
          "raw+level: %s", ms_strbuf_str(&sb));
    ms_strbuf_free(&sb);
    ms_printk_log_free(&log);
}

static void test_wrap(void)
{
    struct ring r;
    ring_init(&r);
    char text[64];
    unsigned wrapped = 0;
    for (int i = 0; i < 40; i++) {
        snprintf(text, sizeof(text), "record %d %.*s", i, i % 23, "abcdefghijklmnopqrstuvwxyz");
        uint64_t before = r.head_lpos;
        ring_add(&r, text, 6, 0, (uint64_t)i * 1000);
        if ((before >> SBITS) != (r.head_lpos >> SBITS))
            wrapped++;
    }
    CHECK(wrapped >= 3, "the test ring wrapped only %u times", wrapped);
    struct ms_printk_log log;
    ms_printk_log_init(&log);
    struct ms_prb_image img = image(&r);
    struct ms_err err;
    CHECK(ms_prb_decode(&img, &log, &err) == 0, "decode: %s", err.msg);
    uint64_t want = r.head_id - r.tail_id + 1;
    CHECK(log.count == want, "count %zu want %llu (bad %llu incomplete %llu: %s)", log.count,
          (unsigned long long)want, (unsigned long long)log.bad, (unsigned long long)log.incomplete,
          log.first_bad);
    for (size_t i = 0; i < log.count; i++) {
        uint64_t id = r.tail_id + i;
        char exp[64], got[64];
        snprintf(exp, sizeof(exp), "record %llu %.*s", (unsigned long long)id, (int)(id % 23),
                 "abcdefghijklmnopqrstuvwxyz");
        rec_text(&log, i, got, sizeof(got));
        CHECK(!strcmp(exp, got) && log.recs[i].seq == id, "record %zu: '%s' want '%s'", i, got,
              exp);
    }
    ms_printk_log_free(&log);
}

/* A live ring read with the text tail as it was after the copy: blocks it
 * passed may have been overwritten meanwhile and are skipped, never torn. */
static void test_data_tail(void)
{
    struct ring r;
    ring_init(&r);
    for (int i = 0; i < 40; i++)
        ring_add(&r, "a record of some length", 6, 0, (uint64_t)i);
    uint64_t keep = r.tail_id + 2;
    struct ms_prb_image img = image(&r);
    img.check_data_tail = true;
    img.data_tail_lpos = r.begin[keep];
    struct ms_printk_log log;
    ms_printk_log_init(&log);
    struct ms_err err;
    CHECK(ms_prb_decode(&img, &log, &err) == 0, "decode: %s", err.msg);
    CHECK(log.count == r.head_id - keep + 1 && log.count && log.recs[0].seq == keep,
          "%zu records from %llu", log.count, log.count ? (unsigned long long)log.recs[0].seq : 0);
    CHECK(log.incomplete == 2 && log.bad == 0, "incomplete %llu bad %llu",
          (unsigned long long)log.incomplete, (unsigned long long)log.bad);
    CHECK(log.has_tail_seq && log.tail_seq == r.tail_id, "tail seq %llu want %llu",
          (unsigned long long)log.tail_seq, (unsigned long long)r.tail_id);
    ms_printk_log_free(&log);
}

/* A follower's steps over snapshots given by their seqs. */
static void snapshot(struct ms_printk_log *log, struct ms_printk_record *recs, uint64_t tail,
                     const uint64_t *seqs, size_t n)
{
    memset(log, 0, sizeof(*log));
    for (size_t i = 0; i < n; i++)
        recs[i] = (struct ms_printk_record){.seq = seqs[i]};
    log->recs = recs;
    log->count = n;
    log->tail_seq = tail;
    log->has_tail_seq = true;
}

static void step(struct ms_printk_log *log, struct ms_dmesg_cursor *c, uint64_t want_first,
                 size_t want_n, uint64_t want_lost, const char *what)
{
    size_t first, end;
    uint64_t lost;
    ms_dmesg_follow_step(log, c, &first, &end, &lost);
    CHECK(end - first == want_n && (!want_n || log->recs[first].seq == want_first) &&
              lost == want_lost,
          "%s: %zu records from %llu, %llu lost; want %zu from %llu, %llu lost", what, end - first,
          end > first ? (unsigned long long)log->recs[first].seq : 0, (unsigned long long)lost,
          want_n, (unsigned long long)want_first, (unsigned long long)want_lost);
}

static void test_follow_step(void)
{
    struct ms_printk_record recs[8];
    struct ms_printk_log log;
    struct ms_dmesg_cursor c = {0};
    snapshot(&log, recs, 3, (uint64_t[]){3, 4, 5}, 3);
    step(&log, &c, 3, 3, 0, "first call: the whole ring, nothing lost");
    step(&log, &c, 0, 0, 0, "nothing new");
    snapshot(&log, recs, 4, (uint64_t[]){4, 5, 6, 7}, 4);
    step(&log, &c, 6, 2, 0, "the new ones");
    snapshot(&log, recs, 20, (uint64_t[]){20, 21}, 2);
    step(&log, &c, 20, 2, 12, "8..19 overwritten unread");
    snapshot(&log, recs, 20, (uint64_t[]){21, 22, 24, 25}, 4);
    step(&log, &c, 22, 1, 0, "up to the gap");
    for (int i = 0; i < MS_DMESG_STALL_MAX; i++)
        step(&log, &c, 0, 0, 0, "23 may still be being written");
    step(&log, &c, 24, 2, 1, "23 waited for long enough");
    snapshot(&log, recs, 0, (uint64_t[]){0, 1}, 2);
    step(&log, &c, 0, 2, 0, "a new boot starts over");
}

static void test_garbage(void)
{
    struct ring r;
    ring_init(&r);
    for (int i = 0; i < 6; i++)
        ring_add(&r, "ok record", 6, 0, 0);
    /* id mismatch (recycled), bad lpos (outside, misaligned), huge text_len,
     * seq in the wrong slot, reserved state */
    put64(r.descs + 1 * DESC_SZ, 77 | (2ULL << 62));
    put64(r.descs + 2 * DESC_SZ + 8, 3 + 0x1000);
    put64(r.descs + 3 * DESC_SZ + 16, 0xfffffffffff0ULL);
    uint16_t big = 60000;
    memcpy(r.infos + 4 * INFO_SZ + 16, &big, 2);
    put64(r.infos + 5 * INFO_SZ, 9);
    struct ms_printk_log log;
    ms_printk_log_init(&log);
    struct ms_prb_image img = image(&r);
    struct ms_err err;
    CHECK(ms_prb_decode(&img, &log, &err) == 0, "decode: %s", err.msg);
    CHECK(log.count == 2, "count %zu", log.count); /* #0 intact, #4 truncated */
    CHECK(log.incomplete == 1, "incomplete %llu", (unsigned long long)log.incomplete);
    CHECK(log.bad == 3, "bad %llu (%s)", (unsigned long long)log.bad, log.first_bad);
    CHECK(log.truncated == 1, "truncated %llu", (unsigned long long)log.truncated);
    CHECK(log.first_bad[0] != '\0', "first_bad empty");
    ms_printk_log_free(&log);

    /* head more than a lap ahead of tail: clamped, not a long loop */
    ring_init(&r);
    ring_add(&r, "x", 6, 0, 0);
    img = image(&r);
    img.tail_id = 0;
    img.head_id = (1ULL << 62) - 1;
    ms_printk_log_init(&log);
    CHECK(ms_prb_decode(&img, &log, &err) == 0, "decode: %s", err.msg);
    CHECK(log.bad >= 1, "lap error not reported");
    ms_printk_log_free(&log);

    /* impossible geometry is an error, not a huge allocation */
    img.size_bits = 40;
    ms_printk_log_init(&log);
    CHECK(ms_prb_decode(&img, &log, &err) == MS_EFORMAT, "geometry accepted");
    ms_printk_log_free(&log);

    /* random bytes everywhere: never crash; any records found are in range */
    srand(7);
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof(r.descs); i++)
            r.descs[i] = (uint8_t)rand();
        for (size_t i = 0; i < sizeof(r.infos); i++)
            r.infos[i] = (uint8_t)rand();
        for (size_t i = 0; i < sizeof(r.data); i++)
            r.data[i] = (uint8_t)rand();
        img = image(&r);
        img.head_id = (uint64_t)rand() << 20 ^ (uint64_t)rand();
        img.tail_id = img.head_id - (uint64_t)(rand() % 40);
        ms_printk_log_init(&log);
        ms_prb_decode(&img, &log, &err);
        CHECK(log.count <= COUNT, "round %d: %zu records", round, log.count);
        ms_printk_log_free(&log);
    }
}

static void test_dataless_and_format(void)
{
    struct ring r;
    ring_init(&r);
    ring_add(&r, "line one\nline two", 3, 0, 5000000000ULL);
    ring_add(&r, "lost", 6, 0, 0);
    put64(r.descs + 1 * DESC_SZ + 8, 1); /* FAILED_LPOS */
    put64(r.descs + 1 * DESC_SZ + 16, 1);
    ring_add(&r,
             "ctl\x01"
             "x\t\xc3\xa9",
             6, 0, 0);
    struct ms_printk_log log;
    ms_printk_log_init(&log);
    struct ms_prb_image img = image(&r);
    struct ms_err err;
    CHECK(ms_prb_decode(&img, &log, &err) == 0, "decode: %s", err.msg);
    CHECK(log.count == 2 && log.lost == 1, "count %zu lost %llu", log.count,
          (unsigned long long)log.lost);
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    struct ms_dmesg_opts o = {MS_DMESG_PLAIN, -1};
    ms_dmesg_format(&log, &o, &sb);
    CHECK(!strcmp(ms_strbuf_str(&sb), "[    5.000000] line one\n[    5.000000] line two\n"
                                      "[    0.000000] ctl\\x01x\t\xc3\xa9\n"),
          "plain multi-line: %s", ms_strbuf_str(&sb));
    ms_strbuf_reset(&sb);
    o.style = MS_DMESG_CRASH;
    ms_dmesg_format(&log, &o, &sb);
    CHECK(!strcmp(ms_strbuf_str(&sb), "[    5.000000] line one\n               line two\n"
                                      "[    0.000000] ctl.x\t..\n"),
          "crash multi-line: %s", ms_strbuf_str(&sb));
    ms_strbuf_free(&sb);
    ms_printk_log_free(&log);
}

/* struct printk_log (5.1-5.9): ts_nsec, len, text_len, dict_len, facility,
 * flags:5 level:3, caller_id; 24 bytes, records 8-aligned. */
static size_t plog_put(uint8_t *buf, size_t at, const char *text, uint64_t ts, uint8_t level)
{
    size_t tl = strlen(text);
    uint16_t len = (uint16_t)((24 + tl + 7) & ~7u), t16 = (uint16_t)tl, zero = 0;
    memcpy(buf + at, &ts, 8);
    memcpy(buf + at + 8, &len, 2);
    memcpy(buf + at + 10, &t16, 2);
    memcpy(buf + at + 12, &zero, 2);
    buf[at + 14] = 0;
    buf[at + 15] = (uint8_t)(level << 5);
    memcpy(buf + at + 24, text, tl);
    return at + len;
}

static void test_plog(void)
{
    struct ms_plog_layout l = {24, 0, 8, 10, 12, 14, 15, true, 16};
    uint8_t buf[160];
    memset(buf, 0, sizeof(buf));
    /* records at 72 and 104, a wrap marker (len 0) at 136, two more at 0 */
    size_t at = plog_put(buf, 72, "old one", 1000, 6);
    at = plog_put(buf, at, "old two", 2000, 6);
    CHECK(at == 136, "layout of the test buffer: %zu", at);
    size_t next = plog_put(buf, 0, "new", 3000000, 2);
    next = plog_put(buf, next, "newest", 4000000, 2);
    struct ms_printk_log log;
    ms_printk_log_init(&log);
    struct ms_err err;
    CHECK(ms_plog_decode(&l, buf, sizeof(buf), 72, next, 10, &log, &err) == 0, "plog: %s", err.msg);
    CHECK(log.count == 4, "plog count %zu bad %llu %s", log.count, (unsigned long long)log.bad,
          log.first_bad);
    char b[64];
    if (log.count == 4) {
        CHECK(!strcmp(rec_text(&log, 3, b, sizeof(b)), "newest") && log.recs[3].seq == 13,
              "plog last %s", b);
        CHECK(log.recs[2].level == 2, "plog level");
    }
    ms_printk_log_free(&log);
    /* a corrupt length stops the walk with a report */
    uint16_t bad = 3;
    memcpy(buf + 72 + 8, &bad, 2);
    ms_printk_log_init(&log);
    CHECK(ms_plog_decode(&l, buf, sizeof(buf), 72, next, 0, &log, &err) == 0, "plog bad: %s",
          err.msg);
    CHECK(log.count == 0 && log.bad == 1, "plog corrupt: count %zu bad %llu", log.count,
          (unsigned long long)log.bad);
    ms_printk_log_free(&log);
    ms_printk_log_init(&log);
    CHECK(ms_plog_decode(&l, buf, sizeof(buf), 200, 0, 0, &log, &err) == MS_EFORMAT, "idx outside");
    ms_printk_log_free(&log);
}

int main(void)
{
    test_data_tail();
    test_follow_step();
    test_simple();
    test_wrap();
    test_garbage();
    test_dataless_and_format();
    test_plog();
    return check_done("test_dmesg");
}
