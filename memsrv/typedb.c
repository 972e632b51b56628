#include "typedb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"

void ms_typedb_init(struct ms_typedb *db)
{
    memset(db, 0, sizeof(*db));
}

void ms_typedb_free(struct ms_typedb *db)
{
    free(db->entries);
    ms_typedb_init(db);
}

static struct ms_typedb_entry *find(const struct ms_typedb *db, const char *key)
{
    for (size_t i = 0; i < db->count; i++)
        if (strcmp(db->entries[i].key, key) == 0)
            return &db->entries[i];
    return NULL;
}

/* C identifiers joined by '.': keeps the text form (and lookups) unambiguous. */
static bool key_ok(const char *k)
{
    if (!*k)
        return false;
    for (; *k; k++)
        if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') ||
              *k == '_' || *k == '.'))
            return false;
    return true;
}

int ms_typedb_put(struct ms_typedb *db, const struct ms_typedb_entry *e, struct ms_err *err)
{
    if (!memchr(e->key, '\0', sizeof(e->key)) || !key_ok(e->key))
        return ms_err_set(err, MS_EINVAL, "type key empty, too long or not an identifier");
    struct ms_typedb_entry *old = find(db, e->key);
    if (old) {
        *old = *e;
        return 0;
    }
    if (!MS_ARRAY_RESERVE(&db->entries, &db->cap, db->count + 1, 64))
        return ms_err_set(err, MS_ENOMEM, "out of memory for type layouts");
    db->entries[db->count++] = *e;
    return 0;
}

const struct ms_typedb_entry *ms_typedb_get(const struct ms_typedb *db, const char *key)
{
    return find(db, key);
}

int ms_typedb_offset(const struct ms_typedb *db, const char *type, const char *member,
                     uint64_t *off, struct ms_err *err)
{
    char key[200];
    snprintf(key, sizeof(key), "%s.%s", type, member);
    const struct ms_typedb_entry *e = find(db, key);
    if (!e)
        return ms_err_set(err, MS_ENOTFOUND, "offset of %s.%s unknown (types from %s)", type,
                          member, db->source[0] ? db->source : "nowhere: no DWARF, no VMCOREINFO");
    *off = e->value;
    return 0;
}

int ms_typedb_size(const struct ms_typedb *db, const char *type, uint64_t *size, struct ms_err *err)
{
    const struct ms_typedb_entry *e = find(db, type);
    if (!e)
        return ms_err_set(err, MS_ENOTFOUND, "size of struct %s unknown (types from %s)", type,
                          db->source[0] ? db->source : "nowhere: no DWARF, no VMCOREINFO");
    *size = e->value;
    return 0;
}

bool ms_typedb_has(const struct ms_typedb *db, const char *type, const char *member)
{
    char key[200];
    snprintf(key, sizeof(key), "%s.%s", type, member);
    return find(db, key) != NULL;
}

int ms_typedb_from_vmcoreinfo(struct ms_typedb *db, const struct ms_vmcoreinfo *vi,
                              struct ms_err *err)
{
    for (size_t i = 0; i < vi->count; i++) {
        const char *k = vi->entries[i].key;
        size_t pre;
        if (strncmp(k, "OFFSET(", 7) == 0)
            pre = 7;
        else if (strncmp(k, "SIZE(", 5) == 0)
            pre = 5;
        else
            continue;
        size_t kl = strlen(k);
        if (kl <= pre + 1 || k[kl - 1] != ')' || kl - pre - 1 >= sizeof(db->entries->key))
            continue;
        struct ms_typedb_entry e = {0};
        memcpy(e.key, k + pre, kl - pre - 1);
        if (ms_parse_dec_u64(vi->entries[i].value, &e.value) < 0 || !key_ok(e.key))
            continue; /* malformed line: leave the key unknown */
        int rc = ms_typedb_put(db, &e, err);
        if (rc < 0)
            return rc;
    }
    if (!db->source[0])
        snprintf(db->source, sizeof(db->source), "VMCOREINFO");
    return 0;
}

void ms_typedb_dump(const struct ms_typedb *db, struct ms_strbuf *sb)
{
    for (size_t i = 0; i < db->count; i++) {
        const struct ms_typedb_entry *e = &db->entries[i];
        ms_strbuf_printf(sb, "%s %llu %llu %u %u\n", e->key, (unsigned long long)e->value,
                         (unsigned long long)e->member_size, e->bit_offset, e->bit_size);
    }
}

int ms_typedb_parse(struct ms_typedb *db, const char *text, size_t len, struct ms_err *err)
{
    const char *p = text, *end = text + len;
    unsigned lineno = 0;
    while (p < end) {
        lineno++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ll = (size_t)((nl ? nl : end) - p);
        char line[256];
        if (ll >= sizeof(line))
            return ms_err_set(err, MS_EFORMAT, "type cache line %u too long", lineno);
        memcpy(line, p, ll);
        line[ll] = '\0';
        p += ll + 1;
        if (!ll || line[0] == '#')
            continue;
        struct ms_typedb_entry e = {0};
        char key[sizeof(e.key)];
        unsigned long long v, ms;
        unsigned bo, bs;
        char extra;
        if (sscanf(line, "%95s %llu %llu %u %u %c", key, &v, &ms, &bo, &bs, &extra) != 5 ||
            bo > 0xffff || bs > 64)
            return ms_err_set(err, MS_EFORMAT, "type cache line %u malformed", lineno);
        memcpy(e.key, key, sizeof(key));
        e.value = v;
        e.member_size = ms;
        e.bit_offset = (uint16_t)bo;
        e.bit_size = (uint16_t)bs;
        int rc = ms_typedb_put(db, &e, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}
