/* The memsrv program: global options, the target they describe, and the
 * command table. Commands live in cmd_<name>.c and call ms_target_* only
 * (memsrv.h): whether memory is here or behind a server is the target's
 * business, never a command's. */
#ifndef MEMSRV_CLI_H
#define MEMSRV_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "memsrv.h"

struct cli {
    /* Options. */
    const char *ram_path, *dump_path, *machine, *map_spec;
    bool has_cr3, has_cr4, has_eptp, has_ncr3, levels_set, writable;
    uint64_t cr3, cr4, eptp, ncr3;
    unsigned levels, npt_levels;
    int cpu;             /* --cpu N: CR3/CR4 from a dump's CPU note; -1 when not given */
    bool cpu_names_task; /* bt --cpu N: the CPU whose task to unwind, not a note's CR3 */
    const char *vmlinux, *system_map;
    const char *connect;    /* --connect ADDRESS: work through a memsrv server */
    const char *token_file; /* --token-file F: its shared secret */
    bool no_vmcoreinfo;     /* a command's --no-vmcoreinfo */
    bool help, version;     /* --help/-h, --version anywhere */
    bool nested_auto;       /* --nested auto: the stages from discover's best */
    /* Progress drawn on stderr (a terminal only): when the work began, and
     * whether a line is on screen to erase. */
    double progress_began;
    bool progress_shown;
    /* Built by cli_open(). */
    struct ms_target *t;
    ms_handle h; /* the address space the options describe */
    struct ms_stack stack;
    struct ms_err err;
};

struct cli_command {
    const char *name;
    int (*run)(struct cli *cli, int argc, char **argv);
    const char *synopsis; /* "vtop [--brief] ADDR...|-" */
    const char *summary;  /* one line for the command list */
    const char *help;     /* what `memsrv help NAME` adds: text, then option lines */
};

/* Opens the target (memory, or a server) and the space the options name. */
int cli_open(struct cli *cli);
/* The kernel's own page tables over the options' second stage (if any). */
int cli_kernel_handle(struct cli *cli, ms_handle *h);
/* An address argument and the space it is in: the options' space; without
 * --cr3, a symbol (any name, or any address with --vmlinux/--system-map)
 * is kernel-virtual, read through the kernel's own page tables. */
int cli_addr(struct cli *cli, const char *text, uint64_t *addr, ms_handle *h);
/* A plain number (counts, sizes). */
int cli_number(struct cli *cli, const char *text, uint64_t *value);
/* Reads the token from --token-file (first line) into buf; "" when none. */
int cli_read_token(struct cli *cli, char *buf, size_t size);
/* Prints "memsrv: <message>" and what would fix it to stderr; returns 1. */
int cli_fail(struct cli *cli);
/* Prints a usage error; returns 2. */
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int cmd_x(struct cli *cli, int argc, char **argv);
int cmd_vtop(struct cli *cli, int argc, char **argv);
int cmd_ptdump(struct cli *cli, int argc, char **argv);
int cmd_info(struct cli *cli, int argc, char **argv);
int cmd_serve(struct cli *cli, int argc, char **argv);
int cmd_dmesg(struct cli *cli, int argc, char **argv);
int cmd_ps(struct cli *cli, int argc, char **argv);
int cmd_lsmod(struct cli *cli, int argc, char **argv);
int cmd_maps(struct cli *cli, int argc, char **argv);
int cmd_cat(struct cli *cli, int argc, char **argv);
int cmd_ls(struct cli *cli, int argc, char **argv);
int cmd_ptype(struct cli *cli, int argc, char **argv);
int cmd_p(struct cli *cli, int argc, char **argv);
int cmd_discover(struct cli *cli, int argc, char **argv);
int cmd_sym(struct cli *cli, int argc, char **argv);
int cmd_gdbproxy(struct cli *cli, int argc, char **argv);
int cmd_bt(struct cli *cli, int argc, char **argv);
int cmd_gdbserver(struct cli *cli, int argc, char **argv);
int cmd_export(struct cli *cli, int argc, char **argv);
int cmd_help(struct cli *cli, int argc, char **argv);

#endif
