#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "linux.h"

/* sym NAME|ADDR...: name -> runtime address, address -> symbol+offset.
 * With memory (--ram/--dump) the KASLR slide is applied; without, the
 * addresses are the link-time ones of the symbol file. */
int cmd_sym(struct cli *cli, int argc, char **argv)
{
    if (argc < 2 || (argc == 2 && !strcmp(argv[1], "--no-vmcoreinfo")))
        return cli_usage("usage: sym NAME|ADDR...  (with --vmlinux or --system-map)");
    bool no_vmci = !strcmp(argv[1], "--no-vmcoreinfo");
    if (no_vmci) {
        argc--;
        argv++;
    }
    struct ms_kernel *k = NULL;
    struct ms_symtab *st = NULL;
    if (cli->ram_path || cli->dump_path) {
        if (cli_linux_open(cli, &k, no_vmci))
            return cli_fail(cli);
        /* no symbol file: the kernel's own kallsyms tables */
        if (!k->syms && ms_kernel_load_kallsyms(k, 0, &cli->err) < 0) {
            ms_kernel_close(k);
            return cli_fail(cli);
        }
        cli_linux_set_resolver(cli, k);
    } else {
        const char *path = cli->vmlinux ? cli->vmlinux : cli->system_map;
        if (!path)
            return cli_usage(
                "sym needs --vmlinux or --system-map (or --ram/--dump with VMCOREINFO)");
        if (ms_symtab_load(&st, path, &cli->err))
            return cli_fail(cli);
    }
    struct ms_symtab *syms = k ? k->syms : st;
    int status = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        uint64_t v;
        const char *end;
        struct ms_err e;
        bool is_num = ms_parse_u64(a, &end, &v, &e) == 0 && *end == '\0';
        if (!is_num) {
            int rc =
                k ? ms_kernel_symbol(k, a, &v, &cli->err) : ms_symtab_lookup(st, a, &v, &cli->err);
            if (rc == MS_ENOTFOUND && strpbrk(a, "+-"))
                rc = ms_parse_expr(a, k ? cli->resolve : NULL, k, &v, &cli->err);
            if (rc < 0) {
                printf("%s error: %s\n", a, cli->err.msg);
                status = 1;
                continue;
            }
            printf("0x%016" PRIx64 " %s\n", v, a);
            continue;
        }
        if (!syms) {
            printf("0x%016" PRIx64 " error: no symbol file for address lookups\n", v);
            status = 1;
            continue;
        }
        const struct ms_symbol *s;
        uint64_t off;
        if (ms_symtab_addr(syms, v, &s, &off, &cli->err) < 0) {
            printf("0x%016" PRIx64 " error: %s\n", v, cli->err.msg);
            status = 1;
            continue;
        }
        if (off)
            printf("0x%016" PRIx64 " %s+0x%" PRIx64 "\n", v, s->name, off);
        else
            printf("0x%016" PRIx64 " %s\n", v, s->name);
    }
    ms_symtab_free(st);
    ms_kernel_close(k);
    return status;
}
