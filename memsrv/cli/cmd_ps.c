#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_ps(struct cli *cli, int argc, char **argv)
{
    bool stats = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-vmcoreinfo"))
            cli->no_vmcoreinfo = true;
        else if (!strcmp(argv[i], "--stats"))
            stats = true;
        else
            return cli_usage("usage: ps [--stats] [--no-vmcoreinfo]");
    }
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
    free(tasks);
    if (bad)
        fprintf(stderr, "memsrv: ps: %llu tasks had unreadable fields\n", (unsigned long long)bad);
    ms_strbuf_reset(&sb);
    /* which struct layouts the walk used: DWARF, the kernel's BTF, VMCOREINFO */
    if (stats && rc == 0 && ms_target_types_source(cli->t, cli->h, &sb, &cli->err) == 0)
        fprintf(stderr, "memsrv: ps: %zu tasks (types: %s)\n", n, ms_strbuf_str(&sb));
    ms_strbuf_free(&sb);
    return rc ? cli_fail(cli) : 0;
}
