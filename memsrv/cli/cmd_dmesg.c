#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* dmesg --follow: new records as the running guest logs them, until
 * interrupted. Each round re-reads the RAM (flush) and the ring. */
static int follow(struct cli *cli, const struct ms_dmesg_opts *o, unsigned interval_ms)
{
    struct ms_dmesg_cursor cur = {0};
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    struct timespec pause = {interval_ms / 1000, (long)(interval_ms % 1000) * 1000000L};
    for (;;) {
        ms_strbuf_reset(&sb);
        uint64_t lost;
        if (ms_target_flush(cli->t, &cli->err) ||
            ms_target_dmesg_next(cli->t, cli->h, o, &cur, &sb, &lost, &cli->err)) {
            ms_strbuf_free(&sb);
            return cli_fail(cli);
        }
        if (sb.len) {
            fwrite(ms_strbuf_str(&sb), 1, sb.len, stdout);
            if (fflush(stdout) != 0)
                break; /* the reader went away */
        }
        nanosleep(&pause, NULL);
    }
    ms_strbuf_free(&sb);
    return 0;
}

int cmd_dmesg(struct cli *cli, int argc, char **argv)
{
    struct ms_dmesg_opts o = {MS_DMESG_PLAIN, -1};
    bool stats = false, follow_log = false;
    unsigned interval_ms = 100;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--raw") || !strcmp(argv[i], "-r")) {
            o.style = MS_DMESG_RAW;
        } else if (!strcmp(argv[i], "--crash")) {
            o.style = MS_DMESG_CRASH;
        } else if (!strcmp(argv[i], "--no-vmcoreinfo")) {
            cli->no_vmcoreinfo = true;
        } else if (!strcmp(argv[i], "--follow") || !strcmp(argv[i], "-w")) {
            follow_log = true;
        } else if (!strcmp(argv[i], "--interval") && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 60000)
                return cli_usage("--interval takes 1..60000 (milliseconds between reads)");
            interval_ms = (unsigned)v;
        } else if (!strcmp(argv[i], "--stats")) {
            stats = true;
        } else if (!strcmp(argv[i], "--level") && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 0 || v > 7)
                return cli_usage("--level takes 0..7 (records at or below it are shown)");
            o.max_level = (int)v;
        } else {
            return cli_usage("usage: dmesg [--raw|--crash] [--level N] [--stats] [--no-vmcoreinfo] "
                             "[--follow [--interval MS]]");
        }
    }
    if (cli->no_vmcoreinfo && cli->connect) {
        ms_err_set(&cli->err, MS_EINVAL,
                   "--no-vmcoreinfo works on local memory only (not with --connect)");
        return cli_fail(cli);
    }
    if (follow_log)
        return cli_open(cli) ? cli_fail(cli) : follow(cli, &o, interval_ms);
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
