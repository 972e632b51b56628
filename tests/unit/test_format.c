/* x/FMT: the parser's sticky defaults and errors, and the formatter over an
 * in-memory buffer. Expected texts were taken from GDB 13 (gdb -batch,
 * LC_ALL=C) on a core file holding the same bytes. */
#include <stdlib.h>

#include "check.h"
#include "format.h"

/* ---- parser ---- */

static struct ms_xfmt fresh(void)
{
    struct ms_xfmt f = {1, 'x', 'w'}; /* GDB's start: x, w */
    return f;
}

/* Parses text on top of *f; checks the result. */
static void parse_ok(struct ms_xfmt *f, const char *text, uint64_t count, char format, char size)
{
    struct ms_err err;
    ms_err_clear(&err);
    int rc = ms_xfmt_parse(text, f, &err);
    CHECK(rc == 0, "parse \"%s\": %s", text, err.msg);
    CHECK(f->count == count && f->format == format && f->size == size,
          "parse \"%s\": got %" PRIu64 "%c%c, want %" PRIu64 "%c%c", text, f->count, f->format,
          f->size, count, format, size);
}

static void parse_bad(const char *text, const char *want_msg)
{
    struct ms_xfmt f = fresh();
    struct ms_err err;
    ms_err_clear(&err);
    int rc = ms_xfmt_parse(text, &f, &err);
    CHECK(rc == MS_EINVAL, "parse \"%s\" should fail, rc %d", text, rc);
    CHECK(strstr(err.msg, want_msg) != NULL, "parse \"%s\": message \"%s\" lacks \"%s\"", text,
          err.msg, want_msg);
    CHECK(f.format == 'x' && f.size == 'w', "failed parse \"%s\" changed the state", text);
}

static void test_parse(void)
{
    struct ms_xfmt f = fresh();
    parse_ok(&f, "", 1, 'x', 'w');
    parse_ok(&f, "16gx", 16, 'x', 'g');
    parse_ok(&f, "xg", 1, 'x', 'g');
    parse_ok(&f, "3", 3, 'x', 'g'); /* count only: format and size stay */
    parse_ok(&f, "d", 1, 'd', 'g');
    parse_ok(&f, "bw", 1, 'd', 'w'); /* the last size letter wins */
    parse_ok(&f, "0x", 0, 'x', 'w');

    /* a: pointer size; c: byte; with an explicit size they keep it */
    f = fresh();
    parse_ok(&f, "a", 1, 'a', 'g');
    parse_ok(&f, "2ab", 2, 'a', 'b');
    parse_ok(&f, "c", 1, 'c', 'b');
    parse_ok(&f, "x", 1, 'x', 'b'); /* after c, size b sticks */
    parse_ok(&f, "cw", 1, 'c', 'w');

    /* f: keeps w or g, else g */
    f = fresh();
    parse_ok(&f, "f", 1, 'f', 'w');
    parse_ok(&f, "xh", 1, 'x', 'h');
    parse_ok(&f, "f", 1, 'f', 'g');
    parse_ok(&f, "fb", 1, 'f', 'b');
    parse_ok(&f, "2f", 2, 'f', 'g');

    /* s: byte chars unless h/w; after strings the size is b; g becomes b */
    f = fresh();
    parse_ok(&f, "xg", 1, 'x', 'g');
    parse_ok(&f, "s", 1, 's', 'b');
    parse_ok(&f, "x", 1, 'x', 'b');
    parse_ok(&f, "3sh", 3, 's', 'h');
    parse_ok(&f, "2", 2, 's', 'b');
    parse_ok(&f, "h", 1, 's', 'h'); /* a size alone keeps format s */
    parse_ok(&f, "ws", 1, 's', 'w');
    parse_ok(&f, "d", 1, 'd', 'b');
    parse_ok(&f, "sg", 1, 's', 'b');

    /* i: keeps the size for later; a size alone after i means x */
    f = fresh();
    parse_ok(&f, "xg", 1, 'x', 'g');
    parse_ok(&f, "5i", 5, 'i', 'g');
    parse_ok(&f, "x", 1, 'x', 'g');
    parse_ok(&f, "i", 1, 'i', 'g');
    parse_ok(&f, "h", 1, 'x', 'h');
    parse_ok(&f, "2bi", 2, 'i', 'b');

    /* r (raw) and m (memory tags) are accepted and change nothing */
    f = fresh();
    parse_ok(&f, "4xr", 4, 'x', 'w');
    parse_ok(&f, "m", 1, 'x', 'w');
    parse_ok(&f, " 2x ", 2, 'x', 'w');

    parse_bad("-3x", "negative count");
    parse_bad("q", "Undefined output format \"q\".");
    parse_bad("4xq", "Undefined output format \"q\".");
    parse_bad("3X", "unexpected 'X'");
    parse_bad("x/", "unexpected '/'");
    parse_bad("2 x", "unexpected 'x'");
    parse_bad("99999999999x", "count too large");
    parse_bad("2147483648x", "count too large");
    f = fresh();
    parse_ok(&f, "2147483647b", 2147483647u, 'x', 'b');
}

