/* The BTF decoder on small blobs built here the way pahole lays them out
 * (uapi/linux/btf.h): every kind, bitfields with and without kind_flag,
 * anonymous members, qualifier chains, the typedb fill; then hostile blobs:
 * bad headers, records and references out of range, cycles, overflowing
 * sizes, and every truncation and single-byte change of a valid blob. */
#include <stdlib.h>

#include "btf.h"
#include "check.h"
#include "ptype.h"

#include "../support/btfblob.h"

/* Ids of the sample blob. */
enum {
    T_INT = 1,
    T_UCHAR,
    T_FWD_TASK,
    T_PTR_TASK,
    T_LIST,
    T_PTR_LIST,
    T_CHAR16,
    T_PID_T,
    T_CONST_PID,
    T_VOL_CONST_PID,
    T_ANON_UNION,
    T_TASK,
    T_ENUM,
    T_ENUM64,
    T_PROTO,
    T_FUNC,
    T_VAR,
    T_DATASEC,
    T_FLOAT,
    T_DECL_TAG,
    T_TYPE_TAG,
    T_RESTRICT,
    T_ULONG,
    T_OLD_BF,
    T_OLDSTRUCT,
    T_TYPEDEF_ANON,
    T_ANON_STRUCT,
    T_COUNT
};

static void sample(struct btf_blob *b)
{
    btf_blob_init(b);
    btf_type(b, "int", 1, 0, false, 4);
    btf_u32(b, 1u << 24 | 32); /* signed, 32 bits */
    btf_type(b, "unsigned char", 1, 0, false, 1);
    btf_u32(b, 8);
    btf_type(b, "task", 7, 0, false, 0); /* struct task; */
    btf_type(b, "", 2, 0, false, T_TASK);
    btf_type(b, "list_head", 4, 2, false, 16);
    btf_u32(b, btf_str(b, "next")), btf_u32(b, T_PTR_LIST), btf_u32(b, 0);
    btf_u32(b, btf_str(b, "prev")), btf_u32(b, T_PTR_LIST), btf_u32(b, 64);
    btf_type(b, "", 2, 0, false, T_LIST);
    btf_type(b, "", 3, 0, false, 0); /* unsigned char[16] */
    btf_u32(b, T_UCHAR), btf_u32(b, T_INT), btf_u32(b, 16);
    btf_type(b, "pid_t", 8, 0, false, T_INT);
    btf_type(b, "", 10, 0, false, T_PID_T);
    btf_type(b, "", 9, 0, false, T_CONST_PID);
    btf_type(b, "", 5, 2, false, 16); /* union { long a; unsigned char b[16]; } */
    btf_u32(b, btf_str(b, "a")), btf_u32(b, T_ULONG), btf_u32(b, 0);
    btf_u32(b, btf_str(b, "b")), btf_u32(b, T_CHAR16), btf_u32(b, 0);
    /* struct task { volatile const pid_t pid; unsigned int flags:3, :2, prio:5;
     *   union {...}; struct list_head tasks; unsigned char comm[16];
     *   struct task *parent; struct { int x; } ; } : 80 bytes, kflag */
    btf_type(b, "task", 4, 8, true, 80);
    btf_u32(b, btf_str(b, "pid")), btf_u32(b, T_VOL_CONST_PID), btf_u32(b, 0);
    btf_u32(b, btf_str(b, "flags")), btf_u32(b, T_INT), btf_u32(b, 3u << 24 | 32);
    btf_u32(b, btf_str(b, "prio")), btf_u32(b, T_INT), btf_u32(b, 5u << 24 | 37);
    btf_u32(b, 0), btf_u32(b, T_ANON_UNION), btf_u32(b, 64);
    btf_u32(b, btf_str(b, "tasks")), btf_u32(b, T_LIST), btf_u32(b, 192);
    btf_u32(b, btf_str(b, "comm")), btf_u32(b, T_CHAR16), btf_u32(b, 320);
    btf_u32(b, btf_str(b, "parent")), btf_u32(b, T_PTR_TASK), btf_u32(b, 448);
    btf_u32(b, 0), btf_u32(b, T_TYPEDEF_ANON), btf_u32(b, 512);
    btf_type(b, "state", 6, 2, true, 4); /* signed enum */
    btf_u32(b, btf_str(b, "RUNNING")), btf_u32(b, 0);
    btf_u32(b, btf_str(b, "DEAD")), btf_u32(b, (uint32_t)-1);
    btf_type(b, "big", 19, 1, false, 8);
    btf_u32(b, btf_str(b, "HUGE")), btf_u32(b, 0x89abcdef), btf_u32(b, 0x01234567);
    btf_type(b, "", 13, 2, false, T_INT); /* int (pid_t, ...) */
    btf_u32(b, btf_str(b, "pid")), btf_u32(b, T_PID_T);
    btf_u32(b, 0), btf_u32(b, 0);
    btf_type(b, "do_it", 12, 1, false, T_PROTO);
    btf_type(b, "current_task", 14, 0, false, T_PTR_TASK);
    btf_u32(b, 1);
    btf_type(b, ".data..percpu", 15, 1, false, 8);
    btf_u32(b, T_VAR), btf_u32(b, 0), btf_u32(b, 8);
    btf_type(b, "double", 16, 0, false, 8);
    btf_type(b, "rcu", 17, 0, false, T_TASK);
    btf_u32(b, (uint32_t)-1);
    btf_type(b, "user", 18, 0, false, T_PTR_TASK);
    btf_type(b, "", 11, 0, false, T_PTR_TASK);
    btf_type(b, "unsigned long", 1, 0, false, 8);
    btf_u32(b, 64);
    btf_type(b, "", 1, 0, false, 4); /* old-style bitfield int: 4 bits at +2 */
    btf_u32(b, 2u << 16 | 4);
    /* struct old { int a; int b:4 (at bit 32, INT offset 2 -> 34); } no kflag */
    btf_type(b, "old", 4, 2, false, 8);
    btf_u32(b, btf_str(b, "a")), btf_u32(b, T_INT), btf_u32(b, 0);
    btf_u32(b, btf_str(b, "b")), btf_u32(b, T_OLD_BF), btf_u32(b, 32);
    btf_type(b, "anon_t", 8, 0, false, T_ANON_STRUCT);
    btf_type(b, "", 4, 1, false, 4);
    btf_u32(b, btf_str(b, "x")), btf_u32(b, T_INT), btf_u32(b, 0);
}

