/* The symbols of loaded modules, from each struct module's kallsyms (its
 * mod_kallsyms: an Elf64_Sym table, its string table and the kallsyms type
 * letters), as /proc/kallsyms lists them with "[module]": so `sym NAME`
 * finds a module's function and a module address is named "func [mod]". A
 * pure decoder of one module's tables (fuzzed) and a reader over a read
 * callback that bounds every count and length it is given. */
#ifndef MEMSRV_MODSYMS_H
#define MEMSRV_MODSYMS_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "kernel.h"

#define MS_MODSYMS_MAX (1u << 20) /* symbols in one module */
#define MS_MODSYM_NAME_MAX 512    /* KSYM_NAME_LEN */
#define MS_MODSYM_SIZE 24         /* sizeof(Elf64_Sym) */

/* Offsets of struct module's kallsyms pointer and in struct mod_kallsyms. */
struct ms_modsym_layout {
    uint64_t kallsyms;
    uint64_t symtab, num_symtab, strtab, typetab;
    bool has_typetab;
};

struct ms_modsym {
    uint64_t addr, size;
    uint32_t name;   /* offset in ms_modsyms.names */
    uint32_t module; /* index in ms_modsyms.mods */
    char type;       /* kallsyms' letter (t, T, d, ...) */
};

struct ms_modsyms {
    struct ms_modsym *syms;
    size_t count, cap;
    char *names;
    size_t names_len, names_cap;
    struct ms_module_list mods; /* the modules they belong to */
    uint64_t bad;               /* modules whose symbols could not be read */
};

/* Appends the named, defined symbols of one module's tables: nsyms
 * Elf64_Syms, the string table's first strtab_len bytes (a name not ending
 * inside them is skipped and counted in *skipped), typetab nsyms letters or
 * NULL. Symbol 0 and undefined ones are not symbols. */
int ms_modsyms_decode(const uint8_t *symtab, size_t nsyms, const uint8_t *strtab, size_t strtab_len,
                      const uint8_t *typetab, uint32_t module, struct ms_modsyms *out,
                      size_t *skipped, struct ms_err *err);

/* Reads the symbols of every module in out->mods (filled by the caller);
 * a module whose tables cannot be read counts in out->bad. */
int ms_modsyms_read(const struct ms_modsym_layout *l, ms_read_fn read, void *arg,
                    struct ms_modsyms *out, struct ms_err *err);

/* k's modules and their symbols (types and symbols as for lsmod). */
int ms_modsyms_load(struct ms_kernel *k, struct ms_modsyms *out, struct ms_err *err);

/* k's modules and their symbols, read on first use and again once the RAM
 * changed (a live guest loads and unloads modules): what could be read,
 * with modules that could not counted in ->bad; NULL only when out of
 * memory. Valid until the next call or ms_kernel_close. */
const struct ms_modsyms *ms_kernel_modsyms(struct ms_kernel *k);
void ms_modsyms_free(struct ms_modsyms *s);

/* name -> address (the first module that has it; MS_ENOTFOUND). */
int ms_modsyms_lookup(const struct ms_modsyms *s, const char *name, uint64_t *addr,
                      struct ms_err *err);
/* The symbol at or below addr in the module whose memory holds addr, and
 * the offset; MS_ENOTFOUND outside every module. */
int ms_modsyms_addr(const struct ms_modsyms *s, uint64_t addr, const struct ms_modsym **sym,
                    uint64_t *offset, struct ms_err *err);
/* The same with the symbol's extent as the kernel's module kallsyms gives
 * it (%pS, %pB): up to the module's next symbol, at most to end (the end
 * of the module's text, when known; else UINT64_MAX). */
int ms_modsyms_addr_extent(const struct ms_modsyms *s, uint64_t addr, uint64_t end,
                           const struct ms_modsym **sym, uint64_t *offset, uint64_t *size,
                           struct ms_err *err);

#endif
