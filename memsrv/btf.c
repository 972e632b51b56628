#include "btf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BTF_MAGIC 0xeB9F
#define BTF_VERSION 1
#define BTF_HDR_LEN 24          /* struct btf_header */
#define BTF_TYPE_LEN 12         /* struct btf_type */
#define BTF_MAX_TYPE 0x000fffff /* type ids fit in 20 bits */
/* Anonymous-member searches visit at most this many members: a hostile
 * struct that contains itself would otherwise grow as vlen^depth. */
#define MEMBER_VISITS_MAX (1u << 20)

struct ms_btf {
    uint8_t *data;
    size_t len;
    const uint8_t *types; /* the type section */
    uint32_t types_len;
    const char *strs; /* the string section, NUL-terminated at its end */
    uint32_t strs_len;
    uint32_t *off;   /* off[id]: the record's offset in the type section (id >= 1) */
    uint32_t count;  /* type ids, void included */
    uint32_t *index; /* open-addressed hash of named types: type ids, 0 = empty */
    uint32_t index_mask;
};

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static const char *kind_names[] = {"void",    "int",      "ptr",      "array",      "struct",
                                   "union",   "enum",     "fwd",      "typedef",    "volatile",
                                   "const",   "restrict", "func",     "func_proto", "var",
                                   "datasec", "float",    "decl_tag", "type_tag",   "enum64"};

/* Bytes following struct btf_type for a record of this kind and vlen. */
static uint64_t extra_len(unsigned kind, unsigned vlen)
{
    switch (kind) {
    case MS_BTF_INT:
    case MS_BTF_VAR:
    case MS_BTF_DECL_TAG:
        return 4;
    case MS_BTF_ARRAY:
        return 12; /* struct btf_array */
    case MS_BTF_STRUCT:
    case MS_BTF_UNION:
    case MS_BTF_DATASEC:
    case MS_BTF_ENUM64:
        return (uint64_t)vlen * 12; /* btf_member, btf_var_secinfo, btf_enum64 */
    case MS_BTF_ENUM:
    case MS_BTF_FUNC_PROTO:
        return (uint64_t)vlen * 8; /* btf_enum, btf_param */
    default:
        return 0;
    }
}

/* Kinds whose btf_type.type is a type id (the rest use it as a size). */
static bool refers(unsigned kind)
{
    switch (kind) {
    case MS_BTF_PTR:
    case MS_BTF_TYPEDEF:
    case MS_BTF_VOLATILE:
    case MS_BTF_CONST:
    case MS_BTF_RESTRICT:
    case MS_BTF_FUNC:
    case MS_BTF_FUNC_PROTO:
    case MS_BTF_VAR:
    case MS_BTF_DECL_TAG:
    case MS_BTF_TYPE_TAG:
        return true;
    default:
        return false;
    }
}

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static const char *str_at(const struct ms_btf *b, uint32_t off)
{
    return b->strs + off; /* every offset was checked by parse */
}

