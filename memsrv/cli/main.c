/* memsrv: read nested-guest memory from QEMU's file-backed RAM or an ELF dump. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#include <errno.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The one source of the program's documentation: `memsrv --help`, `memsrv
 * help CMD` and the manual page (scripts/gen-manpage renders these texts to
 * troff at build time). Option lines are "  OPTION  text" (two spaces or
 * more between); deeper-indented lines continue the one above. */
static const struct cli_command commands[] = {
    {"x", cmd_x, "x/FMT ADDR", "examine memory like GDB's x",
     "Prints memory at ADDR the way GDB's x command does, in the same layout.\n"
     "FMT is GDB's: a count, a format letter and a size letter, in any order.\n"
     "\n"
     "Formats:\n"
     "  x d u o t        hex, signed decimal, unsigned decimal, octal, binary\n"
     "  a c f            address (with the symbol), character, float\n"
     "  s                NUL-terminated string\n"
     "  i                x86-64 instructions (Capstone, AT&T syntax as GDB)\n"
     "  z                zero-padded hex\n"
     "Sizes:\n"
     "  b h w g          1, 2, 4, 8 bytes (default w)\n"
     "\n"
     "ADDR is a number or an expression (NAME+0x10): without --cr3, a symbol is\n"
     "a kernel-virtual address read through the kernel's own page tables.\n"
     "Examples:\n"
     "  x/16gx 0x1000    sixteen 8-byte words, guest-physical (no --cr3)\n"
     "  x/s linux_banner  the kernel's banner (no symbol file needed)\n"},
    {"vtop", cmd_vtop, "vtop [--brief] ADDR...|-", "translate, showing every table entry",
     "Translates each ADDR through the address space the options name, down to\n"
     "guest-physical (RAM), showing every table entry read (both dimensions of a\n"
     "nested walk). With -, addresses are read from standard input, one a line,\n"
     "and each is answered at once (usable as a co-process).\n"
     "\n"
     "Options:\n"
     "  --brief          one line per address: \"0xADDR 0xPHYS\" or \"ADDR error: ...\"\n"},
    {"ptdump", cmd_ptdump, "ptdump [--user|--kernel] [START [END]]", "mapped ranges, merged",
     "Lists the mapped ranges of the address space, merging neighbours with the\n"
     "same permissions (r w x u). Without --cr3, a symbol file selects the\n"
     "kernel's own page tables.\n"
     "\n"
     "Options:\n"
     "  --user           only the lower half (user addresses)\n"
     "  --kernel         only the upper half (kernel addresses)\n"
     "  START [END]      only this range (numbers or symbols)\n"},
    {"info", cmd_info, "info", "RAM regions, dump registers, VMCOREINFO",
     "Shows the memory source: files and sizes, the guest-physical regions and\n"
     "their file offsets, a dump's CPU registers and VMCOREINFO, and the address\n"
     "space the options name.\n"},
    {"serve", cmd_serve, "serve [--socket PATH | --listen HOST:PORT]",
     "serve clients (GDB, scripts)",
     "Serves the memory source to clients (memsrv --connect, the GDB extension's\n"
     "`nested attach --connect`, scripts) until SIGINT or SIGTERM. --vmlinux or\n"
     "--system-map give the kernel's symbols for the clients' dmesg and sym.\n"
     "Without --socket or --listen, the socket is $XDG_RUNTIME_DIR/memsrv-NAME.sock\n"
     "(else FILE.sock beside the memory file).\n"
     "\n"
     "Options:\n"
     "  --socket PATH    listen on a UNIX socket (mode 0600)\n"
     "  --listen HOST:PORT  listen on TCP (needs --token-file; port 0: any)\n"
     "  --token-file F   the shared secret clients must give\n"
     "  --writable       accept writes\n"},
    {"dmesg", cmd_dmesg,
     "dmesg [--raw|--crash] [--level N] [--stats] [--no-vmcoreinfo] [--follow [--interval MS]]",
     "the guest kernel's log",
     "Prints the guest kernel's log ring, found from VMCOREINFO or the kernel's\n"
     "own symbols: no symbol file needed.\n"
     "\n"
     "Options:\n"
     "  --raw, -r        syslog prefix on each record (<6>[    1.234567] text)\n"
     "  --crash          crash's log layout\n"
     "  --level N        only records at level N (0..7) or more urgent\n"
     "  --stats          report the ring's health on stderr\n"
     "  --no-vmcoreinfo  find the kernel from the symbol file alone\n"
     "  --follow, -w     then print new records as the running guest logs them, until\n"
     "                   interrupted; records the ring dropped before they could be read\n"
     "                   show as \"-- N records lost --\" where they were\n"
     "  --interval MS    between two reads of the ring when following (default 100)\n"},
    {"discover", cmd_discover, "discover [N]", "scan RAM for nested guests (VMCB, vmcs12, EPT)",
     "Scans every page of RAM for nested-guest roots: AMD VMCBs (and the HSAVE\n"
     "area that gives the NPT depth), KVM vmcs12 pages and EPT-shaped tables.\n"
     "Prints up to N (default 20) candidates, best first, with their evidence and\n"
     "the options that select each. --nested auto takes the best one.\n"
     "A bare EPT tree's depth comes from a kernel it reaches, else from its own\n"
     "leaves and an EPTP for it in a VMCS region; \"depth not known\" when none tell.\n"},
    {"ps", cmd_ps, "ps [--stats] [--no-vmcoreinfo]", "the guest's tasks",
     "Lists the guest kernel's tasks (pid, parent, state, task_struct, comm).\n"
     "The task_struct layout comes from --vmlinux's DWARF, else the kernel's own BTF.\n"
     "\n"
     "Options:\n"
     "  --stats          say on stderr how many tasks and where the types came from\n"
     "  --no-vmcoreinfo  find the kernel from the symbol file alone\n"},
    {"lsmod", cmd_lsmod, "lsmod [--stats]", "the guest kernel's modules (/proc/modules)",
     "Lists the guest kernel's loaded modules as /proc/modules shows them: name,\n"
     "size (every layout's bytes), reference count, the modules using it, state,\n"
     "and the address of its code, newest first. struct module's layout comes\n"
     "from --vmlinux's DWARF, else the kernel's own BTF; the list head from the\n"
     "symbol file, else the kernel's kallsyms.\n"
     "\n"
     "Options:\n"
     "  --stats          say on stderr how many modules and where the types came from\n"},
    {"cat", cmd_cat, "cat /PATH", "a file's bytes from the guest's page cache",
     "Writes the file at PATH (absolute, as the guest's init sees it) to stdout,\n"
     "read from the guest kernel's own caches, no agent in the guest: the path\n"
     "from the dentry cache (mount points crossed, symlinks followed), the bytes\n"
     "from the inode's page cache, exactly its size. tmpfs, ramfs and initramfs\n"
     "files are whole; pages of a disk file the kernel has not read (or has\n"
     "dropped) are reported on stderr and written as zeros, and the exit status\n"
     "is then 3 (output partial). A name not in the dentry cache, a directory:\n"
     "an error (status 1). The structs' layout comes from --vmlinux's DWARF,\n"
     "else the kernel's own BTF; Linux 6.1's dcache.\n"},
    {"ls", cmd_ls, "ls [-i] /DIR", "a directory's entries in the guest's dentry cache",
     "Lists the directory at DIR (absolute; symlinks followed) as the guest\n"
     "kernel's dentry cache holds it, sorted by name: type and permissions,\n"
     "size, name (ls -l's columns). tmpfs, ramfs and initramfs directories are\n"
     "whole; on a disk file system only the names the guest has looked up (and\n"
     "not yet dropped) are there. A mount point shows the mounted root.\n"
     "\n"
     "Options:\n"
     "  -i               each entry's struct inode address first (for x, ptype)\n"},
    {"maps", cmd_maps, "maps PID [--stats]", "a process's memory map (/proc/PID/maps)",
     "Prints the memory map of the guest process (or thread) PID as\n"
     "/proc/PID/maps shows it: range, permissions (p/s: private or shared),\n"
     "file offset, device, inode and name: the file's path from its dentries\n"
     "and mounts, else [heap], [stack], [vdso], [vvar], [vsyscall]. Read from\n"
     "the kernel's memory: the task's mm and its VMA tree (the maple tree of\n"
     "Linux 6.1+); the layouts from --vmlinux's DWARF, else the kernel's own BTF.\n"
     "A pid with no task, or a kernel thread (no mm), is an error.\n"
     "\n"
     "Options:\n"
     "  --stats          say on stderr how many areas and where the types came from\n"},
    {"bt", cmd_bt, "bt PID...|--all|--cpu N", "kernel stacks of the guest's tasks (ORC unwinder)",
     "Prints the kernel stacks of the given tasks (or of every task), unwound\n"
     "with the kernel's ORC tables; names come from the kernel's kallsyms when\n"
     "no symbol file is given; the task_struct layout from --vmlinux's DWARF,\n"
     "else the kernel's own BTF. A task running at the stop is unwound from its\n"
     "CPU's registers when --dump gives them (a QEMU dump's notes: the CPU's\n"
     "place first, \"running on CPU N: RIP ...\"; the panicking CPU of a crash);\n"
     "for a nested guest behind --ncr3 from the VMCB of its CPU (discover's \"L2\n"
     "vCPU N\"): its state at its last #VMEXIT, rip, rsp, rax and rflags only (an\n"
     "SVM VMCB holds no other general register), so a frame whose ORC data needs\n"
     "rbp stops the unwind; otherwise a running task is only named.\n"
     "\n"
     "Options:\n"
     "  --all            every task\n"
     "  --cpu N          the task running on CPU N (its per-CPU current_task)\n"},
    {"export-vmcore", cmd_export, "export-vmcore -o OUT [-q]",
     "a kdump-style vmcore for crash and drgn",
     "Writes OUT, an ELF vmcore of the guest-physical memory the options name (RAM,\n"
     "or a nested guest's through --eptp or --ncr3, whose unmapped pages are holes)\n"
     "with the kernel found there, laid out as the kernel's own /proc/vmcore: crash\n"
     "and drgn open it unpatched (crash vmlinux OUT; drgn -c OUT -s vmlinux). It\n"
     "holds the guest's VMCOREINFO, the kernel image at its virtual address, RAM at\n"
     "the direct map, and per CPU the pid of the task running there (task_struct\n"
     "from --vmlinux's DWARF, else the kernel's BTF). Zero pages are not written:\n"
     "the file is sparse.\n"
     "\n"
     "Options:\n"
     "  -o, --output OUT  the vmcore to write\n"
     "  -q, --quiet       no summary line on stderr\n"},
    {"sym", cmd_sym, "sym [--no-vmcoreinfo] NAME|ADDR...",
     "kernel symbol <-> address (KASLR applied)",
     "Turns names into runtime addresses and addresses into symbol+offset. With\n"
     "memory (--ram, --dump, --connect) the KASLR slide is found and applied and\n"
     "names come from the symbol file, else from the kernel's kallsyms, then from\n"
     "the loaded modules' own symbol tables (an address in a module: \"func+0x10\n"
     "[kvm_amd]\"); with only a symbol file, the addresses are the link-time ones.\n"
     "\n"
     "Options:\n"
     "  --no-vmcoreinfo  find the kernel from the symbol file alone\n"},
    {"gdbserver", cmd_gdbserver, "gdbserver --stdio|--listen HOST:PORT",
     "a read-only GDB remote target: threads are the kernel's tasks",
     "Serves the memory source to GDB as a remote target that cannot run: one\n"
     "thread per task of the guest kernel (its extra info \"pid N comm\"), each\n"
     "thread's registers from its switched-out frame (a sleeping task) or, with\n"
     "--dump, its CPU's note (a running one); memory through the options' space,\n"
     "kernel addresses through the kernel's own page tables when no --cr3 is\n"
     "given (a nested guest: --eptp/--ncr3). Writes, breakpoints and resuming get\n"
     "an error. gdbext's `nested unwinder` lets GDB's bt go through entry code.\n"
     "  gdb vmlinux -ex 'target remote | memsrv gdbserver --stdio --ram F --vmlinux V'\n"
     "\n"
     "Options:\n"
     "  --stdio          talk to GDB on stdin/stdout (target remote | memsrv ...)\n"
     "  --listen HOST:PORT  wait for GDB there, one session after another (port 0: any)\n"},
    {"gdbproxy", cmd_gdbproxy, "gdbproxy --qemu HOST:PORT (--listen HOST:PORT | --stdio)",
     "GDB's remote protocol to QEMU's gdbstub, nested memory from the RAM file",
     "Sits between GDB and QEMU's gdbstub: registers, run control and\n"
     "breakpoints go to QEMU, memory reads and writes are served from the RAM\n"
     "file through the nested guest's second stage (--eptp or --ncr3, with the\n"
     "vCPU's CR3 read at each stop). Needs --ram; writes need --writable.\n"
     "Software breakpoints become hardware ones in L2, and in L1 when QEMU's\n"
     "monitor says KVM; a breakpoint hit in the level it was not set in is\n"
     "stepped over unseen (said once; after 10 s of such hits in a row the\n"
     "next is shown). With `target remote | ...`, GDB reads\n"
     "the program's stderr a byte at a time: append 2>/dev/null, or use\n"
     "--listen, or gdbext's `nested proxy`.\n"
     "\n"
     "Options:\n"
     "  --qemu HOST:PORT  QEMU's gdbstub (-gdb tcp::PORT)\n"
     "  --listen HOST:PORT  wait for GDB there (target remote HOST:PORT)\n"
     "  --stdio          talk to GDB on stdin/stdout (target remote | memsrv ...)\n"
     "  --hw-breakpoints  make every software breakpoint hardware (4 at most)\n"
     "  --other-level-wait SECONDS  resume hits in the other level unseen for\n"
     "                   this long in a row, then show one (default 10)\n"},
    {"ptype", cmd_ptype, "ptype[/o] TYPE", "GDB's ptype from the kernel's own BTF",
     "Prints a type as GDB's ptype does, from the BTF the guest kernel carries\n"
     "(no vmlinux needed). TYPE is struct NAME, union NAME, enum NAME or a\n"
     "typedef; its words may be separate arguments.\n"
     "\n"
     "Options:\n"
     "  /o               offsets, sizes and holes, as GDB's ptype/o\n"},
    {"p", cmd_p, "p[/FMT] EXPR", "GDB's print from the kernel's own BTF and memory",
     "Evaluates a C expression over the guest kernel's memory and prints it as\n"
     "GDB's print does (structs, arrays with <repeats>, strings, pointers with\n"
     "<symbol+offset>, enums, bitfields), with types from the BTF the kernel\n"
     "carries: no vmlinux needed. Symbols come from the symbol file, else the\n"
     "kernel's kallsyms; their types from the BTF (per-CPU variables, functions)\n"
     "or, for well-known globals (init_task, init_uts_ns, jiffies, init_mm, ...),\n"
     "the kernel's declarations; others need a cast, as in GDB:\n"
     "(struct foo)sym, {struct foo} ADDR. The expression: . -> [] * & - ~ !,\n"
     "casts, sizeof, + - * / % << >> & | ^ && || ?: and comparisons, with C's\n"
     "promotions and pointer arithmetic, and GDB's X@N (N objects from X on).\n"
     "Quote it for the shell.\n"
     "\n"
     "Formats (after /, as GDB's):\n"
     "  x d u o t        hex, signed, unsigned, octal, binary\n"
     "  z                zero-padded hex\n"
     "  c a s            character, address with its symbol, string\n"
     "Examples:\n"
     "  p init_uts_ns.name.release\n"
     "  p '((struct task_struct *)0xffff888003c0c000)->mm->pgd'\n"
     "  p/x init_task.flags\n"},
    {"print", cmd_p, "print[/FMT] EXPR", "the same as p", "The same as p.\n"},
    {"help", cmd_help, "help [COMMAND]", "this text, or a command's usage and options",
     "Prints the usage of memsrv, or of one command with its options (also\n"
     "`memsrv COMMAND --help`).\n"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char global_options[] =
    "Memory:\n"
    "  --ram FILE       QEMU memory-backend-file (read-only unless --writable)\n"
    "  --dump FILE      QEMU dump-guest-memory ELF file\n"
    "  --machine q35|pc  RAM layout rule (default: FILE.layout if present, else q35)\n"
    "  --map GPA:LEN@OFF[,...]  explicit RAM layout\n"
    "  --writable       open RAM read-write\n"
    "Address space (no --cr3 and no second stage: guest-physical):\n"
    "  --cr3 V          first-stage paging root (guest, or nested guest with a\n"
    "                   second stage)\n"
    "  --levels 4|5     its paging depth (default 4)\n"
    "  --cr4 V          sets --levels from CR4.LA57\n"
    "  --cpu N          CR3 and CR4 of CPU N from the dump's notes\n"
    "  --eptp E         Intel EPT second stage (walk length from EPTP)\n"
    "  --ncr3 N         AMD NPT second stage rooted at nCR3\n"
    "  --npt-levels 4|5  NPT depth (default 4)\n"
    "  --nested auto    the second stage, nested CR3 and depths of the best\n"
    "                   candidate of `discover` (said on stderr)\n"
    "Kernel symbols (default: VMCOREINFO and the kernel's own kallsyms):\n"
    "  --vmlinux FILE   the guest kernel's vmlinux (symbols; types if it has\n"
    "                   debug info)\n"
    "  --system-map FILE  the guest kernel's System.map\n"
    "Server:\n"
    "  --connect ADDR   use a running `memsrv serve` (socket path, or tcp:HOST:PORT)\n"
    "  --token-file F   the server's token (needed over TCP)\n"
    "Other:\n"
    "  --help, -h       this text (COMMAND --help: that command's)\n"
    "  --version        the version of memsrv\n"
    "Numbers: 0x hex, 0 octal, decimal, with + and -.\n"
    "Environment:\n"
    "  NESTED_CACHE     where derived data (DWARF layouts) is kept (default\n"
    "                   $XDG_CACHE_HOME/nested, else ~/.cache/nested)\n";

static void usage(FILE *f)
{
    fprintf(f, "usage: memsrv [OPTIONS] COMMAND [ARGS]\n"
               "\n"
               "Reads guest and nested-guest memory from QEMU's file-backed RAM (live or after\n"
               "QEMU is gone) or from a QEMU dump-guest-memory ELF file.\n"
               "\n"
               "Commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const struct cli_command *c = &commands[i];
        if (strlen(c->synopsis) < 17)
            fprintf(f, "  %-16s %s\n", c->synopsis, c->summary);
        else
            fprintf(f, "  %s\n  %-16s %s\n", c->synopsis, "", c->summary);
    }
    fprintf(f, "\n%s", global_options);
}

static const struct cli_command *find_command(const char *name)
{
    size_t len = strcspn(name, "/");
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strlen(commands[i].name) == len && !strncmp(commands[i].name, name, len))
            return &commands[i];
    return NULL;
}

static void command_help(const struct cli_command *c, FILE *f)
{
    fprintf(f, "usage: memsrv [OPTIONS] %s\n\n%s: %s\n\n%s", c->synopsis, c->name, c->summary,
            c->help);
    fprintf(f, "\n(memsrv --help for the global options)\n");
}

int cmd_help(struct cli *cli, int argc, char **argv)
{
    (void)cli;
    if (argc == 1) {
        usage(stdout);
        return 0;
    }
    if (argc != 2)
        return cli_usage("usage: help [COMMAND]");
    const struct cli_command *c = find_command(argv[1]);
    if (!c) {
        fprintf(stderr, "memsrv: help: no command '%s'; the commands are:", argv[1]);
        for (size_t i = 0; i < NCOMMANDS; i++)
            fprintf(stderr, " %s", commands[i].name);
        fprintf(stderr, "\n");
        return 2;
    }
    command_help(c, stdout);
    return 0;
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
        } else if (!strcmp(a, "--nested")) {
            if (v && strcmp(v, "auto") != 0) {
                ms_err_set(&cli->err, MS_EINVAL, "--nested takes auto (not %s)", v);
                return -1;
            }
            cli->nested_auto = true;
        } else if (!strcmp(a, "--cpu")) {
            if (option_number(cli, a, v, &n))
                return -1;
            cli->cpu = (int)n;
        } else if (!strcmp(a, "--writable")) {
            cli->writable = true;
            used = 0;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            cli->help = true;
            used = 0;
        } else if (!strcmp(a, "--version")) {
            cli->version = true;
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

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The library's progress, drawn on one stderr line (a terminal's) once the
 * work has run half a second, and erased when it ends. */
static void draw_progress(void *arg, const char *what, uint64_t done, uint64_t total)
{
    struct cli *cli = arg;
    if (done == 0) {
        cli->progress_began = now();
        return;
    }
    if (done >= total) {
        if (cli->progress_shown)
            fprintf(stderr, "\r\033[K");
        cli->progress_shown = false;
        return;
    }
    if (now() - cli->progress_began < 0.5)
        return;
    fprintf(stderr, "\rmemsrv: %s %3u%% (%" PRIu64 " of %" PRIu64 " MiB)\033[K", what,
            (unsigned)(done * 100 / total), done >> 20, total >> 20);
    cli->progress_shown = true;
}

/* One nested guest: the same second stage. Its vCPUs (one VMCB each in an
 * SMP guest) differ in CR3, each running its own process. */
static bool same_guest(const struct ms_candidate *a, const struct ms_candidate *b)
{
    return a->kind == b->kind && a->root == b->root && a->root_levels == b->root_levels;
}

static void describe_candidates(struct ms_strbuf *sb, const struct ms_candidate *c, unsigned n)
{
    char line[256];
    for (unsigned i = 0; i < n; i++) {
        int len = snprintf(line, sizeof(line),
                           "\n  %s at 0x%" PRIx64 ", score %d: root 0x%" PRIx64 ", CR3 0x%" PRIx64,
                           ms_cand_kind_name(c[i].kind), c[i].gpa, c[i].score, c[i].root, c[i].cr3);
        ms_strbuf_append(sb, line, len > 0 && (size_t)len < sizeof(line) ? (size_t)len : 0);
    }
}

/* --nested auto: the second stage, the nested guest's CR3 and the depths of
 * discover's best VMCB or vmcs12, when it is clearly the best; explicit
 * --cr3/--levels still win. Says on stderr what it took. */
static int nested_auto(struct cli *cli)
{
    enum { MAX = 32 };
    struct ms_candidate c[MAX];
    unsigned n = 0;
    int rc = ms_target_discover(cli->t, c, MAX, &n, &cli->err);
    if (rc)
        return ms_err_prefix(&cli->err, "--nested auto: ");
    if (n > MAX)
        n = MAX;
    const struct ms_candidate *best = NULL, *rival = NULL;
    for (unsigned i = 0; i < n; i++) {
        if (c[i].kind != MS_CAND_VMCB && c[i].kind != MS_CAND_VMCS12)
            continue; /* HSAVE is L1 itself; a bare EPT tree has no CR3 or depth */
        if (!best)
            best = &c[i];
        else if (!rival && !same_guest(best, &c[i]))
            rival = &c[i];
    }
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    describe_candidates(&sb, c, n);
    if (!best)
        rc = ms_err_set(&cli->err, MS_ENOTFOUND,
                        "--nested auto: discover found no VMCB or vmcs12 (%u candidates)%s", n,
                        ms_strbuf_str(&sb));
    else if (rival && rival->score >= best->score)
        rc = ms_err_set(&cli->err, MS_EINVAL,
                        "--nested auto: no clear best candidate (scores %d and %d); choose "
                        "with `memsrv discover` and --eptp/--ncr3 --cr3:%s",
                        best->score, rival->score, ms_strbuf_str(&sb));
    else if (best->kind == MS_CAND_VMCB && !best->root_levels)
        rc = ms_err_set(&cli->err, MS_EINVAL,
                        "--nested auto: the VMCB at 0x%" PRIx64 " has nCR3 0x%" PRIx64
                        " but its NPT depth is unknown: give --ncr3 0x%" PRIx64
                        " --npt-levels 4 or 5",
                        best->gpa, best->root, best->root);
    ms_strbuf_free(&sb);
    if (rc)
        return rc;
    bool vmcb = best->kind == MS_CAND_VMCB;
    cli->has_ncr3 = vmcb;
    cli->has_eptp = !vmcb;
    if (vmcb) {
        cli->ncr3 = best->root;
        cli->npt_levels = best->root_levels;
    } else {
        cli->eptp = best->root;
    }
    /* L2 with paging off: its physical space, no first stage. */
    bool paging = best->cr0 & (1ULL << 31);
    if (!cli->has_cr3 && paging) {
        cli->cr3 = best->cr3;
        cli->has_cr3 = true;
        if (!cli->levels_set && !cli->has_cr4) {
            cli->cr4 = best->cr4;
            cli->has_cr4 = true;
        }
    }
    fprintf(stderr, "memsrv: --nested auto: %s at GPA 0x%" PRIx64 " (score %d",
            ms_cand_kind_name(best->kind), best->gpa, best->score);
    if (rival)
        fprintf(stderr, "; next %d", rival->score);
    fprintf(stderr, "): --%s 0x%" PRIx64, vmcb ? "ncr3" : "eptp", best->root);
    if (vmcb)
        fprintf(stderr, " --npt-levels %u", best->root_levels);
    if (paging)
        fprintf(stderr, " --cr3 0x%" PRIx64 " --levels %u", best->cr3,
                (best->cr4 & (1ULL << 12)) ? 5 : 4);
    else
        fprintf(stderr, " (L2 paging off: nested-guest physical)");
    fprintf(stderr, "\n");
    return 0;
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
    if (cli->nested_auto && (cli->has_eptp || cli->has_ncr3))
        return ms_err_set(err, MS_EINVAL, "--nested auto finds the second stage: drop --%s",
                          cli->has_eptp ? "eptp" : "ncr3");
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
    if (isatty(STDERR_FILENO)) {
        o.progress = draw_progress;
        o.progress_arg = cli;
    }
    if (!o.ram && !o.dump && !o.connect)
        return ms_err_set(err, MS_EINVAL, "no memory given: use --ram FILE or --dump FILE");
    rc = ms_target_open(&cli->t, &o, err);
    if (rc)
        return rc;
    if (cli->cpu >= 0 && !cli->cpu_names_task) {
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
    if (cli->nested_auto && (rc = nested_auto(cli)) != 0)
        return rc;
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
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    int n = parse_options(&cli, argc - 1, argv + 1);
    if (n < 0)
        return cli_usage("%s", cli.err.msg);
    if (cli.version) {
        printf("memsrv %s\n", ms_version());
        return 0;
    }
    char **args = argv + 1;
    const struct cli_command *c = n ? find_command(args[0]) : NULL;
    if (cli.help) {
        if (c)
            command_help(c, stdout);
        else
            usage(stdout);
        return 0;
    }
    if (n == 0)
        return cli_usage("no command given");
    if (!c || (c->run == cmd_x && args[0][1] != '/' && args[0][1] != '\0'))
        return cli_usage("unknown command '%s'", args[0]);
    int status = c->run(&cli, n, args);
    ms_target_close(cli.t);
    return status;
}
