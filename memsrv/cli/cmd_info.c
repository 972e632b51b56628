#include <inttypes.h>
#include <stdio.h>

#include "cli.h"
#include "report.h"

int cmd_info(struct cli *cli, int argc, char **argv)
{
    (void)argv;
    if (argc != 1)
        return cli_usage("usage: info");
    if (cli->connect)
        return cli_usage("info reads the files themselves: run it without --connect");
    if (cli_open(cli))
        return cli_fail(cli);
    const struct ms_ram *ram = cli->ram;
    for (unsigned i = 0; i < ram->nsources; i++)
        printf("source %u: %s (0x%" PRIx64 " bytes)%s\n", i, ram->sources[i].path,
               ram->sources[i].size, ram->writable ? " writable" : "");
    printf("RAM regions (guest-physical -> file offset):\n");
    for (unsigned i = 0; i < ram->layout.count; i++) {
        const struct ms_region *r = &ram->layout.regions[i];
        printf("  0x%012" PRIx64 "-0x%012" PRIx64 " -> 0x%" PRIx64 "\n", r->gpa,
               r->gpa + r->len - 1, r->offset);
    }
    for (unsigned i = 0; i < ram->ncpus; i++) {
        const struct ms_cpu_state *c = &ram->cpus[i];
        printf("cpu %u: rip 0x%" PRIx64 " rsp 0x%" PRIx64, i, c->rip, c->rsp);
        if (c->has_cr)
            printf(" cr0 0x%" PRIx64 " cr3 0x%" PRIx64 " cr4 0x%" PRIx64 " (%u-level)", c->cr0,
                   c->cr3, c->cr4, (c->cr4 & (1ULL << 12)) ? 5 : 4);
        printf("\n");
    }
    if (ram->vmcoreinfo)
        printf("VMCOREINFO: %zu bytes\n", ram->vmcoreinfo_len);
    struct ms_strbuf out;
    ms_strbuf_init(&out);
    ms_report_stack(cli->top, &out);
    printf("address space: %s\n", ms_strbuf_str(&out));
    ms_strbuf_free(&out);
    return 0;
}
