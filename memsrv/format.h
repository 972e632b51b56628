/* GDB's x/FMT: the grammar (count, format letter, size letter) and the
 * output layout (address column, values per line), plus x/i through the
 * disassembler. Shared by the CLI, the server and the GDB extension. */
#ifndef MEMSRV_FORMAT_H
#define MEMSRV_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "strbuf.h"

struct ms_xfmt {
    uint64_t count; /* units (or strings / instructions) to show */
    char format;    /* x d u o t a c f s i z */
    char size;      /* b h w g */
};

/* Parses "16gx", "s", "3i" (the text after '/'), starting from *fmt, which
 * holds GDB's sticky defaults (last format and size); updates it. */
int ms_xfmt_parse(const char *text, struct ms_xfmt *fmt, struct ms_err *err);

/* Appends GDB's x output for fmt at addr to out. On an unreadable byte the
 * partial line is ended and the error says "Cannot access memory at address
 * 0x...", as GDB does. *next (may be NULL) gets the address after the last
 * unit shown, for a following bare `x`. sym may be NULL. */
int ms_format_x(const struct ms_xfmt *fmt, uint64_t addr, ms_read_fn read, void *read_arg,
                ms_symbolize_fn sym, void *sym_arg, struct ms_strbuf *out, uint64_t *next,
                struct ms_err *err);

#endif
