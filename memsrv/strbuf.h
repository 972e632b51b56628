/* A growable text buffer: library formatters write here, fronts print it. */
#ifndef MEMSRV_STRBUF_H
#define MEMSRV_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

#include "memsrv.h"

void ms_strbuf_printf(struct ms_strbuf *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void ms_strbuf_putc(struct ms_strbuf *sb, char c);

#endif
