#include "valprint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cexpr.h"
#include "error.h"
#include "ptype.h"
#include "strbuf.h"

#define PRINT_ELEMENTS 200 /* GDB's print elements */
#define REPEATS 10         /* GDB's print repeats */
#define MAX_DEPTH 20       /* GDB's print max-depth */
#define STRING_FETCH 200   /* a char *'s string: at most print elements */
#define SYN_MAX 96         /* synthetic types one evaluation may make */
#define SYN 0x80000000u    /* type refs with this bit are synthetic, not BTF ids */
#define NAME_MAX_LEN 256
#define ENUM_SCAN_MAX 2000000 /* enumerators looked at to find a constant */

/* Synthetic types: C's base types (so arithmetic never needs the BTF to
 * have them), pointers to anything, x@n's arrays, and the two kinds of
 * symbol with no type. The first slots are fixed. */
enum syn_kind { S_INT, S_VOID, S_PTR, S_ARRAY, S_NODEBUG_DATA, S_NODEBUG_TEXT };
enum {
    B_CHAR,
    B_SCHAR,
    B_UCHAR,
    B_SHORT,
    B_USHORT,
    B_INT,
    B_UINT,
    B_LONG,
    B_ULONG,
    B_LLONG,
    B_ULLONG,
    B_BOOL,
    B_VOID,
    B_NODEBUG_DATA,
    B_NODEBUG_TEXT,
    B_COUNT
};

static const struct {
    const char *name;
    unsigned size;
    bool sgn;
} builtins[] = {
    {"char", 1, true},
    {"signed char", 1, true},
    {"unsigned char", 1, false},
    {"short", 2, true},
    {"unsigned short", 2, false},
    {"int", 4, true},
    {"unsigned int", 4, false},
    {"long", 8, true},
    {"unsigned long", 8, false},
    {"long long", 8, true},
    {"unsigned long long", 8, false},
    {"_Bool", 1, false},
};

struct syn {
    enum syn_kind kind;
    uint32_t target;
    uint32_t nelems; /* S_ARRAY */
};

#define T(b) (SYN | (uint32_t)(b))

/* A type with typedefs and qualifiers peeled. */
enum kind {
    K_VOID,
    K_INT, /* also char and _Bool */
    K_ENUM,
    K_FLOAT,
    K_PTR,
    K_ARRAY,
    K_STRUCT, /* struct or union */
    K_FUNC,
    K_NODEBUG_DATA,
    K_NODEBUG_TEXT,
    K_INCOMPLETE, /* a forward declaration */
};

struct ty {
    enum kind kind;
    uint32_t ref;  /* the peeled type */
    uint64_t size; /* 0 when it has none */
    bool sgn, boolean, is_union;
    uint32_t target; /* PTR: pointee; ARRAY: element */
    uint32_t nelems;
};

struct ctx {
    const struct ms_print_env *env;
    struct syn syn[SYN_MAX];
    unsigned nsyn;
    struct ms_strbuf *out;
    struct ms_err *err;
    char fmt;
    bool noside;   /* sizeof's operand: no memory is read */
    unsigned nest; /* print_value's recursion (anonymous members add no max-depth) */
    unsigned reads;
    const struct ms_cexpr *ex;
};

/* A value: in memory (lval) at addr, a bitfield there, or a scalar. */
struct val {
    uint32_t type;
    bool lval;
    uint64_t addr;
    unsigned bitpos, bitsize; /* bitfield: bits from bit 0 of addr */
    uint64_t bits;            /* not lval: the scalar, zero-extended */
    const char *nodebug;      /* the symbol's name, for K_NODEBUG_* */
};

static int peel(struct ctx *c, uint32_t ref, struct ty *t);

/* ---- memory ---- */

static int mem_error(struct ctx *c, uint64_t addr)
{
    ms_err_set(c->err, MS_EUNMAPPED, "Cannot access memory at address 0x%llx",
               (unsigned long long)addr);
    ms_err_fault(c->err, addr);
    return MS_EUNMAPPED;
}

/* Reads len bytes or fails with GDB's message; *got (may be NULL) gets the
 * bytes read before the first unreadable one. */
static int rd(struct ctx *c, uint64_t addr, void *buf, size_t len, size_t *got)
{
    size_t done = 0;
    if (got)
        *got = 0;
    if (len == 0)
        return 0;
    if (++c->reads > MS_PRINT_READS_MAX)
        return ms_err_set(c->err, MS_ELIMIT, "print read memory over %u times", MS_PRINT_READS_MAX);
    if (addr + len < addr)
        return mem_error(c, addr);
    struct ms_err scratch = {0};
    int rc = c->env->read(c->env->read_arg, addr, buf, len, &done, &scratch);
    if (done > len)
        done = len;
    if (got)
        *got = done;
    if (rc < 0 || done < len) {
        if (rc == MS_ELIMIT || rc == MS_ENOMEM || rc == MS_EIO || rc == MS_EPROTO) {
            *c->err = scratch;
            return rc;
        }
        return mem_error(c, addr + done);
    }
    return 0;
}

/* ---- types ---- */

static int syn_new(struct ctx *c, enum syn_kind kind, uint32_t target, uint32_t nelems,
                   uint32_t *out)
{
    for (unsigned i = B_COUNT; i < c->nsyn; i++)
        if (c->syn[i].kind == kind && c->syn[i].target == target && c->syn[i].nelems == nelems) {
            *out = T(i);
            return 0;
        }
    if (c->nsyn >= SYN_MAX)
        return ms_err_set(c->err, MS_ELIMIT, "expression makes over %d types", SYN_MAX);
    c->syn[c->nsyn] = (struct syn){kind, target, nelems};
    *out = T(c->nsyn++);
    return 0;
}

static int ptr_to(struct ctx *c, uint32_t target, uint32_t *out)
{
    return syn_new(c, S_PTR, target, 0, out);
}

static int peel(struct ctx *c, uint32_t ref, struct ty *t)
{
    memset(t, 0, sizeof(*t));
    const struct ms_btf *b = c->env->btf;
    if (ref & SYN) {
        uint32_t i = ref & ~SYN;
        if (i >= c->nsyn)
            return ms_err_set(c->err, MS_EINVAL, "bad type reference");
        t->ref = ref;
        if (i < B_VOID) {
            t->kind = K_INT;
            t->size = builtins[i].size;
            t->sgn = builtins[i].sgn;
            t->boolean = i == B_BOOL;
        } else if (i == B_VOID) {
            t->kind = K_VOID;
        } else if (i == B_NODEBUG_DATA) {
            t->kind = K_NODEBUG_DATA;
        } else if (i == B_NODEBUG_TEXT) {
            t->kind = K_NODEBUG_TEXT;
        } else if (c->syn[i].kind == S_ARRAY) {
            struct ty et;
            int rc = peel(c, c->syn[i].target, &et);
            if (rc < 0)
                return rc;
            t->kind = K_ARRAY;
            t->target = c->syn[i].target;
            t->nelems = c->syn[i].nelems;
            t->size = et.size * t->nelems; /* both below 2^32: no overflow */
        } else {
            t->kind = K_PTR;
            t->size = 8;
            t->target = c->syn[i].target;
        }
        return 0;
    }
    uint32_t id;
    int rc = ms_btf_resolve(b, ref, &id, c->err);
    struct ms_btf_type bt;
    if (rc == 0)
        rc = ms_btf_type(b, id, &bt, c->err);
    if (rc == 0 && (bt.kind == MS_BTF_FUNC || bt.kind == MS_BTF_VAR)) {
        id = bt.type;
        rc = ms_btf_type(b, id, &bt, c->err);
    }
    if (rc < 0)
        return rc;
    t->ref = id;
    switch (bt.kind) {
    case MS_BTF_UNKN:
        t->kind = K_VOID;
        return 0;
    case MS_BTF_INT:
        t->kind = K_INT;
        t->size = bt.size;
        t->boolean = bt.int_encoding & MS_BTF_INT_BOOL;
        /* plain char is signed on x86-64, whatever pahole recorded */
        t->sgn = (bt.int_encoding & MS_BTF_INT_SIGNED) || !strcmp(bt.name, "char");
        if (t->size == 0 || t->size > 8)
            return ms_err_set(c->err, MS_EINVAL, "%u-byte integers are not supported", bt.size);
        return 0;
    case MS_BTF_ENUM:
    case MS_BTF_ENUM64: {
        t->kind = K_ENUM;
        t->size = bt.size;
        if (t->size == 0 || t->size > 8)
            return ms_err_set(c->err, MS_EFORMAT, "BTF enum %u has size %u", id, bt.size);
        for (unsigned i = 0; i < bt.vlen; i++) {
            const char *n;
            int64_t v;
            if (ms_btf_enumerator(b, id, i, &n, &v, NULL) == 0 && v < 0)
                t->sgn = true; /* GDB: unsigned unless an enumerator is negative */
        }
        return 0;
    }
    case MS_BTF_FLOAT:
        t->kind = K_FLOAT;
        t->size = bt.size;
        return 0;
    case MS_BTF_PTR:
        t->kind = K_PTR;
        t->size = 8;
        t->target = bt.type;
        return 0;
    case MS_BTF_ARRAY:
        t->kind = K_ARRAY;
        t->target = bt.elem_type;
        t->nelems = bt.nelems;
        if (ms_btf_size(b, id, &t->size, NULL) < 0)
            t->size = 0;
        return 0;
    case MS_BTF_STRUCT:
    case MS_BTF_UNION:
        t->kind = K_STRUCT;
        t->size = bt.size;
        t->is_union = bt.kind == MS_BTF_UNION;
        return 0;
    case MS_BTF_FUNC_PROTO:
        t->kind = K_FUNC;
        return 0;
    case MS_BTF_FWD:
        t->kind = K_INCOMPLETE;
        return 0;
    default:
        return ms_err_set(c->err, MS_EFORMAT, "BTF type %u: not a type a value can have", id);
    }
}

