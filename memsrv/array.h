/* Growable arrays: one overflow-checked way to make room, instead of the
 * grow-by-doubling idiom in every module that collects records. */
#ifndef MEMSRV_ARRAY_H
#define MEMSRV_ARRAY_H

#include <stdbool.h>
#include <stddef.h>

/* Makes *data (an array of *cap elements of elem_size bytes) hold at least
 * need elements, doubling from min_cap; *data and *cap change only on
 * success. False when the size overflows or memory runs out. */
bool ms_array_reserve(void **data, size_t *cap, size_t need, size_t elem_size, size_t min_cap);

/* For typed pointers: MS_ARRAY_RESERVE(&log->recs, &log->cap, n, 256). */
#define MS_ARRAY_RESERVE(pp, capp, need, min_cap)                                                  \
    ms_array_reserve((void **)(pp), (capp), (need), sizeof(**(pp)), (min_cap))

#endif