/* Checks every name offset and type id one record refers to. */
static int check_record(const struct ms_btf *b, uint32_t id, struct ms_err *err)
{
    const uint8_t *p = b->types + b->off[id];
    uint32_t name_off = rd32(p), info = rd32(p + 4), st = rd32(p + 8);
    unsigned kind = (info >> 24) & 0x1f, vlen = info & 0xffff;
    const uint8_t *x = p + BTF_TYPE_LEN;
    if (name_off >= b->strs_len)
        return ms_err_set(err, MS_EFORMAT,
                          "BTF type %u: name offset %u outside the %u-byte strings", id, name_off,
                          b->strs_len);
    if (refers(kind) && st >= b->count)
        return ms_err_set(err, MS_EFORMAT, "BTF type %u (%s) refers to type %u of %u", id,
                          kind_names[kind], st, b->count);
    if (kind == MS_BTF_ARRAY) {
        if (rd32(x) >= b->count || rd32(x + 4) >= b->count)
            return ms_err_set(err, MS_EFORMAT, "BTF array %u: element or index type out of range",
                              id);
        return 0;
    }
    /* entries follow only for these kinds; INT, VAR and DECL_TAG have 4
     * fixed bytes whatever a hostile vlen says */
    bool entries = kind == MS_BTF_STRUCT || kind == MS_BTF_UNION || kind == MS_BTF_DATASEC ||
                   kind == MS_BTF_ENUM64 || kind == MS_BTF_ENUM || kind == MS_BTF_FUNC_PROTO;
    unsigned step = (unsigned)(entries && vlen ? extra_len(kind, vlen) / vlen : 0);
    for (unsigned i = 0; i < vlen && step; i++, x += step) {
        uint32_t a = rd32(x), t = rd32(x + 4);
        bool has_name = kind != MS_BTF_DATASEC;
        bool has_type = kind != MS_BTF_ENUM && kind != MS_BTF_ENUM64;
        if (kind == MS_BTF_DATASEC)
            t = a; /* btf_var_secinfo: type, offset, size */
        if (has_name && a >= b->strs_len)
            return ms_err_set(err, MS_EFORMAT, "BTF type %u (%s): entry %u's name out of range", id,
                              kind_names[kind], i);
        if (has_type && t >= b->count)
            return ms_err_set(err, MS_EFORMAT, "BTF type %u (%s): entry %u's type %u out of range",
                              id, kind_names[kind], i, t);
    }
    return 0;
}

static bool indexed(unsigned kind)
{
    return kind == MS_BTF_STRUCT || kind == MS_BTF_UNION || kind == MS_BTF_ENUM ||
           kind == MS_BTF_ENUM64 || kind == MS_BTF_TYPEDEF || kind == MS_BTF_FWD ||
           kind == MS_BTF_INT || kind == MS_BTF_FLOAT || kind == MS_BTF_VAR || kind == MS_BTF_FUNC;
}

static int build_index(struct ms_btf *b, struct ms_err *err)
{
    uint64_t named = 0;
    for (uint32_t id = 1; id < b->count; id++)
        named += rd32(b->types + b->off[id]) != 0;
    uint64_t size = 16;
    while (size < named * 2)
        size <<= 1;
    b->index = calloc((size_t)size, sizeof(uint32_t));
    if (!b->index)
        return ms_err_set(err, MS_ENOMEM, "out of memory for the BTF name index");
    b->index_mask = (uint32_t)(size - 1);
    for (uint32_t id = 1; id < b->count; id++) {
        const uint8_t *p = b->types + b->off[id];
        uint32_t name_off = rd32(p);
        if (!name_off || !indexed((rd32(p + 4) >> 24) & 0x1f))
            continue;
        uint32_t h = name_hash(str_at(b, name_off)) & b->index_mask;
        while (b->index[h])
            h = (h + 1) & b->index_mask;
        b->index[h] = id;
    }
    return 0;
}

