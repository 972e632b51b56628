#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "linux.h"
#include "report.h"

int cmd_ptdump(struct cli *cli, int argc, char **argv)
{
    uint64_t start = 0, end = UINT64_MAX;
    int pos = 0;
    bool user = false, kernel = false;
    uint64_t bounds[2];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--user"))
            user = true;
        else if (!strcmp(argv[i], "--kernel"))
            kernel = true;
        else if (pos < 2) {
            if (cli_parse_addr(cli, argv[i], &bounds[pos]))
                return cli_usage("%s", cli->err.msg);
            pos++;
        } else
            return cli_usage("usage: ptdump [--user|--kernel] [START [END]]");
    }
    struct ms_kernel *symbols;
    if (cli_open_addressing(cli, &symbols))
        return cli_fail(cli);
    if (!cli->remote && cli->top == cli->phys)
        return cli_usage("ptdump needs page tables: give --cr3, --eptp or --ncr3");
    if (user)
        end = 0x7fffffffffffffffULL;
    if (kernel)
        start = 0x8000000000000000ULL;
    if (pos >= 1)
        start = bounds[0];
    if (pos >= 2)
        end = bounds[1];
    struct ms_strbuf out;
    ms_strbuf_init(&out);
    int rc = cli->remote ? ms_client_ptdump(&cli->client, cli->handle, start, end, &out, &cli->err)
                         : ms_report_ptdump(cli->top, start, end, &out, &cli->err);
    fputs(ms_strbuf_str(&out), stdout);
    ms_strbuf_free(&out);
    fflush(stdout);
    return rc ? cli_fail(cli) : 0;
}