static struct ms_btf *parse_blob(const struct btf_blob *b)
{
    static uint8_t buf[8192];
    size_t n = btf_blob_bytes(b, buf);
    struct ms_btf *btf = NULL;
    struct ms_err err;
    int rc = ms_btf_parse(&btf, buf, n, &err);
    CHECK(rc == 0, "parse: %s", err.msg);
    return btf;
}

static void test_kinds(void)
{
    struct btf_blob b;
    sample(&b);
    struct ms_btf *btf = parse_blob(&b);
    if (!btf)
        return;
    struct ms_err err;
    CHECK_EQ_U64(ms_btf_count(btf), T_COUNT, "type count with void");
    struct ms_btf_type t;
    CHECK(ms_btf_type(btf, 0, &t, &err) == 0 && t.kind == MS_BTF_UNKN, "void");
    CHECK(ms_btf_type(btf, T_COUNT, &t, &err) == MS_EINVAL, "past the last id");
    CHECK(ms_btf_type(btf, T_INT, &t, &err) == 0 && t.kind == MS_BTF_INT && t.size == 4 &&
              t.int_bits == 32 && t.int_encoding == MS_BTF_INT_SIGNED && !strcmp(t.name, "int"),
          "int");
    CHECK(ms_btf_type(btf, T_CHAR16, &t, &err) == 0 && t.kind == MS_BTF_ARRAY &&
              t.elem_type == T_UCHAR && t.index_type == T_INT && t.nelems == 16,
          "array");
    CHECK(ms_btf_type(btf, T_VAR, &t, &err) == 0 && t.kind == MS_BTF_VAR && t.linkage == 1 &&
              t.type == T_PTR_TASK,
          "var");
    CHECK(ms_btf_type(btf, T_FUNC, &t, &err) == 0 && t.kind == MS_BTF_FUNC && t.linkage == 1 &&
              t.type == T_PROTO,
          "func");
    CHECK(ms_btf_type(btf, T_DECL_TAG, &t, &err) == 0 && t.component_idx == -1, "decl_tag");
    CHECK(ms_btf_type(btf, T_FLOAT, &t, &err) == 0 && t.kind == MS_BTF_FLOAT && t.size == 8,
          "float");
    CHECK(ms_btf_type(btf, T_FWD_TASK, &t, &err) == 0 && t.kind == MS_BTF_FWD, "fwd");

    CHECK_EQ_U64(ms_btf_find(btf, MS_BTF_STRUCT, "task"), T_TASK, "struct task skips the fwd");
    CHECK_EQ_U64(ms_btf_find(btf, MS_BTF_FWD, "task"), T_FWD_TASK, "fwd task");
    CHECK_EQ_U64(ms_btf_find(btf, MS_BTF_TYPEDEF, "pid_t"), T_PID_T, "typedef");
    CHECK_EQ_U64(ms_btf_find(btf, MS_BTF_STRUCT, "nope"), 0, "absent");
    CHECK_EQ_U64(ms_btf_find(btf, MS_BTF_UNION, "task"), 0, "wrong kind");
    CHECK_EQ_U64(ms_btf_find(btf, MS_BTF_VAR, "current_task"), T_VAR, "var by name");
    CHECK_EQ_U64(ms_btf_find_aggregate(btf, "struct list_head"), T_LIST, "struct X");
    CHECK_EQ_U64(ms_btf_find_aggregate(btf, "anon_t"), T_ANON_STRUCT, "typedef of a struct");
    CHECK_EQ_U64(ms_btf_find_aggregate(btf, "pid_t"), 0, "typedef of an int");

    uint32_t r;
    CHECK(ms_btf_resolve(btf, T_VOL_CONST_PID, &r, &err) == 0 && r == T_INT, "peel v/c/typedef");
    CHECK(ms_btf_resolve(btf, T_TYPE_TAG, &r, &err) == 0 && r == T_PTR_TASK, "peel type_tag");
    uint64_t sz;
    CHECK(ms_btf_size(btf, T_TASK, &sz, &err) == 0 && sz == 80, "sizeof task");
    CHECK(ms_btf_size(btf, T_CHAR16, &sz, &err) == 0 && sz == 16, "sizeof array");
    CHECK(ms_btf_size(btf, T_RESTRICT, &sz, &err) == 0 && sz == 8, "sizeof restrict ptr");
    CHECK(ms_btf_size(btf, T_ENUM64, &sz, &err) == 0 && sz == 8, "sizeof enum64");
    CHECK(ms_btf_size(btf, T_FUNC, &sz, &err) == MS_EINVAL, "sizeof func: none");
    CHECK(ms_btf_size(btf, 0, &sz, &err) == MS_EINVAL, "sizeof void: none");

    struct ms_btf_member m;
    CHECK(ms_btf_member(btf, T_TASK, 1, &m, &err) == 0 && !strcmp(m.name, "flags") &&
              m.bit_offset == 32 && m.bitfield_size == 3,
          "kflag bitfield");
    CHECK(ms_btf_member(btf, T_TASK, 8, &m, &err) == MS_EINVAL, "member past vlen");
    CHECK(ms_btf_member(btf, T_INT, 0, &m, &err) == MS_EINVAL, "member of an int");
    CHECK(ms_btf_member(btf, T_OLDSTRUCT, 1, &m, &err) == 0 && m.bit_offset == 34 &&
              m.bitfield_size == 4,
          "bitfield without kflag: from the INT");
    CHECK(ms_btf_member(btf, T_OLDSTRUCT, 0, &m, &err) == 0 && m.bitfield_size == 0,
          "plain int without kflag");
    CHECK(ms_btf_member_find(btf, T_TASK, "b", &m, &err) == 0 && m.bit_offset == 64 &&
              m.type == T_CHAR16,
          "member inside an anonymous union");
    CHECK(ms_btf_member_find(btf, T_TASK, "x", &m, &err) == 0 && m.bit_offset == 512,
          "member inside a typedef'd anonymous struct");
    CHECK(ms_btf_member_find(btf, T_TASK, "tasks.prev", &m, &err) == 0 && m.bit_offset == 256,
          "dotted path");
    CHECK(ms_btf_member_find(btf, T_TASK, "comm.x", &m, &err) == MS_EINVAL, "path through array");
    CHECK(ms_btf_member_find(btf, T_TASK, "nope", &m, &err) == MS_ENOTFOUND &&
              strstr(err.msg, "struct task has no member nope"),
          "absent member: %s", err.msg);

    const char *name;
    int64_t v;
    CHECK(ms_btf_enumerator(btf, T_ENUM, 1, &name, &v, &err) == 0 && !strcmp(name, "DEAD") &&
              v == -1,
          "signed enum");
    CHECK(ms_btf_enumerator(btf, T_ENUM64, 0, &name, &v, &err) == 0 &&
              (uint64_t)v == 0x0123456789abcdefull,
          "enum64");
    uint32_t pt;
    CHECK(ms_btf_param(btf, T_PROTO, 0, &name, &pt, &err) == 0 && !strcmp(name, "pid") &&
              pt == T_PID_T,
          "param");
    CHECK(ms_btf_param(btf, T_PROTO, 1, &name, &pt, &err) == 0 && !*name && pt == 0, "varargs");
    ms_btf_free(btf);
}

