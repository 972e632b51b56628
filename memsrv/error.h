/* Errors as values: every library call returns 0 or a negative MS_E* code and,
 * on failure, fills a message a user can act on (struct ms_err, memsrv.h).
 * Library code never prints. */
#ifndef MEMSRV_ERROR_H
#define MEMSRV_ERROR_H

#include <stddef.h>

#include "memsrv.h"

/* Sets *err (which may be NULL) and returns code, so callers can write
 * `return ms_err_set(err, MS_EINVAL, "...")`. Clears the hint and fault. */
int ms_err_set(struct ms_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends context ("reading PML4E: ") to an existing message; returns
 * err->code (or MS_EINVAL for a NULL err, when there is nothing to keep). */
int ms_err_prefix(struct ms_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records what would fix the error and the address that faulted. */
int ms_err_hint(struct ms_err *err, enum ms_hint hint);
int ms_err_fault(struct ms_err *err, uint64_t addr);

void ms_err_clear(struct ms_err *err);

#endif