/* The C declaration of ref around inner ("" or "*"), as GDB prints it. */
static int type_text(struct ctx *c, uint32_t ref, const char *inner, char *out, size_t size,
                     int depth)
{
    if (depth > 32)
        return ms_err_set(c->err, MS_ELIMIT, "type nests too deep");
    if (!(ref & SYN)) {
        struct ms_strbuf sb;
        ms_strbuf_init(&sb);
        int rc = ms_ptype_decl(c->env->btf, ref, inner, &sb, c->err);
        if (rc == 0 && sb.failed)
            rc = ms_err_set(c->err, MS_ENOMEM, "out of memory");
        if (rc == 0)
            snprintf(out, size, "%s", ms_strbuf_str(&sb));
        ms_strbuf_free(&sb);
        return rc;
    }
    uint32_t i = ref & ~SYN;
    const char *base = i < B_VOID            ? builtins[i].name
                       : i == B_VOID         ? "void"
                       : i == B_NODEBUG_DATA ? "<data variable, no debug info>"
                       : i == B_NODEBUG_TEXT ? "<text variable, no debug info>"
                                             : NULL;
    if (base) {
        snprintf(out, size, "%s%s%s", base, inner[0] ? " " : "", inner);
        return 0;
    }
    char wrapped[1024];
    if (c->syn[i].kind == S_ARRAY) {
        snprintf(wrapped, sizeof(wrapped), "%s[%u]", inner, c->syn[i].nelems);
        return type_text(c, c->syn[i].target, wrapped, out, size, depth + 1);
    }
    struct ty to;
    int rc = peel(c, c->syn[i].target, &to);
    if (rc < 0)
        return rc;
    bool paren = to.kind == K_ARRAY || to.kind == K_FUNC;
    /* GDB looks at the pointee as declared: a typedef of an array reads "t *" */
    if (!(c->syn[i].target & SYN)) {
        struct ms_btf_type bt;
        if (ms_btf_type(c->env->btf, c->syn[i].target, &bt, NULL) == 0 && bt.kind == MS_BTF_TYPEDEF)
            paren = false;
    }
    snprintf(wrapped, sizeof(wrapped), paren ? "(*%s)" : "*%s", inner);
    return type_text(c, c->syn[i].target, wrapped, out, size, depth + 1);
}

static int type_name(struct ctx *c, uint32_t ref, char *out, size_t size)
{
    return type_text(c, ref, "", out, size, 0);
}

static bool is_integral(const struct ty *t)
{
    return t->kind == K_INT || t->kind == K_ENUM;
}

static uint64_t mask_of(uint64_t size)
{
    return size >= 8 ? UINT64_MAX : ((uint64_t)1 << (size * 8)) - 1;
}

/* The scalar's bits as a signed or unsigned 64-bit number. */
static uint64_t extend(uint64_t bits, uint64_t size, bool sgn)
{
    bits &= mask_of(size);
    if (sgn && size < 8 && (bits >> (size * 8 - 1)) & 1)
        bits |= ~mask_of(size);
    return bits;
}

