/* Progress of long work (discover's scan, a DWARF load), reported to the
 * caller's ms_progress_fn (memsrv.h) a bounded number of times: about every
 * 1/256 of the total, and once at the end. The library never draws. */
#ifndef MEMSRV_PROGRESS_H
#define MEMSRV_PROGRESS_H

#include <stdint.h>

#include "memsrv.h"

struct ms_progress {
    ms_progress_fn fn; /* NULL: nobody listens */
    void *arg;
    const char *what;
    uint64_t total, next;
};

void ms_progress_start(struct ms_progress *p, ms_progress_fn fn, void *arg, const char *what,
                       uint64_t total);
/* done of total so far; reports when it crossed the next step. */
void ms_progress_update(struct ms_progress *p, uint64_t done);
/* The work is over (done == total), also when it stopped early. */
void ms_progress_end(struct ms_progress *p);

#endif
