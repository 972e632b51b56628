#include "linux.h"

#include <string.h>

int cli_linux_open(struct cli *cli, struct ms_kernel **k, bool no_vmcoreinfo)
{
    *k = NULL;
    int rc = cli_open(cli);
    if (rc)
        return rc;
    struct ms_kernel_opts o = {0};
    o.symbols = cli->vmlinux ? cli->vmlinux : cli->system_map;
    /* A dump's VMCOREINFO note describes the outer guest's kernel: with a
     * second stage the kernel wanted is the nested guest's, so scan. */
    o.no_scan = no_vmcoreinfo;
    if (!no_vmcoreinfo && !cli->second && cli->ram->vmcoreinfo) {
        o.vmcoreinfo = cli->ram->vmcoreinfo;
        o.vmcoreinfo_len = cli->ram->vmcoreinfo_len;
    }
    if (cli->has_cr3)
        o.kspace = cli->top;
    struct ms_space *phys = cli->second ? cli->second : cli->phys;
    rc = ms_kernel_open(k, phys, &o, &cli->err);
    return rc;
}

static int resolve(void *arg, const char *name, uint64_t *value)
{
    return ms_kernel_symbol(arg, name, value, NULL);
}

void cli_linux_set_resolver(struct cli *cli, struct ms_kernel *k)
{
    cli->resolve = resolve;
    cli->resolve_arg = k;
}

static int resolve_remote(void *arg, const char *name, uint64_t *value)
{
    struct cli *cli = arg;
    return ms_client_symbol(&cli->client, cli->handle, name, value, NULL);
}

int cli_linux_remote(struct cli *cli)
{
    if (cli->vmlinux || cli->system_map)
        return ms_err_set(&cli->err, MS_EINVAL,
                          "with --connect the server finds the kernel: give the symbol file to "
                          "`memsrv serve` (--vmlinux F or --system-map F), not here");
    int rc = cli_open(cli);
    if (rc)
        return rc;
    cli->resolve = resolve_remote;
    cli->resolve_arg = cli;
    return 0;
}

int cli_open_addressing(struct cli *cli, struct ms_kernel **k)
{
    *k = NULL;
    if (cli->connect || (!cli->vmlinux && !cli->system_map))
        return cli_open(cli);
    int rc = cli_linux_open(cli, k, false);
    if (rc)
        return rc;
    cli_linux_set_resolver(cli, *k);
    cli->kernel = *k;
    /* Symbols name kernel addresses: without --cr3, read through the
     * kernel's own page tables (found from VMCOREINFO or the banner). */
    if (!cli->has_cr3)
        cli->top = (*k)->space;
    return 0;
}
