/* The memsrv program: global options, the RAM/space stack they describe,
 * and the command table. Commands live in cmd_<name>.c. */
#ifndef MEMSRV_CLI_H
#define MEMSRV_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "client.h"
#include "error.h"
#include "number.h"
#include "ram.h"
#include "space.h"

struct ms_kernel;

struct cli {
    /* Options. */
    const char *ram_path, *dump_path, *machine, *map_spec;
    bool has_cr3, has_cr4, has_eptp, has_ncr3, levels_set, writable;
    uint64_t cr3, cr4, eptp, ncr3;
    unsigned levels, npt_levels;
    int cpu; /* --cpu N: CR3/CR4 from a dump's CPU note; -1 when not given */
    const char *vmlinux, *system_map;
    const char *connect;    /* --connect ADDRESS: work through a memsrv server */
    const char *token_file; /* --token-file F: its shared secret */
    /* State built by cli_open(): local spaces, or a server connection and
     * the handle of the stack the options describe. */
    bool remote;
    struct ms_client client;
    uint32_t handle;
    struct ms_kernel *kernel; /* symbols for addresses (cli_open_addressing), or NULL */
    struct ms_ram *ram;
    struct ms_space *phys, *second, *top;
    /* Resolves names in addresses (set up by commands that load symbols). */
    ms_name_fn resolve;
    void *resolve_arg;
    struct ms_err err;
};

struct cli_command {
    const char *name;
    int (*run)(struct cli *cli, int argc, char **argv);
    const char *usage;
};

/* Opens the RAM (or dump) and builds the space stack the options describe. */
int cli_open(struct cli *cli);
/* Reads the token from --token-file (first line) into buf; "" when none. */
int cli_read_token(struct cli *cli, char *buf, size_t size);
/* Parses an address or count: numbers, +/-, and names when a resolver is set. */
int cli_parse_addr(struct cli *cli, const char *text, uint64_t *value);
/* Prints "memsrv: <message>" to stderr; returns the exit status (1). */
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
int cmd_discover(struct cli *cli, int argc, char **argv);
int cmd_sym(struct cli *cli, int argc, char **argv);
int cmd_bt(struct cli *cli, int argc, char **argv);

#endif
