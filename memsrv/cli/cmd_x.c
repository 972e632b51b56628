#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "linux.h"
#include "format.h"
#include "kernel.h"
#include "symbols.h"

static int read_top(void *arg, uint64_t addr, void *buf, size_t len, size_t *done,
                    struct ms_err *err)
{
    return ms_space_read(arg, addr, buf, len, done, err);
}

/* "<sym+off>" for GDB's address column, from the kernel's symbols. */
static int symbolize(void *arg, uint64_t addr, char *out, size_t size)
{
    const struct ms_kernel *k = arg;
    const struct ms_symbol *sym;
    uint64_t off;
    if (!k->syms || ms_symtab_addr(k->syms, addr, &sym, &off, NULL) != 0)
        return -1;
    if (off)
        snprintf(out, size, "%s+%llu", sym->name, (unsigned long long)off);
    else
        snprintf(out, size, "%s", sym->name);
    return 0;
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
    struct ms_kernel *symbols;
    if (cli_open_addressing(cli, &symbols))
        return cli_fail(cli);
    uint64_t addr;
    if (cli_parse_addr(cli, argv[1], &addr))
        return cli_fail(cli);
    struct ms_strbuf out;
    ms_strbuf_init(&out);
    int rc = cli->remote ? ms_client_x(&cli->client, cli->handle, cmd[1] == '/' ? cmd + 2 : "",
                                       addr, &out, &cli->err)
                         : ms_format_x(&fmt, addr, read_top, cli->top, symbols ? symbolize : NULL,
                                       symbols, &out, NULL, &cli->err);
    fputs(ms_strbuf_str(&out), stdout);
    ms_strbuf_free(&out);
    fflush(stdout);
    return rc ? cli_fail(cli) : 0;
}
