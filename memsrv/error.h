/* Errors as values: every library call returns 0 or a negative MS_E* code and,
 * on failure, fills a message a user can act on (struct ms_err, memsrv.h).
 * Library code never prints. */
#ifndef MEMSRV_ERROR_H
#define MEMSRV_ERROR_H

#include <stddef.h>

#include "memsrv.h"

/* Records what would fix the error and the address that faulted. */
void ms_err_hint(struct ms_err *err, enum ms_hint hint);
void ms_err_fault(struct ms_err *err, uint64_t addr);

#endif
