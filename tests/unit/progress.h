/* A progress callback for the unit tests: records what the library
 * reported (ms_progress_fn), for checks on order and completion. */
#ifndef TESTS_PROGRESS_H
#define TESTS_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

/* What a progress callback saw: calls, order, the end. */
struct seen_progress {
    unsigned calls, backwards;
    uint64_t first, last, total;
    char what[32];
};

static void on_progress(void *arg, const char *what, uint64_t done, uint64_t total)
{
    struct seen_progress *s = arg;
    if (s->calls == 0)
        s->first = done;
    else if (done < s->last)
        s->backwards++;
    s->calls++;
    s->last = done;
    s->total = total;
    snprintf(s->what, sizeof(s->what), "%s", what);
}

#endif
