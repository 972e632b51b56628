#include <stdio.h>
#include <string.h>

#include "cli.h"

int cmd_ls(struct cli *cli, int argc, char **argv)
{
    bool inodes = false;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-i"))
            inodes = true;
        else if (argv[i][0] == '/' && !dir)
            dir = argv[i];
        else
            return cli_usage("usage: ls [-i] /DIR");
    }
    if (!dir)
        return cli_usage("usage: ls [-i] /DIR");
    if (cli_open(cli))
        return cli_fail(cli);
    struct ms_dir d;
    int rc = ms_target_dir_list(cli->t, cli->h, dir, &d, &cli->err);
    if (rc < 0)
        return cli_fail(cli);
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    ms_dir_format(&d, inodes, &sb);
    fwrite(ms_strbuf_str(&sb), 1, sb.len, stdout);
    ms_strbuf_free(&sb);
    ms_dir_free(&d);
    return 0;
}
