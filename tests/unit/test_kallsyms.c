/* The kallsyms decoder on tables built here the way scripts/kallsyms.c
 * builds them (each used character its own token, then the most frequent
 * adjacent token pair folded into a free code, over and over; lengths of
 * 128+ tokens in two bytes; offsets with or without absolute per-cpu), and
 * on hostile tables. */
#include <stdlib.h>

#include "check.h"
#include "kallsyms.h"

#define MAXSYMS 64
#define MAXTOK 600
#define BASE 0xffffffff81000000ULL

struct sym {
    const char *name; /* type letter first, as kallsyms stores it */
    uint64_t addr;
};

struct tables {
    uint8_t names[MAXSYMS * (MAXTOK + 2)];
    uint8_t token_table[65536 + 16];
    uint8_t token_index[512];
    uint8_t offsets[MAXSYMS * 4];
    struct ms_kallsyms_tables t;
};

/* scripts/kallsyms.c's compression: codes[i] are symbol i's tokens. */
static void compress(uint8_t codes[][MAXTOK], size_t *len, size_t nsyms, char tok[256][MAXTOK])
{
    for (;;) {
        bool used[256] = {false};
        for (size_t i = 0; i < nsyms; i++)
            for (size_t j = 0; j < len[i]; j++)
                used[codes[i][j]] = true;
        int free_code = -1;
        for (int c = 0; c < 256 && free_code < 0; c++)
            if (!used[c])
                free_code = c;
        static unsigned pairs[256][256];
        memset(pairs, 0, sizeof(pairs));
        unsigned best = 0, ba = 0, bb = 0;
        for (size_t i = 0; i < nsyms; i++)
            for (size_t j = 1; j < len[i]; j++) {
                unsigned n = ++pairs[codes[i][j - 1]][codes[i][j]];
                if (n > best)
                    best = n, ba = codes[i][j - 1], bb = codes[i][j];
            }
        if (free_code < 0 || best < 2 || strlen(tok[ba]) + strlen(tok[bb]) >= MAXTOK)
            return;
        char joined[MAXTOK];
        size_t la = strlen(tok[ba]), lb = strlen(tok[bb]);
        memcpy(joined, tok[ba], la);
        memcpy(joined + la, tok[bb], lb + 1); /* la + lb < MAXTOK: checked above */
        memcpy(tok[free_code], joined, sizeof(joined));
        for (size_t i = 0; i < nsyms; i++) {
            size_t o = 0;
            for (size_t j = 0; j < len[i]; j++) {
                if (j + 1 < len[i] && codes[i][j] == ba && codes[i][j + 1] == bb) {
                    codes[i][o++] = (uint8_t)free_code;
                    j++;
                } else {
                    codes[i][o++] = codes[i][j];
                }
            }
            len[i] = o;
        }
    }
}

/* Builds the four tables for syms; absolute_percpu as x86-64 SMP before
 * 6.15 (addresses below base are stored as absolute values). */
