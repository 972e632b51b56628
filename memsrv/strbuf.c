#include "strbuf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"

void ms_strbuf_init(struct ms_strbuf *sb)
{
    memset(sb, 0, sizeof(*sb));
}

void ms_strbuf_free(struct ms_strbuf *sb)
{
    free(sb->data);
    ms_strbuf_init(sb);
}

void ms_strbuf_reset(struct ms_strbuf *sb)
{
    sb->len = 0;
    if (sb->data)
        sb->data[0] = '\0';
}

static bool reserve(struct ms_strbuf *sb, size_t extra)
{
    if (sb->failed)
        return false;
    if (extra > SIZE_MAX - sb->len - 1 ||
        !MS_ARRAY_RESERVE(&sb->data, &sb->cap, sb->len + extra + 1, 256)) {
        sb->failed = true;
        return false;
    }
    return true;
}

void ms_strbuf_append(struct ms_strbuf *sb, const char *s, size_t len)
{
    if (!reserve(sb, len))
        return;
    memcpy(sb->data + sb->len, s, len);
    sb->len += len;
    sb->data[sb->len] = '\0';
}

void ms_strbuf_putc(struct ms_strbuf *sb, char c)
{
    ms_strbuf_append(sb, &c, 1);
}

void ms_strbuf_printf(struct ms_strbuf *sb, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(small)) {
        ms_strbuf_append(sb, small, (size_t)n);
        return;
    }
    if (!reserve(sb, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

const char *ms_strbuf_str(const struct ms_strbuf *sb)
{
    return sb->data ? sb->data : "";
}