static uint64_t le_load(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n && i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void le_store(uint8_t *p, size_t n, uint64_t v)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* A bitfield's value, sign-extended from its width when its type is signed. */
static uint64_t bitfield(const uint8_t *p, size_t avail, unsigned bitpos, unsigned bitsize,
                         bool sgn)
{
    uint64_t v = 0;
    if (bitsize > 64)
        bitsize = 64; /* callers refuse wider ones first */
    for (unsigned i = 0; i < bitsize; i++) {
        unsigned bit = bitpos + i;
        if (bit / 8 < avail && (p[bit / 8] >> (bit % 8)) & 1)
            v |= (uint64_t)1 << i;
    }
    if (sgn && bitsize && bitsize < 64 && (v >> (bitsize - 1)) & 1)
        v |= ~(((uint64_t)1 << bitsize) - 1);
    return v;
}

/* A scalar value's bits (integers, enums, pointers). */
static int fetch(struct ctx *c, const struct val *v, const struct ty *t, uint64_t *out)
{
    if (!v->lval) {
        *out = v->bits;
        return 0;
    }
    if (c->noside) {
        *out = 0;
        return 0;
    }
    uint8_t buf[16] = {0};
    if (v->bitsize) {
        if (v->bitsize > 64 || v->bitpos > 7)
            return ms_err_set(c->err, MS_EFORMAT, "a %u-bit bitfield", v->bitsize);
        size_t n = (v->bitpos + v->bitsize + 7) / 8;
        int rc = rd(c, v->addr, buf, n, NULL);
        if (rc < 0)
            return rc;
        *out = bitfield(buf, n, v->bitpos, v->bitsize, t->sgn) & mask_of(t->size);
        return 0;
    }
    if (t->size == 0 || t->size > 8)
        return ms_err_set(c->err, MS_EINVAL, "not a scalar");
    int rc = rd(c, v->addr, buf, t->size, NULL);
    if (rc < 0)
        return rc;
    *out = le_load(buf, t->size);
    return 0;
}

static struct val scalar(uint32_t type, uint64_t bits)
{
    struct val v = {0};
    v.type = type;
    v.bits = bits;
    return v;
}

static int nodebug_error(struct ctx *c, const struct val *v)
{
    return ms_err_set(c->err, MS_EINVAL, "'%s' has unknown type; cast it to its declared type",
                      v->nodebug ? v->nodebug : "?");
}

/* ---- names ---- */

static bool is_typedef(void *arg, const char *name)
{
    const struct ms_btf *b = arg;
    return ms_btf_find(b, MS_BTF_TYPEDEF, name) != 0;
}

static int lookup_type(struct ctx *c, const struct ms_cexpr_type *ct, uint32_t *out)
{
    uint32_t ref = 0;
    for (unsigned i = 0; i <= B_VOID; i++)
        if (!strcmp(ct->base, i == B_VOID ? "void" : builtins[i].name))
            ref = T(i);
    const struct ms_btf *b = c->env->btf;
    if (!ref) {
        const char *sp = strchr(ct->base, ' ');
        if (!strncmp(ct->base, "struct ", 7))
            ref = ms_btf_find(b, MS_BTF_STRUCT, ct->base + 7);
        else if (!strncmp(ct->base, "union ", 6))
            ref = ms_btf_find(b, MS_BTF_UNION, ct->base + 6);
        else if (!strncmp(ct->base, "enum ", 5)) {
            ref = ms_btf_find(b, MS_BTF_ENUM, ct->base + 5);
            if (!ref)
                ref = ms_btf_find(b, MS_BTF_ENUM64, ct->base + 5);
        } else {
            ref = ms_btf_find(b, MS_BTF_TYPEDEF, ct->base);
        }
        if (!ref && !strncmp(ct->base, "struct ", 7))
            ref = ms_btf_find(b, MS_BTF_FWD, ct->base + 7);
        if (!ref && sp &&
            (!strncmp(ct->base, "struct ", 7) || !strncmp(ct->base, "union ", 6) ||
             !strncmp(ct->base, "enum ", 5)))
            return ms_err_set(c->err, MS_ENOTFOUND, "No %.*s type named %s.", (int)(sp - ct->base),
                              ct->base, sp + 1);
        if (!ref)
            return ms_err_set(c->err, MS_ENOTFOUND, "No symbol \"%s\" in current context.",
                              ct->base);
    }
    for (unsigned i = 0; i < ct->stars; i++) {
        int rc = ptr_to(c, ref, &ref);
        if (rc < 0)
            return rc;
    }
    *out = ref;
    return 0;
}

/* Kernel globals pahole leaves out of vmlinux BTF (it writes per-CPU
 * variables only), with the types the kernel declares them with. */
static const struct {
    const char *name, *type;
    unsigned stars;
} known_globals[] = {
    {"init_task", "struct task_struct", 0},
    {"init_uts_ns", "struct uts_namespace", 0},
    {"init_mm", "struct mm_struct", 0},
    {"init_pid_ns", "struct pid_namespace", 0},
    {"init_nsproxy", "struct nsproxy", 0},
    {"init_user_ns", "struct user_namespace", 0},
    {"init_net", "struct net", 0},
    {"init_cred", "struct cred", 0},
    {"init_fs", "struct fs_struct", 0},
    {"init_files", "struct files_struct", 0},
    {"init_sighand", "struct sighand_struct", 0},
    {"init_signals", "struct signal_struct", 0},
    {"init_struct_pid", "struct pid", 0},
    {"jiffies", "unsigned long", 0},
    {"jiffies_64", "u64", 0},
    {"modules", "struct list_head", 0},
    {"super_blocks", "struct list_head", 0},
    {"prb", "struct printk_ringbuffer", 1},
    {"printk_rb_static", "struct printk_ringbuffer", 0},
    {"printk_rb_dynamic", "struct printk_ringbuffer", 0},
    {"saved_command_line", "char", 1},
    {"nr_threads", "int", 0},
    {"max_threads", "int", 0},
    {"total_forks", "unsigned long", 0},
    {"panic_cpu", "atomic_t", 0},
    {"oops_in_progress", "int", 0},
    {"system_state", "enum system_states", 0},
    {"page_offset_base", "unsigned long", 0},
    {"vmalloc_base", "unsigned long", 0},
    {"vmemmap_base", "unsigned long", 0},
    {"phys_base", "unsigned long", 0},
    {"max_pfn", "unsigned long", 0},
    {"totalram_pages", "atomic_long_t", 0},
    {"_totalram_pages", "atomic_long_t", 0},
    {"tasklist_lock", "rwlock_t", 0},
    {"__cpu_online_mask", "struct cpumask", 0},
    {"__cpu_possible_mask", "struct cpumask", 0},
    {"nr_cpu_ids", "unsigned int", 0},
    {"kptr_restrict", "int", 0},
    {"sysctl_panic_on_oops", "int", 0},
    {"panic_timeout", "int", 0},
    {"console_drivers", "struct console", 1},
    {"root_mountflags", "int", 0},
    {"system_wq", "struct workqueue_struct", 1},
    {"mmlist_lock", "spinlock_t", 0},
    {"init_ipc_ns", "struct ipc_namespace", 0},
    {"init_cgroup_ns", "struct cgroup_namespace", 0},
    {"init_time_ns", "struct time_namespace", 0},
    {"pid_max", "int", 0},
    {"vm_committed_as", "struct percpu_counter", 0},
    {"fixed_percpu_data", "struct fixed_percpu_data", 0}, /* per-CPU, outside BTF's DATASEC */
};

/* The type of a global: its BTF VAR, else a well-known global's; 0: none. */
static uint32_t global_type(struct ctx *c, const char *name)
{
    const struct ms_btf *b = c->env->btf;
    uint32_t var = ms_btf_find(b, MS_BTF_VAR, name);
    struct ms_btf_type t;
    if (var && ms_btf_type(b, var, &t, NULL) == 0)
        return t.type;
    for (size_t i = 0; i < sizeof(known_globals) / sizeof(known_globals[0]); i++) {
        if (strcmp(known_globals[i].name, name))
            continue;
        struct ms_cexpr_type ct = {.stars = known_globals[i].stars};
        snprintf(ct.base, sizeof(ct.base), "%s", known_globals[i].type);
        uint32_t r;
        struct ms_err *keep = c->err; /* a type this BTF lacks: no type, no error */
        c->err = NULL;
        int rc = lookup_type(c, &ct, &r);
        c->err = keep;
        return rc == 0 ? r : 0;
    }
    return 0;
}

static void ctx_init(struct ctx *c, const struct ms_print_env *env)
{
    c->env = env;
    c->nsyn = B_COUNT;
    for (unsigned i = 0; i < B_COUNT; i++)
        c->syn[i].kind = i < B_VOID ? S_INT : S_VOID;
}

int ms_print_symbol_size(const struct ms_btf *btf, const char *name, uint64_t *size)
{
    struct ms_print_env env = {.btf = btf};
    struct ctx *c = calloc(1, sizeof(*c));
    if (!c)
        return MS_ENOMEM;
    ctx_init(c, &env);
    uint32_t type = global_type(c, name);
    struct ty t;
    int rc = type && peel(c, type, &t) == 0 && t.size ? 0 : MS_ENOTFOUND;
    struct ms_btf_type bt;
    if (rc == 0 && t.kind == K_STRUCT && ms_btf_type(btf, t.ref, &bt, NULL) == 0 && bt.vlen) {
        /* a flexible array at the end: the object may be larger (init_struct_pid) */
        struct ms_btf_member m;
        struct ty mt;
        if (ms_btf_member(btf, t.ref, bt.vlen - 1U, &m, NULL) < 0 || peel(c, m.type, &mt) < 0 ||
            (mt.kind == K_ARRAY && mt.nelems == 0))
            rc = MS_ENOTFOUND;
    }
    if (rc == 0)
        *size = t.size;
    free(c);
    return rc;
}

/* An enumerator of that name anywhere in the BTF: 1 found. */
static int find_enumerator(struct ctx *c, const char *name, uint32_t *type, int64_t *value)
{
    const struct ms_btf *b = c->env->btf;
    unsigned looked = 0;
    for (uint32_t id = 1; id < ms_btf_count(b); id++) {
        struct ms_btf_type t;
        if (ms_btf_type(b, id, &t, NULL) < 0 || (t.kind != MS_BTF_ENUM && t.kind != MS_BTF_ENUM64))
            continue;
        for (unsigned i = 0; i < t.vlen; i++) {
            if (++looked > ENUM_SCAN_MAX)
                return 0;
            const char *n;
            if (ms_btf_enumerator(b, id, i, &n, value, NULL) == 0 && !strcmp(n, name)) {
                *type = id;
                return 1;
            }
        }
    }
    return 0;
}

static int eval_symbol(struct ctx *c, const char *name, struct val *v)
{
    const struct ms_btf *b = c->env->btf;
    memset(v, 0, sizeof(*v));
    uint64_t addr = 0;
    bool text = false;
    int src = c->env->symbol ? c->env->symbol(c->env->sym_arg, name, &addr, &text) : MS_ENOTFOUND;
    if (src < 0 && src != MS_ENOTFOUND)
        return ms_err_set(c->err, src, "looking up %s failed", name);
    bool found = src == 0;
    uint32_t type = 0;
    if (found) {
        type = global_type(c, name);
        if (!type)
            type = ms_btf_find(b, MS_BTF_FUNC, name);
        if (!type)
            type = T(text ? B_NODEBUG_TEXT : B_NODEBUG_DATA);
        v->type = type;
        v->lval = true;
        v->addr = addr;
        v->nodebug = name;
        return 0;
    }
    int64_t value;
    if (find_enumerator(c, name, &type, &value) == 1) {
        struct ty t;
        int rc = peel(c, type, &t);
        if (rc < 0)
            return rc;
        *v = scalar(type, (uint64_t)value & mask_of(t.size));
        return 0;
    }
    return ms_err_set(c->err, MS_ENOTFOUND, "No symbol \"%s\" in current context.", name);
}

/* ---- evaluation ---- */

static int eval(struct ctx *c, int node, struct val *v, int depth);

/* Arrays and functions used as values become pointers. */
static int decay(struct ctx *c, struct val *v, struct ty *t)
{
    if (t->kind == K_ARRAY || t->kind == K_FUNC) {
        if (!v->lval)
            return ms_err_set(c->err, MS_EINVAL,
                              "Attempt to take address of value not located "
                              "in memory.");
        uint32_t p;
        int rc = ptr_to(c, t->kind == K_ARRAY ? t->target : v->type, &p);
        if (rc < 0)
            return rc;
        *v = scalar(p, v->addr);
        return peel(c, p, t);
    }
    if (t->kind == K_NODEBUG_DATA)
        return nodebug_error(c, v);
    if (t->kind == K_NODEBUG_TEXT) { /* a function without a type: its address */
        *v = scalar(T(B_LONG), v->addr);
        return peel(c, v->type, t);
    }
    return 0;
}

/* An evaluated operand of arithmetic: its peeled type and its value as 64
 * bits; a struct is GDB's error for a missing C++ operator. */
static int operand_value(struct ctx *c, struct val *v, struct ty *t, uint64_t *x, const char *op)
{
    int rc = peel(c, v->type, t);
    if (rc == 0 && t->kind == K_STRUCT && op)
        return ms_err_set(c->err, MS_EINVAL, "Structure has no component named operator%s.", op);
    if (rc == 0)
        rc = decay(c, v, t);
    if (rc == 0 && (is_integral(t) || t->kind == K_PTR)) {
        rc = fetch(c, v, t, x);
        if (rc == 0 && is_integral(t))
            *x = extend(*x, t->size, t->sgn);
        return rc;
    }
    if (rc == 0)
        rc = ms_err_set(c->err, MS_EINVAL,
                        "Argument to arithmetic operation not a number or "
                        "boolean.");
    return rc;
}

static int operand_op(struct ctx *c, int node, struct val *v, struct ty *t, uint64_t *x, int depth,
                      const char *op)
{
    int rc = eval(c, node, v, depth);
    return rc < 0 ? rc : operand_value(c, v, t, x, op);
}

static int operand(struct ctx *c, int node, struct val *v, struct ty *t, uint64_t *x, int depth)
{
    return operand_op(c, node, v, t, x, depth, NULL);
}

/* C's integer promotions as GDB's binop_promote does them. */
static uint32_t promote(const struct ty *a, const struct ty *b)
{
    uint64_t la = a->size, lb = b ? b->size : 0;
    bool ua = !a->sgn, ub = b ? !b->sgn : false;
    if (la < 4)
        la = 4, ua = false;
    if (b && lb < 4)
        lb = 4, ub = false;
    bool u;
    uint64_t len;
    if (!b || la > lb)
        u = ua, len = la;
    else if (lb > la)
        u = ub, len = lb;
    else
        u = ua || ub, len = la;
    if (len <= 4)
        return T(u ? B_UINT : B_INT);
    return T(u ? B_ULONG : B_LONG);
}

static int elem_size(struct ctx *c, uint32_t target, uint64_t *size)
{
    struct ty t;
    int rc = peel(c, target, &t);
    if (rc < 0)
        return rc;
    *size = t.kind == K_VOID || t.kind == K_FUNC ? 1 : t.size;
    if (*size == 0 && t.kind != K_ARRAY)
        return ms_err_set(c->err, MS_EINVAL,
                          "Cannot perform pointer math on incomplete type, "
                          "try casting to a known type, or void *.");
    return 0;
}

static const char *const binop_text[] = {
    [MS_CX_MUL] = "*",   [MS_CX_DIV] = "/",  [MS_CX_MOD] = "%",  [MS_CX_ADD] = "+",
    [MS_CX_SUB] = "-",   [MS_CX_SHL] = "<<", [MS_CX_SHR] = ">>", [MS_CX_LT] = "<",
    [MS_CX_GT] = ">",    [MS_CX_LE] = "<=",  [MS_CX_GE] = ">=",  [MS_CX_EQ] = "==",
    [MS_CX_NE] = "!=",   [MS_CX_AND] = "&",  [MS_CX_XOR] = "^",  [MS_CX_OR] = "|",
    [MS_CX_LAND] = "&&", [MS_CX_LOR] = "||", [MS_CX_AT] = "@",
};

/* GDB's x@n: n objects of x's type from x's address on. */
static int artificial_array(struct ctx *c, const struct ms_cexpr_node *n, struct val *v, int depth)
{
    int rc = eval(c, n->kid[0], v, depth);
    struct val b;
    struct ty t, tb;
    uint64_t count;
    if (rc == 0)
        rc = peel(c, v->type, &t);
    if (rc == 0)
        rc = operand(c, n->kid[1], &b, &tb, &count, depth);
    if (rc < 0)
        return rc;
    if (tb.kind != K_INT && tb.kind != K_ENUM)
        return ms_err_set(c->err, MS_EINVAL,
                          "Argument to arithmetic operation not a number or "
                          "boolean.");
    if (t.kind == K_NODEBUG_DATA || t.kind == K_NODEBUG_TEXT)
        return nodebug_error(c, v);
    if (!v->lval || v->bitsize)
        return ms_err_set(c->err, MS_EINVAL, "Only values in memory can be extended with '@'.");
    if ((int64_t)count <= 0 || (int64_t)count > INT32_MAX)
        return ms_err_set(c->err, MS_EINVAL, "Invalid number %d of repetitions.", (int)count);
    if (count > MS_PRINT_VALUE_MAX || t.size == 0)
        return ms_err_set(c->err, MS_ELIMIT,
                          "value requires %llu bytes, which is more than "
                          "max-value-size",
                          (unsigned long long)(count * (t.size ? t.size : 1)));
    uint32_t arr;
    rc = syn_new(c, S_ARRAY, v->type, (uint32_t)count, &arr);
    if (rc < 0)
        return rc;
    v->type = arr;
    return 0;
}

static int binary(struct ctx *c, const struct ms_cexpr_node *n, struct val *v, int depth)
{
    struct val a, b;
    struct ty ta, tb;
    uint64_t x, y;
    if (n->binop == MS_CX_AT)
        return artificial_array(c, n, v, depth);
    const char *optext = binop_text[n->binop];
    int rc = operand_op(c, n->kid[0], &a, &ta, &x, depth, optext);
    if (rc < 0)
        return rc;
    if (n->binop == MS_CX_LAND || n->binop == MS_CX_LOR) {
        bool l = x != 0;
        if ((n->binop == MS_CX_LAND && !l) || (n->binop == MS_CX_LOR && l)) {
            *v = scalar(T(B_INT), l);
            return 0;
        }
        rc = operand_op(c, n->kid[1], &b, &tb, &y, depth, optext);
        if (rc < 0)
            return rc;
        *v = scalar(T(B_INT), y != 0);
        return 0;
    }
    rc = operand_op(c, n->kid[1], &b, &tb, &y, depth, optext);
    if (rc < 0)
        return rc;
    bool pa = ta.kind == K_PTR, pb = tb.kind == K_PTR;
    enum ms_cexpr_binop op = n->binop;
    if (pa || pb) {
        if (op == MS_CX_ADD && pa != pb) {
            const struct ty *pt = pa ? &ta : &tb;
            uint64_t size, i = pa ? y : x;
            rc = elem_size(c, pt->target, &size);
            if (rc < 0)
                return rc;
            *v = scalar(pa ? a.type : b.type, (pa ? x : y) + i * size);
            return 0;
        }
        if (op == MS_CX_SUB && pa && !pb) {
            uint64_t size;
            rc = elem_size(c, ta.target, &size);
            if (rc < 0)
                return rc;
            *v = scalar(a.type, x - y * size);
            return 0;
        }
        if (op == MS_CX_SUB && pa && pb) {
            uint64_t sa, sb;
            rc = elem_size(c, ta.target, &sa);
            if (rc == 0)
                rc = elem_size(c, tb.target, &sb);
            if (rc < 0)
                return rc;
            if (sa != sb)
                return ms_err_set(c->err, MS_EINVAL,
                                  "First argument of `-' is a pointer and second argument is "
                                  "neither\nan integer nor a pointer of the same type.");
            *v = scalar(T(B_LONG), (uint64_t)((int64_t)(x - y) / (int64_t)(sa ? sa : 1)));
            return 0;
        }
        bool cmp = op >= MS_CX_LT && op <= MS_CX_NE;
        if (!cmp)
            return ms_err_set(c->err, MS_EINVAL,
                              "Argument to arithmetic operation not a number or boolean.");
        ta.sgn = tb.sgn = false; /* addresses compare unsigned */
        ta.size = tb.size = 8;
    }
    uint32_t rt = promote(&ta, &tb);
    if (op == MS_CX_SHL || op == MS_CX_SHR)
        rt = promote(&ta, NULL); /* the left operand's type (GDB 13, as C) */
    struct ty tr;
    rc = peel(c, rt, &tr);
    if (rc < 0)
        return rc;
    bool u = !tr.sgn;
    uint64_t m = mask_of(tr.size);
    x = extend(x & m, tr.size, tr.sgn);
    y = extend(y & m, tr.size, tr.sgn);
    if (op == MS_CX_SHL || op == MS_CX_SHR)
        y = extend(y, tb.size, tb.sgn);
    uint64_t r = 0;
    int64_t sx = (int64_t)x, sy = (int64_t)y;
    switch (op) {
    case MS_CX_MUL:
        r = x * y;
        break;
    case MS_CX_DIV:
    case MS_CX_MOD:
        if (y == 0)
            return ms_err_set(c->err, MS_EINVAL, "Division by zero");
        if (u)
            r = op == MS_CX_DIV ? x / y : x % y;
        else if (sy == -1)
            r = op == MS_CX_DIV ? (uint64_t)0 - x : 0;
        else
            r = (uint64_t)(op == MS_CX_DIV ? sx / sy : sx % sy);
        break;
    case MS_CX_ADD:
        r = x + y;
        break;
    case MS_CX_SUB:
        r = x - y;
        break;
    case MS_CX_SHL:
    case MS_CX_SHR:
        /* GDB warns and gives 0 for a count outside the type */
        if ((int64_t)y < 0 || y >= tr.size * 8)
            r = 0;
        else if (op == MS_CX_SHL)
            r = x << y;
        else
            r = u ? (x & m) >> y : (uint64_t)(sx >> y);
        break;
    case MS_CX_AND:
        r = x & y;
        break;
    case MS_CX_OR:
        r = x | y;
        break;
    case MS_CX_XOR:
        r = x ^ y;
        break;
    case MS_CX_LT:
        r = u ? x < y : sx < sy;
        rt = T(B_INT);
        break;
    case MS_CX_GT:
        r = u ? x > y : sx > sy;
        rt = T(B_INT);
        break;
    case MS_CX_LE:
        r = u ? x <= y : sx <= sy;
        rt = T(B_INT);
        break;
    case MS_CX_GE:
        r = u ? x >= y : sx >= sy;
        rt = T(B_INT);
        break;
    case MS_CX_EQ:
        r = (x & m) == (y & m);
        rt = T(B_INT);
        break;
    case MS_CX_NE:
        r = (x & m) != (y & m);
        rt = T(B_INT);
        break;
    default:
        return ms_err_set(c->err, MS_EINVAL, "unknown operator");
    }
    *v = scalar(rt, r & (rt == T(B_INT) ? mask_of(4) : m));
    return 0;
}

/* The member name of a struct value (through pointers, as GDB allows). */
static int member(struct ctx *c, const struct ms_cexpr_node *n, struct val *v, int depth)
{
    int rc = eval(c, n->kid[0], v, depth);
    struct ty t;
    if (rc == 0)
        rc = peel(c, v->type, &t);
    for (int hops = 0; rc == 0 && t.kind == K_PTR && hops < 8; hops++) {
        uint64_t p;
        rc = fetch(c, v, &t, &p);
        if (rc < 0)
            return rc;
        struct val d = {0};
        d.type = t.target;
        d.lval = true;
        d.addr = p;
        *v = d;
        rc = peel(c, v->type, &t);
    }
    if (rc < 0)
        return rc;
    if (t.kind == K_NODEBUG_DATA || t.kind == K_NODEBUG_TEXT)
        return nodebug_error(c, v);
    if (t.kind != K_STRUCT)
        return ms_err_set(c->err, MS_EINVAL,
                          "Attempt to extract a component of a value that is not a structure%s.",
                          n->op == MS_CX_ARROW ? " pointer" : "");
    if (!v->lval)
        return ms_err_set(c->err, MS_EINVAL, "a struct value not in memory");
    struct ms_btf_member m;
    struct ms_err scratch;
    rc = ms_btf_member_find(c->env->btf, t.ref, n->name, &m, &scratch);
    if (rc == MS_ENOTFOUND)
        return ms_err_set(c->err, MS_ENOTFOUND, "There is no member named %s.", n->name);
    if (rc < 0) {
        if (c->err)
            *c->err = scratch;
        return rc;
    }
    struct val r = {0};
    r.type = m.type;
    r.lval = true;
    r.addr = v->addr + m.bit_offset / 8;
    if (m.bitfield_size) {
        r.bitpos = (unsigned)(m.bit_offset % 8);
        r.bitsize = m.bitfield_size;
    }
    *v = r;
    return 0;
}

static int deref(struct ctx *c, struct val *v)
{
    struct ty t;
    int rc = peel(c, v->type, &t);
    if (rc < 0)
        return rc;
    if (t.kind == K_ARRAY) {
        if (!v->lval)
            return ms_err_set(c->err, MS_EINVAL, "an array not in memory");
        v->type = t.target;
        return 0;
    }
    if (t.kind == K_FUNC || t.kind == K_NODEBUG_TEXT)
        return 0; /* *func is func */
    if (t.kind == K_NODEBUG_DATA)
        return nodebug_error(c, v);
    uint64_t p;
    if (t.kind == K_INT || t.kind == K_ENUM) { /* GDB: *INT reads an int there */
        rc = fetch(c, v, &t, &p);
        if (rc < 0)
            return rc;
        struct val d = {0};
        d.type = T(B_INT);
        d.lval = true;
        d.addr = extend(p, t.size, t.sgn);
        *v = d;
        return 0;
    }
    if (t.kind != K_PTR)
        return ms_err_set(c->err, MS_EINVAL, "Attempt to take contents of a non-pointer value.");
    struct ty to;
    rc = peel(c, t.target, &to);
    if (rc < 0)
        return rc;
    if (to.kind == K_VOID)
        return ms_err_set(c->err, MS_EINVAL, "Attempt to take contents of a non-pointer value.");
    rc = fetch(c, v, &t, &p);
    if (rc < 0)
        return rc;
    struct val d = {0};
    d.type = t.target;
    d.lval = true;
    d.addr = p;
    *v = d;
    return 0;
}

static int cast(struct ctx *c, uint32_t to, struct val *v)
{
    struct ty tt, tf;
    int rc = peel(c, to, &tt);
    if (rc == 0)
        rc = peel(c, v->type, &tf);
    if (rc < 0)
        return rc;
    if (tf.kind == K_NODEBUG_DATA || tf.kind == K_NODEBUG_TEXT) {
        /* GDB: a symbol with no type takes the one it is cast to */
        v->type = to;
        v->nodebug = NULL;
        return 0;
    }
    if (tt.kind == K_VOID) {
        *v = scalar(to, 0);
        return 0;
    }
    if (tt.kind == K_STRUCT || tt.kind == K_ARRAY) {
        if (tf.ref == tt.ref && v->lval) {
            v->type = to;
            return 0;
        }
        return ms_err_set(c->err, MS_EINVAL, "Invalid cast.");
    }
    if (!is_integral(&tt) && tt.kind != K_PTR)
        return ms_err_set(c->err, MS_EINVAL, "Invalid cast.");
    rc = decay(c, v, &tf);
    if (rc < 0)
        return rc;
    if (!is_integral(&tf) && tf.kind != K_PTR)
        return ms_err_set(c->err, MS_EINVAL, "Invalid cast.");
    uint64_t x;
    rc = fetch(c, v, &tf, &x);
    if (rc < 0)
        return rc;
    x = extend(x, tf.size, tf.sgn);
    if (tt.boolean)
        x = x != 0;
    *v = scalar(to, x & mask_of(tt.size));
    return 0;
}

static int eval(struct ctx *c, int node, struct val *v, int depth)
{
    if (node < 0 || (unsigned)node >= c->ex->count || depth > 2 * MS_CEXPR_MAX_DEPTH)
        return ms_err_set(c->err, MS_EINVAL, "malformed expression");
    const struct ms_cexpr_node *n = &c->ex->nodes[node];
    int rc;
    struct ty t;
    uint64_t x;
    switch (n->op) {
    case MS_CX_NUM: {
        /* C's (and GDB 13's) type of an integer constant */
        bool dec = n->num_decimal, u = n->num_unsigned;
        uint64_t k = n->num;
        uint32_t type;
        if (n->num_long == 0 && !u && k <= 0x7fffffff)
            type = T(B_INT);
        else if (n->num_long == 0 && (u || !dec) && k <= 0xffffffff)
            type = T(B_UINT);
        else if (n->num_long <= 1 && !u && k <= INT64_MAX)
            type = T(B_LONG);
        else if (n->num_long <= 1)
            type = T(B_ULONG);
        else
            type = T(u || k > INT64_MAX ? B_ULLONG : B_LLONG);
        *v = scalar(type, k);
        return 0;
    }
    case MS_CX_CHAR:
        *v = scalar(T(B_CHAR), n->num & 0xff);
        return 0;
    case MS_CX_SYM:
        return eval_symbol(c, n->name, v);
    case MS_CX_MEMBER:
    case MS_CX_ARROW:
        return member(c, n, v, depth + 1);
    case MS_CX_INDEX: {
        struct val i;
        struct ty ti;
        uint64_t k;
        rc = eval(c, n->kid[0], v, depth + 1);
        if (rc == 0)
            rc = peel(c, v->type, &t);
        if (rc == 0)
            rc = operand(c, n->kid[1], &i, &ti, &k, depth + 1);
        if (rc < 0)
            return rc;
        if (ti.kind != K_INT && ti.kind != K_ENUM)
            return ms_err_set(c->err, MS_EINVAL,
                              "Argument to arithmetic operation not a number "
                              "or boolean.");
        if (t.kind == K_ARRAY && v->lval) {
            uint64_t size;
            rc = elem_size(c, t.target, &size);
            if (rc < 0)
                return rc;
            struct val e = {0};
            e.type = t.target;
            e.lval = true;
            e.addr = v->addr + k * size;
            *v = e;
            return 0;
        }
        if (t.kind == K_PTR) {
            uint64_t size, p;
            rc = elem_size(c, t.target, &size);
            if (rc == 0)
                rc = fetch(c, v, &t, &p);
            if (rc < 0)
                return rc;
            struct val e = {0};
            e.type = t.target;
            e.lval = true;
            e.addr = p + k * size;
            *v = e;
            return 0;
        }
        if (t.kind == K_NODEBUG_DATA)
            return nodebug_error(c, v);
        char name[512];
        rc = type_name(c, v->type, name, sizeof(name));
        if (rc < 0)
            return rc;
        return ms_err_set(c->err, MS_EINVAL, "cannot subscript something of type `%s'", name);
    }
    case MS_CX_DEREF:
        rc = eval(c, n->kid[0], v, depth + 1);
        return rc < 0 ? rc : deref(c, v);
    case MS_CX_ADDR: {
        rc = eval(c, n->kid[0], v, depth + 1);
        if (rc < 0)
            return rc;
        if (!v->lval || v->bitsize)
            return ms_err_set(c->err, MS_EINVAL,
                              "Attempt to take address of value not located in memory.");
        uint32_t p;
        rc = ptr_to(c, v->type, &p);
        if (rc < 0)
            return rc;
        *v = scalar(p, v->addr);
        return 0;
    }
    case MS_CX_NEG:
    case MS_CX_PLUS:
    case MS_CX_COMPL:
    case MS_CX_NOT: {
        rc = operand(c, n->kid[0], v, &t, &x, depth + 1);
        if (rc < 0)
            return rc;
        if (n->op == MS_CX_NOT) {
            *v = scalar(T(B_INT), x == 0);
            return 0;
        }
        if (t.kind == K_PTR)
            return ms_err_set(c->err, MS_EINVAL,
                              "Argument to arithmetic operation not a number or boolean.");
        uint32_t rt = promote(&t, NULL);
        struct ty tr;
        rc = peel(c, rt, &tr);
        if (rc < 0)
            return rc;
        uint64_t r = n->op == MS_CX_NEG ? (uint64_t)0 - x : n->op == MS_CX_COMPL ? ~x : x;
        *v = scalar(rt, r & mask_of(tr.size));
        return 0;
    }
    case MS_CX_CAST: {
        uint32_t to;
        rc = lookup_type(c, &n->type, &to);
        if (rc == 0)
            rc = eval(c, n->kid[0], v, depth + 1);
        return rc < 0 ? rc : cast(c, to, v);
    }
    case MS_CX_BRACE: {
        uint32_t to;
        struct val a;
        rc = lookup_type(c, &n->type, &to);
        if (rc == 0)
            rc = operand(c, n->kid[0], &a, &t, &x, depth + 1);
        if (rc < 0)
            return rc;
        memset(v, 0, sizeof(*v));
        v->type = to;
        v->lval = true;
        v->addr = x;
        return 0;
    }
    case MS_CX_SIZEOF_TYPE:
    case MS_CX_SIZEOF_EXPR: {
        uint32_t ty = 0;
        if (n->op == MS_CX_SIZEOF_TYPE) {
            rc = lookup_type(c, &n->type, &ty);
        } else {
            bool was = c->noside;
            c->noside = true;
            rc = eval(c, n->kid[0], v, depth + 1);
            c->noside = was;
            ty = v->type;
        }
        if (rc == 0)
            rc = peel(c, ty, &t);
        if (rc < 0)
            return rc;
        if (t.kind == K_NODEBUG_DATA || t.kind == K_NODEBUG_TEXT)
            return nodebug_error(c, v);
        uint64_t size = t.size;
        if (t.kind == K_VOID || t.kind == K_FUNC)
            size = 1;
        else if (t.kind == K_INCOMPLETE)
            return ms_err_set(c->err, MS_EINVAL, "Attempt to use a type name as an expression");
        *v = scalar(T(B_INT), size & mask_of(4));
        return 0;
    }
    case MS_CX_BINARY:
        return binary(c, n, v, depth + 1);
    case MS_CX_COND: {
        struct val cv;
        rc = operand(c, n->kid[0], &cv, &t, &x, depth + 1);
        if (rc < 0)
            return rc;
        return eval(c, n->kid[x ? 1 : 2], v, depth + 1);
    }
    }
    return ms_err_set(c->err, MS_EINVAL, "malformed expression");
}

/* ---- printing ---- */

static int out_check(struct ctx *c)
{
    if (c->out->failed)
        return ms_err_set(c->err, MS_ENOMEM, "out of memory printing the value");
    if (c->out->len > MS_PRINT_OUTPUT_MAX)
        return ms_err_set(c->err, MS_ELIMIT, "print output over %u bytes", MS_PRINT_OUTPUT_MAX);
    return 0;
}

/* One character as GDB's print_wchar writes it inside quotes. */
static void put_char(struct ctx *c, uint8_t ch, char quote)
{
    static const char esc[] = {'\a', 'a',  '\b', 'b',  '\f', 'f',  '\n',
                               'n',  '\r', 'r',  '\t', 't',  '\v', 'v'};
    for (size_t i = 0; i < sizeof(esc); i += 2)
        if (ch == (uint8_t)esc[i]) {
            ms_strbuf_printf(c->out, "\\%c", esc[i + 1]);
            return;
        }
    if (ch >= 0x20 && ch < 0x7f) {
        if (ch == (uint8_t)quote || ch == '\\')
            ms_strbuf_putc(c->out, '\\');
        ms_strbuf_putc(c->out, (char)ch);
        return;
    }
    ms_strbuf_printf(c->out, "\\%03o", ch);
}

/* GDB's generic_printstr: len bytes (a trailing NUL dropped), runs of more
 * than `repeats` equal bytes as 'c' <repeats N times>, at most 200 bytes
 * (the run that crosses it printed whole), "..." when cut. */
static void put_string(struct ctx *c, const uint8_t *s, size_t len, bool force_ellipses)
{
    if (!force_ellipses && len > 0 && s[len - 1] == 0)
        len--;
    if (len == 0) {
        ms_strbuf_printf(c->out, "\"\"");
        return;
    }
    size_t i = 0, printed = 0;
    bool in_quote = false, first = true;
    while (i < len && printed < PRINT_ELEMENTS) {
        size_t run = 1;
        while (i + run < len && s[i + run] == s[i])
            run++;
        if (run > REPEATS) {
            if (in_quote)
                ms_strbuf_putc(c->out, '"');
            in_quote = false;
            if (!first)
                ms_strbuf_printf(c->out, ", ");
            ms_strbuf_putc(c->out, '\'');
            put_char(c, s[i], '"');
            ms_strbuf_printf(c->out, "' <repeats %zu times>", run);
        } else {
            if (!in_quote) {
                if (!first)
                    ms_strbuf_printf(c->out, ", ");
                ms_strbuf_putc(c->out, '"');
            }
            in_quote = true;
            for (size_t k = 0; k < run; k++)
                put_char(c, s[i], '"');
        }
        first = false;
        i += run;
        printed += run;
    }
    if (in_quote)
        ms_strbuf_putc(c->out, '"');
    if (force_ellipses || i < len)
        ms_strbuf_printf(c->out, "...");
}

/* A char *'s string, as GDB's val_print_string with no length. */
static int put_pointed_string(struct ctx *c, uint64_t addr)
{
    uint8_t buf[STRING_FETCH + 1];
    size_t got = 0;
    int rc = 0;
    /* read a byte at a time past a page end: what is readable is printed */
    while (got < STRING_FETCH) {
        size_t want = STRING_FETCH - got;
        uint64_t page_left = 4096 - ((addr + got) & 4095);
        if (want > page_left)
            want = page_left;
        size_t n = 0;
        rc = rd(c, addr + got, buf + got, want, &n);
        size_t nul = 0;
        while (nul < n && buf[got + nul])
            nul++;
        if (nul < n) {
            got += nul + 1;
            rc = 0;
            break;
        }
        got += n;
        if (rc < 0)
            break;
    }
    if (rc == MS_ELIMIT || rc == MS_ENOMEM || rc == MS_EIO || rc == MS_EPROTO)
        return rc;
    bool found_nul = got > 0 && buf[got - 1] == 0;
    bool force = false;
    if (rc == 0 && !found_nul) {
        uint8_t peek;
        struct ms_err keep = c->err ? *c->err : (struct ms_err){0};
        if (rd(c, addr + got, &peek, 1, NULL) == 0 && peek != 0)
            force = true;
        if (c->err)
            *c->err = keep;
    }
    if (rc == 0 || got > 0)
        put_string(c, buf, got, force);
    if (rc < 0) {
        ms_strbuf_printf(c->out, "<error: %s>", c->err ? c->err->msg : "Cannot access memory");
        if (c->err)
            ms_err_clear(c->err);
    }
    return 0;
}

/* " <sym+off>" when addr lies in a symbol. */
static void put_symbolic(struct ctx *c, uint64_t addr)
{
    char name[NAME_MAX_LEN];
    uint64_t off = 0;
    if (!c->env->addrsym || c->env->addrsym(c->env->sym_arg, addr, name, sizeof(name), &off) != 0)
        return;
    name[sizeof(name) - 1] = '\0';
    if (off)
        ms_strbuf_printf(c->out, " <%s+%llu>", name, (unsigned long long)off);
    else
        ms_strbuf_printf(c->out, " <%s>", name);
}

static bool textual(struct ctx *c, uint32_t ref, char fmt)
{
    if (fmt && fmt != 's')
        return false;
    struct ty t;
    if (peel(c, ref, &t) < 0)
        return false;
    return t.kind == K_INT && t.size == 1 && !t.boolean;
}

static void put_digits(struct ctx *c, uint64_t v, unsigned base, unsigned min_digits)
{
    char tmp[72];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v && n < 70);
    while ((unsigned)n < min_digits && n < 70)
        tmp[n++] = '0';
    while (n)
        ms_strbuf_putc(c->out, tmp[--n]);
}

