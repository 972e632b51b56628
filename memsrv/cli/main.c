/* memsrv: read nested-guest memory from QEMU's file-backed RAM or an ELF dump. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kernel.h"

static const struct cli_command commands[] = {
    {"x", cmd_x, "x/FMT ADDR          examine memory like GDB's x (FMT: count, xduotacfsiz, bhwg)"},
    {"vtop", cmd_vtop, "vtop [--brief] ADDR...|-   translate, showing every table entry"},
    {"ptdump", cmd_ptdump, "ptdump [--user|--kernel] [START [END]]  mapped ranges, merged"},
    {"info", cmd_info, "info                RAM regions, dump registers, VMCOREINFO"},
    {"serve", cmd_serve,
     "serve [--socket PATH | --listen HOST:PORT] [--token-file F]  serve clients (GDB, scripts);\n"
     "                      --vmlinux/--system-map: the kernel's symbols for dmesg and sym"},
    {"dmesg", cmd_dmesg, "dmesg [--raw|--crash] [--level N] [--stats]  the guest kernel's log"},
    {"discover", cmd_discover,
     "discover [N]        scan RAM for nested guests (VMCB, vmcs12, EPT)"},
    {"ps", cmd_ps,
     "ps [--stats]        the guest's tasks (types: --vmlinux's DWARF, else the kernel's BTF)"},
    {"sym", cmd_sym, "sym NAME|ADDR...    kernel symbol <-> address (KASLR applied)"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: memsrv [OPTIONS] COMMAND [ARGS]\n"
               "\n"
               "Reads guest and nested-guest memory from QEMU's file-backed RAM (live or after\n"
               "QEMU is gone) or from a QEMU dump-guest-memory ELF file.\n"
               "\n"
               "Commands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %s\n", commands[i].usage);
    fprintf(f,
            "\n"
            "Memory:\n"
            "  --ram FILE          QEMU memory-backend-file (read-only unless --writable)\n"
            "  --dump FILE         QEMU dump-guest-memory ELF file\n"
            "  --machine q35|pc    RAM layout rule (default: FILE.layout if present, else q35)\n"
            "  --map GPA:LEN@OFF[,...]  explicit RAM layout\n"
            "  --writable          open RAM read-write\n"
            "Address space (no --cr3 and no second stage: guest-physical):\n"
            "  --cr3 V             first-stage paging root (guest, or nested guest with a "
            "second stage)\n"
            "  --levels 4|5        its paging depth (default 4)\n"
            "  --cr4 V             sets --levels from CR4.LA57\n"
            "  --cpu N             CR3 and CR4 of CPU N from the dump's notes\n"
            "  --eptp E            Intel EPT second stage (walk length from EPTP)\n"
            "  --ncr3 N            AMD NPT second stage rooted at nCR3\n"
            "  --npt-levels 4|5    NPT depth (default 4)\n"
            "Server:\n"
            "  --connect ADDR      use a running `memsrv serve` (socket path, or tcp:HOST:PORT)\n"
            "  --token-file F      the server's token (needed over TCP)\n"
            "Numbers: 0x hex, 0 octal, decimal, with + and -.\n");
}

int cli_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "memsrv: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(memsrv --help for usage)\n");
    va_end(ap);
    return 2;
}

int cli_fail(struct cli *cli)
{
    fprintf(stderr, "memsrv: %s\n", cli->err.msg[0] ? cli->err.msg : ms_code_name(cli->err.code));
    return 1;
}

int cli_parse_addr(struct cli *cli, const char *text, uint64_t *value)
{
    return ms_parse_expr(text, cli->resolve, cli->resolve_arg, value, &cli->err);
}

static int option_number(struct cli *cli, const char *name, const char *text, uint64_t *value)
{
    if (!text) {
        ms_err_set(&cli->err, MS_EINVAL, "%s needs a value", name);
        return -1;
    }
    if (ms_parse_expr(text, NULL, NULL, value, &cli->err)) {
        ms_err_prefix(&cli->err, "%s: ", name);
        return -1;
    }
    return 0;
}

static int option_levels(struct cli *cli, const char *name, const char *text, unsigned *levels)
{
    uint64_t v;
    if (option_number(cli, name, text, &v))
        return -1;
    if (v != 4 && v != 5) {
        ms_err_set(&cli->err, MS_EINVAL, "%s must be 4 or 5", name);
        return -1;
    }
    *levels = (unsigned)v;
    return 0;
}

/* Consumes the global options wherever they stand; leaves the rest (the
 * command and its own arguments) in argv order. Returns the new argc. */
