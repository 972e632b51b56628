/* The kernel's own symbol table (kallsyms), decoded from the bytes of its
 * tables as scripts/kallsyms.c writes them: kallsyms_names holds, per
 * symbol, a length (one byte, or two when the first has bit 7 set: 6.1+
 * "big" symbols) and that many token numbers; kallsyms_token_index gives
 * each of the 256 tokens' offsets in kallsyms_token_table (NUL-terminated
 * strings); a symbol's expansion starts with its nm type letter.
 * kallsyms_offsets holds one s32 per symbol relative to
 * kallsyms_relative_base. A pure decoder (fuzzed): the caller reads the
 * tables from guest memory. */
#ifndef MEMSRV_KALLSYMS_H
#define MEMSRV_KALLSYMS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "symbols.h"

#define MS_KALLSYMS_NAME_MAX 512 /* KSYM_NAME_LEN (6.1+), type letter included */
#define MS_KALLSYMS_MAX_DEFAULT (1u << 20)
#define MS_KALLSYMS_TOKEN_INDEX_LEN 512 /* 256 u16 */

/* The tables' bytes as read. names may run on past the last symbol (the
 * caller reads up to the next table); the token table holds at most 64 KiB
 * (u16 offsets). */
struct ms_kallsyms_tables {
    uint32_t num_syms;      /* kallsyms_num_syms */
    uint64_t relative_base; /* kallsyms_relative_base */
    const uint8_t *names;
    size_t names_len;
    const uint8_t *token_table;
    size_t token_table_len;
    const uint8_t *token_index; /* MS_KALLSYMS_TOKEN_INDEX_LEN bytes */
    size_t token_index_len;
    const uint8_t *offsets; /* num_syms * 4 bytes */
    size_t offsets_len;
};

/* The decoded symbols: names point into strings. Types are nm letters and
 * addresses runtime ones; sizes are 0 (kallsyms has none). */
struct ms_kallsyms {
    struct ms_symbol *syms;
    size_t count;
    char *strings;
    uint64_t skipped; /* names that decode to no "type letter + printable name" */
};

/* Decodes the tables into out (cleared first). max_syms (0 = the default)
 * bounds num_syms. Offsets decode as CONFIG_KALLSYMS_ABSOLUTE_PERCPU does
 * (x86-64 SMP before 6.15: >= 0 absolute, < 0 relative_base - 1 - offset)
 * when any is negative, else as relative_base + offset. Fails on a table
 * that cannot be walked (bad counts, lengths past the end, tokens outside
 * the token table, no name decoding at all); names that decode to garbage
 * are skipped and counted. */
int ms_kallsyms_decode(const struct ms_kallsyms_tables *t, size_t max_syms, struct ms_kallsyms *out,
                       struct ms_err *err);
void ms_kallsyms_free(struct ms_kallsyms *ks);

#endif