static void build(struct tables *b, const struct sym *syms, size_t n, bool absolute_percpu,
                  bool squeeze)
{
    static uint8_t codes[MAXSYMS][MAXTOK];
    static char tok[256][MAXTOK];
    size_t len[MAXSYMS];
    memset(b, 0, sizeof(*b));
    memset(tok, 0, sizeof(tok));
    for (size_t i = 0; i < n; i++) {
        len[i] = strlen(syms[i].name);
        for (size_t j = 0; j < len[i]; j++) {
            uint8_t c = (uint8_t)syms[i].name[j];
            codes[i][j] = c;
            tok[c][0] = (char)c;
        }
    }
    if (squeeze)
        compress(codes, len, n, tok);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (len[i] >= 0x80) {
            b->names[o++] = (uint8_t)(0x80 | (len[i] & 0x7f));
            b->names[o++] = (uint8_t)(len[i] >> 7);
        } else {
            b->names[o++] = (uint8_t)len[i];
        }
        memcpy(b->names + o, codes[i], len[i]);
        o += len[i];
    }
    b->t.names_len = o;
    o = 0;
    for (int c = 0; c < 256; c++) {
        b->token_index[2 * c] = (uint8_t)o;
        b->token_index[2 * c + 1] = (uint8_t)(o >> 8);
        size_t l = strlen(tok[c]);
        memcpy(b->token_table + o, tok[c], l + 1);
        o += l + 1;
    }
    b->t.token_table_len = o;
    for (size_t i = 0; i < n; i++) {
        int64_t v = absolute_percpu ? (syms[i].addr < BASE ? (int64_t)syms[i].addr
                                                           : (int64_t)(BASE - syms[i].addr) - 1)
                                    : (int64_t)(syms[i].addr - BASE);
        uint32_t u = (uint32_t)v;
        memcpy(b->offsets + 4 * i, &u, 4);
    }
    b->t.num_syms = (uint32_t)n;
    b->t.relative_base = BASE;
    b->t.names = b->names;
    b->t.token_table = b->token_table;
    b->t.token_index = b->token_index;
    b->t.token_index_len = sizeof(b->token_index);
    b->t.offsets = b->offsets;
    b->t.offsets_len = 4 * n;
}

static const struct sym kernel_like[] = {
    {"Afixed_percpu_data", 0},
    {"Acpu_number", 0x1e2c8},
    {"T_text", BASE},
    {"Tstartup_64", BASE},
    {"Tsecondary_startup_64", BASE + 0x60},
    {"tfoo_init_state", BASE + 0x1200},
    {"Tdo_one_initcall", BASE + 0x2000},
    {"tdo_one_initcall_debug", BASE + 0x2100},
    {"Tdo_sys_open", BASE + 0x3000},
    {"Tdo_sys_openat2", BASE + 0x3100},
    {"t__do_sys_open", BASE + 0x3200},
    {"T__x64_sys_open", BASE + 0x3300},
    {"T__x64_sys_openat", BASE + 0x3340},
    {"T__x64_sys_openat2", BASE + 0x3380},
    {"Rlinux_banner", BASE + 0x1000000},
    {"Dinit_task", BASE + 0x1a10940},
    {"Dinit_top_pgt", BASE + 0x1a10000},
    {"dinit_uts_ns", BASE + 0x1a12000},
    {"Bprb", BASE + 0x1c00000},
    {"b__log_buf", BASE + 0x1c00100},
    {"Wsome_weak_function", BASE + 0x4000},
};
#define NKL (sizeof(kernel_like) / sizeof(kernel_like[0]))

static void check_same(const struct ms_kallsyms *ks, const struct sym *syms, size_t n,
                       const char *what)
{
    CHECK(ks->count == n, "%s: %zu symbols, want %zu", what, ks->count, n);
    for (size_t i = 0; i < n && i < ks->count; i++) {
        CHECK(ks->syms[i].type == syms[i].name[0] &&
                  strcmp(ks->syms[i].name, syms[i].name + 1) == 0,
              "%s: symbol %zu is %c %s, want %s", what, i, ks->syms[i].type, ks->syms[i].name,
              syms[i].name);
        CHECK_EQ_U64(ks->syms[i].addr, syms[i].addr, syms[i].name);
    }
}