int ms_btf_parse(struct ms_btf **out, const void *data, size_t len, struct ms_err *err)
{
    *out = NULL;
    const uint8_t *d = data;
    if (len < BTF_HDR_LEN)
        return ms_err_set(err, MS_EFORMAT, "BTF: %zu bytes, shorter than its header", len);
    uint16_t magic = (uint16_t)(d[0] | d[1] << 8);
    if (magic == 0x9FeB)
        return ms_err_set(err, MS_EFORMAT, "BTF is big-endian: not supported");
    if (magic != BTF_MAGIC)
        return ms_err_set(err, MS_EFORMAT, "no BTF magic (0xeb9f) at the start (found 0x%04x)",
                          magic);
    if (d[2] != BTF_VERSION)
        return ms_err_set(err, MS_EFORMAT, "BTF version %u (only %u is known)", d[2], BTF_VERSION);
    uint32_t hdr_len = rd32(d + 4), type_off = rd32(d + 8), type_len = rd32(d + 12),
             str_off = rd32(d + 16), str_len = rd32(d + 20);
    if (hdr_len < BTF_HDR_LEN || hdr_len > len)
        return ms_err_set(err, MS_EFORMAT, "BTF header length %u outside 24..%zu", hdr_len, len);
    uint64_t body = len - hdr_len;
    if ((uint64_t)type_off + type_len > body || (uint64_t)str_off + str_len > body)
        return ms_err_set(err, MS_EFORMAT,
                          "BTF sections (types %u+%u, strings %u+%u) beyond its %llu bytes",
                          type_off, type_len, str_off, str_len, (unsigned long long)body);
    if (type_off % 4 || type_len % 4)
        return ms_err_set(err, MS_EFORMAT, "BTF type section not 4-byte aligned");
    if (type_len && str_len && type_off < (uint64_t)str_off + str_len &&
        str_off < (uint64_t)type_off + type_len)
        return ms_err_set(err, MS_EFORMAT, "BTF type and string sections overlap");
    if (!str_len || d[hdr_len + str_off] != '\0' || d[hdr_len + str_off + str_len - 1] != '\0')
        return ms_err_set(err, MS_EFORMAT, "BTF string section must start and end with a NUL byte");
    struct ms_btf *b = calloc(1, sizeof(*b));
    if (!b || !(b->data = malloc(len ? len : 1))) {
        free(b);
        return ms_err_set(err, MS_ENOMEM, "out of memory for %zu bytes of BTF", len);
    }
    memcpy(b->data, data, len);
    b->len = len;
    b->types = b->data + hdr_len + type_off;
    b->types_len = type_len;
    b->strs = (const char *)b->data + hdr_len + str_off;
    b->strs_len = str_len;
    /* every record is at least 12 bytes: this bounds the id count */
    b->off = malloc(((size_t)type_len / BTF_TYPE_LEN + 1) * sizeof(uint32_t));
    int rc = 0;
    if (!b->off) {
        rc = ms_err_set(err, MS_ENOMEM, "out of memory for the BTF type table");
        goto fail;
    }
    b->off[0] = 0;
    b->count = 1;
    for (uint32_t pos = 0; pos < type_len;) {
        if (type_len - pos < BTF_TYPE_LEN) {
            rc = ms_err_set(err, MS_EFORMAT, "BTF type %u truncated at byte %u of %u", b->count,
                            pos, type_len);
            goto fail;
        }
        uint32_t info = rd32(b->types + pos + 4);
        unsigned kind = (info >> 24) & 0x1f;
        if (kind == MS_BTF_UNKN || kind > MS_BTF_KIND_MAX) {
            rc = ms_err_set(err, MS_EFORMAT, "BTF type %u has unknown kind %u", b->count, kind);
            goto fail;
        }
        uint64_t rec = BTF_TYPE_LEN + extra_len(kind, info & 0xffff);
        if (rec > type_len - pos) {
            rc = ms_err_set(err, MS_EFORMAT, "BTF type %u (%s, vlen %u) runs past the section",
                            b->count, kind_names[kind], info & 0xffff);
            goto fail;
        }
        if (b->count > BTF_MAX_TYPE) {
            rc = ms_err_set(err, MS_EFORMAT, "BTF has more than %u types", BTF_MAX_TYPE);
            goto fail;
        }
        b->off[b->count++] = pos;
        pos += (uint32_t)rec;
    }
    for (uint32_t id = 1; id < b->count && rc == 0; id++)
        rc = check_record(b, id, err);
    if (rc == 0)
        rc = build_index(b, err);
    if (rc < 0)
        goto fail;
    *out = b;
    return 0;
fail:
    ms_btf_free(b);
    return rc;
}

void ms_btf_free(struct ms_btf *b)
{
    if (!b)
        return;
    free(b->data);
    free(b->off);
    free(b->index);
    free(b);
}

uint32_t ms_btf_count(const struct ms_btf *b)
{
    return b->count;
}

size_t ms_btf_strings_len(const struct ms_btf *b)
{
    return b->strs_len;
}

