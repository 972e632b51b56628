/* GDB 13's x command, reimplemented: decode_format() for the grammar and
 * do_examine()/print_formatted()/val_print_string() for the layout, checked
 * line by line against gdb -batch on a core file
 * (tests/integration/test_format_gdb.py). Deliberate differences:
 * - characters are escaped as GDB does under LC_ALL=C (host charset ASCII):
 *   in a UTF-8 locale GDB prints valid UTF-8 text as is;
 * - negative counts (examining backwards) and counts above INT_MAX are
 *   rejected; output is capped at 256 MiB (MS_ELIMIT);
 * - x/sg silently means x/sb (GDB also warns);
 * - an instruction cut by unreadable memory is an error; GDB's disassembler
 *   shows a partial decode there ("rex.W", ".byte 0x5").
 * The symbolizer's string is printed as given: GDB shows "<main>" for an
 * offset of 0 and "<main+4>" otherwise. */
#include "format.h"

#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include "disasm.h"

#define PRINT_MAX 200       /* GDB's `print elements` default */
#define REPEAT_THRESHOLD 10 /* GDB's `print repeats` default */
#define STRING_CHUNK 8      /* GDB's read_string fetches 8 chars at a time */
#define OUTPUT_LIMIT (256u << 20)

static bool is_format(char c)
{
    return c != '\0' && strchr("xduotacfsiz", c) != NULL;
}

static bool is_size(char c)
{
    return c != '\0' && strchr("bhwg", c) != NULL;
}

int ms_xfmt_parse(const char *text, struct ms_xfmt *fmt, struct ms_err *err)
{
    if (!fmt)
        return ms_err_set(err, MS_EINVAL, "x: no format state given");
    char oformat = is_format(fmt->format) ? fmt->format : 'x';
    char osize = is_size(fmt->size) ? fmt->size : 'w';
    /* After strings GDB resets the remembered size to 'b'. */
    if (oformat == 's')
        osize = 'b';
    const char *p = text ? text : "";
    while (*p == ' ' || *p == '\t')
        p++;

    if (*p == '-')
        return ms_err_set(err, MS_EINVAL,
                          "x/%s: a negative count (examining memory backwards) is not supported",
                          text);
    uint64_t count = 1;
    if (isdigit((unsigned char)*p)) {
        count = 0;
        while (isdigit((unsigned char)*p)) {
            count = count * 10 + (uint64_t)(*p - '0');
            if (count > INT_MAX)
                return ms_err_set(err, MS_EINVAL, "x/%s: count too large (at most %d)", text,
                                  INT_MAX);
            p++;
        }
    }

    char format = '?', size = '?';
    for (;; p++) {
        if (is_size(*p))
            size = *p;
        else if (*p == 'r' || *p == 'm')
            ; /* raw / memory tags: no effect on plain memory */
        else if (*p >= 'a' && *p <= 'z')
            format = *p;
        else
            break;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != '\0')
        return ms_err_set(err, MS_EINVAL,
                          "x/%s: unexpected '%c'; expected [COUNT][FORMAT][SIZE] with FORMAT one "
                          "of x d u o t a c f s i z and SIZE one of b h w g",
                          text, *p);
    if (format != '?' && !is_format(format))
        return ms_err_set(err, MS_EINVAL, "Undefined output format \"%c\".", format);

    /* decode_format()'s defaults. */
    if (format == '?') {
        if (size == '?') {
            format = oformat;
            size = osize;
        } else {
            format = oformat == 'i' ? 'x' : oformat;
        }
    } else if (size == '?') {
        switch (format) {
        case 'a':
            size = 'g'; /* pointer size on x86-64 */
            break;
        case 'f':
            size = (osize == 'w' || osize == 'g') ? osize : 'g';
            break;
        case 'c':
        case 's':
            size = 'b';
            break;
        default:
            size = osize;
        }
    }
    /* GDB has no 8-byte characters: it warns and uses 'b'. */
    if (format == 's' && size == 'g')
        size = 'b';
    fmt->count = count;
    fmt->format = format;
    fmt->size = size;
    return 0;
}

