#include <stdio.h>
#include <string.h>

#include "cli.h"

/* ptype[/o] TYPE...: GDB's ptype from the kernel's own BTF; the words of
 * the type may come as separate arguments ("ptype/o struct task_struct"). */
int cmd_ptype(struct cli *cli, int argc, char **argv)
{
    const char *slash = strchr(argv[0], '/');
    if (argc < 2)
        return cli_usage("usage: ptype[/o] TYPE   (struct NAME, union NAME, enum NAME, a typedef)");
    char type[512] = "";
    size_t len = 0;
    for (int i = 1; i < argc; i++) {
        int n = snprintf(type + len, sizeof(type) - len, "%s%s", i > 1 ? " " : "", argv[i]);
        if (n < 0 || (size_t)n >= sizeof(type) - len)
            return cli_usage("type name too long");
        len += (size_t)n;
    }
    if (cli_open(cli))
        return cli_fail(cli);
    struct ms_strbuf out;
    ms_strbuf_init(&out);
    int rc = ms_target_ptype(cli->t, cli->h, slash ? slash + 1 : "", type, &out, &cli->err);
    fwrite(ms_strbuf_str(&out), 1, out.len, stdout);
    ms_strbuf_free(&out);
    return rc ? cli_fail(cli) : 0;
}
