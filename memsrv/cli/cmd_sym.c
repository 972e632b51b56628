#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "linux.h"

/* name -> runtime address: here, or on the server (--connect). */
static int name_symbol(struct cli *cli, struct ms_kernel *k, const struct ms_symtab *st,
                       const char *name, uint64_t *v)
{
    if (cli->remote)
        return ms_client_symbol(&cli->client, cli->handle, name, v, &cli->err);
    return k ? ms_kernel_symbol(k, name, v, &cli->err) : ms_symtab_lookup(st, name, v, &cli->err);
}

/* address -> the symbol at or below it (appended to *name) and the offset. */
static int addr_symbol(struct cli *cli, const struct ms_symtab *syms, uint64_t v,
                       struct ms_strbuf *name, uint64_t *off)
{
    if (cli->remote)
        return ms_client_addr_symbol(&cli->client, cli->handle, v, name, off, &cli->err);
    const struct ms_symbol *s;
    int rc = ms_symtab_addr(syms, v, &s, off, &cli->err);
    if (rc == 0)
        ms_strbuf_append(name, s->name, strlen(s->name));
    return rc;
}

/* sym NAME|ADDR...: name -> runtime address, address -> symbol+offset.
 * With memory (--ram/--dump/--connect) the KASLR slide is applied; without,
 * the addresses are the link-time ones of the symbol file. */
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
    if (cli->connect) {
        if (no_vmci)
            return cli_usage("--no-vmcoreinfo works on local memory only (not with --connect)");
        if (cli_linux_remote(cli))
            return cli_fail(cli);
    } else if (cli->ram_path || cli->dump_path) {
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
    const struct ms_symtab *syms = k ? k->syms : st;
    int status = 0;
    struct ms_strbuf name;
    ms_strbuf_init(&name);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        uint64_t v;
        const char *end;
        struct ms_err e;
        bool is_num = ms_parse_u64(a, &end, &v, &e) == 0 && *end == '\0';
        if (!is_num) {
            int rc = name_symbol(cli, k, st, a, &v);
            if (rc == MS_ENOTFOUND && strpbrk(a, "+-"))
                rc = ms_parse_expr(a, cli->resolve, cli->resolve_arg, &v, &cli->err);
            if (rc < 0) {
                printf("%s error: %s\n", a, cli->err.msg);
                status = 1;
                continue;
            }
            printf("0x%016" PRIx64 " %s\n", v, a);
            continue;
        }
        uint64_t off;
        ms_strbuf_reset(&name);
        if (addr_symbol(cli, syms, v, &name, &off) < 0) {
            printf("0x%016" PRIx64 " error: %s\n", v, cli->err.msg);
            status = 1;
            continue;
        }
        if (off)
            printf("0x%016" PRIx64 " %s+0x%" PRIx64 "\n", v, ms_strbuf_str(&name), off);
        else
            printf("0x%016" PRIx64 " %s\n", v, ms_strbuf_str(&name));
    }
    ms_strbuf_free(&name);
    ms_symtab_free(st);
    ms_kernel_close(k);
    return status;
}