/* ---- formatter ---- */

#define BASE 0x400000u

struct mem {
    const uint8_t *data;
    size_t len; /* [BASE, BASE+len) readable */
};

static int mem_read(void *arg, uint64_t addr, void *buf, size_t len, size_t *done,
                    struct ms_err *err)
{
    const struct mem *m = arg;
    *done = 0;
    if (addr < BASE || addr - BASE >= m->len)
        return ms_err_set(err, MS_EOUTSIDE, "0x%" PRIx64 " is outside RAM", addr);
    size_t avail = m->len - (size_t)(addr - BASE);
    size_t n = len < avail ? len : avail;
    memcpy(buf, m->data + (addr - BASE), n);
    *done = n;
    if (n < len)
        return ms_err_set(err, MS_EOUTSIDE, "0x%" PRIx64 " is outside RAM", addr + n);
    return 0;
}

static int fake_sym(void *arg, uint64_t addr, char *out, size_t out_size)
{
    (void)arg;
    if (addr >= BASE && addr < BASE + 0x20) {
        snprintf(out, out_size, "main+%u", (unsigned)(addr - BASE));
        return 0;
    }
    return -1;
}

static uint8_t image[0x200];

static void build_image(void)
{
    static const uint8_t head[] = {0xf5, 0xb1, 0x65, 0x22, 0x4a, 0x58, 0xb7, 0x91,
                                   0xdf, 0x6a, 0xf1, 0xd8, 0x30, 0x3e, 0x61, 0xcd,
                                   0xc4, 0xbb, 0x86, 0xc3, 0xd1, 0xc4, 0x27, 0x10};
    memcpy(image, head, sizeof(head));
    static const char strs[] = "Hello, world!\n\0\x01\x02\x7f\x80\xff\"\\'abc\0";
    memcpy(image + 0x40, strs, sizeof(strs));
    /* 'A' x16 "BC" 'x' x10 'y' x11 '\001' x12 "z" '\377' x20 NUL */
    size_t o = 0x80;
    memset(image + o, 'A', 16), o += 16;
    image[o++] = 'B', image[o++] = 'C';
    memset(image + o, 'x', 10), o += 10;
    memset(image + o, 'y', 11), o += 11;
    memset(image + o, 1, 12), o += 12;
    image[o++] = 'z';
    memset(image + o, 0xff, 20), o += 20;
    image[o++] = 0;
    /* doubles 3.14159, -1e300; floats 1.5, -0, inf, nan */
    static const uint8_t fl[] = {0x6e, 0x86, 0x1b, 0xf0, 0xf9, 0x21, 0x09, 0x40, 0x9c, 0x75, 0x00,
                                 0x88, 0x3c, 0xe4, 0x37, 0xfe, 0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00,
                                 0x00, 0x80, 0x00, 0x00, 0x80, 0x7f, 0x00, 0x00, 0xc0, 0x7f};
    memcpy(image + 0x100, fl, sizeof(fl));
    /* UTF-16 "h\u00e9llo\u20ac" */
    static const uint8_t u16[] = {'h', 0, 0xe9, 0, 'l', 0, 'l', 0, 'o', 0, 0xac, 0x20, 0, 0};
    memcpy(image + 0x140, u16, sizeof(u16));
    /* push %rbp; mov %rsp,%rbp; lea 0x10(%rip),%rax; call .+0; ret */
    static const uint8_t code[] = {0x55, 0x48, 0x89, 0xe5, 0x48, 0x8d, 0x05, 0x10, 0x00,
                                   0x00, 0x00, 0xe8, 0x00, 0x00, 0x00, 0x00, 0xc3};
    memcpy(image + 0x180, code, sizeof(code));
    /* the last 6 bytes: a string with no NUL */
    memcpy(image + sizeof(image) - 6, "tail!!", 6);
}

