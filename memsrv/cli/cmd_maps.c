#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_maps(struct cli *cli, int argc, char **argv)
{
    bool stats = false;
    const char *pid_text = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--stats"))
            stats = true;
        else if (!pid_text && argv[i][0] != '-')
            pid_text = argv[i];
        else
            return cli_usage("usage: maps PID [--stats]");
    }
    if (!pid_text)
        return cli_usage("usage: maps PID [--stats]");
    char *end;
    errno = 0;
    long pid = strtol(pid_text, &end, 10);
    if (errno || *end || end == pid_text || pid < 0 || pid > INT32_MAX)
        return cli_usage("maps: %s is not a pid", pid_text);
    if (cli_open(cli))
        return cli_fail(cli);
    struct ms_vma_list list;
    /* A walk cut short still prints what it read, then fails. */
    int rc = ms_target_maps(cli->t, cli->h, (int32_t)pid, &list, &cli->err);
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    ms_maps_format(&list, &sb);
    fwrite(ms_strbuf_str(&sb), 1, sb.len, stdout);
    if (list.bad)
        fprintf(stderr, "memsrv: maps: %llu areas' names could not be read (shown as ?)\n",
                (unsigned long long)list.bad);
    ms_strbuf_reset(&sb);
    if (stats && rc == 0 && ms_target_types_source(cli->t, cli->h, &sb, &cli->err) == 0)
        fprintf(stderr, "memsrv: maps: %zu areas (types: %s)\n", list.count, ms_strbuf_str(&sb));
    ms_strbuf_free(&sb);
    ms_vma_list_free(&list);
    return rc ? cli_fail(cli) : 0;
}
