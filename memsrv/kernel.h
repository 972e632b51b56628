/* The kernel view: a Linux kernel found in guest(-physical) memory. Brings
 * together VMCOREINFO (from a dump note or a RAM scan), symbols (vmlinux or
 * System.map), the KASLR slide and phys_base, struct layouts (VMCOREINFO,
 * DWARF, or the kernel's own BTF) and the kernel's own address space rooted
 * at init_top_pgt, so no CR3 is needed after a crash. */
#ifndef MEMSRV_KERNEL_H
#define MEMSRV_KERNEL_H

#include <stdbool.h>
#include <stdint.h>

#include "btf.h"
#include "dmesg.h"
#include "error.h"
#include "space.h"
#include "symbols.h"
#include "typedb.h"
#include "vmcoreinfo.h"

struct ms_kernel_opts {
    const char *symbols;    /* vmlinux or System.map path, or NULL */
    const char *vmcoreinfo; /* VMCOREINFO text from a dump note, or NULL (then scan) */
    size_t vmcoreinfo_len;
    bool no_scan;            /* don't scan RAM for VMCOREINFO */
    const char *cache_dir;   /* where DWARF layouts may be cached, or NULL */
    ms_progress_fn progress; /* DWARF loads report here; NULL: nowhere */
    void *progress_arg;
};

struct ms_backtracer; /* backtrace.h */
struct ms_modsyms;    /* modsyms.h */

struct ms_kernel {
    struct ms_space *phys;            /* guest-physical: phys, or EPT/NPT for a nested guest */
    struct ms_space *space;           /* kernel virtual addresses (init_top_pgt) */
    struct ms_vmcoreinfo *vmcoreinfo; /* NULL when none found */
    struct ms_symtab *syms;           /* NULL without a symbol file */
    struct ms_typedb types;           /* VMCOREINFO first, DWARF or BTF added on demand */
    bool dwarf_loaded;
    char *cache_dir;
    ms_progress_fn progress; /* for the DWARF or BTF load */
    void *progress_arg;
    struct ms_btf *btf;         /* the kernel's own BTF once read (ms_kernel_load_btf), else NULL */
    double btf_load_ms;         /* how long reading and parsing it took (kallsyms apart) */
    uint64_t slide;             /* KASLR: runtime - link-time address */
    uint64_t phys_base;         /* PA of the kernel image = VA - __START_KERNEL_map + phys_base */
    uint64_t root;              /* kernel page-table root (guest-physical) */
    unsigned levels;            /* 4 or 5 */
    char how[160];              /* where the slide and root came from */
    struct ms_backtracer *bt;   /* ORC tables and stack layout once loaded (backtrace.h) */
    struct ms_modsyms *modsyms; /* the modules and their symbols (ms_kernel_modsyms) */
    uint64_t modsyms_generation; /* the RAM's generation when they were read */
};

int ms_kernel_open(struct ms_kernel **out, struct ms_space *phys, const struct ms_kernel_opts *o,
                   struct ms_err *err);
void ms_kernel_close(struct ms_kernel *k);

/* A symbol's runtime address: from the symbol file (slid), else
 * VMCOREINFO's SYMBOL(name). */
int ms_kernel_symbol(const struct ms_kernel *k, const char *name, uint64_t *addr,
                     struct ms_err *err);

/* Builds k->syms from the kernel's own kallsyms tables (their addresses
 * come from VMCOREINFO), so symbols work with no vmlinux or System.map.
 * Addresses are runtime ones (slide already in). At most max_syms (0 =
 * 1M) symbols; malformed tables are an error. */
int ms_kernel_load_kallsyms(struct ms_kernel *k, size_t max_syms, struct ms_err *err);

/* Adds the layouts of the named structs to k->types: from the vmlinux's
 * DWARF when one with debug info was given, else from the kernel's own BTF
 * (ms_kernel_load_btf). An error naming both when neither has them. */
int ms_kernel_need_types(struct ms_kernel *k, const char *const *structs, struct ms_err *err);

/* Reads the kernel's BTF (CONFIG_DEBUG_INFO_BTF keeps .BTF in memory
 * between __start_BTF and __stop_BTF) in one read through the kernel's
 * address space and parses it into k->btf. The two symbols come from the
 * symbol file, else from kallsyms (loaded here when k has no symbols).
 * Once loaded, later calls return at once. */
int ms_kernel_load_btf(struct ms_kernel *k, struct ms_err *err);

/* The kernel log (lockless ring or old log_buf, whichever the kernel has). */
int ms_kernel_dmesg(struct ms_kernel *k, struct ms_printk_log *log, struct ms_err *err);

/* Finds the slide, phys_base, page-table root and depth with no VMCOREINFO:
 * linux_banner's bytes (vmlinux) or "Linux version " (System.map) are
 * searched at guest-physical addresses congruent to its link address modulo
 * 2 MiB, and each hit is confirmed by walking the kernel page tables found
 * beside it (init_top_pgt, same image offset) for every 2 MiB slide.
 * levels: 4 or 5, or 0 to try both. */
int ms_kernel_find_slide(struct ms_space *phys, const struct ms_symtab *syms, unsigned levels,
                         uint64_t *slide, uint64_t *phys_base, uint64_t *root, unsigned *levels_out,
                         struct ms_err *err);

#endif
