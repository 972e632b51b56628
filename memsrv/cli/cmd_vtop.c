#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "linux.h"
#include "report.h"

static int report(struct cli *cli, uint64_t addr, struct ms_strbuf *out)
{
    return cli->remote ? ms_client_vtop(&cli->client, cli->handle, addr, out, &cli->err)
                       : ms_report_vtop(cli->top, addr, out, &cli->err);
}

/* One line per address: "0xADDR 0xPHYS" or "0xADDR error: MESSAGE". */
static int brief_one(struct cli *cli, const char *text, FILE *out)
{
    uint64_t addr;
    if (cli_parse_addr(cli, text, &addr)) {
        fprintf(out, "%s error: %s\n", text, cli->err.msg);
        return 1;
    }
    struct ms_xlat x;
    int status = 0;
    if (cli->remote ? ms_client_translate(&cli->client, cli->handle, 1, &addr, &x, &status, NULL,
                                          &cli->err) ||
                          status
                    : ms_space_translate(cli->top, addr, &x, NULL, &cli->err)) {
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
    struct ms_kernel *symbols;
    if (cli_open_addressing(cli, &symbols))
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
                    fflush(stdout); /* a line in, a line out: usable as a co-process */
                    continue;
                }
                uint64_t addr;
                struct ms_strbuf out;
                ms_strbuf_init(&out);
                if (cli_parse_addr(cli, line, &addr) || report(cli, addr, &out)) {
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
        int rc = report(cli, addr, &out);
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
