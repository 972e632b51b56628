/* Walking the backed ranges of a guest-physical space: the RAM regions of a
 * physical space, or the mapped ranges of an EPT/NPT space (a nested guest's
 * physical memory), so scans never probe holes page by page. */
#ifndef MEMSRV_PHYSSCAN_H
#define MEMSRV_PHYSSCAN_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "space.h"

struct ms_phys_range {
    uint64_t start, len;
};

/* Fills *out (malloc'd, sorted, merged) with the backed ranges of phys.
 * For EPT/NPT: the parts of its mappings that land in RAM, at most RAM's
 * size of them (more is aliasing) from at most RAM pages + 64K leaves.
 * Errors when phys is a first-stage paging space (not physical). */
int ms_phys_ranges(struct ms_space *phys, struct ms_phys_range **out, size_t *count,
                   struct ms_err *err);

/* Searches every backed byte for needle, calling fn for each hit (a non-zero
 * return stops the scan and is returned). Reads in large chunks with an
 * overlap so hits across chunk edges are found. */
typedef int (*ms_phys_hit_fn)(void *arg, uint64_t addr);
int ms_phys_search(struct ms_space *phys, const void *needle, size_t needle_len, ms_phys_hit_fn fn,
                   void *arg, struct ms_err *err);

#endif