static unsigned size_bytes(char size)
{
    switch (size) {
    case 'b':
        return 1;
    case 'h':
        return 2;
    case 'w':
        return 4;
    default:
        return 8;
    }
}

static uint64_t load_le(const uint8_t *b, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = n; i-- > 0;)
        v = (v << 8) | b[i];
    return v;
}

static int64_t sign_extend(uint64_t v, unsigned n)
{
    if (n >= 8)
        return (int64_t)v;
    unsigned shift = 64 - 8 * n;
    return (int64_t)(v << shift) >> shift;
}

static void put_addr(struct ms_strbuf *out, uint64_t a, ms_symbolize_fn sym, void *sym_arg)
{
    ms_strbuf_printf(out, "0x%" PRIx64, a);
    char name[256];
    if (sym && sym(sym_arg, a, name, sizeof(name)) == 0) {
        name[sizeof(name) - 1] = '\0';
        ms_strbuf_printf(out, " <%s>", name);
    }
}

static int mem_error(struct ms_err *err, int code, uint64_t bad)
{
    return ms_err_set(err, code < 0 ? code : MS_EOUTSIDE,
                      "Cannot access memory at address 0x%" PRIx64, bad);
}

/* Reads up to len bytes at addr; *got gets how many were read (a prefix).
 * Returns 0 when all were read, else the reader's negative code. Bytes past
 * the top of the 64-bit space count as unreadable. */
static int read_some(ms_read_fn read, void *arg, uint64_t addr, uint8_t *buf, size_t len,
                     size_t *got)
{
    *got = 0;
    if (len == 0)
        return 0;
    size_t avail = len;
    if (addr + (len - 1) < addr)
        avail = (size_t)(UINT64_MAX - addr) + 1;
    struct ms_err rerr;
    ms_err_clear(&rerr);
    size_t done = 0;
    int rc = read(arg, addr, buf, avail, &done, &rerr);
    if (rc < 0) {
        *got = done < avail ? done : avail;
        return rc;
    }
    *got = avail;
    return avail == len ? 0 : MS_EOUTSIDE;
}

/* print_wchar() of GDB's valprint.c, host charset ASCII. ok=false is an
 * undecodable sequence (GDB's WEOF): its bytes are shown escaped. */
static void put_wchar(struct ms_strbuf *out, bool ok, uint32_t w, const uint8_t *buf,
                      unsigned buflen, unsigned width, char quoter, bool *need_escape)
{
    bool ne = *need_escape;
    *need_escape = false;
    if (ok) {
        static const char named[] = "\aa\bb\ff\nn\rr\tt\vv";
        for (const char *n = named; *n; n += 2) {
            if ((uint32_t)(unsigned char)n[0] == w) {
                ms_strbuf_putc(out, '\\');
                ms_strbuf_putc(out, n[1]);
                return;
            }
        }
        if (w >= 0x20 && w <= 0x7e && !(ne && isxdigit((int)w))) {
            if (w == (uint32_t)(unsigned char)quoter || w == '\\')
                ms_strbuf_putc(out, '\\');
            ms_strbuf_putc(out, (char)w);
            return;
        }
    }
    unsigned i;
    for (i = 0; i + width <= buflen; i += width) {
        uint64_t v = load_le(buf + i, width);
        if (v <= 0777) {
            ms_strbuf_printf(out, "\\%03o", (unsigned)v);
            *need_escape = false;
        } else {
            ms_strbuf_printf(out, "\\x%" PRIx64, v);
            /* hex escapes have no length limit: a following hex digit must
             * be escaped too */
            *need_escape = true;
        }
    }
    for (; i < buflen; i++) {
        ms_strbuf_printf(out, "\\%03o", buf[i]);
        *need_escape = false;
    }
}