static void put_char_value(struct ctx *c, uint64_t v, bool sgn)
{
    v &= 0xff;
    if (sgn)
        ms_strbuf_printf(c->out, "%lld '", (long long)(int8_t)v);
    else
        ms_strbuf_printf(c->out, "%llu '", (unsigned long long)v);
    put_char(c, (uint8_t)v, '\'');
    ms_strbuf_putc(c->out, '\'');
}

/* print_scalar_formatted: bits of a size-byte scalar in a format letter. */
static void put_formatted(struct ctx *c, uint64_t bits, const struct ty *t)
{
    uint64_t size = t->size ? t->size : 8;
    uint64_t u = bits & mask_of(size);
    switch (c->fmt) {
    case 'x':
        ms_strbuf_printf(c->out, "0x");
        put_digits(c, u, 16, 1);
        return;
    case 'z':
        ms_strbuf_printf(c->out, "0x");
        put_digits(c, u, 16, (unsigned)size * 2);
        return;
    case 'o':
        ms_strbuf_putc(c->out, '0');
        if (u)
            put_digits(c, u, 8, 1);
        return;
    case 't':
        put_digits(c, u, 2, 1);
        return;
    case 'd':
        ms_strbuf_printf(c->out, "%lld", (long long)extend(u, size, true));
        return;
    case 'u':
        ms_strbuf_printf(c->out, "%llu", (unsigned long long)u);
        return;
    case 'c':
        put_char_value(c, u, t->sgn);
        return;
    case 'a':
        ms_strbuf_printf(c->out, "0x%llx", (unsigned long long)u);
        put_symbolic(c, u);
        return;
    default:
        return;
    }
}

