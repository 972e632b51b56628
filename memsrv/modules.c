#include "modules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "strbuf.h"
#include "fields.h"

#define MODULE_REF_BASE 1 /* the reference a live module holds on itself */

static int member(const struct ms_typedb *db, const char *type, const char *name, uint64_t *off,
                  uint64_t *size, struct ms_err *err)
{
    char key[96];
    snprintf(key, sizeof(key), "%s.%s", type, name);
    const struct ms_typedb_entry *e = ms_typedb_get(db, key);
    if (!e)
        return ms_err_set(err, MS_ENOTFOUND, "%s has no member %s (types: %s)", type, name,
                          db->source);
    *off = e->value;
    if (size)
        *size = e->member_size;
    return 0;
}

/* Where the core text starts and which sizes /proc/modules adds: 6.1's
 * core_layout and init_layout, or 6.4+'s mem[] (MOD_TEXT first). */
static int layout_sizes(const struct ms_typedb *db, struct ms_module_layout *l, struct ms_err *err)
{
    uint64_t core = 0, init = 0, off = 0, size = 0, elem = 0, n = 0;
    if (member(db, "module", "core_layout", &core, NULL, NULL) == 0) {
        int rc = member(db, "module_layout", "base", &off, NULL, err);
        if (rc == 0)
            rc = member(db, "module_layout", "size", &size, NULL, err);
        if (rc < 0)
            return rc;
        l->base = core + off;
        l->sizes[l->nsizes++] = core + size;
        if (member(db, "module", "init_layout", &init, NULL, NULL) == 0)
            l->sizes[l->nsizes++] = init + size;
        return 0;
    }
    int rc = member(db, "module", "mem", &core, &n, err);
    if (rc == 0)
        rc = ms_typedb_size(db, "module_memory", &elem, err);
    if (rc == 0)
        rc = member(db, "module_memory", "base", &off, NULL, err);
    if (rc == 0)
        rc = member(db, "module_memory", "size", &size, NULL, err);
    if (rc < 0)
        return ms_err_prefix(err, "struct module has neither core_layout nor mem[]: ");
    if (elem == 0 || n % elem || n / elem == 0 || n / elem > MS_MODULE_SIZES_MAX)
        return ms_err_set(err, MS_EFORMAT,
                          "struct module's mem[] is %llu bytes of %llu-byte entries",
                          (unsigned long long)n, (unsigned long long)elem);
    l->base = core + off;
    for (uint64_t i = 0; i < n / elem; i++)
        l->sizes[l->nsizes++] = core + i * elem + size;
    return 0;
}

static int layout_from_types(struct ms_kernel *k, struct ms_module_layout *l, struct ms_err *err)
{
    /* Asked in turn, as each kernel has only some of them (a DWARF scan
     * fails whole on a struct it lacks): module, then module_layout (to
     * 6.3) or module_memory (6.4+), and module_use with MODULE_UNLOAD. */
    static const char *const want_module[] = {"module", NULL};
    static const char *const want_layout[] = {"module_layout", NULL};
    static const char *const want_memory[] = {"module_memory", NULL};
    static const char *const want_use[] = {"module_use", NULL};
    const struct ms_typedb *db = &k->types;
    int rc = ms_kernel_need_types(k, want_module, err);
    if (rc == 0)
        rc = ms_kernel_need_types(
            k, ms_typedb_has(db, "module", "core_layout") ? want_layout : want_memory, err);
    if (rc < 0)
        return ms_err_prefix(err, "lsmod needs struct module's layout: ");
    if (ms_typedb_has(db, "module", "source_list"))
        ms_kernel_need_types(k, want_use, NULL); /* else no users, as without unload */
    memset(l, 0, sizeof(*l));
    rc = member(db, "module", "list", &l->list, NULL, err);
    if (rc == 0)
        rc = member(db, "module", "name", &l->name, &l->name_len, err);
    if (rc == 0)
        rc = member(db, "module", "state", &l->state, NULL, err);
    if (rc == 0)
        rc = layout_sizes(db, l, err);
    if (rc < 0)
        return ms_err_prefix(err, "lsmod: ");
    l->has_taints = member(db, "module", "taints", &l->taints, NULL, NULL) == 0;
    l->has_unload = member(db, "module", "refcnt", &l->refcnt, NULL, NULL) == 0 &&
                    member(db, "module", "source_list", &l->source_list, NULL, NULL) == 0 &&
                    member(db, "module", "init", &l->init, NULL, NULL) == 0 &&
                    member(db, "module", "exit", &l->exit, NULL, NULL) == 0 &&
                    member(db, "module_use", "source_list", &l->use_source_list, NULL, NULL) == 0 &&
                    member(db, "module_use", "source", &l->use_source, NULL, NULL) == 0;
    return 0;
}

