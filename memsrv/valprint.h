/* GDB's `print` over the kernel's own types: evaluates a C expression
 * (cexpr.h) against BTF types and guest memory, and prints the value as
 * GDB 13's `p` does with its defaults (print pretty off, elements 200,
 * repeats 10, max-depth 20, symbol on): "$1 = {a = 1, b = "text"}",
 * "(struct task_struct *) 0x... <init_task>", repeats, strings, enums,
 * bitfields, function values. Pure: memory and symbols come through
 * callbacks, so it runs over a fake memory in tests and fuzzing. Bounded:
 * a value's size (GDB's max-value-size, 64 KiB), the output, the number of
 * reads; every read is checked and a failed one is GDB's "Cannot access
 * memory at address 0x...".
 *
 * Symbols: a kernel global's type is its BTF VAR record (per-CPU variables:
 * the only ones pahole writes into vmlinux BTF), else the declared type of
 * a few well-known globals (init_task, init_uts_ns, jiffies, ...), else a
 * function's BTF FUNC record; other symbols have no type, as GDB says of
 * minimal symbols ("'x' has unknown type; cast it to its declared type"),
 * and a cast gives them one. Enumerators are constants. */
#ifndef MEMSRV_VALPRINT_H
#define MEMSRV_VALPRINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "btf.h"
#include "memsrv.h"

#define MS_PRINT_OUTPUT_MAX (4u << 20) /* bytes of text one print may produce */
#define MS_PRINT_VALUE_MAX 65536       /* GDB's max-value-size */
#define MS_PRINT_READS_MAX 100000      /* memory reads one print may make */

/* A symbol's runtime address; *text: it is code (nm's T/t). 0 when found,
 * MS_ENOTFOUND when not, another code when the lookup failed. */
typedef int (*ms_print_symbol_fn)(void *arg, const char *name, uint64_t *addr, bool *text);
/* The symbol addr lies in (GDB's <sym+off>): its name and addr's offset in
 * it; 0 when found, else non-zero (no symbol printed). */
typedef int (*ms_print_addrsym_fn)(void *arg, uint64_t addr, char *name, size_t size,
                                   uint64_t *offset);

struct ms_print_env {
    const struct ms_btf *btf;
    ms_read_fn read; /* guest memory, kernel virtual addresses */
    void *read_arg;
    ms_print_symbol_fn symbol;
    ms_print_addrsym_fn addrsym;
    void *sym_arg;
};

/* `print[/fmt] expr`: fmt is what follows '/' ("x", "d", ...; "" for none):
 * one of GDB's x d u o t c a s z. The text ("$1 = ...\n") is appended to
 * out; on an error nothing is, and err says what GDB would. */
int ms_print_expr(const struct ms_print_env *env, const char *fmt, const char *expr,
                  struct ms_strbuf *out, struct ms_err *err);

/* The size of the object a kernel global is, when its type is known as
 * print knows it (a BTF VAR, or a well-known global's declaration): 0 when
 * known, MS_ENOTFOUND when not. kallsyms has no sizes: this bounds where
 * <sym+off> may name an address. */
int ms_print_symbol_size(const struct ms_btf *btf, const char *name, uint64_t *size);

#endif
