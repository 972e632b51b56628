#include <stdio.h>
#include <string.h>

#include "cli.h"

int cmd_x(struct cli *cli, int argc, char **argv)
{
    const char *cmd = argv[0];
    if (cmd[1] != '/' && cmd[1] != '\0')
        return cli_usage("unknown command '%s'", cmd);
    if (argc != 2)
        return cli_usage("usage: x/FMT ADDR (one address expression; quote it if it has spaces)");
    if (cli_open(cli))
        return cli_fail(cli);
    uint64_t addr;
    ms_handle h;
    if (cli_addr(cli, argv[1], &addr, &h))
        return cli_fail(cli);
    struct ms_strbuf out;
    ms_strbuf_init(&out);
    int rc = ms_target_x(cli->t, h, cmd[1] == '/' ? cmd + 2 : "", addr, NULL, &out, &cli->err);
    fputs(ms_strbuf_str(&out), stdout);
    ms_strbuf_free(&out);
    fflush(stdout);
    if (rc == MS_EINVAL && cli->err.code == MS_EINVAL && !out.len && !cli->err.has_fault)
        return cli_usage("%s", cli->err.msg); /* a bad format */
    return rc ? cli_fail(cli) : 0;
}