int ms_module_layout_span(const struct ms_module_layout *l, uint64_t *lo, uint64_t *hi,
                          struct ms_err *err)
{
    if (l->name_len == 0 || l->name_len > MS_MODULE_NAME_MAX)
        return ms_err_set(err, MS_EFORMAT, "struct module's name: %llu bytes, at most %d",
                          (unsigned long long)l->name_len, MS_MODULE_NAME_MAX);
    if (l->nsizes > MS_MODULE_SIZES_MAX)
        return ms_err_set(err, MS_EINVAL, "%u sizes, at most %d", l->nsizes, MS_MODULE_SIZES_MAX);
    uint64_t off[8 + MS_MODULE_SIZES_MAX], size[8 + MS_MODULE_SIZES_MAX];
    unsigned n = 0;
#define FIELD(o, s) (off[n] = (o), size[n] = (s), n++)
    FIELD(l->list, 8);
    FIELD(l->name, l->name_len);
    FIELD(l->state, 4);
    FIELD(l->base, 8);
    for (unsigned i = 0; i < l->nsizes; i++)
        FIELD(l->sizes[i], 4);
    if (l->has_taints)
        FIELD(l->taints, 8);
    if (l->has_unload) {
        FIELD(l->refcnt, 4);
        FIELD(l->source_list, 8);
        FIELD(l->init, 8);
        FIELD(l->exit, 8);
    }
#undef FIELD
    return ms_fields_span(off, size, n, MS_MODULE_FIELD_MAX, "struct module", lo, hi, err);
}

int ms_module_decode(const struct ms_module_layout *l, uint64_t addr, const uint8_t *bytes,
                     size_t len, struct ms_module *m, struct ms_module_links *links,
                     struct ms_err *err)
{
    uint64_t lo, hi;
    int rc = ms_module_layout_span(l, &lo, &hi, err);
    if (rc < 0)
        return rc;
    if (len < hi - lo)
        return ms_err_set(err, MS_EINVAL, "struct module bytes: %zu, the layout needs %llu", len,
                          (unsigned long long)(hi - lo));
    const uint8_t *b = bytes - lo; /* b + offset: the field */
    memset(m, 0, sizeof(*m));
    memset(links, 0, sizeof(*links));
    m->addr = addr;
    memcpy(m->name, b + l->name, l->name_len);
    m->name[l->name_len] = '\0';
    m->state = ms_get32(b + l->state);
    m->base = ms_get64(b + l->base);
    for (unsigned i = 0; i < l->nsizes; i++)
        m->size += ms_get32(b + l->sizes[i]);
    if (l->has_taints)
        m->taints = ms_get64(b + l->taints);
    links->list_next = ms_get64(b + l->list);
    if (l->has_unload) {
        m->has_unload = true;
        m->refcount = (int64_t)(int32_t)ms_get32(b + l->refcnt) - MODULE_REF_BASE;
        m->permanent = ms_get64(b + l->init) != 0 && ms_get64(b + l->exit) == 0;
        links->source_next = ms_get64(b + l->source_list);
    }
    return 0;
}

/* A small open-addressing set of addresses: loop detection. */
struct seen {
    uint64_t *v;
    size_t mask;
};

static bool seen_add(struct seen *s, uint64_t a)
{
    size_t h = (size_t)((a >> 4) * 0x9e3779b97f4a7c15ULL) & s->mask;
    while (s->v[h]) {
        if (s->v[h] == a)
            return false;
        h = (h + 1) & s->mask;
    }
    s->v[h] = a;
    return true;
}

int ms_module_list_add_user(struct ms_module_list *l, struct ms_module *m, const char *name,
                            size_t len, struct ms_err *err)
{
    len = strnlen(name, len < MS_MODULE_NAME_MAX ? len : MS_MODULE_NAME_MAX);
    if (l->users_len + len + 1 > UINT32_MAX)
        return ms_err_set(err, MS_ELIMIT, "too many module users");
    if (!MS_ARRAY_RESERVE(&l->users, &l->users_cap, l->users_len + len + 1, 256))
        return ms_err_set(err, MS_ENOMEM, "out of memory for module users");
    memcpy(l->users + l->users_len, name, len);
    l->users[l->users_len + len] = '\0';
    l->users_len += len + 1;
    m->users_len += (uint32_t)(len + 1);
    m->nusers++;
    return 0;
}

