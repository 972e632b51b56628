#include "ptype.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OFFSET_COLUMN 27       /* print_offset_data::indentation */
#define OUTPUT_MAX (16u << 20) /* a struct's expansion never nears this */
#define DECL_MAX 4096          /* one declaration's text */

/* GCC's DWARF base type names, as GDB prints them (pahole copies GCC's). */
static const char *gdb_base_name(const char *n)
{
    static const char *const map[][2] = {
        {"long unsigned int", "unsigned long"},           {"long int", "long"},
        {"long long unsigned int", "unsigned long long"}, {"long long int", "long long"},
        {"short unsigned int", "unsigned short"},         {"short int", "short"},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (!strcmp(n, map[i][0]))
            return map[i][1];
    return n;
}

/* Declarations are built right to left: inner holds what a C reader sees
 * after the base type ("*next", "(*func)(void)"). */
struct decl {
    char text[DECL_MAX];
    size_t len;
    bool overflow;
};

static void decl_set(struct decl *d, const char *pre, const char *mid, const char *post)
{
    char tmp[DECL_MAX];
    int n = snprintf(tmp, sizeof(tmp), "%s%s%s", pre, mid, post);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        d->overflow = true;
        return;
    }
    memcpy(d->text, tmp, (size_t)n + 1);
    d->len = (size_t)n;
}

static int base_name(const struct ms_btf *b, const struct ms_btf_type *t, char *out, size_t cap)
{
    const char *n = t->name[0] ? t->name : "{...}";
    switch (t->kind) {
    case MS_BTF_UNKN:
        snprintf(out, cap, "void");
        return 0;
    case MS_BTF_STRUCT:
        snprintf(out, cap, "struct %s", n);
        return 0;
    case MS_BTF_UNION:
        snprintf(out, cap, "union %s", n);
        return 0;
    case MS_BTF_ENUM:
    case MS_BTF_ENUM64:
        snprintf(out, cap, "enum %s", n);
        return 0;
    case MS_BTF_FWD:
        snprintf(out, cap, "%s %s", t->kflag ? "union" : "struct", n);
        return 0;
    case MS_BTF_INT:
    case MS_BTF_FLOAT:
        snprintf(out, cap, "%s", gdb_base_name(n));
        return 0;
    case MS_BTF_TYPEDEF:
        snprintf(out, cap, "%s", n);
        return 0;
    default:
        (void)b;
        return -1;
    }
}

static int build(const struct ms_btf *b, uint32_t id, struct decl *d, int depth,
                 struct ms_err *err);

static int params(const struct ms_btf *b, const struct ms_btf_type *t, struct decl *d, int depth,
                  struct ms_err *err)
{
    char list[DECL_MAX] = "(";
    size_t len = 1;
    if (t->vlen == 0)
        len += (size_t)snprintf(list + len, sizeof(list) - len, "void");
    for (unsigned i = 0; i < t->vlen; i++) {
        const char *pname;
        uint32_t ptype;
        int rc = ms_btf_param(b, t->id, i, &pname, &ptype, err);
        if (rc < 0)
            return rc;
        struct decl p = {"", 0, false};
        if (ptype == 0 && i == t->vlen - 1U) {
            decl_set(&p, "...", "", "");
        } else {
            rc = build(b, ptype, &p, depth + 1, err);
            if (rc < 0)
                return rc;
        }
        if (p.overflow || len + p.len + 3 >= sizeof(list)) {
            d->overflow = true;
            return 0;
        }
        len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "", p.text);
    }
    if (len + 2 >= sizeof(list)) {
        d->overflow = true;
        return 0;
    }
    list[len++] = ')';
    list[len] = '\0';
    decl_set(d, "", d->text, list);
    return 0;
}