static void put_enum(struct ctx *c, const struct ty *t, uint64_t bits)
{
    const struct ms_btf *b = c->env->btf;
    struct ms_btf_type bt;
    int64_t val = (int64_t)extend(bits, t->size, t->sgn);
    if (ms_btf_type(b, t->ref, &bt, NULL) < 0)
        return;
    bool flag = true;
    for (unsigned i = 0; i < bt.vlen; i++) {
        const char *n;
        int64_t e;
        if (ms_btf_enumerator(b, t->ref, i, &n, &e, NULL) < 0)
            return;
        if (e == val) {
            ms_strbuf_printf(c->out, "%s", n);
            return;
        }
        if (e < 0 || __builtin_popcountll((uint64_t)e) > 1)
            flag = false;
    }
    if (!flag || val < 0) {
        ms_strbuf_printf(c->out, "%lld", (long long)val);
        return;
    }
    uint64_t left = (uint64_t)val;
    bool first = true;
    for (unsigned i = 0; i < bt.vlen; i++) {
        const char *n;
        int64_t e;
        if (ms_btf_enumerator(b, t->ref, i, &n, &e, NULL) < 0 || !((uint64_t)e & left))
            continue;
        ms_strbuf_printf(c->out, "%s%s", first ? "(" : " | ", n);
        first = false;
        left &= ~(uint64_t)e;
    }
    if (left) {
        ms_strbuf_printf(c->out, "%sunknown: 0x%llx)", first ? "(" : " | ",
                         (unsigned long long)left);
    } else if (first) {
        ms_strbuf_printf(c->out, "0");
    } else {
        ms_strbuf_printf(c->out, ")");
    }
}