/* The modules using m: its source_list of struct module_use, each naming
 * the module that uses it. Fails (m's users unknown) on a NULL or
 * unreadable link, a name that cannot be read, or a list that does not
 * come back within MS_MODULE_USERS_MAX entries. */
static int read_users(const struct ms_module_layout *l, ms_read_fn read, void *arg, uint64_t first,
                      struct ms_module_list *out, struct ms_module *m, struct ms_err *err)
{
    uint64_t head = m->addr + l->source_list, cur = first;
    /* Brent's cycle finding: a node met again at the saved one is a loop */
    uint64_t saved = head;
    unsigned power = 1, run = 0;
    m->users_off = (uint32_t)out->users_len;
    for (unsigned i = 0; cur != head; i++) {
        if (cur == saved)
            return ms_err_set(err, MS_EFORMAT, "the users of module %s loop at 0x%llx", m->name,
                              (unsigned long long)cur);
        if (++run == power) {
            saved = cur;
            power <<= 1;
            run = 0;
        }
        if (i >= MS_MODULE_USERS_MAX)
            return ms_err_set(err, MS_ELIMIT, "more than %d users of module %s",
                              MS_MODULE_USERS_MAX, m->name);
        if (cur == 0)
            return ms_err_set(err, MS_EFORMAT, "NULL in the users of module %s", m->name);
        uint64_t use = cur - l->use_source_list, source;
        char name[MS_MODULE_NAME_MAX + 1] = {0};
        if (read(arg, use + l->use_source, &source, 8, NULL, err) < 0 ||
            read(arg, source + l->name, name, l->name_len, NULL, err) < 0 ||
            read(arg, cur, &cur, 8, NULL, err) < 0)
            return ms_err_prefix(err, "users of module %s: ", m->name);
        int rc = ms_module_list_add_user(out, m, name, sizeof(name), err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int ms_module_list_push(struct ms_module_list *l, const struct ms_module *m, struct ms_err *err)
{
    if (!MS_ARRAY_RESERVE(&l->modules, &l->cap, l->count + 1, 64))
        return ms_err_set(err, MS_ENOMEM, "out of memory for modules");
    l->modules[l->count++] = *m;
    return 0;
}

int ms_modules_walk(const struct ms_module_layout *l, uint64_t head, ms_read_fn read, void *arg,
                    size_t max_modules, struct ms_module_list *out, struct ms_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!max_modules)
        max_modules = MS_MODULES_MAX_DEFAULT;
    if (max_modules > MS_MODULES_MAX_LIMIT)
        return ms_err_set(err, MS_EINVAL, "at most %u modules", MS_MODULES_MAX_LIMIT);
    uint64_t lo, hi;
    int rc = ms_module_layout_span(l, &lo, &hi, err);
    if (rc < 0)
        return rc;
    size_t size = 16;
    while (size < max_modules * 2)
        size <<= 1;
    struct seen seen = {.v = calloc(size, sizeof(uint64_t)), .mask = size - 1};
    uint8_t *buf = malloc(hi - lo);
    if (!seen.v || !buf) {
        rc = ms_err_set(err, MS_ENOMEM, "out of memory");
        goto out;
    }
    uint64_t cur;
    rc = read(arg, head, &cur, 8, NULL, err);
    if (rc < 0) {
        ms_err_prefix(err, "reading the module list head at 0x%llx: ", (unsigned long long)head);
        goto out;
    }
    while (cur != head) {
        if (out->count >= max_modules) {
            rc =
                ms_err_set(err, MS_ELIMIT,
                           "more than %zu modules: the module list is corrupt or the limit too low",
                           max_modules);
            break;
        }
        if (cur == 0) {
            rc = ms_err_set(err, MS_EFORMAT, "NULL in the module list after %zu modules",
                            out->count);
            break;
        }
        uint64_t mod = cur - l->list;
        if (mod == 0) { /* the empty slot of seen, and no module's address */
            rc = ms_err_set(err, MS_EFORMAT, "the module list leads to address 0 after %zu modules",
                            out->count);
            break;
        }
        if (!seen_add(&seen, mod)) {
            rc = ms_err_set(err, MS_EFORMAT,
                            "the module list loops at 0x%llx without returning to its head",
                            (unsigned long long)mod);
            break;
        }
        struct ms_module m;
        struct ms_module_links links;
        if (mod + lo < mod || (rc = read(arg, mod + lo, buf, hi - lo, NULL, err)) < 0 ||
            (rc = ms_module_decode(l, mod, buf, hi - lo, &m, &links, err)) < 0) {
            rc = rc < 0 ? rc : ms_err_set(err, MS_EFORMAT, "module address wraps");
            ms_err_prefix(err,
                          "the module at 0x%llx (after %zu modules): ", (unsigned long long)mod,
                          out->count);
            break;
        }
        if (m.has_unload) {
            size_t mark = out->users_len;
            if (read_users(l, read, arg, links.source_next, out, &m, NULL) == 0) {
                m.users_known = true;
            } else { /* what was added for it goes */
                out->users_len = mark;
                m.nusers = m.users_len = 0;
                out->bad++;
            }
        }
        rc = ms_module_list_push(out, &m, err);
        if (rc < 0)
            break;
        cur = links.list_next;
    }
out:
    free(seen.v);
    free(buf);
    return rc;
}

int ms_modules_list(struct ms_kernel *k, size_t max_modules, struct ms_module_list *out,
                    struct ms_err *err)
{
    memset(out, 0, sizeof(*out));
    struct ms_module_layout l;
    int rc = layout_from_types(k, &l, err);
    if (rc < 0)
        return rc;
    uint64_t head;
    rc = ms_kernel_symbol(k, "modules", &head, err);
    if (rc < 0)
        return ms_err_prefix(err, "the module list head: ");
    return ms_modules_walk(&l, head, ms_space_read_fn, k->space, max_modules, out, err);
}

void ms_module_list_free(struct ms_module_list *l)
{
    free(l->modules);
    free(l->users);
    memset(l, 0, sizeof(*l));
}

const char *ms_module_state_name(uint32_t state)
{
    switch (state) {
    case MS_MODULE_LIVE:
        return "Live";
    case MS_MODULE_COMING:
        return "Loading";
    case MS_MODULE_GOING:
        return "Unloading";
    case MS_MODULE_UNFORMED:
        return "Unformed";
    }
    return "?";
}

/* Names as the kernel wrote them; anything else as \xHH (and ',', which
 * separates users). */
static void put_name(struct ms_strbuf *sb, const char *name)
{
    for (const unsigned char *c = (const unsigned char *)name; *c; c++)
        if (*c > 0x20 && *c < 0x7f && *c != ',')
            ms_strbuf_printf(sb, "%c", *c);
        else
            ms_strbuf_printf(sb, "\\x%02x", *c);
}

/* The taint letters of include/linux/panic.h's taint_flags that modules
 * carry (TAINT_PROPRIETARY_MODULE 'P', ..., TAINT_RANDSTRUCT 'T'). */
static void put_taints(struct ms_strbuf *sb, const struct ms_module *m)
{
    static const char letters[] = "PFSRMBUDAWCIOELKXT";
    static const unsigned module_bits[] = {0, 1, 10, 12, 13, 15, 16, 17};
    ms_strbuf_printf(sb, " (");
    for (size_t i = 0; i < sizeof(module_bits) / sizeof(module_bits[0]); i++)
        if (m->taints & (1ull << module_bits[i]))
            ms_strbuf_printf(sb, "%c", letters[module_bits[i]]);
    if (m->state == MS_MODULE_GOING)
        ms_strbuf_printf(sb, "-");
    if (m->state == MS_MODULE_COMING)
        ms_strbuf_printf(sb, "+");
    ms_strbuf_printf(sb, ")");
}

void ms_modules_format(const struct ms_module_list *l, struct ms_strbuf *sb)
{
    for (size_t i = 0; i < l->count; i++) {
        const struct ms_module *m = &l->modules[i];
        if (m->state == MS_MODULE_UNFORMED)
            continue;
        put_name(sb, m->name);
        ms_strbuf_printf(sb, " %llu", (unsigned long long)m->size);
        if (!m->has_unload) {
            ms_strbuf_printf(sb, " - -");
        } else {
            ms_strbuf_printf(sb, " %lld ", (long long)m->refcount);
            if (!m->users_known) {
                ms_strbuf_printf(sb, "?");
            } else {
                const char *u = m->nusers ? l->users + m->users_off : "";
                for (uint32_t j = 0; j < m->nusers; j++) {
                    put_name(sb, u);
                    ms_strbuf_printf(sb, ",");
                    u += strlen(u) + 1;
                }
                if (m->permanent)
                    ms_strbuf_printf(sb, "[permanent],");
                if (!m->nusers && !m->permanent)
                    ms_strbuf_printf(sb, "-");
            }
        }
        ms_strbuf_printf(sb, " %s 0x%016llx", ms_module_state_name(m->state),
                         (unsigned long long)m->base);
        if (m->taints)
            put_taints(sb, m);
        ms_strbuf_printf(sb, "\n");
    }
}
