/* memsrv discover: scans L1 RAM for nested roots (VMCB, HSAVE, vmcs12,
 * EPT-shaped trees) and prints each with the options that select it. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

int cmd_discover(struct cli *cli, int argc, char **argv)
{
    uint64_t max = 20;
    if (argc > 2 || (argc == 2 && cli_number(cli, argv[1], &max)))
        return cli_usage("usage: discover [MAX]");
    if (max == 0 || max > 1000)
        max = 1000;
    if (cli_open(cli))
        return cli_fail(cli);
    struct ms_candidate *c = calloc(max, sizeof(*c));
    if (!c)
        return cli_usage("out of memory");
    unsigned n = 0;
    if (ms_target_discover(cli->t, c, (unsigned)max, &n, &cli->err)) {
        free(c);
        return cli_fail(cli);
    }
    printf("%-3s %-8s %-14s %5s  %s\n", "#", "kind", "page", "score", "use with");
    for (unsigned i = 0; i < n && i < max; i++) {
        const struct ms_candidate *k = &c[i];
        printf("%-3u %-8s 0x%-12" PRIx64 " %5d  ", i + 1, ms_cand_kind_name(k->kind), k->gpa,
               k->score);
        unsigned l2levels = (k->cr4 & (1ULL << 12)) ? 5 : 4;
        switch (k->kind) {
        case MS_CAND_VMCB:
            printf("--ncr3 0x%" PRIx64, k->root);
            if (k->root_levels)
                printf(" --npt-levels %u", k->root_levels);
            printf(" --cr3 0x%" PRIx64 " --levels %u   (", k->cr3, l2levels);
            if (k->vcpu >= 0)
                printf("L2 vCPU %d, ", k->vcpu);
            printf("ASID %u, L2 RIP 0x%" PRIx64 ")\n", k->asid, k->rip);
            break;
        case MS_CAND_VMCS12:
            printf("--eptp 0x%" PRIx64 " --cr3 0x%" PRIx64 " --levels %u   (", k->root, k->cr3,
                   l2levels);
            if (k->vcpu >= 0)
                printf("L2 vCPU %d, ", k->vcpu);
            printf("VPID %u, L2 RIP 0x%" PRIx64 ")\n", k->asid, k->rip);
            break;
        case MS_CAND_HSAVE:
            printf("--cr3 0x%" PRIx64 " --levels %u   (L1 itself, RIP 0x%" PRIx64 ")\n", k->cr3,
                   l2levels, k->rip);
            break;
        case MS_CAND_EPT:
            printf("--eptp 0x%" PRIx64 "%s\n", k->root,
                   k->root_levels ? "" : "   (depth not known: try 4 and 5)");
            break;
        }
        printf("    %s\n", k->evidence);
    }
    if (n > max)
        printf("(%u more not shown)\n", n - (unsigned)max);
    if (n == 0)
        printf("(nothing found)\n");
    free(c);
    return 0;
}
