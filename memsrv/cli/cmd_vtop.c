#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "report.h"

/* One line per address: "0xADDR 0xPHYS" or "0xADDR error: MESSAGE". */
static int brief_one(struct cli *cli, const char *text, FILE *out)
{
    uint64_t addr;
    if (cli_parse_addr(cli, text, &addr)) {
        fprintf(out, "%s error: %s\n", text, cli->err.msg);
        return 1;
    }
    struct ms_xlat x;
    if (ms_space_translate(cli->top, addr, &x, NULL, &cli->err)) {
        fprintf(out, "0x%" PRIx64 " error: %s\n", addr, cli->err.msg);
        return 1;
    }
    fprintf(out, "0x%" PRIx64 " 0x%" PRIx64 "\n", addr, x.phys);
    return 0;
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
        if (!strcmp(argv[i], "-")) {
            char line[512];
            while (fgets(line, sizeof(line), stdin)) {
                line[strcspn(line, "\r\n")] = '\0';
                if (line[0] == '\0')
                    continue;
                if (brief) {
                    failures += brief_one(cli, line, stdout);
                    continue;
                }
                uint64_t addr;
                struct ms_strbuf out;
                ms_strbuf_init(&out);
                if (cli_parse_addr(cli, line, &addr) ||
                    ms_report_vtop(cli->top, addr, &out, &cli->err)) {
                    fputs(ms_strbuf_str(&out), stdout);
                    printf("error: %s\n", cli->err.msg);
                    failures++;
                } else {
                    fputs(ms_strbuf_str(&out), stdout);
                }
                ms_strbuf_free(&out);
            }
            continue;
        }
        if (brief) {
            failures += brief_one(cli, argv[i], stdout);
            continue;
        }
        uint64_t addr;
        if (cli_parse_addr(cli, argv[i], &addr))
            return cli_fail(cli);
        struct ms_strbuf out;
        ms_strbuf_init(&out);
        int rc = ms_report_vtop(cli->top, addr, &out, &cli->err);
        fputs(ms_strbuf_str(&out), stdout);
        ms_strbuf_free(&out);
        if (rc) {
            fflush(stdout);
            cli_fail(cli);
            failures++;
        }
    }
    fflush(stdout);
    return failures ? 1 : 0;
}
