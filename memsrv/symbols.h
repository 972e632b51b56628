/* Kernel symbols from a vmlinux ELF (.symtab, libelf) or a System.map:
 * name -> address through a hash table, address -> symbol+offset through a
 * sorted array. Addresses of the kernel image (>= __START_KERNEL_map) move
 * with the KASLR slide; per-cpu offsets and absolute values do not. */
#ifndef MEMSRV_SYMBOLS_H
#define MEMSRV_SYMBOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define MS_KERNEL_MAP_START 0xffffffff80000000ULL /* __START_KERNEL_map */

struct ms_symbol {
    const char *name;
    uint64_t addr; /* as linked (unslid) */
    uint64_t size; /* 0 when unknown (System.map) */
    char type;     /* nm letter: T t D d B b R r A W V ... */
};

struct ms_symtab;

/* Detects the format: ELF magic means vmlinux, anything else System.map. */
int ms_symtab_load(struct ms_symtab **out, const char *path, struct ms_err *err);
int ms_symtab_load_elf(struct ms_symtab **out, const char *path, struct ms_err *err);
int ms_symtab_load_map(struct ms_symtab **out, const char *path, struct ms_err *err);
/* System.map text held in memory (tests, fuzzing). */
int ms_symtab_parse_map(struct ms_symtab **out, const char *text, size_t len, struct ms_err *err);
/* A table of symbols decoded elsewhere (kallsyms): takes ownership of syms
 * and of strings (what their names point into), also on failure. what
 * names the source in messages. */
int ms_symtab_adopt(struct ms_symtab **out, const char *what, struct ms_symbol *syms, size_t count,
                    char *strings, struct ms_err *err);
void ms_symtab_free(struct ms_symtab *st);

void ms_symtab_set_slide(struct ms_symtab *st, uint64_t slide);
uint64_t ms_symtab_slide(const struct ms_symtab *st);
size_t ms_symtab_count(const struct ms_symtab *st);
/* Path it was loaded from; true for a vmlinux ELF. */
const char *ms_symtab_path(const struct ms_symtab *st);
bool ms_symtab_is_elf(const struct ms_symtab *st);

/* The runtime (slid) address of name. MS_ENOTFOUND when unknown. */
int ms_symtab_lookup(const struct ms_symtab *st, const char *name, uint64_t *addr,
                     struct ms_err *err);
/* The symbol itself (unslid), or NULL. */
const struct ms_symbol *ms_symtab_find(const struct ms_symtab *st, const char *name);
/* The symbol at or below the runtime address addr, and addr's offset in it
 * (kernel-half symbols only). MS_ENOTFOUND below the first symbol or more
 * than 1 MiB past the last. */
int ms_symtab_addr(const struct ms_symtab *st, uint64_t addr, const struct ms_symbol **sym,
                   uint64_t *offset, struct ms_err *err);
/* ms_symtab_addr as the kernel's kallsyms answers it (its %pS): of the
 * symbols at one address the one kallsyms names, and the extent as the
 * distance to the next higher symbol address, whatever the ELF size says. */
int ms_symtab_addr_extent(const struct ms_symtab *st, uint64_t addr, const struct ms_symbol **sym,
                          uint64_t *offset, uint64_t *size, struct ms_err *err);
/* The per-CPU symbol (an offset into each CPU's area, never slid) at or
 * below addr, with the extent up to the next one; MS_ENOTFOUND outside
 * them. GDB names small addresses (NULL: <fixed_percpu_data>) so. */
int ms_symtab_addr_percpu(const struct ms_symtab *st, uint64_t addr, const struct ms_symbol **sym,
                          uint64_t *offset, uint64_t *size);
/* Applies the slide to an address as linked. */
uint64_t ms_symtab_runtime(const struct ms_symtab *st, uint64_t linked);

/* The GNU build id of the vmlinux (hex, 40 chars + NUL), "" for System.map. */
const char *ms_symtab_build_id(const struct ms_symtab *st);

/* Reads len bytes at the link-time address vaddr from the vmlinux's
 * initialized sections (e.g. linux_banner's contents). ELF only. */
int ms_symtab_read_image(const struct ms_symtab *st, uint64_t vaddr, void *buf, size_t len,
                         struct ms_err *err);

#endif
