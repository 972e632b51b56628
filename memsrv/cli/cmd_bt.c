#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* bt PID... | bt --all | bt --cpu N: the kernel stacks of the guest's
 * tasks (or of the one running on CPU N), unwound with the kernel's ORC
 * tables; no vmlinux needed for names (kallsyms). */
int cmd_bt(struct cli *cli, int argc, char **argv)
{
    if (cli->cpu >= 0) { /* --cpu N, taken among the global options */
        if (argc != 1)
            return cli_usage("usage: bt --cpu N (no pids, no --all)");
        cli->cpu_names_task = true;
        struct ms_strbuf sb;
        ms_strbuf_init(&sb);
        int rc = cli_open(cli);
        if (rc == 0)
            rc = ms_target_cpu_backtrace(cli->t, cli->h, (uint32_t)cli->cpu, &sb, &cli->err);
        fwrite(ms_strbuf_str(&sb), 1, sb.len, stdout);
        ms_strbuf_free(&sb);
        return rc ? cli_fail(cli) : 0;
    }
    bool all = false;
    int32_t *pids = calloc((size_t)argc, sizeof(*pids));
    size_t npids = 0;
    if (!pids)
        return cli_usage("out of memory");
    for (int i = 1; i < argc; i++) {
        char *end;
        long v = strtol(argv[i], &end, 10);
        if (!strcmp(argv[i], "--all")) {
            all = true;
        } else if (*argv[i] && !*end && v >= 0 && v <= INT32_MAX) {
            pids[npids++] = (int32_t)v;
        } else {
            free(pids);
            return cli_usage("bt: %s is neither a pid nor --all", argv[i]);
        }
    }
    if (all == (npids > 0)) {
        free(pids);
        return cli_usage("usage: bt PID... | bt --all | bt --cpu N");
    }
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    int rc = cli_open(cli);
    if (rc == 0)
        rc = ms_target_backtrace(cli->t, cli->h, pids, npids, &sb, &cli->err);
    fwrite(ms_strbuf_str(&sb), 1, sb.len, stdout);
    ms_strbuf_free(&sb);
    free(pids);
    return rc ? cli_fail(cli) : 0;
}