int ms_btf_type(const struct ms_btf *b, uint32_t id, struct ms_btf_type *t, struct ms_err *err)
{
    memset(t, 0, sizeof(*t));
    t->id = id;
    t->name = "";
    if (id == 0)
        return 0; /* void */
    if (id >= b->count)
        return ms_err_set(err, MS_EINVAL, "BTF type %u out of range (%u types)", id, b->count);
    const uint8_t *p = b->types + b->off[id];
    uint32_t info = rd32(p + 4), st = rd32(p + 8);
    t->name = str_at(b, rd32(p));
    t->kind = (info >> 24) & 0x1f;
    t->vlen = (uint16_t)(info & 0xffff);
    t->kflag = info >> 31;
    if (refers(t->kind))
        t->type = st;
    else
        t->size = st;
    const uint8_t *x = p + BTF_TYPE_LEN;
    switch (t->kind) {
    case MS_BTF_INT: {
        uint32_t v = rd32(x);
        t->int_encoding = (v >> 24) & 0x0f;
        t->int_offset = (v >> 16) & 0xff;
        t->int_bits = v & 0xff;
        break;
    }
    case MS_BTF_ARRAY:
        t->elem_type = rd32(x);
        t->index_type = rd32(x + 4);
        t->nelems = rd32(x + 8);
        break;
    case MS_BTF_VAR:
        t->linkage = rd32(x);
        break;
    case MS_BTF_FUNC:
        t->linkage = t->vlen;
        break;
    case MS_BTF_DECL_TAG:
        t->component_idx = (int32_t)rd32(x);
        break;
    default:
        break;
    }
    return 0;
}

/* The record of id if it has that kind group, with its vlen entries. */
static int entries(const struct ms_btf *b, uint32_t id, unsigned k1, unsigned k2, unsigned i,
                   const char *what, const uint8_t **x, struct ms_btf_type *t, struct ms_err *err)
{
    int rc = ms_btf_type(b, id, t, err);
    if (rc < 0)
        return rc;
    if (t->kind != k1 && t->kind != k2)
        return ms_err_set(err, MS_EINVAL, "BTF type %u is a %s, not a %s", id, kind_names[t->kind],
                          what);
    if (i >= t->vlen)
        return ms_err_set(err, MS_EINVAL, "BTF type %u has %u entries, not %u", id, t->vlen, i + 1);
    *x = b->types + b->off[id] + BTF_TYPE_LEN + (size_t)i * (extra_len(t->kind, t->vlen) / t->vlen);
    return 0;
}

int ms_btf_member(const struct ms_btf *b, uint32_t id, unsigned i, struct ms_btf_member *m,
                  struct ms_err *err)
{
    memset(m, 0, sizeof(*m));
    m->name = "";
    struct ms_btf_type t;
    const uint8_t *x;
    int rc = entries(b, id, MS_BTF_STRUCT, MS_BTF_UNION, i, "struct or union", &x, &t, err);
    if (rc < 0)
        return rc;
    m->name = str_at(b, rd32(x));
    m->type = rd32(x + 4);
    uint32_t off = rd32(x + 8);
    if (t.kflag) {
        m->bit_offset = off & 0xffffff; /* BTF_MEMBER_BIT_OFFSET */
        m->bitfield_size = off >> 24;   /* BTF_MEMBER_BITFIELD_SIZE */
        return 0;
    }
    m->bit_offset = off;
    /* without kind_flag a bitfield is an INT narrower than its size */
    struct ms_btf_type mt;
    if (ms_btf_type(b, m->type, &mt, NULL) == 0 && mt.kind == MS_BTF_INT &&
        mt.int_bits < mt.size * 8ull) {
        m->bit_offset += mt.int_offset;
        m->bitfield_size = mt.int_bits;
    }
    return 0;
}

