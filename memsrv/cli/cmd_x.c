#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "format.h"

static int read_top(void *arg, uint64_t addr, void *buf, size_t len, size_t *done,
                    struct ms_err *err)
{
    return ms_space_read(arg, addr, buf, len, done, err);
}

int cmd_x(struct cli *cli, int argc, char **argv)
{
    const char *cmd = argv[0];
    struct ms_xfmt fmt = {1, 'x', 'w'}; /* GDB's starting defaults */
    if (cmd[1] == '/') {
        if (ms_xfmt_parse(cmd + 2, &fmt, &cli->err))
            return cli_usage("%s", cli->err.msg);
    } else if (cmd[1] != '\0') {
        return cli_usage("unknown command '%s'", cmd);
    }
    if (argc != 2)
        return cli_usage("usage: x/FMT ADDR (one address expression; quote it if it has spaces)");
    if (cli_open(cli))
        return cli_fail(cli);
    uint64_t addr;
    if (cli_parse_addr(cli, argv[1], &addr))
        return cli_fail(cli);
    struct ms_strbuf out;
    ms_strbuf_init(&out);
    int rc = ms_format_x(&fmt, addr, read_top, cli->top, NULL, NULL, &out, NULL, &cli->err);
    fputs(ms_strbuf_str(&out), stdout);
    ms_strbuf_free(&out);
    fflush(stdout);
    return rc ? cli_fail(cli) : 0;
}
