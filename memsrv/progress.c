/* Progress of long work, reported in bounded steps (progress.h). */
#include "progress.h"

void ms_progress_start(struct ms_progress *p, ms_progress_fn fn, void *arg, const char *what,
                       uint64_t total)
{
    p->fn = fn;
    p->arg = arg;
    p->what = what;
    p->total = total;
    p->next = 0;
    ms_progress_update(p, 0);
}

void ms_progress_update(struct ms_progress *p, uint64_t done)
{
    if (!p->fn || done < p->next || done >= p->total)
        return;
    uint64_t step = p->total / 256 ? p->total / 256 : 1;
    p->next = done - done % step + step;
    p->fn(p->arg, p->what, done, p->total);
}

void ms_progress_end(struct ms_progress *p)
{
    if (p->fn)
        p->fn(p->arg, p->what, p->total, p->total);
    p->fn = NULL;
}
