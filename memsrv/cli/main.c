/* memsrv: read nested-guest memory from QEMU's file-backed RAM or an ELF dump. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#include <errno.h>
#include <sys/stat.h>

static const struct cli_command commands[] = {
    {"x", cmd_x, "x/FMT ADDR          examine memory like GDB's x (FMT: count, xduotacfsiz, bhwg)"},
    {"vtop", cmd_vtop, "vtop [--brief] ADDR...|-   translate, showing every table entry"},
    {"ptdump", cmd_ptdump, "ptdump [--user|--kernel] [START [END]]  mapped ranges, merged"},
    {"info", cmd_info, "info                RAM regions, dump registers, VMCOREINFO"},
    {"serve", cmd_serve,
     "serve [--socket PATH | --listen HOST:PORT] [--token-file F]  serve clients (GDB, scripts);\n"
     "                      --vmlinux/--system-map: the kernel's symbols for dmesg and sym"},
    {"dmesg", cmd_dmesg,
     "dmesg [--raw|--crash] [--level N] [--stats] [--follow]  the guest kernel's log"},
    {"discover", cmd_discover,
     "discover [N]        scan RAM for nested guests (VMCB, vmcs12, EPT)"},
    {"ps", cmd_ps,
     "ps [--stats]        the guest's tasks (types: --vmlinux's DWARF, else the kernel's BTF)"},
    {"bt", cmd_bt, "bt PID...|--all     kernel stacks of the guest's tasks (ORC unwinder)"},
    {"export-vmcore", cmd_export,
     "export-vmcore -o OUT [-q]  a kdump-style vmcore for crash and drgn (nested: --eptp/--ncr3)"},
    {"sym", cmd_sym, "sym NAME|ADDR...    kernel symbol <-> address (KASLR applied)"},
    {"gdbproxy", cmd_gdbproxy,
     "gdbproxy --qemu HOST:PORT (--listen HOST:PORT | --stdio)  GDB's remote protocol to\n"
     "                      QEMU's gdbstub, with the nested guest's memory from the RAM file\n"
     "                      (its second stage: --eptp or --ncr3); writes with --writable"},
    {"ptype", cmd_ptype,
     "ptype[/o] TYPE      GDB's ptype (/o: offsets, sizes, holes) from the kernel's own BTF"},
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

/* The library says what is wrong; which of our flags would fix it is ours
 * to say. */
static const char *hint_text(const struct cli *cli, int hint)
{
    switch (hint) {
    case MS_HINT_SYMBOLS:
        return cli->connect ? "give the symbol file to `memsrv serve` (--vmlinux or --system-map)"
                            : "give --vmlinux or --system-map";
    case MS_HINT_DWARF:
        return cli->connect ? "give a vmlinux with debug info to `memsrv serve` (--vmlinux)"
                            : "give --vmlinux (a vmlinux with debug info)";
    case MS_HINT_LAYOUT:
        return "check --machine or --map (or the .layout file beside the RAM file)";
    case MS_HINT_WRITABLE:
        return cli->connect ? "start `memsrv serve` with --writable" : "use --writable";
    case MS_HINT_TOKEN:
        return "give --token-file";
    }
    return NULL;
}

int cli_fail(struct cli *cli)
{
    fprintf(stderr, "memsrv: %s\n", cli->err.msg[0] ? cli->err.msg : ms_code_name(cli->err.code));
    const char *hint = hint_text(cli, cli->err.hint);
    if (hint)
        fprintf(stderr, "memsrv: hint: %s\n", hint);
    return 1;
}