static void test_typedb(void)
{
    struct btf_blob b;
    sample(&b);
    struct ms_btf *btf = parse_blob(&b);
    if (!btf)
        return;
    struct ms_typedb db;
    ms_typedb_init(&db);
    struct ms_err err;
    static const char *const want[] = {"task", "list_head", "anon_t", NULL};
    CHECK(ms_btf_load_types(&db, btf, want, &err) == 0, "load: %s", err.msg);
    const struct ms_typedb_entry *e = ms_typedb_get(&db, "task");
    CHECK(e && e->value == 80, "task size");
    e = ms_typedb_get(&db, "task.prio");
    CHECK(e && e->value == 4 && e->bit_offset == 37 && e->bit_size == 5 && e->member_size == 4,
          "bitfield entry");
    e = ms_typedb_get(&db, "task.b");
    CHECK(e && e->value == 8 && e->member_size == 16, "anonymous union's member flattened");
    e = ms_typedb_get(&db, "task.x");
    CHECK(e && e->value == 64 && e->member_size == 4, "typedef'd anonymous struct flattened");
    e = ms_typedb_get(&db, "task.pid");
    CHECK(e && e->value == 0 && e->member_size == 4, "qualified typedef member");
    e = ms_typedb_get(&db, "task.tasks");
    CHECK(e && e->value == 24 && e->member_size == 16, "struct member");
    e = ms_typedb_get(&db, "anon_t.x");
    CHECK(e && e->value == 0, "typedef's struct");
    static const char *const missing[] = {"task", "nothere", NULL};
    CHECK(ms_btf_load_types(&db, btf, missing, &err) == MS_ENOTFOUND && strstr(err.msg, "nothere"),
          "missing struct named: %s", err.msg);
    ms_typedb_free(&db);
    ms_btf_free(btf);
}