static int print_value(struct ctx *c, uint32_t ref, const uint8_t *buf, size_t len, uint64_t addr,
                       int depth);
static int print_kind(struct ctx *c, uint32_t ref, const struct ty *t, const uint8_t *buf,
                      size_t len, uint64_t addr, int depth);

/* A pointer's value as GDB's print_unpacked_pointer shows it. */
static int put_pointer(struct ctx *c, uint32_t target, uint64_t p)
{
    struct ty to;
    int rc = peel(c, target, &to);
    if (rc < 0)
        return rc;
    ms_strbuf_printf(c->out, "0x%llx", (unsigned long long)p);
    put_symbolic(c, p);
    if (to.kind != K_FUNC && textual(c, target, c->fmt) && p != 0) {
        ms_strbuf_putc(c->out, ' ');
        return put_pointed_string(c, p);
    }
    return 0;
}

static int print_scalar(struct ctx *c, const struct ty *t, uint64_t bits)
{
    if (c->fmt && c->fmt != 's') {
        put_formatted(c, bits, t);
        return 0;
    }
    switch (t->kind) {
    case K_INT: {
        uint64_t v = extend(bits, t->size, t->sgn);
        if (t->boolean && v <= 1) {
            ms_strbuf_printf(c->out, "%s", v ? "true" : "false");
            return 0;
        }
        if (t->sgn)
            ms_strbuf_printf(c->out, "%lld", (long long)v);
        else
            ms_strbuf_printf(c->out, "%llu", (unsigned long long)v);
        if (t->size == 1 && !t->boolean) {
            ms_strbuf_printf(c->out, " '");
            put_char(c, (uint8_t)v, '\'');
            ms_strbuf_putc(c->out, '\'');
        }
        return 0;
    }
    case K_ENUM:
        put_enum(c, t, bits);
        return 0;
    case K_PTR:
        return put_pointer(c, t->target, bits);
    case K_FLOAT: {
        if (t->size == 4) {
            float f;
            uint32_t w = (uint32_t)bits;
            memcpy(&f, &w, 4);
            ms_strbuf_printf(c->out, "%.9g", (double)f);
        } else if (t->size == 8) {
            double d;
            memcpy(&d, &bits, 8);
            ms_strbuf_printf(c->out, "%.17g", d);
        } else {
            ms_strbuf_printf(c->out, "<%u-byte float>", (unsigned)t->size);
        }
        return 0;
    }
    default:
        return ms_err_set(c->err, MS_EINVAL, "not a scalar");
    }
}