int ms_btf_enumerator(const struct ms_btf *b, uint32_t id, unsigned i, const char **name,
                      int64_t *value, struct ms_err *err)
{
    struct ms_btf_type t;
    const uint8_t *x;
    int rc = entries(b, id, MS_BTF_ENUM, MS_BTF_ENUM64, i, "enum", &x, &t, err);
    if (rc < 0)
        return rc;
    *name = str_at(b, rd32(x));
    if (t.kind == MS_BTF_ENUM64)
        *value = (int64_t)((uint64_t)rd32(x + 8) << 32 | rd32(x + 4));
    else
        *value = t.kflag ? (int64_t)(int32_t)rd32(x + 4) : (int64_t)rd32(x + 4);
    return 0;
}

int ms_btf_param(const struct ms_btf *b, uint32_t id, unsigned i, const char **name, uint32_t *type,
                 struct ms_err *err)
{
    struct ms_btf_type t;
    const uint8_t *x;
    int rc =
        entries(b, id, MS_BTF_FUNC_PROTO, MS_BTF_FUNC_PROTO, i, "function prototype", &x, &t, err);
    if (rc < 0)
        return rc;
    *name = str_at(b, rd32(x));
    *type = rd32(x + 4);
    return 0;
}

uint32_t ms_btf_find(const struct ms_btf *b, unsigned kind, const char *name)
{
    if (!*name)
        return 0;
    for (uint32_t h = name_hash(name) & b->index_mask;; h = (h + 1) & b->index_mask) {
        uint32_t id = b->index[h];
        if (!id)
            return 0;
        const uint8_t *p = b->types + b->off[id];
        if (((rd32(p + 4) >> 24) & 0x1f) == kind && strcmp(str_at(b, rd32(p)), name) == 0)
            return id;
    }
}

static bool peelable(unsigned kind)
{
    return kind == MS_BTF_TYPEDEF || kind == MS_BTF_VOLATILE || kind == MS_BTF_CONST ||
           kind == MS_BTF_RESTRICT || kind == MS_BTF_TYPE_TAG;
}

int ms_btf_resolve(const struct ms_btf *b, uint32_t id, uint32_t *out, struct ms_err *err)
{
    for (int depth = 0; depth <= MS_BTF_MAX_DEPTH; depth++) {
        struct ms_btf_type t;
        int rc = ms_btf_type(b, id, &t, err);
        if (rc < 0)
            return rc;
        if (!peelable(t.kind)) {
            *out = id;
            return 0;
        }
        id = t.type;
    }
    return ms_err_set(err, MS_EFORMAT, "BTF typedef/qualifier chain deeper than %d (a cycle?)",
                      MS_BTF_MAX_DEPTH);
}

static int size_of(const struct ms_btf *b, uint32_t id, int depth, uint64_t *size,
                   struct ms_err *err)
{
    if (depth > MS_BTF_MAX_DEPTH)
        return ms_err_set(err, MS_EFORMAT, "BTF type nesting deeper than %d (a cycle?)",
                          MS_BTF_MAX_DEPTH);
    int rc = ms_btf_resolve(b, id, &id, err);
    if (rc < 0)
        return rc;
    struct ms_btf_type t;
    rc = ms_btf_type(b, id, &t, err);
    if (rc < 0)
        return rc;
    switch (t.kind) {
    case MS_BTF_INT:
    case MS_BTF_ENUM:
    case MS_BTF_STRUCT:
    case MS_BTF_UNION:
    case MS_BTF_FLOAT:
    case MS_BTF_ENUM64:
        *size = t.size;
        return 0;
    case MS_BTF_PTR:
        *size = 8;
        return 0;
    case MS_BTF_ARRAY: {
        uint64_t es;
        rc = size_of(b, t.elem_type, depth + 1, &es, err);
        if (rc < 0)
            return rc;
        if (es && t.nelems > UINT64_MAX / es)
            return ms_err_set(err, MS_EFORMAT, "BTF array %u's size overflows", id);
        *size = es * t.nelems;
        return 0;
    }
    default:
        return ms_err_set(err, MS_EINVAL, "BTF type %u (%s%s%s) has no size", id,
                          kind_names[t.kind], t.name[0] ? " " : "", t.name);
    }
}