static void test_round_trip(void)
{
    static struct tables b;
    struct ms_kallsyms ks;
    struct ms_err err;
    build(&b, kernel_like, NKL, true, true);
    CHECK(b.t.names_len < 300, "compression folded tokens: %zu bytes of names", b.t.names_len);
    CHECK(ms_kallsyms_decode(&b.t, 0, &ks, &err) == 0, "decode: %s", err.msg);
    check_same(&ks, kernel_like, NKL, "absolute percpu");
    CHECK(ks.skipped == 0, "skipped %llu", (unsigned long long)ks.skipped);
    /* the decoded symbols make a symbol table */
    struct ms_symtab *st;
    CHECK(ms_symtab_adopt(&st, "kallsyms", ks.syms, ks.count, ks.strings, &err) == 0, "adopt: %s",
          err.msg);
    uint64_t a = 0;
    CHECK(ms_symtab_lookup(st, "init_task", &a, &err) == 0, "lookup: %s", err.msg);
    CHECK_EQ_U64(a, BASE + 0x1a10940, "init_task");
    const struct ms_symbol *s;
    uint64_t off;
    CHECK(ms_symtab_addr(st, BASE + 0x3105, &s, &off, &err) == 0 &&
              strcmp(s->name, "do_sys_openat2") == 0 && off == 5,
          "addr -> do_sys_openat2+5");
    ms_symtab_free(st);

    /* without absolute per-cpu (6.15+, or not x86-64 SMP): all relative */
    static const struct sym rel[] = {
        {"T_text", BASE}, {"Tstart_kernel", BASE + 0x10}, {"Dinit_task", BASE + 0x1a10940}};
    build(&b, rel, 3, false, true);
    CHECK(ms_kallsyms_decode(&b.t, 0, &ks, &err) == 0, "decode: %s", err.msg);
    check_same(&ks, rel, 3, "relative");
    ms_kallsyms_free(&ks);

    /* the names table may run on to the next table */
    build(&b, kernel_like, NKL, true, true);
    b.t.names_len += 100;
    CHECK(ms_kallsyms_decode(&b.t, 0, &ks, &err) == 0, "decode: %s", err.msg);
    check_same(&ks, kernel_like, NKL, "padded");
    ms_kallsyms_free(&ks);
}

static void test_long_names(void)
{
    static struct tables b;
    static char big[300], huge[560];
    /* 6.1+ "big" symbols: 128+ tokens take a two-byte length */
    big[0] = 't';
    for (size_t i = 1; i < sizeof(big) - 1; i++)
        big[i] = (char)('a' + i % 26);
    huge[0] = 'T';
    for (size_t i = 1; i < sizeof(huge) - 1; i++)
        huge[i] = (char)('A' + i % 26);
    const struct sym syms[] = {{"T_text", BASE}, {big, BASE + 0x100}, {"Tafter", BASE + 0x200}};
    struct ms_kallsyms ks;
    struct ms_err err;
    build(&b, syms, 3, true, false);
    CHECK(b.names[7] & 0x80, "two-byte length");
    CHECK(ms_kallsyms_decode(&b.t, 0, &ks, &err) == 0, "decode: %s", err.msg);
    check_same(&ks, syms, 3, "big");
    ms_kallsyms_free(&ks);

    /* longer than KSYM_NAME_LEN: skipped, the rest decodes */
    const struct sym over[] = {{"T_text", BASE}, {huge, BASE + 0x100}, {"Tafter", BASE + 0x200}};
    build(&b, over, 3, true, false);
    CHECK(ms_kallsyms_decode(&b.t, 0, &ks, &err) == 0, "decode: %s", err.msg);
    CHECK(ks.count == 2 && ks.skipped == 1, "%zu decoded, %llu skipped", ks.count,
          (unsigned long long)ks.skipped);
    if (ks.count == 2)
        CHECK(strcmp(ks.syms[1].name, "after") == 0 && ks.syms[1].addr == BASE + 0x200,
              "after the long one: %s", ks.syms[1].name);
    ms_kallsyms_free(&ks);
}

/* Decoding fails with MS_EFORMAT and a message containing want. */
static void expect_fail(const struct ms_kallsyms_tables *t, size_t max, const char *want)
{
    struct ms_kallsyms ks;
    struct ms_err err;
    int rc = ms_kallsyms_decode(t, max, &ks, &err);
    CHECK(rc == MS_EFORMAT && strstr(err.msg, want), "want failure \"%s\": rc %d, %s", want, rc,
          rc ? err.msg : "");
    CHECK(ks.syms == NULL && ks.count == 0, "nothing handed back on failure");
}