/* One character literal, as `x/c` shows it: 65 'A'. */
static void put_char_value(struct ms_strbuf *out, uint64_t v)
{
    int8_t c = (int8_t)(v & 0xff);
    uint8_t b = (uint8_t)c;
    bool ne = false;
    ms_strbuf_printf(out, "%d '", c);
    put_wchar(out, b < 0x80, b, &b, 1, 1, '\'', &ne);
    ms_strbuf_putc(out, '\'');
}

/* floatformat_mantissa(): the top (man_len % 32) bits with %lx, then 32-bit
 * groups with %08lx. */
static void put_nan_mantissa(struct ms_strbuf *out, uint64_t mant, unsigned man_len)
{
    unsigned first = man_len % 32 ? man_len % 32 : 32;
    unsigned rest = man_len - first;
    ms_strbuf_printf(out, "%" PRIx64, mant >> rest);
    while (rest > 0) {
        rest -= 32;
        ms_strbuf_printf(out, "%08" PRIx64, (mant >> rest) & 0xffffffffu);
    }
}

static void put_float(struct ms_strbuf *out, uint64_t bits, unsigned n)
{
    bool neg;
    uint64_t exp, mant, exp_max;
    unsigned man_len;
    if (n == 4) {
        neg = bits >> 31 & 1;
        exp = bits >> 23 & 0xff;
        exp_max = 0xff;
        mant = bits & 0x7fffff;
        man_len = 23;
    } else {
        neg = bits >> 63 & 1;
        exp = bits >> 52 & 0x7ff;
        exp_max = 0x7ff;
        mant = bits & ((UINT64_C(1) << 52) - 1);
        man_len = 52;
    }
    if (exp == exp_max) {
        if (mant == 0) {
            ms_strbuf_printf(out, "%sinf", neg ? "-" : "");
        } else {
            ms_strbuf_printf(out, "%snan(0x", neg ? "-" : "");
            put_nan_mantissa(out, mant, man_len);
            ms_strbuf_putc(out, ')');
        }
        return;
    }
    if (n == 4) {
        uint32_t b32 = (uint32_t)bits;
        float f;
        memcpy(&f, &b32, sizeof(f));
        ms_strbuf_printf(out, "%.9g", (double)f);
    } else {
        double d;
        memcpy(&d, &bits, sizeof(d));
        ms_strbuf_printf(out, "%.17g", d);
    }
}

/* print_scalar_formatted() for one unit of n bytes. */
static void put_value(struct ms_strbuf *out, char format, unsigned n, uint64_t v,
                      ms_symbolize_fn sym, void *sym_arg)
{
    switch (format) {
    case 'x':
    case 'z':
        ms_strbuf_printf(out, "0x%0*" PRIx64, (int)(2 * n), v);
        break;
    case 'o':
        if (v == 0)
            ms_strbuf_putc(out, '0');
        else
            ms_strbuf_printf(out, "0%" PRIo64, v);
        break;
    case 't':
        for (unsigned bit = 8 * n; bit-- > 0;)
            ms_strbuf_putc(out, (v >> bit & 1) ? '1' : '0');
        break;
    case 'd':
        ms_strbuf_printf(out, "%" PRId64, sign_extend(v, n));
        break;
    case 'u':
        ms_strbuf_printf(out, "%" PRIu64, v);
        break;
    case 'c':
        put_char_value(out, v);
        break;
    case 'a':
        /* the unit is a signed integer type: a 4-byte pointer sign-extends */
        put_addr(out, (uint64_t)sign_extend(v, n), sym, sym_arg);
        break;
    case 'f':
        if (n == 4 || n == 8)
            put_float(out, v, n);
        else /* no float type of that length: GDB shows the integer */
            ms_strbuf_printf(out, "%" PRId64, sign_extend(v, n));
        break;
    }
}

static bool out_too_big(const struct ms_strbuf *out)
{
    return out->failed || out->len > OUTPUT_LIMIT;
}

