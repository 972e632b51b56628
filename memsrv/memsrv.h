/* memsrv: guest and nested-guest memory from QEMU's file-backed RAM, a QEMU
 * dump, or a memsrv server, and the Linux kernel inside it.
 *
 * The public API. Everything goes through one object, the target: a memory
 * source (RAM file, dump, or a server's address) with the address spaces
 * stacked on it and the kernels found in them. Fronts (the memsrv program,
 * its server, the Python module, an outside C program) call ms_target_*
 * only; whether the bytes are here or behind a socket is the target's
 * business. Errors are values: 0 or a negative MS_E* code, with *err
 * filled. Nothing here prints. */
#ifndef MEMSRV_H
#define MEMSRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ errors */

enum ms_code {
    MS_OK = 0,
    MS_EINVAL = -1,    /* bad argument or option */
    MS_ENOMEM = -2,    /* allocation failed */
    MS_EIO = -3,       /* open/read/mmap of a file, or a connection, failed */
    MS_EFORMAT = -4,   /* a file or guest structure is malformed */
    MS_EUNMAPPED = -5, /* a page-table entry is not present */
    MS_EOUTSIDE = -6,  /* a physical address is not backed by RAM */
    MS_ERESERVED = -7, /* reserved bits / EPT misconfiguration */
    MS_ENOTFOUND = -8, /* symbol, structure or note not found */
    MS_EBUS = -9,      /* the RAM file shrank under the mapping */
    MS_EPERM = -10,    /* write to a read-only source, auth refused */
    MS_ELIMIT = -11,   /* a work or size limit was reached */
    MS_EPROTO = -12,   /* protocol violation (server/client) */
};

/* What would fix an error, in no front's words: each front turns it into
 * its own flag or argument name (QEMU's error + hint split). */
enum ms_hint {
    MS_HINT_NONE = 0,
    MS_HINT_SYMBOLS,  /* a vmlinux or System.map would help */
    MS_HINT_DWARF,    /* a vmlinux with debug info is needed */
    MS_HINT_LAYOUT,   /* the RAM layout (machine type or map) may be wrong */
    MS_HINT_WRITABLE, /* the memory was opened read-only */
    MS_HINT_TOKEN,    /* TCP needs a token */
};

struct ms_err {
    int code;
    int hint;            /* enum ms_hint */
    bool has_fault;      /* a memory access failed at fault_addr */
    uint64_t fault_addr; /* the first address that could not be read or written */
    char msg[512];
};

/* A short name for a code ("unmapped", "outside RAM", ...). */
const char *ms_code_name(int code);

/* Sets *err (which may be NULL) and returns code, so callers can write
 * `return ms_err_set(err, MS_EINVAL, "...")`. Clears the hint and fault. */