static int print_struct(struct ctx *c, const struct ty *t, const uint8_t *buf, size_t len,
                        uint64_t addr, int depth)
{
    const struct ms_btf *b = c->env->btf;
    struct ms_btf_type bt;
    int rc = ms_btf_type(b, t->ref, &bt, c->err);
    if (rc < 0)
        return rc;
    ms_strbuf_putc(c->out, '{');
    if (bt.vlen == 0)
        ms_strbuf_printf(c->out, "<No data fields>");
    for (unsigned i = 0; i < bt.vlen; i++) {
        struct ms_btf_member m;
        rc = ms_btf_member(b, t->ref, i, &m, c->err);
        if (rc < 0)
            return rc;
        if (i)
            ms_strbuf_printf(c->out, ", ");
        if (m.name[0])
            ms_strbuf_printf(c->out, "%s = ", m.name);
        uint64_t off = m.bit_offset / 8;
        struct ty mt;
        rc = peel(c, m.type, &mt);
        if (rc < 0)
            return rc;
        if (m.bitfield_size) {
            if (!is_integral(&mt) || m.bitfield_size > 64)
                return ms_err_set(c->err, MS_EFORMAT,
                                  "BTF member %s: a %u-bit bitfield, not of an integer", m.name,
                                  m.bitfield_size);
            size_t avail = off < len ? len - off : 0;
            uint64_t v = bitfield(buf + (off < len ? off : len), avail,
                                  (unsigned)(m.bit_offset % 8), m.bitfield_size, mt.sgn);
            rc = print_scalar(c, &mt, v & mask_of(mt.size));
        } else {
            uint64_t msize = mt.size;
            if (off > len || msize > len - off) /* flexible arrays have no bytes here */
                msize = off > len ? 0 : len - off;
            rc = print_value(c, m.type, buf + (off < len ? off : len), msize, addr + off,
                             m.name[0] ? depth + 1 : depth);
        }
        if (rc == 0)
            rc = out_check(c);
        if (rc < 0)
            return rc;
    }
    ms_strbuf_putc(c->out, '}');
    return 0;
}

static int print_array(struct ctx *c, const struct ty *t, const uint8_t *buf, size_t len,
                       uint64_t addr, int depth)
{
    struct ty et;
    int rc = peel(c, t->target, &et);
    if (rc < 0)
        return rc;
    uint64_t es = et.size;
    if (t->size == 0 || es == 0 || t->nelems == 0) /* unknown length: like a pointer */
        return put_pointer(c, t->target, addr);
    uint64_t n = t->nelems;
    if (n * es > len)
        n = len / es;
    if (textual(c, t->target, c->fmt)) {
        put_string(c, buf, (size_t)n, false);
        return 0;
    }
    ms_strbuf_putc(c->out, '{');
    uint64_t i = 0, things = 0;
    for (; i < n && things < PRINT_ELEMENTS; i++) {
        if (i)
            ms_strbuf_printf(c->out, ", ");
        uint64_t reps = 1;
        while (i + reps < n && !memcmp(buf + i * es, buf + (i + reps) * es, (size_t)es))
            reps++;
        rc = print_value(c, t->target, buf + i * es, (size_t)es, addr + i * es, depth + 1);
        if (rc == 0)
            rc = out_check(c);
        if (rc < 0)
            return rc;
        if (reps > REPEATS) {
            ms_strbuf_printf(c->out, " <repeats %llu times>", (unsigned long long)reps);
            i += reps - 1;
            things += REPEATS;
        } else {
            things++;
        }
    }
    if (i < n)
        ms_strbuf_printf(c->out, "...");
    ms_strbuf_putc(c->out, '}');
    return 0;
}