static int out_error(const struct ms_strbuf *out, struct ms_err *err)
{
    if (out->failed)
        return ms_err_set(err, MS_ENOMEM, "x: out of memory for the output");
    return ms_err_set(err, MS_ELIMIT, "x: output exceeds %u MiB; use a smaller count",
                      OUTPUT_LIMIT >> 20);
}

static int format_units(const struct ms_xfmt *fmt, uint64_t addr, ms_read_fn read, void *read_arg,
                        ms_symbolize_fn sym, void *sym_arg, struct ms_strbuf *out, uint64_t *next,
                        struct ms_err *err)
{
    unsigned n = size_bytes(fmt->size);
    unsigned per_line = fmt->size == 'w' ? 4 : fmt->size == 'g' ? 2 : 8;
    uint64_t a = addr, left = fmt->count;
    while (left > 0) {
        put_addr(out, a, sym, sym_arg);
        ms_strbuf_putc(out, ':');
        for (unsigned i = 0; i < per_line && left > 0; i++, left--) {
            ms_strbuf_putc(out, '\t');
            uint8_t buf[8];
            size_t got;
            int rc = read_some(read, read_arg, a, buf, n, &got);
            if (rc < 0) {
                ms_strbuf_putc(out, '\n');
                return mem_error(err, rc, a + got);
            }
            put_value(out, fmt->format, n, load_le(buf, n), sym, sym_arg);
            a += n;
            *next = a;
        }
        ms_strbuf_putc(out, '\n');
        if (out_too_big(out))
            return out_error(out, err);
    }
    return 0;
}

enum { CH_OK, CH_INVALID, CH_INCOMPLETE };

struct strchar {
    uint32_t value; /* the code point, for CH_OK */
    uint8_t kind;
    uint8_t buflen;
    uint8_t buf[8]; /* the original bytes */
    unsigned repeat;
};

/* Decodes n chars of width w as GDB's wchar_iterator does with target
 * charsets ASCII (w=1), UTF-16 (2) and UTF-32 (4), little-endian. */
static size_t decode_chars(const uint8_t *s, size_t n, unsigned w, struct strchar *out)
{
    size_t count = 0;
    for (size_t i = 0; i < n;) {
        struct strchar c = {0};
        uint32_t u = (uint32_t)load_le(s + i * w, w);
        c.kind = CH_OK;
        c.value = u;
        c.buflen = (uint8_t)w;
        size_t used = 1;
        if (w == 1) {
            if (u >= 0x80)
                c.kind = CH_INVALID;
        } else if (w == 2) {
            if (u >= 0xd800 && u <= 0xdbff) {
                if (i + 1 >= n) {
                    c.kind = CH_INCOMPLETE;
                } else {
                    uint32_t lo = (uint32_t)load_le(s + (i + 1) * w, w);
                    if (lo >= 0xdc00 && lo <= 0xdfff) {
                        c.value = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
                        c.buflen = 4;
                        used = 2;
                    } else {
                        c.kind = CH_INVALID;
                    }
                }
            } else if (u >= 0xdc00 && u <= 0xdfff) {
                c.kind = CH_INVALID;
            }
        } else if (u > 0x10ffff || (u >= 0xd800 && u <= 0xdfff)) {
            c.kind = CH_INVALID;
        }
        memcpy(c.buf, s + i * w, c.buflen);
        out[count++] = c;
        i += used;
        if (c.kind == CH_INCOMPLETE)
            break;
    }
    return count;
}

static bool same_char(const struct strchar *a, const struct strchar *b)
{
    if (a->kind != b->kind || a->kind == CH_INCOMPLETE)
        return false;
    if (a->kind == CH_OK)
        return a->value == b->value;
    return a->buflen == b->buflen && memcmp(a->buf, b->buf, a->buflen) == 0;
}