/* Wraps d in the declarator of type id: the whole declaration when done. */
static int build(const struct ms_btf *b, uint32_t id, struct decl *d, int depth, struct ms_err *err)
{
    if (depth > MS_BTF_MAX_DEPTH)
        return ms_err_set(err, MS_EFORMAT, "BTF type %u nests deeper than %d (a cycle?)", id,
                          MS_BTF_MAX_DEPTH);
    struct ms_btf_type t;
    int rc = ms_btf_type(b, id, &t, err);
    if (rc < 0)
        return rc;
    switch (t.kind) {
    case MS_BTF_PTR: {
        struct ms_btf_type to;
        rc = ms_btf_type(b, t.type, &to, err);
        if (rc < 0)
            return rc;
        if (to.kind == MS_BTF_ARRAY || to.kind == MS_BTF_FUNC_PROTO)
            decl_set(d, "(*", d->text, ")");
        else
            decl_set(d, "*", d->text, "");
        return build(b, t.type, d, depth + 1, err);
    }
    case MS_BTF_ARRAY: {
        char dim[24] = "[]";
        if (t.nelems)
            snprintf(dim, sizeof(dim), "[%u]", t.nelems);
        decl_set(d, "", d->text, dim);
        return build(b, t.elem_type, d, depth + 1, err);
    }
    case MS_BTF_FUNC_PROTO:
        rc = params(b, &t, d, depth, err);
        return rc < 0 ? rc : build(b, t.type, d, depth + 1, err);
    case MS_BTF_CONST:
    case MS_BTF_VOLATILE:
    case MS_BTF_RESTRICT: {
        const char *q = t.kind == MS_BTF_CONST      ? "const"
                        : t.kind == MS_BTF_VOLATILE ? "volatile"
                                                    : "restrict";
        struct ms_btf_type to;
        rc = ms_btf_type(b, t.type, &to, err);
        if (rc < 0)
            return rc;
        if (to.kind == MS_BTF_PTR) { /* a qualified pointer: "char * const p" */
            char tmp[DECL_MAX];
            snprintf(tmp, sizeof(tmp), " %s%s", q, d->len ? " " : "");
            decl_set(d, tmp, d->text, "");
            return build(b, t.type, d, depth + 1, err);
        }
        struct decl inner = *d;
        rc = build(b, t.type, &inner, depth + 1, err);
        if (rc < 0)
            return rc;
        decl_set(d, q, " ", inner.text);
        d->overflow |= inner.overflow;
        return 0;
    }
    case MS_BTF_TYPE_TAG:
    case MS_BTF_DECL_TAG:
    case MS_BTF_VAR:
    case MS_BTF_FUNC:
        return build(b, t.type, d, depth + 1, err);
    default: {
        char base[512];
        if (base_name(b, &t, base, sizeof(base)) < 0)
            return ms_err_set(err, MS_EFORMAT, "BTF type %u: no C declaration for its kind", id);
        if (!d->len)
            decl_set(d, base, "", "");
        else
            decl_set(d, base, " ", d->text);
        return 0;
    }
    }
}

int ms_ptype_decl(const struct ms_btf *b, uint32_t id, const char *name, struct ms_strbuf *out,
                  struct ms_err *err)
{
    struct decl d = {"", 0, false};
    decl_set(&d, name, "", "");
    int rc = build(b, id, &d, 0, err);
    if (rc < 0)
        return rc;
    if (d.overflow)
        return ms_err_set(err, MS_ELIMIT, "BTF type %u: declaration longer than %d bytes", id,
                          DECL_MAX);
    ms_strbuf_append(out, d.text, d.len);
    return 0;
}

/* ---- ptype and ptype/o ---- */

/* print_offset_data: the running end of the last member (bits) and the
 * offset of the struct being printed within the outermost one. */
struct offsets {
    uint64_t end_bitpos, offset_bitpos;
};

struct printer {
    const struct ms_btf *b;
    bool offsets;
    struct ms_strbuf *out;
    struct ms_err *err;
};

static void spaces(struct printer *p, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        ms_strbuf_putc(p->out, ' ');
}

static void maybe_hole(struct printer *p, const struct offsets *o, uint64_t bitpos,
                       const char *for_what)
{
    if (o->end_bitpos > 0 && o->end_bitpos < bitpos) {
        uint64_t hole = bitpos - o->end_bitpos;
        if (hole % 8)
            ms_strbuf_printf(p->out, "/* XXX %2u-bit %-7s    */\n", (unsigned)(hole % 8), for_what);
        if (hole / 8)
            ms_strbuf_printf(p->out, "/* XXX %2llu-byte %-7s   */\n",
                             (unsigned long long)(hole / 8), for_what);
    }
}

static int body(struct printer *p, uint32_t id, unsigned level, struct offsets *o, int depth);

/* A member's struct/union type when ptype/o expands it in place (not
 * through a typedef, as GDB checks the member's own type code), else 0. */
static uint32_t expandable(const struct ms_btf *b, uint32_t id, const char **qual)
{
    *qual = "";
    for (int i = 0; i < MS_BTF_MAX_DEPTH; i++) {
        struct ms_btf_type t;
        if (ms_btf_type(b, id, &t, NULL) < 0)
            return 0;
        if (t.kind == MS_BTF_STRUCT || t.kind == MS_BTF_UNION)
            return id;
        if (t.kind == MS_BTF_CONST)
            *qual = "const ";
        else if (t.kind == MS_BTF_VOLATILE)
            *qual = "volatile ";
        else if (t.kind != MS_BTF_TYPE_TAG)
            return 0;
        id = t.type;
    }
    return 0;
}

