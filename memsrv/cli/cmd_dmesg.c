#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linux.h"

/* The log and its ring's health: from the kernel opened here, or from the
 * server's (--connect). */
static int get_log(struct cli *cli, bool no_vmci, const struct ms_dmesg_opts *o,
                   struct ms_strbuf *sb, struct ms_client_dmesg *info)
{
    if (cli->connect) {
        if (no_vmci)
            return ms_err_set(&cli->err, MS_EINVAL,
                              "--no-vmcoreinfo works on local memory only (not with --connect)");
        int rc = cli_linux_remote(cli);
        return rc ? rc : ms_client_dmesg(&cli->client, cli->handle, o, sb, info, &cli->err);
    }
    struct ms_kernel *k;
    int rc = cli_linux_open(cli, &k, no_vmci);
    if (rc)
        return rc;
    struct ms_printk_log log;
    ms_printk_log_init(&log);
    rc = ms_kernel_dmesg(k, &log, &cli->err);
    if (rc >= 0) {
        rc = 0;
        ms_dmesg_format(&log, o, sb);
        *info = (struct ms_client_dmesg){
            log.count,      log.bad, log.lost, log.incomplete, log.truncated, log.retries,
            log.consistent, "",      ""};
        snprintf(info->first_bad, sizeof(info->first_bad), "%s", log.first_bad);
        snprintf(info->how, sizeof(info->how), "%s", k->how);
    }
    ms_printk_log_free(&log);
    ms_kernel_close(k);
    return rc;
}

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
    struct ms_strbuf sb;
    struct ms_client_dmesg info;
    ms_strbuf_init(&sb);
    if (get_log(cli, no_vmci, &o, &sb, &info)) {
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