/* generic_printstr() + print_converted_chars_to_obstack(). */
static void put_string(struct ms_strbuf *out, const uint8_t *s, size_t nchars, unsigned w,
                       bool drop_nul, bool ellipsis)
{
    if (w == 2)
        ms_strbuf_putc(out, 'u');
    else if (w == 4)
        ms_strbuf_putc(out, 'U');
    if (drop_nul && nchars > 0)
        nchars--;
    if (nchars == 0) {
        ms_strbuf_append(out, "\"\"", 2);
        return;
    }
    struct strchar chars[PRINT_MAX];
    size_t n = decode_chars(s, nchars, w, chars);
    /* glibc's iconv reports an incomplete sequence at the end of the input
     * together with the character before it, which GDB then loses. */
    if (n >= 2 && chars[n - 1].kind == CH_INCOMPLETE && chars[n - 2].kind == CH_OK) {
        chars[n - 2] = chars[n - 1];
        n--;
    }
    /* group repeats */
    size_t groups = 0;
    for (size_t i = 0; i < n; i++) {
        if (groups > 0 && same_char(&chars[groups - 1], &chars[i])) {
            chars[groups - 1].repeat++;
        } else {
            chars[groups] = chars[i];
            chars[groups].repeat = 1;
            groups++;
        }
    }
    enum { START, SINGLE, REPEAT, INCOMPLETE } last = START;
    bool ne = false;
    for (size_t g = 0; g < groups; g++) {
        const struct strchar *c = &chars[g];
        bool ok = c->kind == CH_OK;
        if (c->kind == CH_INCOMPLETE) {
            if (last == SINGLE)
                ms_strbuf_putc(out, '"');
            if (last != START)
                ms_strbuf_append(out, ", ", 2);
            ms_strbuf_printf(out, "<incomplete sequence ");
            put_wchar(out, false, 0, c->buf, c->buflen, w, 0, &ne);
            ms_strbuf_putc(out, '>');
            last = INCOMPLETE;
            break;
        } else if (c->repeat > REPEAT_THRESHOLD) {
            if (last == SINGLE)
                ms_strbuf_putc(out, '"');
            if (last != START)
                ms_strbuf_append(out, ", ", 2);
            ms_strbuf_putc(out, '\'');
            put_wchar(out, ok, c->value, c->buf, c->buflen, w, '"', &ne);
            ms_strbuf_printf(out, "' <repeats %u times>", c->repeat);
            last = REPEAT;
        } else {
            if (last != SINGLE) {
                if (last != START)
                    ms_strbuf_append(out, ", ", 2);
                ms_strbuf_putc(out, '"');
            }
            for (unsigned j = 0; j < c->repeat; j++)
                put_wchar(out, ok, c->value, c->buf, c->buflen, w, '"', &ne);
            last = SINGLE;
        }
    }
    if (last == SINGLE)
        ms_strbuf_putc(out, '"');
    if (ellipsis)
        ms_strbuf_append(out, "...", 3);
}

/* val_print_string() with len -1: up to PRINT_MAX chars or the NUL. A read
 * error is shown inline and is not an error of the command, as in GDB. */
static int format_strings(const struct ms_xfmt *fmt, uint64_t addr, ms_read_fn read, void *read_arg,
                          ms_symbolize_fn sym, void *sym_arg, struct ms_strbuf *out, uint64_t *next,
                          struct ms_err *err)
{
    unsigned w = fmt->size == 'h' ? 2 : fmt->size == 'w' ? 4 : 1;
    uint64_t a = addr;
    for (uint64_t k = 0; k < fmt->count; k++) {
        put_addr(out, a, sym, sym_arg);
        ms_strbuf_append(out, ":\t", 2);
        uint8_t buf[PRINT_MAX * 4];
        size_t nchars = 0;
        bool found_nul = false, read_err = false;
        while (nchars < PRINT_MAX && !found_nul && !read_err) {
            size_t want = PRINT_MAX - nchars < STRING_CHUNK ? PRINT_MAX - nchars : STRING_CHUNK;
            size_t got;
            int rc = read_some(read, read_arg, a + nchars * w, buf + nchars * w, want * w, &got);
            size_t whole = got / w;
            for (size_t i = 0; i < whole; i++) {
                nchars++;
                if (load_le(buf + (nchars - 1) * w, w) == 0) {
                    found_nul = true;
                    break;
                }
            }
            if (rc < 0 && !found_nul)
                read_err = true;
        }
        uint64_t end = a + nchars * w;
        bool ellipsis = false;
        if (!found_nul && !read_err) {
            /* GDB peeks at the next char: "..." only if the string goes on */
            uint8_t peek[4];
            size_t got;
            if (read_some(read, read_arg, end, peek, w, &got) == 0 && load_le(peek, w) != 0)
                ellipsis = true;
        }
        if (!read_err || nchars > 0)
            put_string(out, buf, nchars, w, found_nul && !ellipsis, ellipsis);
        if (read_err)
            ms_strbuf_printf(out, "<error: Cannot access memory at address 0x%" PRIx64 ">", end);
        ms_strbuf_putc(out, '\n');
        a = end;
        *next = a;
        if (out_too_big(out))
            return out_error(out, err);
    }
    return 0;
}

