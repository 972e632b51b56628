#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_dmesg(struct cli *cli, int argc, char **argv)
{
    struct ms_dmesg_opts o = {MS_DMESG_PLAIN, -1};
    bool stats = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--raw") || !strcmp(argv[i], "-r")) {
            o.style = MS_DMESG_RAW;
        } else if (!strcmp(argv[i], "--crash")) {
            o.style = MS_DMESG_CRASH;
        } else if (!strcmp(argv[i], "--no-vmcoreinfo")) {
            cli->no_vmcoreinfo = true;
        } else if (!strcmp(argv[i], "--stats")) {
            stats = true;
        } else if (!strcmp(argv[i], "--level") && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 0 || v > 7)
                return cli_usage("--level takes 0..7 (records at or below it are shown)");
            o.max_level = (int)v;
        } else {
            return cli_usage(
                "usage: dmesg [--raw|--crash] [--level N] [--stats] [--no-vmcoreinfo]");
        }
    }
    if (cli->no_vmcoreinfo && cli->connect)
    {
        ms_err_set(&cli->err, MS_EINVAL,
                   "--no-vmcoreinfo works on local memory only (not with --connect)");
        return cli_fail(cli);
    }
    struct ms_strbuf sb;
    struct ms_dmesg_info info;
    ms_strbuf_init(&sb);
    if (cli_open(cli) || ms_target_dmesg(cli->t, cli->h, &o, &sb, &info, &cli->err)) {
        ms_strbuf_free(&sb);
        return cli_fail(cli);
    }
    fwrite(ms_strbuf_str(&sb), 1, sb.len, stdout);
    if (stats || info.bad || !info.consistent)
        fprintf(stderr,
                "memsrv: dmesg: %llu records, %llu bad, %llu lost, %llu incomplete, %llu "
                "truncated, %u retries%s%s%s (kernel: %s)\n",
                (unsigned long long)info.records, (unsigned long long)info.bad,
                (unsigned long long)info.lost, (unsigned long long)info.incomplete,
                (unsigned long long)info.truncated, info.retries,
                info.consistent ? "" : ", ring moved during the read",
                info.bad ? "; first bad: " : "", info.bad ? info.first_bad : "", info.how);
    int status = sb.failed ? 1 : 0;
    ms_strbuf_free(&sb);
    return status;
}
