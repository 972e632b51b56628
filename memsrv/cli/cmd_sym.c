#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "number.h"
#include "symbols.h"

/* The lookups of one source: a target's kernel (slid), or a symbol file
 * alone (the addresses as linked). */
struct lookup {
    struct cli *cli;
    ms_handle h;
    struct ms_symtab *file; /* no memory given */
};

static int lookup_name(struct lookup *l, const char *name, uint64_t *v)
{
    struct ms_err *err = &l->cli->err;
    if (l->file)
        return ms_symtab_lookup(l->file, name, v, err);
    int rc = ms_target_symbol(l->cli->t, l->h, name, v, err);
    if (rc == MS_ENOTFOUND && strpbrk(name, "+-"))
        rc = ms_target_eval(l->cli->t, l->h, name, v, err);
    return rc;
}

static int lookup_addr(struct lookup *l, uint64_t v, struct ms_strbuf *name, uint64_t *off)
{
    struct ms_err *err = &l->cli->err;
    if (!l->file)
        return ms_target_addrsym(l->cli->t, l->h, v, name, off, err);
    const struct ms_symbol *s;
    int rc = ms_symtab_addr(l->file, v, &s, off, err);
    if (rc == 0)
        ms_strbuf_append(name, s->name, strlen(s->name));
    return rc;
}

/* sym NAME|ADDR...: name -> runtime address, address -> symbol+offset.
 * With memory (--ram/--dump/--connect) the KASLR slide is applied; without,
 * the addresses are the link-time ones of the symbol file. */
int cmd_sym(struct cli *cli, int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "--no-vmcoreinfo")) {
        cli->no_vmcoreinfo = true;
        argc--;
        argv++;
    }
    if (argc < 2)
        return cli_usage("usage: sym [--no-vmcoreinfo] NAME|ADDR...");
    if (cli->no_vmcoreinfo && cli->connect) {
        ms_err_set(&cli->err, MS_EINVAL,
                   "--no-vmcoreinfo works on local memory only (not with --connect)");
        return cli_fail(cli);
    }
    struct lookup l = {cli, 0, NULL};
    if (cli->ram_path || cli->dump_path || cli->connect) {
        if (cli_open(cli))
            return cli_fail(cli);
        l.h = cli->h;
    } else {
        const char *path = cli->vmlinux ? cli->vmlinux : cli->system_map;
        if (!path)
            return cli_usage("sym needs memory (--ram, --dump, --connect) or a symbol file "
                             "(--vmlinux, --system-map)");
        if (ms_symtab_load(&l.file, path, &cli->err))
            return cli_fail(cli);
    }
    int status = 0;
    struct ms_strbuf name;
    ms_strbuf_init(&name);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        uint64_t v;
        const char *end;
        struct ms_err e;
        if (!(ms_parse_u64(a, &end, &v, &e) == 0 && *end == '\0')) {
            if (lookup_name(&l, a, &v) < 0) {
                printf("%s error: %s\n", a, cli->err.msg);
                status = 1;
            } else {
                printf("0x%016" PRIx64 " %s\n", v, a);
            }
            continue;
        }
        uint64_t off;
        ms_strbuf_reset(&name);
        if (lookup_addr(&l, v, &name, &off) < 0) {
            printf("0x%016" PRIx64 " error: %s\n", v, cli->err.msg);
            status = 1;
        } else if (off) {
            /* a module's symbol, "func [mod]": the offset goes after func */
            const char *n = ms_strbuf_str(&name), *mod = strstr(n, " [");
            int len = mod ? (int)(mod - n) : (int)strlen(n);
            printf("0x%016" PRIx64 " %.*s+0x%" PRIx64 "%s\n", v, len, n, off, mod ? mod : "");
        } else {
            printf("0x%016" PRIx64 " %s\n", v, ms_strbuf_str(&name));
        }
    }
    ms_strbuf_free(&name);
    ms_symtab_free(l.file);
    return status;
}
