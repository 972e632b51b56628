#include "modsyms.h"

#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "modules.h"
#include "ram.h"
#include "space.h"
#include "fields.h"

#define STRTAB_MAX (16u << 20) /* bytes of one module's string table read */

int ms_modsyms_decode(const uint8_t *symtab, size_t nsyms, const uint8_t *strtab, size_t strtab_len,
                      const uint8_t *typetab, uint32_t module, struct ms_modsyms *out,
                      size_t *skipped, struct ms_err *err)
{
    if (nsyms > MS_MODSYMS_MAX)
        return ms_err_set(err, MS_EFORMAT, "%zu module symbols, at most %u", nsyms, MS_MODSYMS_MAX);
    for (size_t i = 1; i < nsyms; i++) {
        const uint8_t *e = symtab + i * MS_MODSYM_SIZE;
        uint32_t name = ms_get32(e);
        uint16_t shndx;
        memcpy(&shndx, e + 6, 2);
        if (name == 0 || shndx == 0) /* unnamed, or undefined */
            continue;
        /* KSYM_NAME_LEN counts the NUL: a name has at most 511 bytes */
        size_t room = MS_MODSYM_NAME_MAX - 1;
        size_t len = name < strtab_len
                         ? strnlen((const char *)strtab + name,
                                   strtab_len - name < room ? strtab_len - name : room)
                         : 0;
        if (len == 0 || name + len >= strtab_len || strtab[name + len] != '\0') {
            ++*skipped; /* outside the table, empty, or too long */
            continue;
        }
        if (out->names_len + len + 1 > UINT32_MAX)
            return ms_err_set(err, MS_ELIMIT, "module symbol names past 4 GiB");
        if (!MS_ARRAY_RESERVE(&out->names, &out->names_cap, out->names_len + len + 1, 4096) ||
            !MS_ARRAY_RESERVE(&out->syms, &out->cap, out->count + 1, 256))
            return ms_err_set(err, MS_ENOMEM, "out of memory for module symbols");
        struct ms_modsym *s = &out->syms[out->count++];
        s->addr = ms_get64(e + 8);
        s->size = ms_get64(e + 16);
        s->name = (uint32_t)out->names_len;
        s->module = module;
        s->type = typetab && typetab[i] > 0x20 && typetab[i] < 0x7f ? (char)typetab[i] : '?';
        memcpy(out->names + out->names_len, strtab + name, len + 1);
        out->names_len += len + 1;
    }
    return 0;
}

/* One module's tables, read whole: the symbol table, the string table up
 * to the furthest name (what of it can be read), the type letters. */
static int read_module(const struct ms_modsym_layout *l, ms_read_fn read, void *arg,
                       const struct ms_module *m, uint32_t index, struct ms_modsyms *out,
                       struct ms_err *err)
{
    uint64_t ks, symtab, strtab, typetab = 0;
    uint32_t n;
    if (read(arg, m->addr + l->kallsyms, &ks, 8, NULL, err) < 0 ||
        read(arg, ks + l->symtab, &symtab, 8, NULL, err) < 0 ||
        read(arg, ks + l->num_symtab, &n, 4, NULL, err) < 0 ||
        read(arg, ks + l->strtab, &strtab, 8, NULL, err) < 0 ||
        (l->has_typetab && read(arg, ks + l->typetab, &typetab, 8, NULL, err) < 0))
        return ms_err_prefix(err, "module %s's kallsyms: ", m->name);
    if (n > MS_MODSYMS_MAX)
        return ms_err_set(err, MS_EFORMAT, "module %s: %u symbols, at most %u", m->name, n,
                          MS_MODSYMS_MAX);
    uint8_t *sym = malloc((size_t)n * MS_MODSYM_SIZE + 1), *str = NULL, *type = NULL;
    int rc = sym ? 0 : ms_err_set(err, MS_ENOMEM, "out of memory");
    if (rc == 0 && (rc = read(arg, symtab, sym, (size_t)n * MS_MODSYM_SIZE, NULL, err)) < 0)
        ms_err_prefix(err, "module %s's symbol table: ", m->name);
    size_t str_len = 0;
    if (rc == 0) {
        uint64_t end = 0;
        for (uint32_t i = 1; i < n; i++)
            if (ms_get32(sym + (size_t)i * MS_MODSYM_SIZE) > end)
                end = ms_get32(sym + (size_t)i * MS_MODSYM_SIZE);
        end += MS_MODSYM_NAME_MAX + 1;
        str_len = end < STRTAB_MAX ? (size_t)end : STRTAB_MAX;
        str = malloc(str_len);
        if (!str)
            rc = ms_err_set(err, MS_ENOMEM, "out of memory");
    }
    if (rc == 0) {
        /* the table's end is not recorded: read what can be read */
        size_t done = 0;
        if (read(arg, strtab, str, str_len, &done, NULL) < 0)
            str_len = done;
        if (typetab && (type = malloc(n ? n : 1)) && read(arg, typetab, type, n, NULL, NULL) < 0) {
            free(type);
            type = NULL;
        }
        size_t skipped = 0;
        rc = ms_modsyms_decode(sym, n, str, str_len, type, index, out, &skipped, err);
    }
    free(sym);
    free(str);
    free(type);
    return rc;
}

