/* A growable text buffer: library formatters write here, fronts print it. */
#ifndef MEMSRV_STRBUF_H
#define MEMSRV_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct ms_strbuf {
    char *data; /* NUL-terminated; NULL until the first append */
    size_t len;
    size_t cap;
    bool failed; /* an allocation failed; data holds what fit */
};

void ms_strbuf_init(struct ms_strbuf *sb);
void ms_strbuf_free(struct ms_strbuf *sb);
void ms_strbuf_reset(struct ms_strbuf *sb);
void ms_strbuf_printf(struct ms_strbuf *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void ms_strbuf_append(struct ms_strbuf *sb, const char *s, size_t len);
void ms_strbuf_putc(struct ms_strbuf *sb, char c);
/* The text so far ("" when empty). */
const char *ms_strbuf_str(const struct ms_strbuf *sb);

#endif