static int parse_options(struct cli *cli, int argc, char **argv)
{
    int out = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int used = 1;
        uint64_t n;
        if (!strcmp(a, "--ram")) {
            cli->ram_path = v;
        } else if (!strcmp(a, "--dump")) {
            cli->dump_path = v;
        } else if (!strcmp(a, "--machine")) {
            cli->machine = v;
        } else if (!strcmp(a, "--map")) {
            cli->map_spec = v;
        } else if (!strcmp(a, "--vmlinux")) {
            cli->vmlinux = v;
        } else if (!strcmp(a, "--connect")) {
            cli->connect = v;
        } else if (!strcmp(a, "--token-file")) {
            cli->token_file = v;
        } else if (!strcmp(a, "--system-map")) {
            cli->system_map = v;
        } else if (!strcmp(a, "--cr3")) {
            if (option_number(cli, a, v, &cli->cr3))
                return -1;
            cli->has_cr3 = true;
        } else if (!strcmp(a, "--cr4")) {
            if (option_number(cli, a, v, &cli->cr4))
                return -1;
            cli->has_cr4 = true;
        } else if (!strcmp(a, "--levels")) {
            if (option_levels(cli, a, v, &cli->levels))
                return -1;
            cli->levels_set = true;
        } else if (!strcmp(a, "--eptp")) {
            if (option_number(cli, a, v, &cli->eptp))
                return -1;
            cli->has_eptp = true;
        } else if (!strcmp(a, "--ncr3")) {
            if (option_number(cli, a, v, &cli->ncr3))
                return -1;
            cli->has_ncr3 = true;
        } else if (!strcmp(a, "--npt-levels")) {
            if (option_levels(cli, a, v, &cli->npt_levels))
                return -1;
        } else if (!strcmp(a, "--cpu")) {
            if (option_number(cli, a, v, &n))
                return -1;
            cli->cpu = (int)n;
        } else if (!strcmp(a, "--writable")) {
            cli->writable = true;
            used = 0;
        } else {
            argv[out++] = argv[i];
            continue;
        }
        if (used) {
            if (!v) {
                ms_err_set(&cli->err, MS_EINVAL, "%s needs a value", a);
                return -1;
            }
            i++;
        }
    }
    return out;
}

int cli_read_token(struct cli *cli, char *buf, size_t size)
{
    buf[0] = '\0';
    if (!cli->token_file)
        return 0;
    FILE *f = fopen(cli->token_file, "r");
    if (!f)
        return ms_err_set(&cli->err, MS_EIO, "cannot read token file %s", cli->token_file);
    if (!fgets(buf, (int)size, f))
        buf[0] = '\0';
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
    if (buf[0] == '\0')
        return ms_err_set(&cli->err, MS_EINVAL, "token file %s is empty", cli->token_file);
    return 0;
}

/* --connect: the same stack, described to the server. */
static int open_remote(struct cli *cli)
{
    struct ms_err *err = &cli->err;
    if (cli->ram_path || cli->dump_path || cli->machine || cli->map_spec || cli->cpu >= 0)
        return ms_err_set(err, MS_EINVAL,
                          "with --connect the server owns the memory: drop --ram/--dump/--machine/"
                          "--map/--cpu");
    char token[256];
    int rc = cli_read_token(cli, token, sizeof(token));
    if (rc)
        return rc;
    rc = ms_client_connect(&cli->client, cli->connect, token[0] ? token : NULL, err);
    if (rc)
        return rc;
    cli->remote = true;
    if (cli->has_cr4 && !cli->levels_set)
        cli->levels = (cli->cr4 & (1ULL << 12)) ? 5 : 4;
    if (cli->has_eptp && cli->has_ncr3)
        return ms_err_set(err, MS_EINVAL, "give --eptp or --ncr3, not both");
    struct ms_wire_stack st = {(uint8_t)(cli->has_eptp   ? 1
                                         : cli->has_ncr3 ? 2
                                                         : 0),
                               (uint8_t)cli->npt_levels,
                               cli->has_cr3,
                               (uint8_t)cli->levels,
                               cli->has_eptp ? cli->eptp : cli->ncr3,
                               cli->cr3};
    return ms_client_space(&cli->client, &st, &cli->handle, err);
}