static int parse_raw(const void *p, size_t n, struct ms_err *err)
{
    struct ms_btf *btf = NULL;
    int rc = ms_btf_parse(&btf, p, n, err);
    ms_btf_free(btf);
    return rc;
}

static void test_hostile_headers(void)
{
    struct btf_blob b;
    sample(&b);
    uint8_t buf[8192], bad[8192];
    size_t n = btf_blob_bytes(&b, buf);
    struct ms_err err;
    CHECK(parse_raw(buf, 10, &err) == MS_EFORMAT, "short header");
    struct {
        unsigned at;
        uint32_t value;
        const char *what;
    } cases[] = {
        {0, 0x00019FEB, "big-endian"},
        {0, 0x00011234, "bad magic"},
        {0, 0x0002eB9F, "version 2"},
        {4, 12, "hdr_len below 24"},
        {4, 100000, "hdr_len past the end"},
        {12, b.tlen + 4, "type section past the end"},
        {8, 2, "type section unaligned"},
        {16, 0xfffffff0u, "string offset overflow"},
        {20, 0, "empty string section"},
        {16, 0, "sections overlap"},
        {12, b.tlen - 4, "last record truncated"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memcpy(bad, buf, n);
        memcpy(bad + cases[i].at, &cases[i].value, 4);
        CHECK(parse_raw(bad, n, &err) == MS_EFORMAT, "%s", cases[i].what);
    }
    memcpy(bad, buf, n);
    bad[n - 1] = 'x';
    CHECK(parse_raw(bad, n, &err) == MS_EFORMAT, "strings not NUL-terminated");
    /* every truncation and every single-byte change: an error or a blob
     * whose every type the accessors can walk (ASan watches) */
    unsigned ok = 0;
    for (size_t cut = 0; cut < n; cut++)
        ok += parse_raw(buf, cut, &err) == 0;
    CHECK(ok == 0, "%u truncations parsed (the section lengths say more)", ok);
    for (size_t i = 0; i < n; i++) {
        for (unsigned v = 0; v < 256; v += 51) {
            memcpy(bad, buf, n);
            bad[i] ^= (uint8_t)(v | 1);
            struct ms_btf *btf = NULL;
            if (ms_btf_parse(&btf, bad, n, &err) < 0)
                continue;
            for (uint32_t id = 0; id < ms_btf_count(btf); id++) {
                struct ms_btf_type t;
                uint64_t sz;
                uint32_t r;
                struct ms_btf_member m;
                ms_btf_type(btf, id, &t, NULL);
                ms_btf_size(btf, id, &sz, NULL);
                ms_btf_resolve(btf, id, &r, NULL);
                for (unsigned k = 0; k < t.vlen; k++)
                    ms_btf_member(btf, id, k, &m, NULL);
                ms_btf_member_find(btf, id, "x", &m, NULL);
            }
            ms_btf_free(btf);
        }
    }
}

static void test_hostile_records(void)
{
    struct ms_err err;
    uint8_t buf[8192];
    struct btf_blob b;

    btf_blob_init(&b);
    btf_type(&b, "", 0, 0, false, 0);
    CHECK(parse_raw(buf, btf_blob_bytes(&b, buf), &err) == MS_EFORMAT && strstr(err.msg, "kind 0"),
          "kind 0: %s", err.msg);
    btf_blob_init(&b);
    btf_type(&b, "", 25, 0, false, 0);
    CHECK(parse_raw(buf, btf_blob_bytes(&b, buf), &err) == MS_EFORMAT, "kind 25");
    btf_blob_init(&b);
    btf_type(&b, "s", 4, 3, false, 8); /* three members, none written */
    CHECK(parse_raw(buf, btf_blob_bytes(&b, buf), &err) == MS_EFORMAT &&
              strstr(err.msg, "runs past"),
          "vlen past the section: %s", err.msg);
    btf_blob_init(&b);
    btf_u32(&b, 5000), btf_u32(&b, 1u << 24), btf_u32(&b, 4), btf_u32(&b, 32);
    b.ntypes++;
    CHECK(parse_raw(buf, btf_blob_bytes(&b, buf), &err) == MS_EFORMAT &&
              strstr(err.msg, "name offset"),
          "name past the strings: %s", err.msg);
    btf_blob_init(&b);
    btf_type(&b, "", 2, 0, false, 7);
    CHECK(parse_raw(buf, btf_blob_bytes(&b, buf), &err) == MS_EFORMAT, "pointer to type 7 of 2");
    btf_blob_init(&b);
    btf_type(&b, "s", 4, 1, false, 8);
    btf_u32(&b, 0), btf_u32(&b, 99), btf_u32(&b, 0);
    CHECK(parse_raw(buf, btf_blob_bytes(&b, buf), &err) == MS_EFORMAT, "member type out of range");
    btf_blob_init(&b);
    btf_type(&b, "", 3, 0, false, 0);
    btf_u32(&b, 1), btf_u32(&b, 55), btf_u32(&b, 4);
    CHECK(parse_raw(buf, btf_blob_bytes(&b, buf), &err) == MS_EFORMAT,
          "array index type out of range");

    /* parse-clean but cyclic: accessors bound them */
    btf_blob_init(&b);
    btf_type(&b, "a", 8, 0, false, 2);
    btf_type(&b, "b", 8, 0, false, 1);
    btf_type(&b, "", 3, 0, false, 0); /* an array of itself */
    btf_u32(&b, 3), btf_u32(&b, 3), btf_u32(&b, 2);
    btf_type(&b, "self", 4, 2, false, 8); /* anonymous members of its own type */
    btf_u32(&b, 0), btf_u32(&b, 4), btf_u32(&b, 0);
    btf_u32(&b, 0), btf_u32(&b, 4), btf_u32(&b, 0);
    btf_type(&b, "int", 1, 0, false, 4);
    btf_u32(&b, 32);
    btf_type(&b, "", 3, 0, false, 0); /* int[2^32-1] */
    btf_u32(&b, 5), btf_u32(&b, 5), btf_u32(&b, 0xffffffff);
    btf_type(&b, "", 3, 0, false, 0); /* int[2^32-1][2^32-1]: over 2^64 bytes */
    btf_u32(&b, 6), btf_u32(&b, 5), btf_u32(&b, 0xffffffff);
    btf_type(&b, "", 3, 0, false, 0);
    btf_u32(&b, 7), btf_u32(&b, 5), btf_u32(&b, 2);
    struct ms_btf *btf = NULL;
    CHECK(ms_btf_parse(&btf, buf, btf_blob_bytes(&b, buf), &err) == 0, "cyclic blob parses: %s",
          err.msg);
    if (!btf)
        return;
    uint32_t r;
    uint64_t sz;
    struct ms_btf_member m;
    CHECK(ms_btf_resolve(btf, 1, &r, &err) == MS_EFORMAT && strstr(err.msg, "cycle"),
          "typedef cycle: %s", err.msg);
    CHECK(ms_btf_size(btf, 1, &sz, &err) == MS_EFORMAT, "sizeof a typedef cycle");
    CHECK(ms_btf_size(btf, 3, &sz, &err) == MS_EFORMAT, "array of itself: %s", err.msg);
    CHECK(ms_btf_member_find(btf, 4, "x", &m, &err) < 0, "self-containing anonymous members: %s",
          err.msg);
    CHECK(ms_btf_size(btf, 7, &sz, &err) == MS_EFORMAT && strstr(err.msg, "overflow"),
          "array size overflow: %s", err.msg);
    CHECK(ms_btf_size(btf, 8, &sz, &err) == MS_EFORMAT, "array of an overflowing array");
    CHECK(ms_btf_size(btf, 6, &sz, &err) == 0 && sz == 4ull * 0xffffffff, "large array fits");
    struct ms_typedb db;
    ms_typedb_init(&db);
    static const char *const want[] = {"self", NULL};
    CHECK(ms_btf_load_types(&db, btf, want, &err) < 0, "typedb of a self-containing struct: %s",
          err.msg);
    ms_typedb_free(&db);
    ms_btf_free(btf);
}

static void check_decl(const struct ms_btf *btf, uint32_t id, const char *name, const char *want)
{
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    struct ms_err err;
    int rc = ms_ptype_decl(btf, id, name, &sb, &err);
    CHECK(rc == 0 && !strcmp(ms_strbuf_str(&sb), want), "decl of %u: got '%s', want '%s' (%s)", id,
          ms_strbuf_str(&sb), want, rc ? err.msg : "");
    ms_strbuf_free(&sb);
}

static void test_ptype(void)
{
    struct btf_blob b;
    sample(&b);
    struct ms_btf *btf = parse_blob(&b);
    if (!btf)
        return;
    check_decl(btf, T_PTR_LIST, "next", "struct list_head *next");
    check_decl(btf, T_CHAR16, "comm", "unsigned char comm[16]");
    check_decl(btf, T_VOL_CONST_PID, "pid", "volatile const pid_t pid");
    check_decl(btf, T_FUNC, "", "int (pid_t, ...)");
    check_decl(btf, T_ULONG, "x", "unsigned long x");
    check_decl(btf, T_RESTRICT, "p", "struct task * restrict p");
    check_decl(btf, 0, "", "void");
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    struct ms_err err;
    uint32_t id;
    CHECK(ms_ptype_lookup(btf, "struct task", &id, &err) == 0 && id == T_TASK, "lookup struct");
    CHECK(ms_ptype_lookup(btf, "unsigned long", &id, &err) == 0 && id == T_ULONG,
          "lookup a base type by GDB's name");
    CHECK(ms_ptype_lookup(btf, "struct nope", &id, &err) == MS_ENOTFOUND &&
              !strcmp(err.msg, "No struct type named nope."),
          "GDB's message: %s", err.msg);
    CHECK(ms_ptype_format(btf, T_TASK, true, &sb, &err) == 0, "ptype/o: %s", err.msg);
    static const char want[] =
        "/* offset      |    size */  type = struct task {\n"
        "/*      0      |       4 */    volatile const pid_t pid;\n"
        "/*      4: 0   |       4 */    int flags : 3;\n"
        "/* XXX  2-bit hole       */\n"
        "/*      4: 5   |       4 */    int prio : 5;\n"
        "/* XXX  6-bit hole       */\n"
        "/* XXX  2-byte hole      */\n"
        "/*      8      |      16 */    union {\n"
        "/*                     8 */        unsigned long a;\n"
        "/*                    16 */        unsigned char b[16];\n"
        "/* XXX  8-byte padding   */\n" /* GDB 13 says so too (a union's end is not tracked) */
        "\n"
        "                                   /* total size (bytes):   16 */\n"
        "                               };\n"
        "/*     24      |      16 */    struct list_head {\n"
        "/*     24      |       8 */        struct list_head *next;\n"
        "/*     32      |       8 */        struct list_head *prev;\n"
        "\n"
        "                                   /* total size (bytes):   16 */\n"
        "                               } tasks;\n"
        "/*     40      |      16 */    unsigned char comm[16];\n"
        "/*     56      |       8 */    struct task *parent;\n"
        "/*     64      |       4 */    anon_t;\n"
        "/* XXX 12-byte padding   */\n"
        "\n"
        "                               /* total size (bytes):   80 */\n"
        "                             }\n";
    CHECK(!strcmp(ms_strbuf_str(&sb), want), "ptype/o text:\n%s", ms_strbuf_str(&sb));
    ms_strbuf_free(&sb);
    ms_btf_free(btf);
}

int main(void)
{
    test_ptype();
    test_kinds();
    test_typedb();
    test_hostile_headers();
    test_hostile_records();
    return check_done("test_btf");
}