/* Runs x/text at addr over the first len bytes of image. */
static int run(const char *text, uint64_t addr, size_t len, bool sym, struct ms_strbuf *out,
               uint64_t *next, struct ms_err *err)
{
    struct ms_xfmt f = fresh();
    struct mem m = {image, len};
    ms_strbuf_reset(out);
    ms_err_clear(err);
    int rc = ms_xfmt_parse(text, &f, err);
    if (rc)
        return rc;
    return ms_format_x(&f, addr, mem_read, &m, sym ? fake_sym : NULL, NULL, out, next, err);
}

static void expect(const char *text, uint64_t addr, const char *want, uint64_t want_next)
{
    struct ms_strbuf out;
    struct ms_err err;
    uint64_t next = 0;
    ms_strbuf_init(&out);
    int rc = run(text, addr, sizeof(image), false, &out, &next, &err);
    CHECK(rc == 0, "x/%s 0x%" PRIx64 ": %s", text, addr, err.msg);
    CHECK(strcmp(ms_strbuf_str(&out), want) == 0, "x/%s 0x%" PRIx64 ":\n got  [%s]\n want [%s]",
          text, addr, ms_strbuf_str(&out), want);
    CHECK_EQ_U64(next, want_next, text);
    ms_strbuf_free(&out);
}