int cli_open(struct cli *cli)
{
    struct ms_err *err = &cli->err;
    unsigned flags = cli->writable ? MS_RAM_WRITABLE : 0;
    int rc;
    if (cli->connect)
        return open_remote(cli);
    if (cli->ram_path && cli->dump_path)
        return ms_err_set(err, MS_EINVAL, "give --ram or --dump, not both");
    if (cli->dump_path) {
        if (cli->machine || cli->map_spec)
            return ms_err_set(err, MS_EINVAL,
                              "a dump carries its own layout: drop --machine/--map");
        rc = ms_ram_open_dump(&cli->ram, cli->dump_path, flags, err);
    } else if (cli->ram_path) {
        struct ms_layout map;
        if (cli->map_spec && ms_layout_parse_map(&map, cli->map_spec, err))
            return err->code;
        rc = ms_ram_open_file(&cli->ram, cli->ram_path, cli->map_spec ? &map : NULL, cli->machine,
                              flags, err);
    } else {
        return ms_err_set(err, MS_EINVAL, "no memory given: use --ram FILE or --dump FILE");
    }
    if (rc)
        return rc;
    if (cli->cpu >= 0) {
        if ((unsigned)cli->cpu >= cli->ram->ncpus || !cli->ram->cpus[cli->cpu].has_cr)
            return ms_err_set(err, MS_EINVAL, "--cpu %d: the dump has no control registers for it",
                              cli->cpu);
        if (!cli->has_cr3) {
            cli->cr3 = cli->ram->cpus[cli->cpu].cr3;
            cli->has_cr3 = true;
        }
        if (!cli->has_cr4) {
            cli->cr4 = cli->ram->cpus[cli->cpu].cr4;
            cli->has_cr4 = true;
        }
    }
    if (cli->has_cr4 && !cli->levels_set)
        cli->levels = (cli->cr4 & (1ULL << 12)) ? 5 : 4; /* CR4.LA57 */
    if (cli->has_eptp && cli->has_ncr3)
        return ms_err_set(err, MS_EINVAL, "give --eptp or --ncr3, not both");
    rc = ms_space_phys(&cli->phys, cli->ram, err);
    if (rc)
        return rc;
    cli->top = cli->phys;
    if (cli->has_eptp) {
        rc = ms_space_ept(&cli->second, cli->phys, cli->eptp, err);
    } else if (cli->has_ncr3) {
        rc = ms_space_npt(&cli->second, cli->phys, cli->ncr3, cli->npt_levels, err);
    }
    if (rc)
        return rc;
    if (cli->second)
        cli->top = cli->second;
    if (cli->has_cr3) {
        struct ms_space *paging;
        rc = ms_space_paging(&paging, cli->top, cli->cr3, cli->levels, err);
        if (rc)
            return rc;
        cli->top = paging;
    }
    return 0;
}

static void cli_close(struct cli *cli)
{
    if (cli->remote)
        ms_client_close(&cli->client);
    if (cli->kernel) {
        if (cli->top == cli->kernel->space)
            cli->top = cli->phys; /* the kernel owns that space */
        ms_kernel_close(cli->kernel);
    }
    if (cli->top != cli->second && cli->top != cli->phys)
        ms_space_free(cli->top);
    ms_space_free(cli->second);
    ms_space_free(cli->phys);
    ms_ram_close(cli->ram);
}

int main(int argc, char **argv)
{
    struct cli cli;
    memset(&cli, 0, sizeof(cli));
    cli.levels = 4;
    cli.npt_levels = 4;
    cli.cpu = -1;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    int n = parse_options(&cli, argc - 1, argv + 1);
    if (n < 0)
        return cli_usage("%s", cli.err.msg);
    if (n == 0)
        return cli_usage("no command given");
    char **args = argv + 1;
    const char *name = args[0];
    size_t len = strcspn(name, "/");
    int status = -1;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strlen(commands[i].name) == len && !strncmp(commands[i].name, name, len)) {
            status = commands[i].run(&cli, n, args);
            break;
        }
    }
    if (status < 0)
        status = cli_usage("unknown command '%s'", name);
    cli_close(&cli);
    return status;
}
