/* Fields of a guest struct read out of a copy of its bytes: little-endian
 * getters (memcpy: no alignment assumed) and the span [lo, hi) a struct's
 * fields cover, so that a decoder reads the struct once and never past
 * that copy. */
#ifndef MEMSRV_FIELDS_H
#define MEMSRV_FIELDS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "error.h"

static inline uint64_t ms_get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint32_t ms_get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* [*lo, *hi) of n fields at off[i] of size[i] bytes. An offset past max
 * means the layout is not of a `what` (a type source gone wrong):
 * MS_EFORMAT naming it. */
int ms_fields_span(const uint64_t *off, const uint64_t *size, size_t n, uint64_t max,
                   const char *what, uint64_t *lo, uint64_t *hi, struct ms_err *err);

#endif