static int format_insns(const struct ms_xfmt *fmt, uint64_t addr, ms_read_fn read, void *read_arg,
                        ms_symbolize_fn sym, void *sym_arg, struct ms_strbuf *out, uint64_t *next,
                        struct ms_err *err)
{
    struct ms_disasm d;
    int rc = ms_disasm_open(&d, err);
    if (rc < 0)
        return rc;
    uint64_t a = addr;
    for (uint64_t k = 0; k < fmt->count; k++) {
        /* GDB's pc_prefix: "=> " marks the current pc; there is none here */
        ms_strbuf_append(out, "   ", 3);
        put_addr(out, a, sym, sym_arg);
        ms_strbuf_append(out, ":\t", 2);
        uint8_t buf[MS_DISASM_MAX_INSN];
        size_t got;
        int rrc = read_some(read, read_arg, a, buf, sizeof(buf), &got);
        if (rrc < 0 && got == 0) {
            ms_strbuf_putc(out, '\n');
            rc = mem_error(err, rrc, a);
            break;
        }
        size_t len;
        rc = ms_disasm_one(&d, buf, got, a, sym, sym_arg, out, &len, err);
        if (rc < 0)
            break;
        if (len == 0) {
            if (rrc < 0) {
                /* the instruction runs into unreadable memory */
                ms_strbuf_putc(out, '\n');
                rc = mem_error(err, rrc, a + got);
                break;
            }
            ms_strbuf_append(out, "(bad)", 5);
            len = 1;
        }
        ms_strbuf_putc(out, '\n');
        a += len;
        *next = a;
        if (out_too_big(out)) {
            rc = out_error(out, err);
            break;
        }
    }
    ms_disasm_close(&d);
    return rc;
}

int ms_format_x(const struct ms_xfmt *fmt, uint64_t addr, ms_read_fn read, void *read_arg,
                ms_symbolize_fn sym, void *sym_arg, struct ms_strbuf *out, uint64_t *next,
                struct ms_err *err)
{
    uint64_t next_local;
    if (!next)
        next = &next_local;
    *next = addr;
    if (!fmt || !read || !out)
        return ms_err_set(err, MS_EINVAL, "x: missing format, reader or output");
    if (!is_format(fmt->format))
        return ms_err_set(err, MS_EINVAL, "Undefined output format \"%c\".",
                          fmt->format ? fmt->format : '?');
    if (!is_size(fmt->size) && fmt->format != 'i')
        return ms_err_set(err, MS_EINVAL, "x: invalid size letter '%c' (expected b, h, w or g)",
                          fmt->size ? fmt->size : '?');
    int rc;
    if (fmt->format == 's')
        rc = format_strings(fmt, addr, read, read_arg, sym, sym_arg, out, next, err);
    else if (fmt->format == 'i')
        rc = format_insns(fmt, addr, read, read_arg, sym, sym_arg, out, next, err);
    else
        rc = format_units(fmt, addr, read, read_arg, sym, sym_arg, out, next, err);
    if (rc == 0 && out->failed)
        return out_error(out, err);
    return rc;
}
