#include <inttypes.h>
#include <stdio.h>

#include "cli.h"

int cmd_info(struct cli *cli, int argc, char **argv)
{
    (void)argv;
    if (argc != 1)
        return cli_usage("usage: info");
    if (cli_open(cli))
        return cli_fail(cli);
    const struct ms_target_info *in;
    ms_target_info(cli->t, &in, &cli->err);
    if (in->remote)
        printf("server: %s%s\n", in->where, in->writable ? " writable" : "");
    for (unsigned i = 0; i < in->nsources; i++)
        printf("source %u: %s (0x%" PRIx64 " bytes)%s\n", i, in->sources[i], in->source_sizes[i],
               in->writable ? " writable" : "");
    printf("RAM regions (guest-physical -> file offset):\n");
    for (unsigned i = 0; i < in->nregions; i++) {
        const struct ms_target_region *r = &in->regions[i];
        printf("  0x%012" PRIx64 "-0x%012" PRIx64 " -> 0x%" PRIx64 "\n", r->gpa,
               r->gpa + r->len - 1, r->offset);
    }
    for (unsigned i = 0; i < in->ncpus; i++) {
        const struct ms_cpu_state *c = &in->cpus[i];
        printf("cpu %u: rip 0x%" PRIx64 " rsp 0x%" PRIx64, i, c->rip, c->rsp);
        if (c->has_cr)
            printf(" cr0 0x%" PRIx64 " cr3 0x%" PRIx64 " cr4 0x%" PRIx64 " (%u-level)", c->cr0,
                   c->cr3, c->cr4, (c->cr4 & (1ULL << 12)) ? 5 : 4);
        printf("\n");
    }
    if (in->vmcoreinfo)
        printf("VMCOREINFO: %zu bytes\n", in->vmcoreinfo_len);
    struct ms_strbuf out;
    ms_strbuf_init(&out);
    int rc = ms_target_describe(cli->t, cli->h, &out, &cli->err);
    printf("address space: %s\n", ms_strbuf_str(&out));
    if (rc)
        return cli_fail(cli);
    /* the kernel of this guest-physical space, if there is one */
    struct ms_kernel_info ki;
    struct ms_err kerr;
    if (ms_target_kernel_info(cli->t, cli->h, &ki, &kerr) == 0) {
        printf("kernel: Linux %s, KASLR slide 0x%" PRIx64 ", phys_base 0x%" PRIx64
               ", page tables 0x%" PRIx64 " (%u-level)\n",
               ki.release[0] ? ki.release : "(release unknown)", ki.slide, ki.phys_base, ki.root,
               ki.levels);
        printf("  found by: %s\n", ki.how);
        printf("  symbols: %" PRIu64 " from %s\n", ki.symbols, ki.symbols_from);
        ms_strbuf_reset(&out);
        if (ms_target_types_source(cli->t, cli->h, &out, &kerr) == 0)
            printf("  types so far: %s\n", ms_strbuf_str(&out));
    } else {
        printf("kernel: none found (%s)\n", kerr.msg);
    }
    ms_strbuf_free(&out);
    return 0;
}