int ms_btf_size(const struct ms_btf *b, uint32_t id, uint64_t *size, struct ms_err *err)
{
    return size_of(b, id, 0, size, err);
}

static bool aggregate(unsigned kind)
{
    return kind == MS_BTF_STRUCT || kind == MS_BTF_UNION;
}

/* Depth-first through anonymous members; 1 found, 0 not, < 0 error. */
static int find_in(const struct ms_btf *b, uint32_t id, const char *name, size_t nlen,
                   uint64_t base, int depth, unsigned *visits, struct ms_btf_member *out,
                   struct ms_err *err)
{
    if (depth > MS_BTF_MAX_DEPTH)
        return ms_err_set(err, MS_EFORMAT, "BTF anonymous members nest deeper than %d",
                          MS_BTF_MAX_DEPTH);
    struct ms_btf_type t;
    int rc = ms_btf_type(b, id, &t, err);
    if (rc < 0)
        return rc;
    for (unsigned i = 0; i < t.vlen; i++) {
        if (++*visits > MEMBER_VISITS_MAX)
            return ms_err_set(err, MS_ELIMIT, "BTF member search visited over %u members",
                              MEMBER_VISITS_MAX);
        struct ms_btf_member m;
        rc = ms_btf_member(b, id, i, &m, err);
        if (rc < 0)
            return rc;
        if (m.name[0]) {
            if (strlen(m.name) == nlen && memcmp(m.name, name, nlen) == 0) {
                *out = m;
                out->bit_offset += base;
                return 1;
            }
            continue;
        }
        uint32_t inner;
        struct ms_btf_type it;
        if (ms_btf_resolve(b, m.type, &inner, err) < 0 || ms_btf_type(b, inner, &it, err) < 0)
            return err ? err->code : MS_EFORMAT;
        if (!aggregate(it.kind))
            continue;
        rc = find_in(b, inner, name, nlen, base + m.bit_offset, depth + 1, visits, out, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int ms_btf_member_find(const struct ms_btf *b, uint32_t id, const char *path,
                       struct ms_btf_member *out, struct ms_err *err)
{
    uint64_t base = 0;
    unsigned visits = 0;
    const char *p = path;
    for (int depth = 0;; depth++) {
        uint32_t sid;
        struct ms_btf_type t;
        int rc = ms_btf_resolve(b, id, &sid, err);
        if (rc == 0)
            rc = ms_btf_type(b, sid, &t, err);
        if (rc < 0)
            return rc;
        if (!aggregate(t.kind) && p == path)
            return ms_err_set(err, MS_EINVAL, "BTF type %u is a %s, not a struct or union", sid,
                              kind_names[t.kind]);
        if (!aggregate(t.kind))
            return ms_err_set(err, MS_EINVAL, "%.*s is a %s, not a struct or union",
                              (int)(p - path - 1), path, kind_names[t.kind]);
        if (depth > MS_BTF_MAX_DEPTH)
            return ms_err_set(err, MS_ELIMIT, "member path %s too deep", path);
        const char *dot = strchr(p, '.');
        size_t nlen = dot ? (size_t)(dot - p) : strlen(p);
        rc = find_in(b, sid, p, nlen, base, 0, &visits, out, err);
        if (rc < 0)
            return rc;
        if (rc == 0)
            return ms_err_set(err, MS_ENOTFOUND, "%s %s has no member %.*s",
                              t.kind == MS_BTF_UNION ? "union" : "struct",
                              t.name[0] ? t.name : "(anonymous)", (int)nlen, p);
        if (!dot)
            return 0;
        base = out->bit_offset;
        id = out->type;
        p = dot + 1;
    }
}

uint32_t ms_btf_find_aggregate(const struct ms_btf *b, const char *name)
{
    if (strncmp(name, "struct ", 7) == 0)
        return ms_btf_find(b, MS_BTF_STRUCT, name + 7);
    if (strncmp(name, "union ", 6) == 0)
        return ms_btf_find(b, MS_BTF_UNION, name + 6);
    uint32_t id = ms_btf_find(b, MS_BTF_STRUCT, name);
    if (!id)
        id = ms_btf_find(b, MS_BTF_UNION, name);
    if (!id) {
        uint32_t td = ms_btf_find(b, MS_BTF_TYPEDEF, name), r;
        struct ms_btf_type t;
        if (td && ms_btf_resolve(b, td, &r, NULL) == 0 && ms_btf_type(b, r, &t, NULL) == 0 &&
            aggregate(t.kind))
            id = r;
    }
    return id;
}

/* ---- typedb ---- */

struct load {
    struct ms_typedb *db;
    const struct ms_btf *b;
    unsigned visits;
};

static int put(struct load *l, const char *key, uint64_t value, uint64_t msize, uint64_t bo,
               unsigned bs, struct ms_err *err)
{
    struct ms_typedb_entry e = {0};
    if (strlen(key) >= sizeof(e.key))
        return 0; /* a key the typedb cannot hold: nobody can ask for it either */
    strcpy(e.key, key);
    e.value = value;
    e.member_size = msize;
    e.bit_offset = (uint16_t)(bs && bo <= 0xffff ? bo : 0);
    e.bit_size = (uint16_t)bs;
    return ms_typedb_put(l->db, &e, err);
}

static int add_members(struct load *l, const char *sname, uint32_t id, uint64_t base, int depth,
                       struct ms_err *err)
{
    if (depth > MS_BTF_MAX_DEPTH)
        return ms_err_set(err, MS_EFORMAT, "BTF anonymous members of %s nest deeper than %d", sname,
                          MS_BTF_MAX_DEPTH);
    struct ms_btf_type t;
    int rc = ms_btf_type(l->b, id, &t, err);
    for (unsigned i = 0; rc == 0 && i < t.vlen; i++) {
        if (++l->visits > MEMBER_VISITS_MAX)
            return ms_err_set(err, MS_ELIMIT, "BTF struct %s: over %u members", sname,
                              MEMBER_VISITS_MAX);
        struct ms_btf_member m;
        rc = ms_btf_member(l->b, id, i, &m, err);
        uint32_t mt = 0;
        struct ms_btf_type tt;
        if (rc == 0)
            rc = ms_btf_resolve(l->b, m.type, &mt, err);
        if (rc == 0)
            rc = ms_btf_type(l->b, mt, &tt, err);
        if (rc < 0)
            return rc;
        uint64_t bitpos = base * 8 + m.bit_offset;
        if (m.name[0]) {
            uint64_t msize = 0;
            if (ms_btf_size(l->b, mt, &msize, NULL) < 0)
                msize = 0;
            char key[256];
            snprintf(key, sizeof(key), "%s.%s", sname, m.name);
            rc = put(l, key, bitpos / 8, msize, bitpos, m.bitfield_size, err);
        } else if (aggregate(tt.kind)) {
            /* anonymous struct/union members start on a byte */
            rc = add_members(l, sname, mt, bitpos / 8, depth + 1, err);
        }
    }
    return rc;
}

int ms_btf_load_types(struct ms_typedb *db, const struct ms_btf *b, const char *const *structs,
                      struct ms_err *err)
{
    struct load l = {db, b, 0};
    char missing[256] = "";
    for (unsigned i = 0; structs[i]; i++) {
        uint32_t id = ms_btf_find_aggregate(b, structs[i]);
        struct ms_btf_type t;
        if (!id || ms_btf_type(b, id, &t, NULL) < 0) {
            size_t ml = strlen(missing);
            snprintf(missing + ml, sizeof(missing) - ml, " %s", structs[i]);
            continue;
        }
        int rc = put(&l, structs[i], t.size, 0, 0, 0, err);
        if (rc == 0)
            rc = add_members(&l, structs[i], id, 0, 0, err);
        if (rc < 0)
            return ms_err_prefix(err, "BTF layout of %s: ", structs[i]);
    }
    if (missing[0])
        return ms_err_set(err, MS_ENOTFOUND, "struct definitions not in the BTF:%s", missing);
    return 0;
}
