#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* One line per address: "0xADDR 0xPHYS" or "0xADDR error: MESSAGE". */
static int brief_one(struct cli *cli, const char *text, FILE *out)
{
    uint64_t addr;
    ms_handle h;
    if (cli_addr(cli, text, &addr, &h)) {
        fprintf(out, "%s error: %s\n", text, cli->err.msg);
        return 1;
    }
    struct ms_xlat x;
    int status = 0;
    if (ms_target_translate(cli->t, h, 1, &addr, &x, &status, NULL, &cli->err) || status) {
        fprintf(out, "0x%" PRIx64 " error: %s\n", addr, cli->err.msg);
        return 1;
    }
    fprintf(out, "0x%" PRIx64 " 0x%" PRIx64 "\n", addr, x.phys);
    return 0;
}

/* The full report for one address; 1 when it failed. */
static int report_one(struct cli *cli, const char *text, bool inline_error)
{
    uint64_t addr;
    ms_handle h;
    struct ms_strbuf out;
    ms_strbuf_init(&out);
    int rc = cli_addr(cli, text, &addr, &h);
    if (!rc)
        rc = ms_target_vtop(cli->t, h, addr, &out, &cli->err);
    fputs(ms_strbuf_str(&out), stdout);
    ms_strbuf_free(&out);
    if (rc && inline_error)
        printf("error: %s\n", cli->err.msg);
    fflush(stdout);
    if (rc && !inline_error)
        cli_fail(cli);
    return rc ? 1 : 0;
}

int cmd_vtop(struct cli *cli, int argc, char **argv)
{
    bool brief = false;
    int first = 1;
    if (argc > 1 && !strcmp(argv[1], "--brief")) {
        brief = true;
        first = 2;
    }
    if (first >= argc)
        return cli_usage("usage: vtop [--brief] ADDR... (or - to read addresses from stdin)");
    if (cli_open(cli))
        return cli_fail(cli);
    unsigned failures = 0;
    for (int i = first; i < argc; i++) {
        if (strcmp(argv[i], "-") != 0) {
            failures += brief ? brief_one(cli, argv[i], stdout) : report_one(cli, argv[i], false);
            continue;
        }
        char line[512];
        while (fgets(line, sizeof(line), stdin)) {
            line[strcspn(line, "\r\n")] = '\0';
            if (line[0] == '\0')
                continue;
            failures += brief ? brief_one(cli, line, stdout) : report_one(cli, line, true);
            fflush(stdout); /* a line in, a line out: usable as a co-process */
        }
    }
    fflush(stdout);
    return failures ? 1 : 0;
}
