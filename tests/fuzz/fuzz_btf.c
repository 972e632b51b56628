/* Fuzzes the BTF decoder. Byte 0 bit 0 clear: the rest is a BTF blob as
 * is. Set: bytes 1-2 split the rest into a type section and a string
 * section behind a well-formed header (so mutations reach the records
 * rather than the header's lengths). Every parsed blob is walked with every
 * accessor and ptype; sizes, lookups and layouts must end (depth bounds). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "btf.h"
#include "ptype.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const struct ms_btf *btf)
{
    static const char *const names[] = {"task_struct", "list_head", "a", "x", NULL};
    for (uint32_t id = 0; id < ms_btf_count(btf); id++) {
        struct ms_btf_type t;
        if (ms_btf_type(btf, id, &t, NULL) < 0)
            abort(); /* every id below the count is readable */
        uint64_t sz;
        uint32_t r;
        ms_btf_size(btf, id, &sz, NULL);
        if (ms_btf_resolve(btf, id, &r, NULL) == 0 && r >= ms_btf_count(btf))
            abort();
        /* vlen means entries only for these kinds (elsewhere it is free) */
        bool members = t.kind == MS_BTF_STRUCT || t.kind == MS_BTF_UNION;
        bool enums = t.kind == MS_BTF_ENUM || t.kind == MS_BTF_ENUM64;
        for (unsigned i = 0; i < t.vlen && (members || enums || t.kind == MS_BTF_FUNC_PROTO); i++) {
            struct ms_btf_member m;
            const char *name;
            int64_t v;
            uint32_t pt;
            if (members && (ms_btf_member(btf, id, i, &m, NULL) < 0 || m.type >= ms_btf_count(btf)))
                abort();
            if (enums && ms_btf_enumerator(btf, id, i, &name, &v, NULL) < 0)
                abort();
            if (t.kind == MS_BTF_FUNC_PROTO && ms_btf_param(btf, id, i, &name, &pt, NULL) < 0)
                abort();
        }
        struct ms_btf_member m;
        ms_btf_member_find(btf, id, "a", &m, NULL);
        ms_btf_member_find(btf, id, "a.x", &m, NULL);
        if (t.name[0] && (t.kind == MS_BTF_STRUCT || t.kind == MS_BTF_TYPEDEF) &&
            ms_btf_find(btf, t.kind, t.name) == 0)
            abort(); /* every named struct/typedef is indexed */
    }
    /* ptype/o of the first few types: declarations and layouts stay bounded */
    for (uint32_t id = 1; id < ms_btf_count(btf) && id < 8; id++) {
        struct ms_strbuf sb;
        ms_strbuf_init(&sb);
        ms_ptype_format(btf, id, id & 1, &sb, NULL);
        ms_strbuf_free(&sb);
    }
    struct ms_typedb db;
    ms_typedb_init(&db);
    ms_btf_load_types(&db, btf, names, NULL);
    ms_typedb_free(&db);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    uint8_t *buf = NULL;
    size_t len = size - 1;
    const uint8_t *blob = data + 1;
    if (data[0] & 1) {
        size_t rest = size - 3;
        size_t tlen = ((size_t)(data[1] | data[2] << 8) % (rest + 1)) & ~(size_t)3;
        uint32_t hdr[6] = {
            0x0001eB9F, 24, 0, (uint32_t)tlen, (uint32_t)tlen, (uint32_t)(rest - tlen)};
        buf = malloc(24 + rest);
        if (!buf)
            return 0;
        memcpy(buf, hdr, 24);
        memcpy(buf + 24, data + 3, rest);
        blob = buf;
        len = 24 + rest;
    }
    struct ms_btf *btf = NULL;
    struct ms_err err;
    if (ms_btf_parse(&btf, blob, len, &err) == 0) {
        walk(btf);
        ms_btf_free(btf);
    }
    free(buf);
    return 0;
}
