#include "kallsyms.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"

#define TOKEN_TABLE_MAX 65536 /* token offsets are u16 */

/* Each token's place in the token table; len is SIZE_MAX for a token whose
 * offset or NUL lies outside the table (an error only if a name uses it). */
struct token {
    size_t off, len;
};

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static int32_t le32s(const uint8_t *p)
{
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t s;
    memcpy(&s, &v, 4);
    return s;
}

static void index_tokens(const struct ms_kallsyms_tables *t, struct token tok[256])
{
    for (unsigned i = 0; i < 256; i++) {
        size_t off = le16(t->token_index + 2 * i);
        const uint8_t *nul = off < t->token_table_len
                                 ? memchr(t->token_table + off, 0, t->token_table_len - off)
                                 : NULL;
        tok[i].off = off;
        tok[i].len = nul ? (size_t)(nul - (t->token_table + off)) : SIZE_MAX;
    }
}

/* Only an nm type letter then printable non-blank ASCII makes a symbol: a
 * System.map line (and a user) can hold it. */
static bool plausible(const char *name, size_t n)
{
    char type = name[0];
    if (n < 2 || !((type >= 'a' && type <= 'z') || (type >= 'A' && type <= 'Z')))
        return false;
    for (size_t j = 1; j < n; j++)
        if (name[j] <= ' ' || name[j] >= 0x7f)
            return false;
    return true;
}

static uint64_t address(const struct ms_kallsyms_tables *t, uint32_t i, bool absolute_percpu)
{
    int32_t off = le32s(t->offsets + 4 * (size_t)i);
    if (!absolute_percpu)
        return t->relative_base + (uint32_t)off;
    if (off >= 0)
        return (uint64_t)off;
    return t->relative_base - 1 - (uint64_t)(int64_t)off;
}

int ms_kallsyms_decode(const struct ms_kallsyms_tables *t, size_t max_syms, struct ms_kallsyms *out,
                       struct ms_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!max_syms)
        max_syms = MS_KALLSYMS_MAX_DEFAULT;
    if (t->num_syms == 0 || t->num_syms > max_syms)
        return ms_err_set(err, MS_EFORMAT, "kallsyms_num_syms %u implausible (1 to %zu)",
                          t->num_syms, max_syms);
    if (t->token_index_len < MS_KALLSYMS_TOKEN_INDEX_LEN)
        return ms_err_set(err, MS_EFORMAT, "kallsyms_token_index: %zu bytes, not %u",
                          t->token_index_len, MS_KALLSYMS_TOKEN_INDEX_LEN);
    if (t->token_table_len > TOKEN_TABLE_MAX)
        return ms_err_set(err, MS_EFORMAT, "kallsyms_token_table: %zu bytes, more than %u",
                          t->token_table_len, TOKEN_TABLE_MAX);
    if (t->offsets_len / 4 < t->num_syms)
        return ms_err_set(err, MS_EFORMAT, "kallsyms_offsets: %zu bytes for %u symbols",
                          t->offsets_len, t->num_syms);
    struct token tok[256];
    index_tokens(t, tok);
    bool absolute_percpu = false;
    for (uint32_t i = 0; i < t->num_syms && !absolute_percpu; i++)
        absolute_percpu = le32s(t->offsets + 4 * (size_t)i) < 0;

    /* Names go to one string pool; their offsets are kept until it stops
     * moving. */
    size_t *name_at = malloc(t->num_syms * sizeof(*name_at));
    out->syms = malloc(t->num_syms * sizeof(*out->syms));
    size_t pool_cap = 0, pool_len = 0;
    int rc = 0;
    if (!name_at || !out->syms)
        rc = ms_err_set(err, MS_ENOMEM, "out of memory for %u kallsyms", t->num_syms);
    size_t pos = 0;
    for (uint32_t i = 0; rc == 0 && i < t->num_syms; i++) {
        if (pos >= t->names_len) {
            rc = ms_err_set(err, MS_EFORMAT, "kallsyms_names ends at symbol %u of %u", i,
                            t->num_syms);
            break;
        }
        size_t len = t->names[pos++];
        if (len & 0x80) { /* "big" symbol (6.1+): two-byte length */
            if (pos >= t->names_len) {
                rc = ms_err_set(err, MS_EFORMAT, "kallsyms_names truncated at symbol %u", i);
                break;
            }
            len = (len & 0x7f) | (size_t)t->names[pos++] << 7;
        }
        if (len == 0) {
            rc = ms_err_set(err, MS_EFORMAT, "kallsyms_names: symbol %u has length 0", i);
            break;
        }
        if (len > t->names_len - pos) {
            rc = ms_err_set(err, MS_EFORMAT,
                            "kallsyms_names: symbol %u's length %zu runs past the table's end", i,
                            len);
            break;
        }
        char name[MS_KALLSYMS_NAME_MAX];
        size_t n = 0;
        bool too_long = false;
        for (size_t j = 0; j < len; j++) {
            const struct token *k = &tok[t->names[pos + j]];
            if (k->len == SIZE_MAX) {
                rc = ms_err_set(err, MS_EFORMAT,
                                "kallsyms token %u (symbol %u) lies outside the %zu-byte token "
                                "table",
                                t->names[pos + j], i, t->token_table_len);
                break;
            }
            if (k->len > sizeof(name) - n) {
                too_long = true;
                continue; /* the rest must still be valid tokens */
            }
            memcpy(name + n, t->token_table + k->off, k->len);
            n += k->len;
        }
        pos += len;
        if (rc < 0)
            break;
        if (too_long || !plausible(name, n)) {
            out->skipped++;
            continue;
        }
        /* the pool holds "name\0" without the type letter */
        if (!MS_ARRAY_RESERVE(&out->strings, &pool_cap, pool_len + n, 4096)) {
            rc = ms_err_set(err, MS_ENOMEM, "out of memory for kallsyms names");
            break;
        }
        memcpy(out->strings + pool_len, name + 1, n - 1);
        out->strings[pool_len + n - 1] = '\0';
        name_at[out->count] = pool_len;
        pool_len += n;
        out->syms[out->count] =
            (struct ms_symbol){NULL, address(t, i, absolute_percpu), 0, name[0]};
        out->count++;
    }
    if (rc == 0 && out->count == 0)
        rc = ms_err_set(err, MS_EFORMAT, "none of the %u kallsyms names decodes to a symbol",
                        t->num_syms);
    if (rc == 0)
        for (size_t i = 0; i < out->count; i++)
            out->syms[i].name = out->strings + name_at[i];
    free(name_at);
    if (rc < 0)
        ms_kallsyms_free(out);
    return rc;
}

void ms_kallsyms_free(struct ms_kallsyms *ks)
{
    free(ks->syms);
    free(ks->strings);
    memset(ks, 0, sizeof(*ks));
}