static void test_output(void)
{
    expect("8xb", BASE, "0x400000:\t0xf5\t0xb1\t0x65\t0x22\t0x4a\t0x58\t0xb7\t0x91\n", BASE + 8);
    expect("3xg", BASE,
           "0x400000:\t0x91b7584a2265b1f5\t0xcd613e30d8f16adf\n0x400010:\t0x1027c4d1c386bbc4\n",
           BASE + 24);
    expect("5xw", BASE,
           "0x400000:\t0x2265b1f5\t0x91b7584a\t0xd8f16adf\t0xcd613e30\n0x400010:\t0xc386bbc4\n",
           BASE + 20);
    expect("9xh", BASE,
           "0x400000:\t0xb1f5\t0x2265\t0x584a\t0x91b7\t0x6adf\t0xd8f1\t0x3e30\t0xcd61\n"
           "0x400010:\t0xbbc4\n",
           BASE + 18);
    expect("2zw", BASE + 0x1f0, "0x4001f0:\t0x00000000\t0x00000000\n", BASE + 0x1f8);
    expect("4ob", BASE, "0x400000:\t0365\t0261\t0145\t042\n", BASE + 4);
    expect("2og", BASE, "0x400000:\t01106672604504231330765\t01465411743033074265337\n", BASE + 16);
    expect("2o", BASE + 0x1f0, "0x4001f0:\t0\t0\n", BASE + 0x1f8);
    expect("2th", BASE, "0x400000:\t1011000111110101\t0010001001100101\n", BASE + 4);
    expect("4db", BASE, "0x400000:\t-11\t-79\t101\t34\n", BASE + 4);
    expect("4dw", BASE, "0x400000:\t577090037\t-1850255286\t-655267105\t-849265104\n", BASE + 16);
    expect("2ug", BASE, "0x400000:\t10499958131665514997\t14799178230035213023\n", BASE + 16);
    expect("4c", BASE, "0x400000:\t-11 '\\365'\t-79 '\\261'\t101 'e'\t34 '\"'\n", BASE + 4);
    expect("3cw", BASE, "0x400000:\t-11 '\\365'\t74 'J'\t-33 '\\337'\n", BASE + 12);
    expect("4c", BASE + 0x4e, "0x40004e:\t0 '\\000'\t1 '\\001'\t2 '\\002'\t127 '\\177'\n",
           BASE + 0x52);
    expect("2c", BASE + 0x54, "0x400054:\t34 '\"'\t92 '\\\\'\n", BASE + 0x56);
    expect("c", BASE + 0x56, "0x400056:\t39 '\\''\n", BASE + 0x57);
    expect("a", BASE, "0x400000:\t0x91b7584a2265b1f5\n", BASE + 8);
    expect("2aw", BASE + 4, "0x400004:\t0xffffffff91b7584a\t0xffffffffd8f16adf\n", BASE + 12);
    expect("2ah", BASE + 0x1f0, "0x4001f0:\t0x0\t0x0\n", BASE + 0x1f4);
    expect("2fg", BASE + 0x100, "0x400100:\t3.1415899999999999\t-1.0000000000000001e+300\n",
           BASE + 0x110);
    expect("4fw", BASE + 0x110, "0x400110:\t1.5\t-0\tinf\tnan(0x400000)\n", BASE + 0x120);
    expect("4fb", BASE + 0x100, "0x400100:\t110\t-122\t27\t-16\n", BASE + 0x104);
    expect("0x", BASE, "", BASE);

    expect("3s", BASE + 0x40,
           "0x400040:\t\"Hello, world!\\n\"\n"
           "0x40004f:\t\"\\001\\002\\177\\200\\377\\\"\\\\'abc\"\n"
           "0x40005b:\t\"\"\n",
           BASE + 0x5c);
    expect("s", BASE + 0x80,
           "0x400080:\t'A' <repeats 16 times>, \"BCxxxxxxxxxx\", 'y' <repeats 11 times>, "
           "'\\001' <repeats 12 times>, \"z\", '\\377' <repeats 20 times>\n",
           BASE + 0x80 + 73);
    expect("sh", BASE + 0x140, "0x400140:\tu\"h\\351llo\\x20ac\"\n", BASE + 0x14e);

    expect("5i", BASE + 0x180,
           "   0x400180:\tpush   %rbp\n"
           "   0x400181:\tmov    %rsp,%rbp\n"
           "   0x400184:\tlea    0x10(%rip),%rax        # 0x40019b\n"
           "   0x40018b:\tcall   0x400190\n"
           "   0x400190:\tret\n",
           BASE + 0x191);
}

static void test_symbols(void)
{
    struct ms_strbuf out;
    struct ms_err err;
    uint64_t next;
    ms_strbuf_init(&out);
    int rc = run("2xg", BASE + 8, sizeof(image), true, &out, &next, &err);
    CHECK(rc == 0, "%s", err.msg);
    CHECK(strcmp(ms_strbuf_str(&out),
                 "0x400008 <main+8>:\t0xcd613e30d8f16adf\t0x1027c4d1c386bbc4\n") == 0,
          "[%s]", ms_strbuf_str(&out));
    /* x/a shows the symbol of the value */
    memcpy(image + 0x1e0, (uint8_t[]){0x04, 0x00, 0x40, 0, 0, 0, 0, 0}, 8);
    rc = run("a", BASE + 0x1e0, sizeof(image), true, &out, &next, &err);
    CHECK(rc == 0, "%s", err.msg);
    CHECK(strcmp(ms_strbuf_str(&out), "0x4001e0:\t0x400004 <main+4>\n") == 0, "[%s]",
          ms_strbuf_str(&out));
    memset(image + 0x1e0, 0, 8);
    ms_strbuf_free(&out);
}