int ms_err_set(struct ms_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepends context ("reading PML4E: ") to an existing message; returns
 * err->code (or MS_EINVAL for a NULL err, when there is nothing to keep). */
int ms_err_prefix(struct ms_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ms_err_clear(struct ms_err *err);

/* ------------------------------------------------------------------- text */

/* A growable text buffer: the library writes reports here, fronts print. */
struct ms_strbuf {
    char *data; /* NUL-terminated; NULL until the first append */
    size_t len;
    size_t cap;
    bool failed; /* an allocation failed; data holds what fit */
};

void ms_strbuf_init(struct ms_strbuf *sb);
void ms_strbuf_free(struct ms_strbuf *sb);
void ms_strbuf_reset(struct ms_strbuf *sb);
void ms_strbuf_append(struct ms_strbuf *sb, const char *s, size_t len);
/* The text so far ("" when empty). */
const char *ms_strbuf_str(const struct ms_strbuf *sb);

/* ------------------------------------------------------------ translation */

enum ms_space_kind {
    MS_SPACE_PHYS,   /* guest-physical, over RAM */
    MS_SPACE_PAGING, /* x86-64 paging rooted at CR3 */
    MS_SPACE_NPT,    /* AMD nested paging rooted at nCR3 (long-mode format) */
    MS_SPACE_EPT,    /* Intel EPT rooted at EPTP */
};

enum ms_perm {
    MS_PERM_R = 1 << 0,
    MS_PERM_W = 1 << 1,
    MS_PERM_X = 1 << 2, /* paging: NX clear on every level; EPT: supervisor execute */
    MS_PERM_U = 1 << 3, /* paging: user-accessible; EPT: user execute (MBEC) */
};

struct ms_xlat {
    uint64_t addr;      /* the address translated */
    uint64_t lower;     /* its address in the lower space */
    uint64_t phys;      /* its guest-physical (RAM) address at the bottom of the stack */
    uint64_t page_size; /* this space's leaf: 4 KiB, 2 MiB or 1 GiB (phys: 4 KiB) */
    unsigned perms;     /* ms_perm bits of this space's walk */
    /* The aligned block around addr that maps linearly all the way down to
     * RAM: the smallest leaf met in any dimension (RAM regions still apply).
     * 0 when unknown (translations that came over the wire). */
    uint64_t linear_size;
};

/* One table entry read during a walk. */
struct ms_trace_entry {
    uint8_t depth;       /* 0: the space asked; 1: its lower space; ... */
    uint8_t kind;        /* enum ms_space_kind of the space whose table this is */
    uint8_t level;       /* 5 = PML5/PML5E ... 1 = PT/PTE */
    uint16_t index;      /* entry index in its table */
    uint64_t entry_addr; /* the entry's address in the walking space's lower space */
    uint64_t entry_phys; /* the entry's guest-physical (RAM) address */
    uint64_t value;      /* the entry as read */
};

const char *ms_space_kind_name(enum ms_space_kind kind);
/* "PML5E", "PML4E", "PDPTE", "PDE", "PTE" */
const char *ms_level_name(unsigned level);
/* A table entry's bits in words ("P RW US A ... -> 0x..."), as vtop shows them. */
void ms_describe_entry(enum ms_space_kind kind, unsigned level, uint64_t value, char *out,
                       size_t size);

#define MS_TRACE_MAX 64 /* 5x5 2-D walk is 35 entries */

struct ms_trace {
    struct ms_trace_entry entries[MS_TRACE_MAX];
    unsigned count;
};

/* ------------------------------------------------------------------ target */

/* Long work (discover's scan of RAM, the first DWARF load of a vmlinux)
 * says how far it is: `what` names it ("discover", "DWARF types"), done
 * of total bytes. Called in the calling thread about every 1/256 of the
 * work, and once more with done == total when it ends (also when it
 * stopped early). Fronts draw it; the library never prints. */
typedef void (*ms_progress_fn)(void *arg, const char *what, uint64_t done, uint64_t total);

struct ms_target; /* opaque */

struct ms_target_opts {
    /* Exactly one memory source: */
    const char *ram;     /* a QEMU memory-backend-file */
    const char *dump;    /* a QEMU dump-guest-memory ELF file */
    const char *connect; /* a `memsrv serve`: socket path, or "tcp:HOST:PORT" */
    /* RAM file layout (else "<ram>.layout" when present, else the q35 rule): */
    const char *machine; /* "q35", "pc", ... */
    const char *map;     /* "GPA:LEN@OFF,..." */
    bool writable;       /* open read-write (local); ask for writes (remote) */
    /* The kernel's symbols (vmlinux or System.map) for every kernel found;
     * NULL: VMCOREINFO and the kernel's own kallsyms. Not with connect: the
     * server has its own. */
    const char *symbols;
    const char *token;       /* connect: the server's shared secret, or NULL */
    unsigned timeout_ms;     /* connect: longest wait on a silent server; 0: 30 s */
    const char *cache_dir;   /* where derived data (DWARF layouts) may be kept; NULL: none */
    bool no_vmcoreinfo;      /* find kernels from the symbol file alone (no VMCOREINFO) */
    ms_progress_fn progress; /* long work in this process (not a server's); NULL: none */
    void *progress_arg;
};

int ms_target_open(struct ms_target **out, const struct ms_target_opts *opts, struct ms_err *err);
void ms_target_close(struct ms_target *t);

/* A second stage and a first stage: which address space a handle names. */
enum ms_second { MS_SECOND_NONE, MS_SECOND_EPT, MS_SECOND_NPT };
enum ms_first {
    MS_FIRST_NONE,   /* guest-physical (of the second stage's guest, if any) */
    MS_FIRST_CR3,    /* x86-64 paging rooted at cr3 */
    MS_FIRST_KERNEL, /* the Linux kernel's own page tables (found, not given) */
};

struct ms_stack {
    enum ms_second second;
    uint64_t second_root;   /* EPTP (walk length in it) or nCR3 */
    unsigned second_levels; /* NPT depth, 4 or 5 */
    enum ms_first first;
    uint64_t cr3;
    unsigned levels; /* paging depth, 4 or 5 */
};

/* An address space of a target; 0 is guest-physical. Handles live as long
 * as their target and are shared: the same stack gives the same handle. */
typedef uint32_t ms_handle;

int ms_target_space(struct ms_target *t, const struct ms_stack *stack, ms_handle *out,
                    struct ms_err *err);

/* The stack a handle names, with a MS_FIRST_KERNEL root resolved (cr3 and
 * levels filled), as it was built. */
int ms_target_stack(struct ms_target *t, ms_handle h, struct ms_stack *out, struct ms_err *err);

/* Reads len bytes, crossing pages; stops at the first unreadable byte, with
 * an error naming it (err->fault_addr). *done (may be NULL) gets the bytes
 * before it. */
int ms_target_read(struct ms_target *t, ms_handle h, uint64_t addr, void *buf, size_t len,
                   size_t *done, struct ms_err *err);
/* Many reads at once: statuses[i] and dones[i] say how each went (one round
 * trip to a server). Fails only when the exchange itself failed. */
int ms_target_readv(struct ms_target *t, ms_handle h, unsigned count, const uint64_t *addrs,
                    const uint32_t *lens, void *const *bufs, int *statuses, size_t *dones,
                    struct ms_err *err);
int ms_target_write(struct ms_target *t, ms_handle h, uint64_t addr, const void *buf, size_t len,
                    size_t *done, struct ms_err *err);

/* Translations; trace (may be NULL) records every entry of the first. */
int ms_target_translate(struct ms_target *t, ms_handle h, unsigned count, const uint64_t *addrs,
                        struct ms_xlat *out, int *statuses, struct ms_trace *trace,
                        struct ms_err *err);

/* Reads memory for a formatter or decoder; the contract of ms_target_read. */
typedef int (*ms_read_fn)(void *arg, uint64_t addr, void *buf, size_t len, size_t *done,
                          struct ms_err *err);

/* Reports, as text (the same from a file and from a server). */

/* Writes "sym+off" (no brackets) for addr into out; returns 0 when found. */
typedef int (*ms_symbolize_fn)(void *arg, uint64_t addr, char *out, size_t out_size);

/* What GDB keeps between two x commands, and who names addresses. */
struct ms_x_state {
    char format, size; /* in: the last ones used (0: GDB's first, x and w); out: this x's */
    uint64_t next;     /* out: the address after the last unit shown */
    /* in: names for the address column; NULL: the kernel's symbols when
     * the target has a symbol file or has already loaded the kernel's */
    ms_symbolize_fn symbolize;
    void *symbolize_arg;
};

/* GDB's x/FMT grammar: parses "16gx", "s", "3i" from the sticky defaults in
 * *format and *size (GDB's: 'x' and 'w'), updating them. */
int ms_parse_xfmt(const char *text, uint64_t *count, char *format, char *size, struct ms_err *err);

/* GDB's x: fmt is what follows '/' ("16gx", "s", "3i", or ""). On an
 * unreadable byte the text holds what came before it, as GDB prints it,
 * and the error says "Cannot access memory at address 0x...". state may
 * be NULL. */
int ms_target_x(struct ms_target *t, ms_handle h, const char *fmt, uint64_t addr,
                struct ms_x_state *state, struct ms_strbuf *out, struct ms_err *err);
int ms_target_vtop(struct ms_target *t, ms_handle h, uint64_t addr, struct ms_strbuf *out,
                   struct ms_err *err);
int ms_target_ptdump(struct ms_target *t, ms_handle h, uint64_t start, uint64_t end,
                     struct ms_strbuf *out, struct ms_err *err);
/* "paging 5-level CR3 0x.. over NPT 4-level nCR3 0x.. over RAM". */
int ms_target_describe(struct ms_target *t, ms_handle h, struct ms_strbuf *out, struct ms_err *err);

/* The canonical form of a virtual address for the handle's paging depth
 * (sign extension from bit 47 or 56); other addresses come back as given. */
int ms_target_canonical(struct ms_target *t, ms_handle h, uint64_t addr, uint64_t *out,
                        struct ms_err *err);
/* "rwx u"-style text for ms_perm bits as the handle's top space means them. */
int ms_target_perm_text(struct ms_target *t, ms_handle h, unsigned perms, char out[8],
                        struct ms_err *err);

/* Re-reads the file sizes and drops every cached translation (the guest
 * ran). Kernels are checked for a reboot before their next use. */
int ms_target_flush(struct ms_target *t, struct ms_err *err);

/* --------------------------------------------------------- what it holds */

/* Which registers of a CPU are at hand. */
enum ms_cpu_known {
    MS_CPU_ALL = 0, /* every one (a dump's notes) */
    /* An AMD SVM VMCB's save area (a nested guest's CPU at its last
     * #VMEXIT): rax, rsp, rip, rflags, the segment bases and control
     * registers; the other general registers are not in a VMCB (the
     * hypervisor keeps them in its own memory). */
    MS_CPU_SAVE_AREA,
    MS_CPU_NONE, /* none: that CPU's state was not found */
    /* A KVM vmcs12's guest state (a nested guest's CPU under Intel VMX):
     * as MS_CPU_SAVE_AREA less rax and KERNEL_GS_BASE, as KVM last wrote
     * it back to L1's memory. */
    MS_CPU_VMCS12,
};

struct ms_cpu_state {
    enum ms_cpu_known known;
    uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
    uint64_t rip, rflags;
    uint64_t fs_base, gs_base, kernel_gs_base;
    uint64_t cr0, cr2, cr3, cr4;
    bool has_cr; /* false when only NT_PRSTATUS was present */
    /* MS_CPU_SAVE_AREA or MS_CPU_VMCS12 with every general register too,
     * from the hypervisor's own copy (ms_discover_saved_gprs) */
    bool gprs;
};

struct ms_target_region {
    uint64_t gpa, len, offset;
    unsigned source;
};

/* Owned by the target; valid until it closes. */
struct ms_target_info {
    bool remote;   /* behind a server */
    bool writable; /* writes are accepted */
    uint64_t ram_size, ram_end;
    const char *where; /* the file, or the server's address */
    unsigned nregions; /* guest-physical -> file offset */
    const struct ms_target_region *regions;
    unsigned nsources;
    const char *const *sources; /* file paths (their sizes: source_sizes) */
    const uint64_t *source_sizes;
    unsigned ncpus; /* from a dump's notes */
    const struct ms_cpu_state *cpus;
    const char *vmcoreinfo; /* a dump's VMCOREINFO note (the outer guest's), or NULL */
    size_t vmcoreinfo_len;
};

int ms_target_info(struct ms_target *t, const struct ms_target_info **out, struct ms_err *err);

struct ms_target_stats {
    uint64_t requests, errors, generation, hits, misses, walks, table_reads;
};
int ms_target_stats(struct ms_target *t, struct ms_target_stats *out, struct ms_err *err);

/* One leaf mapping met while enumerating a space. */
struct ms_mapping {
    uint64_t addr;  /* first address in this space */
    uint64_t size;  /* leaf page size */
    uint64_t lower; /* its address in the lower space */
    unsigned perms; /* ms_perm bits */
    uint64_t leaf;  /* the leaf entry value */
};
/* Returns non-zero to stop the enumeration (that value is returned). */
typedef int (*ms_mapping_fn)(void *arg, const struct ms_mapping *mapping);
/* Every leaf in [start, end], in order (in-process targets only: a server
 * answers with ptdump's text). */
int ms_target_enumerate(struct ms_target *t, ms_handle h, uint64_t start, uint64_t end,
                        ms_mapping_fn fn, void *arg, uint64_t max_tables, uint64_t *bad_tables,
                        struct ms_err *err);

/* ---------------------------------------------------------- nested guests */

enum ms_cand_kind {
    MS_CAND_VMCB = 1, /* AMD VMCB with nested paging enabled */
    MS_CAND_HSAVE,    /* AMD host-save area: L1's own state while L2 runs */
    MS_CAND_VMCS12,   /* KVM's software VMCS for an L2 (revision 0x11e57ed0) */
    MS_CAND_EPT,      /* a page that looks like an EPT PML4 (or PML5) table */
};

struct ms_candidate {
    enum ms_cand_kind kind;
    uint64_t gpa;         /* the page it was found in */
    uint64_t root;        /* nCR3, EPTP, or (MS_CAND_EPT) a WB EPTP for gpa (4-level
                           * when its depth is not known) */
    unsigned root_levels; /* NPT/EPT depth; 0 when it could not be told */
    uint64_t cr0, cr3, cr4, efer, rip, rsp; /* L2's (HSAVE: L1's) saved state */
    uint32_t asid;                          /* VMCB ASID or vmcs12 VPID */
    uint64_t gs_base, kernel_gs_base;       /* VMCB: L2's, as VMSAVE left them */
    /* VMCB: the nested guest's CPU whose state it holds (its GS base is
     * that CPU's per-CPU offset in the nested kernel); -1: not told */
    int32_t vcpu;
    int score; /* higher is more believable */
    char evidence[400];
};

/* Scans L1's RAM for nested roots; up to max, best first; *count gets how
 * many were found (may exceed max). */
int ms_target_discover(struct ms_target *t, struct ms_candidate *out, unsigned max, unsigned *count,
                       struct ms_err *err);
const char *ms_cand_kind_name(enum ms_cand_kind kind);

/* ------------------------------------------------------------ Linux kernel */

/* The kernel of a handle's guest-physical space (its second stage, else
 * RAM) is found once (VMCOREINFO, the symbol file, KASLR) and kept until a
 * flush shows the guest rebooted. */

enum ms_dmesg_style {
    MS_DMESG_PLAIN, /* dmesg(1): "[    1.234567] text", each line of a record prefixed */
    MS_DMESG_RAW,   /* "<6>[    1.234567] text": syslog prefix (facility << 3 | level) */
    MS_DMESG_CRASH, /* crash's `log`: continuation lines indented, non-printables '.' */
};

struct ms_dmesg_opts {
    enum ms_dmesg_style style;
    int max_level; /* print records with level <= max_level; -1 = all */
};

/* The ring's health as read, and where the kernel was found. */
struct ms_dmesg_info {
    uint64_t records, bad, lost, incomplete, truncated;
    uint32_t retries;
    bool consistent;
    char first_bad[160];
    char how[160];
};

int ms_target_dmesg(struct ms_target *t, ms_handle h, const struct ms_dmesg_opts *opts,
                    struct ms_strbuf *text, struct ms_dmesg_info *info, struct ms_err *err);

/* Where a reader following a live log stands. Zero it to start: the first
 * call returns every record in the ring. */
struct ms_dmesg_cursor {
    uint64_t next_seq; /* the first record not yet returned */
    bool started;
    uint64_t stall_seq; /* a missing record waited for (a writer still on it) */
    unsigned stalls;    /* calls it has been missing; then it counts as lost */
};

/* The records after the cursor, formatted as ms_target_dmesg formats them,
 * and the cursor moved past them; call ms_target_flush first when the
 * guest runs. Records the ring dropped before they could be read (it
 * wrapped, or overwrote them while they were copied: they are never
 * returned torn) are added to *lost and marked where they were by a line
 * "-- N records lost --". A record missing between two present ones is
 * waited for a few calls (a CPU may still be writing it). */
int ms_target_dmesg_next(struct ms_target *t, ms_handle h, const struct ms_dmesg_opts *opts,
                         struct ms_dmesg_cursor *cursor, struct ms_strbuf *text, uint64_t *lost,
                         struct ms_err *err);

/* What was found of the kernel: its release, where it lies (KASLR), and
 * where its symbols come from. */
struct ms_kernel_info {
    char release[65]; /* "6.1.0-57-cloud-amd64"; "" when unknown */
    uint64_t slide;   /* KASLR: runtime - link-time address (GDB's qOffsets) */
    uint64_t
        phys_base;    /* physical address of the kernel image's first byte, less its link offset */
    uint64_t root;    /* its page-table root, guest-physical */
    unsigned levels;  /* 4 or 5 */
    uint64_t symbols; /* how many (0: none yet, VMCOREINFO's SYMBOL() lines only) */
    char symbols_from[160]; /* "vmlinux PATH", "System.map PATH", "kallsyms", ... */
    char how[160];          /* where the slide and root came from */
};

/* Finds the kernel of the handle's guest-physical space (and its symbols)
 * if not found yet, and says what was found. */
int ms_target_kernel_info(struct ms_target *t, ms_handle h, struct ms_kernel_info *out,
                          struct ms_err *err);

/* Symbols, KASLR applied: the symbol file's, else the kernel's kallsyms.
 * name -> runtime address; address -> the symbol at or below it (appended
 * to *name) and the offset. */
int ms_target_symbol(struct ms_target *t, ms_handle h, const char *name, uint64_t *addr,
                     struct ms_err *err);
int ms_target_addrsym(struct ms_target *t, ms_handle h, uint64_t addr, struct ms_strbuf *name,
                      uint64_t *offset, struct ms_err *err);

/* Uses another symbol file (NULL: none) for every kernel from now on; the
 * kernels found so far are dropped. In-process targets only: a server has
 * its own. */
int ms_target_set_symbols(struct ms_target *t, const char *path, struct ms_err *err);

/* Evaluates an address expression: numbers (0x hex, 0 octal, decimal) with
 * + and -, and kernel symbol names when the kernel has symbols. */
int ms_target_eval(struct ms_target *t, ms_handle h, const char *expr, uint64_t *value,
                   struct ms_err *err);

struct ms_task {
    uint64_t addr; /* task_struct */
    int32_t pid, tgid, ppid;
    uint32_t state, exit_state;
    char comm[17];
};

/* The task list; *tasks is malloc'd (free() it). *bad counts tasks whose
 * fields could not be read. */
int ms_target_tasks(struct ms_target *t, ms_handle h, struct ms_task **tasks, size_t *count,
                    uint64_t *bad, struct ms_err *err);
/* Kernel stacks of the tasks with the given pids (every task when npids is
 * 0), unwound with the kernel's ORC tables (x86-64): per task crash's
 * header line, then the kernel's own frame lines (" #0 func+0xoff/0xsize"),
 * pt_regs as RIP:/RSP: lines, and a "    bt: ..." line where an unwind
 * stopped short. Tasks on a CPU are named, not unwound. Needs the kernel's
 * symbols (a symbol file, else its kallsyms) and its task_struct layout. A
 * pid with no task fails after the others are in *out. */
int ms_target_backtrace(struct ms_target *t, ms_handle h, const int32_t *pids, size_t npids,
                        struct ms_strbuf *out, struct ms_err *err);
/* The same report for the task running on CPU cpu (the kernel's per-CPU
 * current_task: an idle task too), unwound from that CPU's registers: a
 * dump's notes for the outer guest; for a nested guest under AMD SVM (an
 * NPT handle) the save area of the VMCB whose GS base is that CPU's per-CPU
 * offset (ms_candidate.vcpu), which holds rip, rsp, rax and rflags only. */
int ms_target_cpu_backtrace(struct ms_target *t, ms_handle h, uint32_t cpu, struct ms_strbuf *out,
                            struct ms_err *err);
/* ------------------------------------------------- threads and frames */

/* x86-64 registers in GDB's order (its i386:x86-64 core, segment bases and
 * QEMU's system registers), for a thread's registers and unwound frames. */
enum ms_reg {
    MS_REG_RAX,
    MS_REG_RBX,
    MS_REG_RCX,
    MS_REG_RDX,
    MS_REG_RSI,
    MS_REG_RDI,
    MS_REG_RBP,
    MS_REG_RSP,
    MS_REG_R8,
    MS_REG_R9,
    MS_REG_R10,
    MS_REG_R11,
    MS_REG_R12,
    MS_REG_R13,
    MS_REG_R14,
    MS_REG_R15,
    MS_REG_RIP,
    MS_REG_RFLAGS,
    MS_REG_CS,
    MS_REG_SS,
    MS_REG_DS,
    MS_REG_ES,
    MS_REG_FS,
    MS_REG_GS,
    MS_REG_FS_BASE,
    MS_REG_GS_BASE,
    MS_REG_K_GS_BASE,
    MS_REG_CR0,
    MS_REG_CR2,
    MS_REG_CR3,
    MS_REG_CR4,
    MS_REG_CR8,
    MS_REG_EFER,
    MS_REG_COUNT
};

/* GDB's name of a register ("rax", "eflags", "k_gs_base"); NULL past the end. */
const char *ms_reg_name(unsigned reg);

struct ms_regs {
    uint64_t v[MS_REG_COUNT];
    uint64_t valid; /* bit (1 << MS_REG_*) per register known; the others are unknown */
};

enum ms_regs_source {
    MS_REGS_NONE,  /* nothing known: on a CPU, and no registers of it at hand */
    MS_REGS_FRAME, /* asleep: its switched-out frame (inactive_task_frame at thread.sp):
                      rip (the return address), rsp, rbp, rbx, r12-r15 */
    MS_REGS_CPU,   /* on a CPU: that CPU's registers from a dump's notes, or (a
                      nested guest) its VMCB's save area: rip, rsp, rax, rflags,
                      segment bases, control registers only */
};

struct ms_task_regs {
    enum ms_regs_source source;
    bool on_cpu;  /* running at the stop (task->on_cpu) */
    uint32_t cpu; /* the CPU it last ran on */
    struct ms_regs regs;
};

/* A task's registers as a debugger shows its thread (x86-64 Linux). A dump's
 * CPU notes are the outer guest's: they never stand for a nested kernel's
 * task (a handle with a second stage); there the VMCBs of its NPT are (as
 * ms_target_cpu_backtrace). */
int ms_target_task_regs(struct ms_target *t, ms_handle h, uint64_t task, struct ms_task_regs *out,
                        struct ms_err *err);

/* One frame of a kernel stack, for an unwinder that steps (a debugger's). */
struct ms_frame {
    struct ms_regs regs; /* rip and rsp at least; rbp when known */
    /* rip is where the frame stopped (the innermost frame, or one interrupted
     * with its registers in pt_regs), not a return address; with every
     * general register and cs known it is the interrupted-registers case
     * (the kernel's unwind from pt_regs). */
    bool exact;
    bool user; /* out, at the end: regs are user-mode pt_regs (a syscall's or an interrupt's) */
};

/* One step of the kernel's ORC unwinder (x86-64) from frame in to its
 * caller, reading the stack through the handle's space: 1 with *out the
 * caller (rip, rsp, rbp; from pt_regs every register they hold, and
 * out->exact); 0 at the stack's end (the kernel's end marker, or user-mode
 * pt_regs: then out->user with their registers); a negative code when the
 * unwind cannot go on (no ORC data for rip, a stack read failed). The stack
 * is the THREAD_SIZE block holding rsp; a caller on another stack (an IRQ
 * or exception stack's way back) is checked only as kernel memory. */
int ms_target_unwind_step(struct ms_target *t, ms_handle h, const struct ms_frame *in,
                          struct ms_frame *out, struct ms_err *err);

/* crash-style two-letter state: RU IN UN ID ST TR ZO DE PA NE. */
const char *ms_task_state_name(uint32_t state, uint32_t exit_state);
/* "    PID    PPID  ST  TASK              COMM" table, as `memsrv ps` prints it. */
void ms_tasks_format(const struct ms_task *tasks, size_t count, struct ms_strbuf *sb);

/* A loaded module as /proc/modules shows it. */
#define MS_MODULE_NAME_MAX 64 /* MODULE_NAME_LEN is 56 on 64-bit kernels */

enum ms_module_state {
    MS_MODULE_LIVE = 0,     /* MODULE_STATE_LIVE */
    MS_MODULE_COMING = 1,   /* being loaded: "Loading" */
    MS_MODULE_GOING = 2,    /* being unloaded: "Unloading" */
    MS_MODULE_UNFORMED = 3, /* still being set up: /proc/modules leaves it out */
};

struct ms_module {
    uint64_t addr; /* struct module */
    char name[MS_MODULE_NAME_MAX + 1];
    uint64_t size;    /* /proc/modules' size: the bytes of every layout */
    int64_t refcount; /* refcnt less the kernel's base reference (has_unload) */
    uint32_t state;   /* enum ms_module_state as the kernel holds it */
    uint64_t base;    /* the core text's address */
    uint64_t taints;  /* the module's taint bits (0 when the kernel has none) */
    bool has_unload;  /* CONFIG_MODULE_UNLOAD: refcount, users and permanent known */
    bool permanent;   /* an init but no exit: it can never be unloaded */
    bool users_known; /* the modules using it were read */
    /* The names of the modules using it, each NUL-terminated, in list->users. */
    uint32_t nusers, users_off, users_len;
};

struct ms_module_list {
    struct ms_module *modules; /* in the kernel's list order (the newest first) */
    size_t count, cap;
    char *users; /* the names ms_module.users_* point into */
    size_t users_len, users_cap;
    uint64_t bad; /* modules whose users could not be read */
};

/* The kernel's module list, from struct module's layout in the kernel's
 * types (DWARF, else its BTF) and its symbols. A walk cut short still hands
 * back what it read, with its error; free out with ms_module_list_free. */
int ms_target_modules(struct ms_target *t, ms_handle h, struct ms_module_list *out,
                      struct ms_err *err);
void ms_module_list_free(struct ms_module_list *l);
/* "Live", "Loading", "Unloading", "Unformed", or "?" */
const char *ms_module_state_name(uint32_t state);
/* /proc/modules' lines: "name size refcount users state base [taints]",
 * modules still unformed left out as the kernel leaves them out. */
void ms_modules_format(const struct ms_module_list *l, struct ms_strbuf *sb);

/* A file's bytes from the guest kernel's page cache, no agent in the guest:
 * the path looked up in the dentry cache from init_task's root (mount
 * points crossed, "." and "..", symlinks followed), the inode's address_space
 * xarray, each page through vmemmap to guest-physical memory. Files of
 * tmpfs, ramfs and the initramfs are whole; a disk file's pages the kernel
 * has not read (or has dropped) are holes. Struct layouts from DWARF, else
 * the kernel's BTF; linux 6.1's dcache (d_subdirs). */
#define MS_FILE_READ_MAX (1u << 20)                         /* bytes per call */
#define MS_FILE_HOLES_MAX (MS_FILE_READ_MAX / 4096 / 2 + 1) /* every other page */

struct ms_file_hole {
    uint64_t offset, len; /* file offsets */
};

struct ms_file_chunk {
    uint64_t size;  /* the file's size (i_size) */
    uint32_t mode;  /* i_mode: type and permission bits */
    uint64_t inode; /* its struct inode */
    uint64_t len;   /* bytes read into buf: what was asked, up to the file's end */
    unsigned nholes;
    struct ms_file_hole holes[MS_FILE_HOLES_MAX]; /* not in the page cache: zeros in buf */
};

/* Reads [offset, offset + len) (len at most MS_FILE_READ_MAX; 0 only looks
 * the file up) of the regular file at the absolute path. A directory or
 * other non-regular file, a name not in the dentry cache: an error. */
int ms_target_file_read(struct ms_target *t, ms_handle h, const char *path, uint64_t offset,
                        void *buf, size_t len, struct ms_file_chunk *out, struct ms_err *err);

/* A directory's entries in the dentry cache: what the guest has looked up
 * (every entry, on tmpfs, ramfs and the initramfs), mount points as the
 * mounted root shows them. */
#define MS_DIR_NAME_MAX 255

struct ms_dirent {
    char name[MS_DIR_NAME_MAX + 1];
    uint32_t mode; /* i_mode */
    uint64_t size; /* i_size */
    uint64_t inode;
};

struct ms_dir {
    struct ms_dirent *entries; /* sorted by name */
    size_t count, cap;
};

/* Lists the directory at the absolute path (symlinks followed) into out
 * (free it with ms_dir_free). */
int ms_target_dir_list(struct ms_target *t, ms_handle h, const char *path, struct ms_dir *out,
                       struct ms_err *err);
void ms_dir_free(struct ms_dir *d);
/* ls -l's columns: "drwxr-xr-x     4096 name", one entry a line; with
 * inodes, each struct inode's address first ("0xffff... "). */
void ms_dir_format(const struct ms_dir *d, bool inodes, struct ms_strbuf *sb);

/* A process's memory area as /proc/PID/maps shows it. */
struct ms_vma {
    uint64_t addr;               /* its vm_area_struct (the gate VMA's for [vsyscall]) */
    uint64_t start, end;         /* vm_start, vm_end */
    uint64_t flags;              /* vm_flags: VM_READ 1, VM_WRITE 2, VM_EXEC 4, VM_MAYSHARE 0x80 */
    uint64_t offset;             /* file offset in bytes (vm_pgoff << 12), 0 without a file */
    uint32_t dev;                /* the file's s_dev: major dev >> 20, minor dev & 0xfffff */
    uint64_t ino;                /* the file's inode number */
    bool name_known;             /* false: the name could not be read ("?") */
    uint32_t name_off, name_len; /* its name in list->names (NUL-terminated), "" for none */
};

struct ms_vma_list {
    struct ms_vma *vmas; /* in address order */
    size_t count, cap;
    char *names;
    size_t names_len, names_cap;
    uint64_t bad; /* areas whose name could not be read */
};

/* The memory map of the process (or thread) pid: its mm's VMA tree (the
 * maple tree of 6.1+), names as /proc gives them (file paths from the
 * dentries and mounts, [heap], [stack], [vdso], [vvar], [vsyscall]). The
 * layouts come from the kernel's types (DWARF, else its BTF). A pid with
 * no task, or a task with no mm (a kernel thread), is MS_ENOTFOUND. A walk
 * cut short hands back what it read, with its error; free out with
 * ms_vma_list_free. */
int ms_target_maps(struct ms_target *t, ms_handle h, int32_t pid, struct ms_vma_list *out,
                   struct ms_err *err);
void ms_vma_list_free(struct ms_vma_list *l);
/* /proc/PID/maps' lines, the name column padded as the kernel pads it. */
void ms_maps_format(const struct ms_vma_list *l, struct ms_strbuf *sb);

/* The kernel's types. The walks' struct layouts come from the symbol
 * file's DWARF when it has debug info, else from the kernel's own BTF
 * (CONFIG_DEBUG_INFO_BTF keeps it in memory), else from VMCOREINFO's
 * OFFSET/SIZE lines. */

/* Where the layouts used so far came from, as a line: "DWARF (cached)",
 * "BTF (guest memory, 95265 types), read and parsed in 7.3 ms", "VMCOREINFO". */
int ms_target_types_source(struct ms_target *t, ms_handle h, struct ms_strbuf *out,
                           struct ms_err *err);
/* GDB's ptype of a type name ("struct task_struct", "pid_t", "unsigned
 * long") from the kernel's own BTF; flags as after '/' ("o": offsets,
 * sizes, holes and padding, like ptype/o). */
int ms_target_ptype(struct ms_target *t, ms_handle h, const char *flags, const char *type,
                    struct ms_strbuf *out, struct ms_err *err);

/* GDB's `print[/fmt] expr` over the kernel's own BTF and memory (no
 * vmlinux needed): a C expression of kernel globals, literals, . -> [] * &
 * casts, sizeof and arithmetic, printed as GDB 13's p prints it ("$1 =
 * {...}\n"). fmt is what follows '/' (one of x d u o t c a s z, or "").
 * Kernel addresses are read through the kernel's own page tables. Errors
 * are GDB's ("No symbol \"x\" in current context.", "There is no member
 * named y.", "Cannot access memory at address 0x..."). */
int ms_target_print(struct ms_target *t, ms_handle h, const char *fmt, const char *expr,
                    struct ms_strbuf *out, struct ms_err *err);

/* ------------------------------------------------------------ vmcore export */

struct ms_vmcore_info {
    uint64_t loads;      /* PT_LOADs of guest-physical memory (the kernel image's not counted) */
    uint64_t phys_bytes; /* guest-physical bytes they cover */
    uint64_t data_bytes; /* bytes written: the pages that are not all zero */
    uint64_t unreadable; /* bytes inside the ranges that could not be read: holes, as zeros */
    uint64_t file_size;
    unsigned ncpus;      /* NT_PRSTATUS notes */
    unsigned pids_known; /* CPUs whose running task's pid was read */
    char how[200];       /* where the running tasks came from, or why they are unknown */
};

/* Writes a kdump-style ELF vmcore of the guest-physical space of the
 * handle's level (its second stage, so a nested guest's memory with the
 * pages it does not map as holes; else RAM) with the kernel found there:
 * its VMCOREINFO, the kernel image at its virtual address, RAM at the
 * direct map, the running task per CPU. crash and drgn open it as they
 * open /proc/vmcore. Zero pages are not written (sparse). Progress
 * ("export-vmcore", bytes of guest-physical memory) goes to progress, else
 * (NULL) to the target's own (ms_target_opts). In-process targets only. */
int ms_target_export_vmcore(struct ms_target *t, ms_handle h, const char *path,
                            ms_progress_fn progress, void *progress_arg,
                            struct ms_vmcore_info *info, struct ms_err *err);

/* Numbers as memsrv reads them; names resolve through fn when given. */
typedef int (*ms_name_fn)(void *arg, const char *name, uint64_t *value);
int ms_parse_expr(const char *text, ms_name_fn resolve, void *arg, uint64_t *value,
                  struct ms_err *err);

const char *ms_version(void);

#ifdef __cplusplus
}
#endif

#endif
