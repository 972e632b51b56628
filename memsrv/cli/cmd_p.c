#include <stdio.h>
#include <string.h>

#include "cli.h"

/* p[/FMT] EXPR...: GDB's print over the kernel's own BTF and memory; the
 * words of the expression may come as separate arguments. */
int cmd_p(struct cli *cli, int argc, char **argv)
{
    const char *slash = strchr(argv[0], '/');
    if (argc < 2)
        return cli_usage("usage: p[/FMT] EXPR   (e.g. p init_task.comm, p/x init_task.pid)");
    char expr[1100] = "";
    size_t len = 0;
    for (int i = 1; i < argc; i++) {
        int n = snprintf(expr + len, sizeof(expr) - len, "%s%s", i > 1 ? " " : "", argv[i]);
        if (n < 0 || (size_t)n >= sizeof(expr) - len)
            return cli_usage("expression too long");
        len += (size_t)n;
    }
    if (cli_open(cli))
        return cli_fail(cli);
    struct ms_strbuf out;
    ms_strbuf_init(&out);
    int rc = ms_target_print(cli->t, cli->h, slash ? slash + 1 : "", expr, &out, &cli->err);
    fwrite(ms_strbuf_str(&out), 1, out.len, stdout);
    ms_strbuf_free(&out);
    return rc ? cli_fail(cli) : 0;
}
