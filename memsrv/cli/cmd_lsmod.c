#include <stdio.h>
#include <string.h>

#include "cli.h"

int cmd_lsmod(struct cli *cli, int argc, char **argv)
{
    bool stats = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--stats"))
            stats = true;
        else
            return cli_usage("usage: lsmod [--stats]");
    }
    if (cli_open(cli))
        return cli_fail(cli);
    struct ms_module_list list;
    /* A walk cut short still prints what it read, then fails. */
    int rc = ms_target_modules(cli->t, cli->h, &list, &cli->err);
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    ms_modules_format(&list, &sb);
    fwrite(ms_strbuf_str(&sb), 1, sb.len, stdout);
    if (list.bad)
        fprintf(stderr, "memsrv: lsmod: %llu modules' users could not be read (shown as ?)\n",
                (unsigned long long)list.bad);
    ms_strbuf_reset(&sb);
    if (stats && rc == 0 && ms_target_types_source(cli->t, cli->h, &sb, &cli->err) == 0)
        fprintf(stderr, "memsrv: lsmod: %zu modules (types: %s)\n", list.count, ms_strbuf_str(&sb));
    ms_strbuf_free(&sb);
    ms_module_list_free(&list);
    return rc ? cli_fail(cli) : 0;
}
