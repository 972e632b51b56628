#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linux.h"

int cmd_dmesg(struct cli *cli, int argc, char **argv)
{
    struct ms_dmesg_opts o = {MS_DMESG_PLAIN, -1};
    bool stats = false, no_vmci = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--raw") || !strcmp(argv[i], "-r")) {
            o.style = MS_DMESG_RAW;
        } else if (!strcmp(argv[i], "--crash")) {
            o.style = MS_DMESG_CRASH;
        } else if (!strcmp(argv[i], "--no-vmcoreinfo")) {
            no_vmci = true;
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
    struct ms_kernel *k;
    if (cli_linux_open(cli, &k, no_vmci))
        return cli_fail(cli);
    struct ms_printk_log log;
    ms_printk_log_init(&log);
    int rc = ms_kernel_dmesg(k, &log, &cli->err);
    if (rc < 0) {
        ms_printk_log_free(&log);
        ms_kernel_close(k);
        return cli_fail(cli);
    }
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    ms_dmesg_format(&log, &o, &sb);
    fwrite(ms_strbuf_str(&sb), 1, sb.len, stdout);
    if (stats || log.bad || !log.consistent)
        fprintf(stderr,
                "memsrv: dmesg: %zu records, %llu bad, %llu lost, %llu incomplete, %llu "
                "truncated, %u retries%s%s%s (kernel: %s)\n",
                log.count, (unsigned long long)log.bad, (unsigned long long)log.lost,
                (unsigned long long)log.incomplete, (unsigned long long)log.truncated, log.retries,
                log.consistent ? "" : ", ring moved during the read",
                log.bad ? "; first bad: " : "", log.bad ? log.first_bad : "", k->how);
    int status = sb.failed ? 1 : 0;
    ms_strbuf_free(&sb);
    ms_printk_log_free(&log);
    ms_kernel_close(k);
    return status;
}
