#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

struct progress {
    struct timespec start, last;
};

static double seconds_between(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* A line on the terminal, redrawn at most ten times a second. */
static void show_progress(void *arg, uint64_t done, uint64_t total)
{
    struct progress *p = arg;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (done < total && seconds_between(&p->last, &now) < 0.1)
        return;
    p->last = now;
    double secs = seconds_between(&p->start, &now);
    fprintf(stderr, "\rmemsrv: export-vmcore: %llu of %llu MiB (%3.0f%%), %.0f MiB/s ",
            (unsigned long long)(done >> 20), (unsigned long long)(total >> 20),
            total ? 100.0 * (double)done / (double)total : 100.0,
            secs > 0 ? (double)(done >> 20) / secs : 0.0);
    fflush(stderr);
}

/* export-vmcore -o OUT: a kdump-style vmcore of the guest-physical space the
 * options name (RAM, or a nested guest's through --eptp/--ncr3) that crash
 * and drgn open. */
int cmd_export(struct cli *cli, int argc, char **argv)
{
    const char *out = NULL;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet"))
            quiet = true;
        else
            return cli_usage("usage: export-vmcore -o OUT [-q]");
    }
    if (!out)
        return cli_usage("export-vmcore needs -o OUT (the vmcore file to write)");
    if (cli->has_cr3)
        return cli_usage("export-vmcore writes guest-physical memory with the kernel's own page "
                         "tables: no --cr3 (a nested guest: --eptp or --ncr3)");
    struct progress p;
    clock_gettime(CLOCK_MONOTONIC, &p.start);
    p.last = p.start;
    bool tty = !quiet && isatty(STDERR_FILENO);
    struct ms_vmcore_info info;
    int rc = cli_open(cli);
    if (!rc)
        rc = ms_target_export_vmcore(cli->t, cli->h, out, tty ? show_progress : NULL, &p, &info,
                                     &cli->err);
    if (tty)
        fputc('\n', stderr);
    if (rc)
        return cli_fail(cli);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (!quiet)
        fprintf(stderr,
                "memsrv: export-vmcore: %s: %llu ranges, %llu MiB of guest-physical memory, "
                "%llu MiB written (the rest zero pages, left as holes), %llu bytes unreadable; "
                "%u CPUs (%s); %.2f s\n",
                out, (unsigned long long)info.loads, (unsigned long long)(info.phys_bytes >> 20),
                (unsigned long long)(info.data_bytes >> 20), (unsigned long long)info.unreadable,
                info.ncpus, info.how, seconds_between(&p.start, &now));
    return 0;
}
