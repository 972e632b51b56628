/* Shared by the Linux commands (dmesg, ps, sym): the kernel view built from
 * the global options, and the symbol resolver for address arguments. */
#ifndef MEMSRV_CLI_LINUX_H
#define MEMSRV_CLI_LINUX_H

#include "cli.h"
#include "kernel.h"

/* Opens memory (cli_open) and the kernel in it. The guest-physical space is
 * the second stage when one is given (a nested guest), else RAM; --cr3, when
 * given, is the kernel space, else it is built from VMCOREINFO/init_top_pgt. */
/* no_vmcoreinfo: ignore VMCOREINFO (note and scan): the slide then comes
 * from linux_banner and the page tables (needs a symbol file). */
int cli_linux_open(struct cli *cli, struct ms_kernel **k, bool no_vmcoreinfo);

/* Installs the kernel's symbols as cli->resolve (names in addresses). */
void cli_linux_set_resolver(struct cli *cli, struct ms_kernel *k);

/* --connect: cli_open() and the server's kernel symbols as cli->resolve.
 * A symbol file given here is an error: the server holds its own. */
int cli_linux_remote(struct cli *cli);

/* cli_open(), plus, when --vmlinux or --system-map is given, the kernel
 * and its symbols as the address resolver; without --cr3 the addresses are
 * then kernel-virtual (the kernel's own page tables).
 * *k is NULL otherwise; cli_close() closes it. */
int cli_open_addressing(struct cli *cli, struct ms_kernel **k);

#endif