static int member(struct printer *p, const struct ms_btf_type *st, unsigned i, unsigned level,
                  struct offsets *o, int depth)
{
    struct ms_btf_member m;
    int rc = ms_btf_member(p->b, st->id, i, &m, p->err);
    if (rc < 0)
        return rc;
    const char *qual;
    uint32_t inner = p->offsets || !m.name[0] ? expandable(p->b, m.type, &qual) : 0;
    struct offsets io = {0, 0};
    if (p->offsets) {
        uint64_t size = 0;
        if (ms_btf_size(p->b, m.type, &size, NULL) < 0)
            size = 0;
        if (st->kind == MS_BTF_UNION) {
            ms_strbuf_printf(p->out, "/*                %6llu */", (unsigned long long)size);
        } else {
            maybe_hole(p, o, m.bit_offset, "hole");
            uint64_t bits = size * 8;
            if (m.bitfield_size || o->offset_bitpos % 8) {
                bits = m.bitfield_size;
                uint64_t real = m.bit_offset + o->offset_bitpos;
                ms_strbuf_printf(p->out, "/* %6llu:%2u  ", (unsigned long long)(real / 8),
                                 (unsigned)(real % 8));
            } else {
                ms_strbuf_printf(p->out, "/* %6llu     ",
                                 (unsigned long long)((m.bit_offset + o->offset_bitpos) / 8));
            }
            ms_strbuf_printf(p->out, " |  %6llu */", (unsigned long long)size);
            o->end_bitpos = m.bit_offset + bits;
        }
        if (inner) {
            io.offset_bitpos = o->offset_bitpos + m.bit_offset;
            io.end_bitpos = o->end_bitpos - size * 8;
        }
    }
    spaces(p, level + 4);
    if (inner) {
        ms_strbuf_printf(p->out, "%s", qual);
        rc = body(p, inner, level + 4, &io, depth + 1);
        if (rc < 0)
            return rc;
        ms_strbuf_printf(p->out, "%s%s", m.name[0] ? " " : "", m.name);
    } else {
        rc = ms_ptype_decl(p->b, m.type, m.name, p->out, p->err);
        if (rc < 0)
            return rc;
    }
    if (m.bitfield_size)
        ms_strbuf_printf(p->out, " : %u", m.bitfield_size);
    ms_strbuf_printf(p->out, ";\n");
    return 0;
}

static int enum_body(struct printer *p, const struct ms_btf_type *t)
{
    ms_strbuf_printf(p->out, "enum %s%s{", t->name, t->name[0] ? " " : "");
    int64_t next = 0;
    for (unsigned i = 0; i < t->vlen; i++) {
        const char *name;
        int64_t v;
        int rc = ms_btf_enumerator(p->b, t->id, i, &name, &v, p->err);
        if (rc < 0)
            return rc;
        ms_strbuf_printf(p->out, "%s%s", i ? ", " : "", name);
        if (v != next)
            ms_strbuf_printf(p->out, " = %lld", (long long)v);
        next = v + 1;
    }
    ms_strbuf_printf(p->out, "}");
    return 0;
}

/* "struct NAME {" members "}" (no trailing newline), members at level+4. */
static int body(struct printer *p, uint32_t id, unsigned level, struct offsets *o, int depth)
{
    if (depth > MS_BTF_MAX_DEPTH)
        return ms_err_set(p->err, MS_EFORMAT, "BTF structs nest deeper than %d (a cycle?)",
                          MS_BTF_MAX_DEPTH);
    if (p->out->len > OUTPUT_MAX)
        return ms_err_set(p->err, MS_ELIMIT, "ptype output over %u bytes", OUTPUT_MAX);
    struct ms_btf_type t;
    int rc = ms_btf_type(p->b, id, &t, p->err);
    if (rc < 0)
        return rc;
    ms_strbuf_printf(p->out, "%s %s%s{\n", t.kind == MS_BTF_UNION ? "union" : "struct", t.name,
                     t.name[0] ? " " : "");
    if (t.vlen == 0) {
        spaces(p, (p->offsets ? OFFSET_COLUMN : 0) + level + 4);
        ms_strbuf_printf(p->out, "<no data fields>\n");
    }
    for (unsigned i = 0; i < t.vlen; i++) {
        rc = member(p, &t, i, level, o, depth);
        if (rc < 0)
            return rc;
    }
    if (p->offsets) {
        maybe_hole(p, o, (uint64_t)t.size * 8, "padding");
        ms_strbuf_printf(p->out, "\n");
        spaces(p, OFFSET_COLUMN + level + 4);
        ms_strbuf_printf(p->out, "/* total size (bytes): %4u */\n", t.size);
        spaces(p, OFFSET_COLUMN + (level ? 0 : 2));
    }
    spaces(p, level);
    ms_strbuf_printf(p->out, "}");
    return 0;
}

