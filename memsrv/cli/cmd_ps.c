#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_ps(struct cli *cli, int argc, char **argv)
{
    cli->no_vmcoreinfo = argc == 2 && !strcmp(argv[1], "--no-vmcoreinfo");
    if (argc != 1 && !cli->no_vmcoreinfo)
        return cli_usage("usage: ps [--no-vmcoreinfo]");
    if (cli_open(cli))
        return cli_fail(cli);
    struct ms_task *tasks;
    size_t n;
    uint64_t bad;
    /* A walk cut short still prints what it read, then fails. */
    int rc = ms_target_tasks(cli->t, cli->h, &tasks, &n, &bad, &cli->err);
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    ms_tasks_format(tasks, n, &sb);
    fwrite(ms_strbuf_str(&sb), 1, sb.len, stdout);
    ms_strbuf_free(&sb);
    free(tasks);
    if (bad)
        fprintf(stderr, "memsrv: ps: %llu tasks had unreadable fields\n", (unsigned long long)bad);
    return rc ? cli_fail(cli) : 0;
}
