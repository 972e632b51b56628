#include <stdio.h>
#include <string.h>

#include "cli.h"

int cmd_ptdump(struct cli *cli, int argc, char **argv)
{
    uint64_t start = 0, end = UINT64_MAX;
    int pos = 0;
    bool user = false, kernel = false;
    const char *bounds[2];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--user"))
            user = true;
        else if (!strcmp(argv[i], "--kernel"))
            kernel = true;
        else if (pos < 2)
            bounds[pos++] = argv[i];
        else
            return cli_usage("usage: ptdump [--user|--kernel] [START [END]]");
    }
    if (cli_open(cli))
        return cli_fail(cli);
    /* Without --cr3, a symbol file means the kernel's own page tables. */
    ms_handle h = cli->h;
    if (!cli->has_cr3 && (cli->vmlinux || cli->system_map) && cli_kernel_handle(cli, &h))
        return cli_fail(cli);
    if (user)
        end = 0x7fffffffffffffffULL;
    if (kernel)
        start = 0x8000000000000000ULL;
    uint64_t *dst[2] = {&start, &end};
    for (int i = 0; i < pos; i++) {
        ms_handle ignored;
        if (cli_addr(cli, bounds[i], dst[i], &ignored))
            return cli_usage("%s", cli->err.msg);
    }
    struct ms_strbuf out;
    ms_strbuf_init(&out);
    int rc = ms_target_ptdump(cli->t, h, start, end, &out, &cli->err);
    fputs(ms_strbuf_str(&out), stdout);
    ms_strbuf_free(&out);
    fflush(stdout);
    return rc ? cli_fail(cli) : 0;
}
