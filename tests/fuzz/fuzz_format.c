/* Fuzzes x/FMT: the input's first line is the format text (after '/'), the
 * rest is guest memory at 0x1000 with everything else unreadable. Every
 * format, size, count and byte pattern must give text or a clean error. */
#include <stdint.h>
#include <string.h>

#include "format.h"

#define BASE 0x1000u

struct mem {
    const uint8_t *data;
    size_t len;
};

static int mem_read(void *arg, uint64_t addr, void *buf, size_t len, size_t *done,
                    struct ms_err *err)
{
    const struct mem *m = arg;
    *done = 0;
    if (addr < BASE || addr - BASE >= m->len)
        return ms_err_set(err, MS_EOUTSIDE, "outside");
    size_t avail = m->len - (size_t)(addr - BASE);
    size_t n = len < avail ? len : avail;
    memcpy(buf, m->data + (addr - BASE), n);
    *done = n;
    return n < len ? ms_err_set(err, MS_EOUTSIDE, "outside") : 0;
}

static int sym(void *arg, uint64_t addr, char *out, size_t size)
{
    (void)arg;
    if ((addr & 0xf) != 0)
        return -1;
    memset(out, 'S', size); /* no terminator: the formatter must cope */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size < 16 ? size : 16);
    if (!nl)
        return 0;
    char text[17];
    size_t tlen = (size_t)(nl - data);
    memcpy(text, data, tlen);
    text[tlen] = '\0';
    struct ms_xfmt fmt = {1, 'x', 'w'};
    struct ms_err err;
    if (ms_xfmt_parse(text, &fmt, &err) != 0)
        return 0;
    if (fmt.count > 64)
        fmt.count = 64;
    struct mem m = {nl + 1, size - tlen - 1};
    struct ms_strbuf out;
    ms_strbuf_init(&out);
    uint64_t next;
    for (uint64_t start = BASE - 2; start < BASE + 3; start += 2) {
        ms_strbuf_reset(&out);
        int rc = ms_format_x(&fmt, start, mem_read, &m, (start & 2) ? sym : NULL, NULL, &out, &next,
                             &err);
        if (rc == 0 && next < start && fmt.count > 0)
            __builtin_trap(); /* next never goes backwards (no wrap here) */
    }
    ms_strbuf_free(&out);
    return 0;
}