int cli_number(struct cli *cli, const char *text, uint64_t *value)
{
    return ms_parse_expr(text, NULL, NULL, value, &cli->err);
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

/* Derived data (DWARF layouts) lives in the user's cache, never beside an
 * input file. */
static const char *cache_dir(char *buf, size_t size)
{
    const char *nc = getenv("NESTED_CACHE"), *xdg = getenv("XDG_CACHE_HOME"),
               *home = getenv("HOME");
    if (nc && *nc)
        snprintf(buf, size, "%s", nc);
    else if (xdg && *xdg)
        snprintf(buf, size, "%s/nested", xdg);
    else if (home && *home)
        snprintf(buf, size, "%s/.cache/nested", home);
    else
        return NULL;
    char parent[4096];
    snprintf(parent, sizeof(parent), "%s", buf);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = '\0';
        mkdir(parent, 0700);
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return NULL;
    return buf;
}

int cli_open(struct cli *cli)
{
    struct ms_err *err = &cli->err;
    if (cli->t)
        return 0;
    if (cli->vmlinux && cli->system_map)
        return ms_err_set(err, MS_EINVAL, "give --vmlinux or --system-map, not both");
    if (cli->has_eptp && cli->has_ncr3)
        return ms_err_set(err, MS_EINVAL, "give --eptp or --ncr3, not both");
    char token[256], cache[4096];
    int rc = cli_read_token(cli, token, sizeof(token));
    if (rc)
        return rc;
    struct ms_target_opts o = {0};
    o.ram = cli->ram_path;
    o.dump = cli->dump_path;
    o.connect = cli->connect;
    o.machine = cli->machine;
    o.map = cli->map_spec;
    o.writable = cli->writable;
    o.symbols = cli->vmlinux ? cli->vmlinux : cli->system_map;
    o.token = token[0] ? token : NULL;
    o.cache_dir = cli->connect ? NULL : cache_dir(cache, sizeof(cache));
    o.no_vmcoreinfo = cli->no_vmcoreinfo;
    if (!o.ram && !o.dump && !o.connect)
        return ms_err_set(err, MS_EINVAL, "no memory given: use --ram FILE or --dump FILE");
    rc = ms_target_open(&cli->t, &o, err);
    if (rc)
        return rc;
    if (cli->cpu >= 0) {
        const struct ms_target_info *info;
        ms_target_info(cli->t, &info, err);
        if ((unsigned)cli->cpu >= info->ncpus || !info->cpus[cli->cpu].has_cr)
            return ms_err_set(err, MS_EINVAL, "--cpu %d: the dump has no control registers for it",
                              cli->cpu);
        if (!cli->has_cr3) {
            cli->cr3 = info->cpus[cli->cpu].cr3;
            cli->has_cr3 = true;
        }
        if (!cli->has_cr4) {
            cli->cr4 = info->cpus[cli->cpu].cr4;
            cli->has_cr4 = true;
        }
    }
    if (cli->has_cr4 && !cli->levels_set)
        cli->levels = (cli->cr4 & (1ULL << 12)) ? 5 : 4; /* CR4.LA57 */
    struct ms_stack *s = &cli->stack;
    s->second = cli->has_eptp ? MS_SECOND_EPT : cli->has_ncr3 ? MS_SECOND_NPT : MS_SECOND_NONE;
    s->second_root = cli->has_eptp ? cli->eptp : cli->ncr3;
    s->second_levels = cli->npt_levels;
    s->first = cli->has_cr3 ? MS_FIRST_CR3 : MS_FIRST_NONE;
    s->cr3 = cli->cr3;
    s->levels = cli->levels;
    return ms_target_space(cli->t, s, &cli->h, err);
}

int cli_kernel_handle(struct cli *cli, ms_handle *h)
{
    struct ms_stack s = cli->stack;
    s.first = MS_FIRST_KERNEL;
    return ms_target_space(cli->t, &s, h, &cli->err);
}

int cli_addr(struct cli *cli, const char *text, uint64_t *addr, ms_handle *h)
{
    *h = cli->h;
    if (cli->has_cr3)
        return ms_target_eval(cli->t, cli->h, text, addr, &cli->err);
    struct ms_err plain;
    bool symbols = cli->vmlinux || cli->system_map;
    if (!symbols && ms_parse_expr(text, NULL, NULL, addr, &plain) == 0)
        return 0; /* a number, in the options' space */
    int rc = cli_kernel_handle(cli, h);
    return rc ? rc : ms_target_eval(cli->t, *h, text, addr, &cli->err);
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
    ms_target_close(cli.t);
    return status;
}