static void test_hostile(void)
{
    static struct tables b;
    struct ms_kallsyms_tables t;
    build(&b, kernel_like, NKL, true, true);

    t = b.t;
    t.num_syms = 0;
    expect_fail(&t, 0, "implausible");
    t = b.t;
    expect_fail(&t, 3, "implausible");
    t = b.t;
    t.num_syms++; /* one more symbol than the names hold */
    t.offsets_len += 4;
    expect_fail(&t, 0, "ends at symbol");
    t = b.t;
    t.names_len -= 3; /* the last name cut short */
    expect_fail(&t, 0, "runs past");
    t = b.t;
    t.offsets_len -= 1;
    expect_fail(&t, 0, "kallsyms_offsets");
    t = b.t;
    t.token_index_len = 510;
    expect_fail(&t, 0, "kallsyms_token_index");
    t = b.t;
    t.token_table_len = 70000;
    expect_fail(&t, 0, "more than");

    /* a token a name uses points past the token table */
    uint8_t first = b.names[1];
    t = b.t;
    uint8_t saved[2] = {b.token_index[2 * first], b.token_index[2 * first + 1]};
    b.token_index[2 * first] = 0xff;
    b.token_index[2 * first + 1] = 0xff;
    expect_fail(&t, 0, "outside");
    b.token_index[2 * first] = saved[0];
    b.token_index[2 * first + 1] = saved[1];
    /* ... or has no NUL before the table's end */
    t = b.t;
    size_t last_off = (size_t)(b.token_index[2 * first] | b.token_index[2 * first + 1] << 8);
    t.token_table_len = last_off + 1;
    expect_fail(&t, 0, "outside");

    /* an unused token out of range is no matter */
    int unused = -1;
    for (int c = 255; c >= 0 && unused < 0; c--) {
        bool used = false;
        for (size_t i = 0; i < b.t.names_len; i++)
            used |= b.names[i] == c;
        if (!used)
            unused = c;
    }
    CHECK(unused >= 0, "an unused code");
    struct ms_kallsyms ks;
    struct ms_err err;
    if (unused >= 0) {
        b.token_index[2 * unused] = 0xff;
        b.token_index[2 * unused + 1] = 0xff;
        CHECK(ms_kallsyms_decode(&b.t, 0, &ks, &err) == 0, "decode: %s", err.msg);
        CHECK(ks.count == NKL, "count %zu", ks.count);
        ms_kallsyms_free(&ks);
    }

    /* names that decode to no nm letter, blanks or control characters:
     * skipped and counted */
    static const struct sym odd[] = {{"T_text", BASE},          {"1digit", BASE + 1},
                                     {"Twith space", BASE + 2}, {"T", BASE + 3},
                                     {"Tctl\x01", BASE + 4},    {"Tok", BASE + 5}};
    build(&b, odd, 6, true, true);
    CHECK(ms_kallsyms_decode(&b.t, 0, &ks, &err) == 0, "decode: %s", err.msg);
    CHECK(ks.count == 2 && ks.skipped == 4, "%zu decoded, %llu skipped", ks.count,
          (unsigned long long)ks.skipped);
    ms_kallsyms_free(&ks);

    /* names, but not one symbol among them */
    static const struct sym junk[] = {{"1digit", BASE}, {"T", BASE + 1}};
    build(&b, junk, 2, true, true);
    expect_fail(&b.t, 0, "none of the 2");

    /* a zero length is not a name */
    build(&b, kernel_like, NKL, true, true);
    b.names[0] = 0;
    expect_fail(&b.t, 0, "length 0");
}

int main(void)
{
    test_round_trip();
    test_long_names();
    test_hostile();
    return check_done("test_kallsyms");
}
