/* Fuzzes the kallsyms decoder. Input (little-endian):
 *   u32 num_syms, u64 relative_base, u16 names_len, u16 token_table_len,
 *   then kallsyms_token_index (512 bytes), kallsyms_names (names_len),
 *   kallsyms_token_table (token_table_len) and kallsyms_offsets (the rest),
 * each cut short where the input ends. Each table goes in its own buffer so
 * ASan sees a read past any of them. Every decoded symbol must be a type
 * letter and a printable name within the pool, and the symbols must make
 * a symbol table. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kallsyms.h"

#define HDR 16
#define MAX_SYMS 4096

static uint8_t *take(const uint8_t **p, size_t *left, size_t want, size_t *got)
{
    *got = want < *left ? want : *left;
    uint8_t *b = malloc(*got ? *got : 1);
    if (b && *got)
        memcpy(b, *p, *got);
    *p += *got;
    *left -= *got;
    return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HDR)
        return 0;
    struct ms_kallsyms_tables t = {0};
    uint16_t nl, tl;
    memcpy(&t.num_syms, data, 4);
    memcpy(&t.relative_base, data + 4, 8);
    memcpy(&nl, data + 12, 2);
    memcpy(&tl, data + 14, 2);
    const uint8_t *p = data + HDR;
    size_t left = size - HDR;
    uint8_t *ti = take(&p, &left, MS_KALLSYMS_TOKEN_INDEX_LEN, &t.token_index_len);
    uint8_t *nm = take(&p, &left, nl, &t.names_len);
    uint8_t *tt = take(&p, &left, tl, &t.token_table_len);
    uint8_t *off = take(&p, &left, left, &t.offsets_len);
    if (!ti || !nm || !tt || !off)
        goto out;
    t.token_index = ti;
    t.names = nm;
    t.token_table = tt;
    t.offsets = off;
    struct ms_kallsyms ks;
    struct ms_err err;
    if (ms_kallsyms_decode(&t, MAX_SYMS, &ks, &err) < 0) {
        if (ks.syms || ks.count || ks.strings)
            abort(); /* a failure hands nothing back */
        goto out;
    }
    if (ks.count + ks.skipped > t.num_syms)
        abort();
    for (size_t i = 0; i < ks.count; i++) {
        const struct ms_symbol *s = &ks.syms[i];
        size_t n = strlen(s->name);
        if (!((s->type >= 'a' && s->type <= 'z') || (s->type >= 'A' && s->type <= 'Z')) || n == 0 ||
            n >= MS_KALLSYMS_NAME_MAX)
            abort();
        for (size_t j = 0; j < n; j++)
            if (s->name[j] <= ' ' || s->name[j] >= 0x7f)
                abort();
    }
    const char *first = ks.count ? ks.syms[0].name : NULL;
    char name[MS_KALLSYMS_NAME_MAX];
    if (first)
        strcpy(name, first);
    struct ms_symtab *st;
    if (ms_symtab_adopt(&st, "fuzz", ks.syms, ks.count, ks.strings, &err) == 0) {
        uint64_t a;
        if (first && ms_symtab_lookup(st, name, &a, &err) < 0)
            abort();
        ms_symtab_free(st);
    }
out:
    free(ti);
    free(nm);
    free(tt);
    free(off);
    return 0;
}