int ms_modsyms_read(const struct ms_modsym_layout *l, ms_read_fn read, void *arg,
                    struct ms_modsyms *out, struct ms_err *err)
{
    for (size_t i = 0; i < out->mods.count; i++) {
        const struct ms_module *m = &out->mods.modules[i];
        if (m->state == MS_MODULE_UNFORMED)
            continue;
        int rc = read_module(l, read, arg, m, (uint32_t)i, out, NULL);
        if (rc == MS_ENOMEM)
            return ms_err_set(err, rc, "out of memory for module symbols");
        if (rc < 0)
            out->bad++;
    }
    return 0;
}

int ms_modsyms_load(struct ms_kernel *k, struct ms_modsyms *out, struct ms_err *err)
{
    memset(out, 0, sizeof(*out));
    int rc = ms_modules_list(k, 0, &out->mods, err);
    if (rc < 0)
        return rc;
    static const char *const want[] = {"mod_kallsyms", NULL};
    rc = ms_kernel_need_types(k, want, err);
    struct ms_modsym_layout l = {0};
    const struct ms_typedb *db = &k->types;
    if (rc == 0)
        rc = ms_typedb_offset(db, "module", "kallsyms", &l.kallsyms, err);
    if (rc == 0)
        rc = ms_typedb_offset(db, "mod_kallsyms", "symtab", &l.symtab, err);
    if (rc == 0)
        rc = ms_typedb_offset(db, "mod_kallsyms", "num_symtab", &l.num_symtab, err);
    if (rc == 0)
        rc = ms_typedb_offset(db, "mod_kallsyms", "strtab", &l.strtab, err);
    if (rc < 0)
        return ms_err_prefix(err, "module symbols: ");
    l.has_typetab = ms_typedb_offset(db, "mod_kallsyms", "typetab", &l.typetab, NULL) == 0;
    return ms_modsyms_read(&l, ms_space_read_fn, k->space, out, err);
}

const struct ms_modsyms *ms_kernel_modsyms(struct ms_kernel *k)
{
    uint64_t now = k->phys->ram->generation;
    if (k->modsyms && k->modsyms_generation == now)
        return k->modsyms;
    if (!k->modsyms && !(k->modsyms = calloc(1, sizeof(*k->modsyms))))
        return NULL;
    ms_modsyms_free(k->modsyms);
    if (ms_modsyms_load(k, k->modsyms, NULL) < 0) /* keep what was read */
        k->modsyms->bad++;
    k->modsyms_generation = now;
    return k->modsyms;
}

int ms_modsyms_addr_extent(const struct ms_modsyms *s, uint64_t addr, uint64_t end,
                           const struct ms_modsym **sym, uint64_t *offset, uint64_t *size,
                           struct ms_err *err)
{
    int rc = ms_modsyms_addr(s, addr, sym, offset, err);
    if (rc < 0)
        return rc;
    const struct ms_module *m = &s->mods.modules[(*sym)->module];
    uint64_t next = m->base + m->size < end ? m->base + m->size : end;
    for (size_t i = 0; i < s->count; i++)
        if (s->syms[i].module == (*sym)->module && s->syms[i].addr > addr && s->syms[i].addr < next)
            next = s->syms[i].addr;
    *size = next > (*sym)->addr ? next - (*sym)->addr : 0;
    return 0;
}

void ms_modsyms_free(struct ms_modsyms *s)
{
    free(s->syms);
    free(s->names);
    ms_module_list_free(&s->mods);
    memset(s, 0, sizeof(*s));
}

int ms_modsyms_lookup(const struct ms_modsyms *s, const char *name, uint64_t *addr,
                      struct ms_err *err)
{
    for (size_t i = 0; i < s->count; i++)
        if (strcmp(s->names + s->syms[i].name, name) == 0) {
            *addr = s->syms[i].addr;
            return 0;
        }
    return ms_err_set(err, MS_ENOTFOUND, "no symbol %s in the kernel or its %zu modules", name,
                      s->mods.count);
}

int ms_modsyms_addr(const struct ms_modsyms *s, uint64_t addr, const struct ms_modsym **sym,
                    uint64_t *offset, struct ms_err *err)
{
    const struct ms_modsym *best = NULL;
    for (size_t i = 0; i < s->count; i++) {
        const struct ms_modsym *c = &s->syms[i];
        const struct ms_module *m = &s->mods.modules[c->module];
        if (addr < m->base || addr - m->base >= m->size) /* not this module's */
            continue;
        if (c->addr <= addr && (!best || c->addr > best->addr))
            best = c;
    }
    if (!best)
        return ms_err_set(err, MS_ENOTFOUND, "0x%llx is in no module's symbols",
                          (unsigned long long)addr);
    *sym = best;
    *offset = addr - best->addr;
    return 0;
}
