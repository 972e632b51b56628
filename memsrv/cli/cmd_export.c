#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

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
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    struct ms_vmcore_info info;
    /* progress: the target's own, drawn on a terminal (main.c) */
    int rc = cli_open(cli);
    if (!rc)
        rc = ms_target_export_vmcore(cli->t, cli->h, out, NULL, NULL, &info, &cli->err);
    if (rc)
        return cli_fail(cli);
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (!quiet)
        fprintf(stderr,
                "memsrv: export-vmcore: %s: %llu ranges, %llu MiB of guest-physical memory, "
                "%llu MiB written (the rest zero pages, left as holes), %llu bytes unreadable; "
                "%u CPUs (%s); %.2f s\n",
                out, (unsigned long long)info.loads, (unsigned long long)(info.phys_bytes >> 20),
                (unsigned long long)(info.data_bytes >> 20), (unsigned long long)info.unreadable,
                info.ncpus, info.how,
                (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9);
    return 0;
}