/* A value whose bytes are buf[0..len) (fewer than its size only for a
 * flexible array), at addr in memory; depth counts GDB's max-depth. */
static int print_value(struct ctx *c, uint32_t ref, const uint8_t *buf, size_t len, uint64_t addr,
                       int depth)
{
    struct ty t;
    int rc = peel(c, ref, &t);
    if (rc < 0)
        return rc;
    if (c->nest > 4 * MAX_DEPTH) /* anonymous members nested this deep: a cycle */
        return ms_err_set(c->err, MS_EFORMAT, "BTF structs nest deeper than %d", 4 * MAX_DEPTH);
    c->nest++;
    rc = print_kind(c, ref, &t, buf, len, addr, depth);
    c->nest--;
    return rc;
}

static int print_kind(struct ctx *c, uint32_t ref, const struct ty *tp, const uint8_t *buf,
                      size_t len, uint64_t addr, int depth)
{
    struct ty t = *tp;
    int rc;
    switch (t.kind) {
    case K_STRUCT:
    case K_ARRAY:
        if (depth >= MAX_DEPTH) {
            ms_strbuf_printf(c->out, "{...}");
            return 0;
        }
        return t.kind == K_STRUCT ? print_struct(c, &t, buf, len, addr, depth)
                                  : print_array(c, &t, buf, len, addr, depth);
    case K_INT:
    case K_ENUM:
    case K_PTR:
    case K_FLOAT:
        return print_scalar(c, &t, le_load(buf, len < t.size ? len : t.size));
    case K_FUNC: {
        char name[1024];
        rc = type_name(c, ref, name, sizeof(name));
        if (rc < 0)
            return rc;
        ms_strbuf_printf(c->out, "{%s} 0x%llx", name, (unsigned long long)addr);
        put_symbolic(c, addr);
        return 0;
    }
    case K_NODEBUG_TEXT:
        ms_strbuf_printf(c->out, "{<text variable, no debug info>} 0x%llx",
                         (unsigned long long)addr);
        put_symbolic(c, addr);
        return 0;
    case K_VOID:
        ms_strbuf_printf(c->out, "void");
        return 0;
    case K_INCOMPLETE:
        ms_strbuf_printf(c->out, "<incomplete type>");
        return 0;
    default:
        return ms_err_set(c->err, MS_EINVAL, "cannot print this value");
    }
}

/* An unnamed pointer to char (qualifiers aside): GDB prints no "(type) ". */
static int plain_char_ptr(struct ctx *c, uint32_t ref, bool *yes)
{
    *yes = false;
    uint32_t to;
    if (ref & SYN) {
        if (c->syn[ref & ~SYN].kind != S_PTR)
            return 0;
        to = c->syn[ref & ~SYN].target;
    } else {
        struct ms_btf_type pt;
        int rc = ms_btf_type(c->env->btf, ref, &pt, c->err);
        if (rc < 0 || pt.kind != MS_BTF_PTR)
            return rc < 0 ? rc : 0;
        to = pt.type;
    }
    if (to == T(B_CHAR)) {
        *yes = true;
        return 0;
    }
    for (int i = 0; i < MS_BTF_MAX_DEPTH && !(to & SYN); i++) {
        struct ms_btf_type tt;
        int rc = ms_btf_type(c->env->btf, to, &tt, c->err);
        if (rc < 0)
            return rc;
        if (tt.kind == MS_BTF_CONST || tt.kind == MS_BTF_VOLATILE) {
            to = tt.type;
            continue;
        }
        *yes = tt.kind == MS_BTF_INT && !strcmp(tt.name, "char");
        return 0;
    }
    return 0;
}

/* GDB's print_formatted + c_value_print for the top-level value. */
static int print_top(struct ctx *c, struct val *v)
{
    struct ty t;
    int rc = peel(c, v->type, &t);
    if (rc < 0)
        return rc;
    if (t.kind == K_NODEBUG_DATA)
        return nodebug_error(c, v);
    if (t.kind == K_INCOMPLETE)
        return ms_err_set(c->err, MS_EINVAL, "value has incomplete type");
    uint8_t small[16] = {0};
    uint8_t *buf = small;
    size_t len = 0;
    if (t.kind == K_STRUCT || t.kind == K_ARRAY || is_integral(&t) || t.kind == K_PTR ||
        t.kind == K_FLOAT) {
        if (t.size > MS_PRINT_VALUE_MAX)
            return ms_err_set(c->err, MS_ELIMIT,
                              "value requires %llu bytes, which is more than max-value-size",
                              (unsigned long long)t.size);
        len = (size_t)t.size;
        if (v->lval && !v->bitsize) {
            if (len > sizeof(small) && !(buf = malloc(len)))
                return ms_err_set(c->err, MS_ENOMEM, "out of memory");
            rc = rd(c, v->addr, buf, len, NULL);
        } else {
            uint64_t bits;
            rc = fetch(c, v, &t, &bits);
            le_store(small, len < 8 ? len : 8, bits);
        }
        if (rc < 0) {
            if (buf != small)
                free(buf);
            return rc;
        }
    }
    size_t mark = c->out->len;
    ms_strbuf_printf(c->out, "$1 = ");
    bool scalar_fmt = c->fmt && c->fmt != 's' && t.kind != K_STRUCT && t.kind != K_ARRAY;
    if (scalar_fmt && (is_integral(&t) || t.kind == K_PTR || t.kind == K_FLOAT)) {
        put_formatted(c, le_load(buf, len), &t);
    } else {
        if (t.kind == K_PTR) {
            bool plain_char = false;
            /* GDB's "(type) " before a pointer, but for a plain (char *) */
            if (rc == 0)
                rc = plain_char_ptr(c, v->type, &plain_char);
            if (rc == 0 && !plain_char) {
                char name[1024];
                rc = type_name(c, v->type, name, sizeof(name));
                if (rc == 0)
                    ms_strbuf_printf(c->out, "(%s) ", name);
            }
        }
        if (rc == 0)
            rc = print_value(c, v->type, buf, len, v->addr, 0);
    }
    if (buf != small)
        free(buf);
    if (rc == 0)
        rc = out_check(c);
    if (rc < 0) {
        c->out->len = mark;
        if (c->out->data)
            c->out->data[mark] = '\0';
        return rc;
    }
    ms_strbuf_putc(c->out, '\n');
    return out_check(c);
}

int ms_print_expr(const struct ms_print_env *env, const char *fmt, const char *expr,
                  struct ms_strbuf *out, struct ms_err *err)
{
    struct ctx *c = calloc(1, sizeof(*c));
    struct ms_cexpr *ex = malloc(sizeof(*ex));
    int rc = 0;
    if (!c || !ex) {
        rc = ms_err_set(err, MS_ENOMEM, "out of memory");
        goto done;
    }
    ctx_init(c, env);
    c->out = out;
    c->err = err;
    c->ex = ex;
    fmt = fmt ? fmt : "";
    size_t fl = strlen(fmt);
    if (fl > 1 || (fl == 1 && !strchr("xduotcasz", fmt[0]))) {
        char l = fl ? fmt[fl - 1] : 0;
        if (fl && strspn(fmt, "0123456789") == fl - 1 && fmt[0] >= '0' && fmt[0] <= '9')
            rc = ms_err_set(err, MS_EINVAL,
                            "Item count other than 1 is meaningless in \"print\" command.");
        else if (fl && strchr("bhwg", l))
            rc = ms_err_set(err, MS_EINVAL, "Size letters are meaningless in \"print\" command.");
        else if (fl && strchr("if", l))
            rc = ms_err_set(err, MS_EINVAL,
                            "Format letter \"%c\" is not supported by print here "
                            "(x d u o t c a s z are).",
                            l);
        else
            rc = ms_err_set(err, MS_EINVAL, "Undefined output format \"%s\".", fmt);
        goto done;
    }
    c->fmt = fl ? fmt[0] : 0;
    rc = ms_cexpr_parse(ex, expr, is_typedef, (void *)env->btf, err);
    struct val v;
    if (rc == 0)
        rc = eval(c, ex->root, &v, 0);
    if (rc == 0)
        rc = print_top(c, &v);
done:
    free(ex);
    free(c);
    return rc;
}