/* An unreadable byte mid-line: the partial line is ended, the error is
 * GDB's text with the first unreadable address, next is the failed unit. */
static void expect_fail(const char *text, uint64_t addr, size_t len, const char *want, uint64_t bad,
                        uint64_t want_next)
{
    struct ms_strbuf out;
    struct ms_err err;
    uint64_t next = 0;
    char msg[96];
    ms_strbuf_init(&out);
    int rc = run(text, addr, len, false, &out, &next, &err);
    snprintf(msg, sizeof(msg), "Cannot access memory at address 0x%" PRIx64, bad);
    CHECK(rc == MS_EOUTSIDE, "x/%s: rc %d", text, rc);
    CHECK(strcmp(err.msg, msg) == 0, "x/%s: message [%s], want [%s]", text, err.msg, msg);
    CHECK(strcmp(ms_strbuf_str(&out), want) == 0, "x/%s:\n got  [%s]\n want [%s]", text,
          ms_strbuf_str(&out), want);
    CHECK_EQ_U64(next, want_next, text);
    ms_strbuf_free(&out);
}

static void test_unreadable(void)
{
    expect_fail("3xb", BASE + 6, 8, "0x400006:\t0xb7\t0x91\t\n", BASE + 8, BASE + 8);
    /* a unit half readable: the address is its first unreadable byte */
    expect_fail("3xw", BASE, 10, "0x400000:\t0x2265b1f5\t0x91b7584a\t\n", BASE + 10, BASE + 8);
    expect_fail("3xg", BASE, 16, "0x400000:\t0x91b7584a2265b1f5\t0xcd613e30d8f16adf\n0x400010:\t\n",
                BASE + 16, BASE + 16);
    expect_fail("x", BASE + 0x1000, sizeof(image), "0x401000:\t\n", BASE + 0x1000, BASE + 0x1000);
    expect_fail("3i", BASE + 0x180, 0x183, "   0x400180:\tpush   %rbp\n   0x400181:\t\n",
                BASE + 0x183, BASE + 0x181);
    expect_fail("i", BASE + 0x200, sizeof(image), "   0x400200:\t\n", BASE + 0x200, BASE + 0x200);

    /* x/s: GDB shows the error inline and the command succeeds */
    struct ms_strbuf out;
    struct ms_err err;
    uint64_t next;
    ms_strbuf_init(&out);
    int rc = run("2s", BASE + sizeof(image) - 6, sizeof(image), false, &out, &next, &err);
    CHECK(rc == 0, "x/2s at the end: %s", err.msg);
    CHECK(strcmp(ms_strbuf_str(&out),
                 "0x4001fa:\t\"tail!!\"<error: Cannot access memory at address 0x400200>\n"
                 "0x400200:\t<error: Cannot access memory at address 0x400200>\n") == 0,
          "[%s]", ms_strbuf_str(&out));
    CHECK_EQ_U64(next, BASE + 0x200, "x/2s next");
    ms_strbuf_free(&out);
}

static void test_bad_struct(void)
{
    struct ms_strbuf out;
    struct ms_err err;
    struct mem m = {image, sizeof(image)};
    ms_strbuf_init(&out);
    struct ms_xfmt f = {1, 'q', 'w'};
    CHECK(ms_format_x(&f, BASE, mem_read, &m, NULL, NULL, &out, NULL, &err) == MS_EINVAL,
          "format q accepted");
    f = (struct ms_xfmt){1, 'x', 'k'};
    CHECK(ms_format_x(&f, BASE, mem_read, &m, NULL, NULL, &out, NULL, &err) == MS_EINVAL,
          "size k accepted");
    f = (struct ms_xfmt){1, 'x', 'w'};
    CHECK(ms_format_x(&f, BASE, NULL, NULL, NULL, NULL, &out, NULL, &err) == MS_EINVAL,
          "no reader accepted");
    ms_strbuf_free(&out);
}

int main(void)
{
    build_image();
    test_parse();
    test_output();
    test_symbols();
    test_unreadable();
    test_bad_struct();
    return check_done("test_format");
}