int ms_ptype_format(const struct ms_btf *b, uint32_t id, bool offsets, struct ms_strbuf *out,
                    struct ms_err *err)
{
    struct printer p = {b, offsets, out, err};
    struct ms_btf_type t;
    int rc = ms_btf_type(b, id, &t, err);
    for (int i = 0; rc == 0 && t.kind == MS_BTF_TYPEDEF; i++) { /* ptype shows what it names */
        if (i > MS_BTF_MAX_DEPTH)
            return ms_err_set(err, MS_EFORMAT, "BTF typedef chain deeper than %d (a cycle?)",
                              MS_BTF_MAX_DEPTH);
        id = t.type;
        rc = ms_btf_type(b, id, &t, err);
    }
    if (rc < 0)
        return rc;
    bool aggregate = t.kind == MS_BTF_STRUCT || t.kind == MS_BTF_UNION;
    if (offsets && aggregate)
        ms_strbuf_printf(out, "/* offset      |    size */  ");
    ms_strbuf_printf(out, "type = ");
    struct offsets o = {0, 0};
    if (aggregate)
        rc = body(&p, id, 0, &o, 0);
    else if (t.kind == MS_BTF_ENUM || t.kind == MS_BTF_ENUM64)
        rc = enum_body(&p, &t);
    else
        rc = ms_ptype_decl(b, id, "", out, err);
    if (rc < 0)
        return rc;
    ms_strbuf_printf(out, "\n");
    if (out->failed)
        return ms_err_set(err, MS_ENOMEM, "out of memory formatting ptype");
    return 0;
}

/* ---- names ---- */

static uint32_t find_base(const struct ms_btf *b, const char *name)
{
    static const char *const gcc[][2] = {
        {"unsigned long", "long unsigned int"},
        {"long", "long int"},
        {"unsigned long long", "long long unsigned int"},
        {"long long", "long long int"},
        {"unsigned short", "short unsigned int"},
        {"short", "short int"},
        {"unsigned", "unsigned int"},
    };
    uint32_t id = ms_btf_find(b, MS_BTF_INT, name);
    for (size_t i = 0; i < sizeof(gcc) / sizeof(gcc[0]) && !id; i++)
        if (!strcmp(name, gcc[i][0]))
            id = ms_btf_find(b, MS_BTF_INT, gcc[i][1]);
    return id ? id : ms_btf_find(b, MS_BTF_FLOAT, name);
}

int ms_ptype_lookup(const struct ms_btf *b, const char *name, uint32_t *id, struct ms_err *err)
{
    char buf[256];
    size_t n = strlen(name);
    while (n && name[n - 1] == ' ')
        n--;
    unsigned stars = 0;
    while (n && (name[n - 1] == '*' || name[n - 1] == ' '))
        stars += name[--n] == '*';
    while (*name == ' ' && n)
        name++, n--;
    if (n == 0 || n >= sizeof(buf))
        return ms_err_set(err, MS_EINVAL, "no type name given");
    memcpy(buf, name, n);
    buf[n] = '\0';
    if (stars)
        return ms_err_set(err, MS_EINVAL,
                          "pointer types: ptype the type pointed to (%s), pointers are 8 bytes",
                          buf);
    uint32_t found = 0;
    if (!strncmp(buf, "struct ", 7))
        found = ms_btf_find(b, MS_BTF_STRUCT, buf + 7);
    else if (!strncmp(buf, "union ", 6))
        found = ms_btf_find(b, MS_BTF_UNION, buf + 6);
    else if (!strncmp(buf, "enum ", 5)) {
        found = ms_btf_find(b, MS_BTF_ENUM, buf + 5);
        if (!found)
            found = ms_btf_find(b, MS_BTF_ENUM64, buf + 5);
    } else {
        found = ms_btf_find(b, MS_BTF_TYPEDEF, buf);
        if (!found)
            found = find_base(b, buf);
        if (!found)
            found = ms_btf_find(b, MS_BTF_STRUCT, buf); /* GDB's C mode wants "struct", */
        if (!found)
            found = ms_btf_find(b, MS_BTF_UNION, buf); /* but a bare tag is unambiguous */
    }
    if (found)
        *id = found;
    else if (!strncmp(buf, "struct ", 7) || !strncmp(buf, "union ", 6) || !strncmp(buf, "enum ", 5))
        return ms_err_set(err, MS_ENOTFOUND, "No %.*s type named %s.", (int)strcspn(buf, " "), buf,
                          buf + strcspn(buf, " ") + 1);
    else
        return ms_err_set(err, MS_ENOTFOUND, "No symbol \"%s\" in current context.", buf);
    return 0;
}
