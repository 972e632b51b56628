/* The target's public face: arguments checked once, then the backend's
 * operation; and what is built from other operations (describe, eval, x
 * with a caller's symbolizer), written once for both backends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "format.h"
#include "number.h"
#include "pte.h"
#include "report.h"
#include "space.h"
#include "strbuf.h"
#include "target_backend.h"

#define MS_VERSION "0.3.0"

const char *ms_version(void)
{
    return MS_VERSION;
}

/* Every entry point reports through a real ms_err, so that codes survive
 * callers that pass NULL. */
#define SCRATCH(err)                                                                               \
    struct ms_err scratch_##err;                                                                   \
    if (!err)                                                                                      \
    err = &scratch_##err

int ms_target_open(struct ms_target **out, const struct ms_target_opts *o, struct ms_err *err)
{
    SCRATCH(err);
    *out = NULL;
    int sources = !!o->ram + !!o->dump + !!o->connect;
    if (sources == 0)
        return ms_err_set(err, MS_EINVAL, "no memory given: a RAM file, a dump or a server");
    if (sources > 1)
        return ms_err_set(err, MS_EINVAL,
                          "give one memory source: a RAM file, a dump or a server, not several");
    return o->connect ? ms_target_open_remote(out, o, err) : ms_target_open_local(out, o, err);
}

void ms_target_close(struct ms_target *t)
{
    if (t)
        t->ops->close(t);
}

int ms_stack_check(const struct ms_stack *s, struct ms_err *err)
{
    if (s->second > MS_SECOND_NPT)
        return ms_err_set(err, MS_EINVAL, "unknown second stage kind %d", (int)s->second);
    if (s->first > MS_FIRST_KERNEL)
        return ms_err_set(err, MS_EINVAL, "unknown first stage kind %d", (int)s->first);
    if (s->second == MS_SECOND_NPT && s->second_levels != 4 && s->second_levels != 5)
        return ms_err_set(err, MS_EINVAL, "NPT depth must be 4 or 5, not %u", s->second_levels);
    if (s->first == MS_FIRST_CR3 && s->levels != 4 && s->levels != 5)
        return ms_err_set(err, MS_EINVAL, "paging depth must be 4 or 5, not %u", s->levels);
    return 0;
}

int ms_target_space(struct ms_target *t, const struct ms_stack *s, ms_handle *out,
                    struct ms_err *err)
{
    SCRATCH(err);
    int rc = ms_stack_check(s, err);
    return rc ? rc : t->ops->space(t, s, out, err);
}

int ms_target_stack(struct ms_target *t, ms_handle h, struct ms_stack *out, struct ms_err *err)
{
    SCRATCH(err);
    return t->ops->stack(t, h, out, err);
}

int ms_target_read(struct ms_target *t, ms_handle h, uint64_t addr, void *buf, size_t len,
                   size_t *done, struct ms_err *err)
{
    SCRATCH(err);
    size_t scratch_done;
    if (!done)
        done = &scratch_done;
    *done = 0;
    return len ? t->ops->read(t, h, addr, buf, len, done, err) : 0;
}

int ms_target_readv(struct ms_target *t, ms_handle h, unsigned count, const uint64_t *addrs,
                    const uint32_t *lens, void *const *bufs, int *statuses, size_t *dones,
                    struct ms_err *err)
{
    SCRATCH(err);
    return t->ops->readv(t, h, count, addrs, lens, bufs, statuses, dones, err);
}

int ms_target_write(struct ms_target *t, ms_handle h, uint64_t addr, const void *buf, size_t len,
                    size_t *done, struct ms_err *err)
{
    SCRATCH(err);
    size_t scratch_done;
    if (!done)
        done = &scratch_done;
    *done = 0;
    return len ? t->ops->write(t, h, addr, buf, len, done, err) : 0;
}

int ms_target_translate(struct ms_target *t, ms_handle h, unsigned count, const uint64_t *addrs,
                        struct ms_xlat *out, int *statuses, struct ms_trace *trace,
                        struct ms_err *err)
{
    SCRATCH(err);
    return t->ops->translate(t, h, count, addrs, out, statuses, trace, err);
}

/* x with a caller's symbolizer formats here, over the target's reads
 * through a one-page window (a server is asked a page at a time, not a
 * unit at a time). A read the window cannot hold goes as asked, so errors
 * say what they would say without the window. */
struct read_window {
    struct ms_target *t;
    ms_handle h;
    uint64_t base;
    size_t len;
    uint8_t buf[4096];
};

static bool window_has(const struct read_window *w, uint64_t addr, size_t len)
{
    return addr >= w->base && addr - w->base <= w->len && len <= w->len - (addr - w->base);
}

static int window_read(void *arg, uint64_t addr, void *buf, size_t len, size_t *done,
                       struct ms_err *err)
{
    struct read_window *w = arg;
    if (!window_has(w, addr, len)) {
        w->base = addr & ~(uint64_t)(sizeof(w->buf) - 1);
        w->len = 0;
        ms_target_read(w->t, w->h, w->base, w->buf, sizeof(w->buf), &w->len, NULL);
        if (!window_has(w, addr, len))
            return ms_target_read(w->t, w->h, addr, buf, len, done, err);
    }
    memcpy(buf, w->buf + (addr - w->base), len);
    if (done)
        *done = len;
    return 0;
}

int ms_target_x(struct ms_target *t, ms_handle h, const char *fmt, uint64_t addr,
                struct ms_x_state *st, struct ms_strbuf *out, struct ms_err *err)
{
    SCRATCH(err);
    struct ms_xfmt xf = {1, 'x', 'w'}; /* GDB's starting defaults */
    if (st && st->format)
        xf.format = st->format;
    if (st && st->size)
        xf.size = st->size;
    if (fmt && fmt[0] == '/')
        fmt++;
    int rc = ms_xfmt_parse(fmt ? fmt : "", &xf, err);
    if (rc)
        return rc;
    uint64_t next = addr;
    if (st && st->symbolize) {
        struct read_window *w = calloc(1, sizeof(*w));
        if (!w)
            return ms_err_set(err, MS_ENOMEM, "out of memory");
        w->t = t;
        w->h = h;
        rc = ms_format_x(&xf, addr, window_read, w, st->symbolize, st->symbolize_arg, out, &next,
                         err);
        free(w);
    } else {
        rc = t->ops->x(t, h, &xf, addr, out, &next, err);
    }
    if (st) {
        st->format = xf.format;
        st->size = xf.size;
        st->next = next;
    }
    return rc;
}

int ms_parse_xfmt(const char *text, uint64_t *count, char *format, char *size, struct ms_err *err)
{
    SCRATCH(err);
    struct ms_xfmt xf = {1, *format ? *format : 'x', *size ? *size : 'w'};
    int rc = ms_xfmt_parse(text[0] == '/' ? text + 1 : text, &xf, err);
    if (!rc) {
        *count = xf.count;
        *format = xf.format;
        *size = xf.size;
    }
    return rc;
}

void ms_describe_entry(enum ms_space_kind kind, unsigned level, uint64_t value, char *out,
                       size_t size)
{
    ms_pte_describe(kind == MS_SPACE_EPT ? MS_PTE_EPT : MS_PTE_X86, value, level, out, size);
}

int ms_target_vtop(struct ms_target *t, ms_handle h, uint64_t addr, struct ms_strbuf *out,
                   struct ms_err *err)
{
    SCRATCH(err);
    return t->ops->vtop(t, h, addr, out, err);
}

int ms_target_ptdump(struct ms_target *t, ms_handle h, uint64_t start, uint64_t end,
                     struct ms_strbuf *out, struct ms_err *err)
{
    SCRATCH(err);
    struct ms_stack s;
    int rc = t->ops->stack(t, h, &s, err);
    if (rc)
        return rc;
    if (s.first == MS_FIRST_NONE && s.second == MS_SECOND_NONE)
        return ms_err_set(err, MS_EINVAL,
                          "guest-physical memory has no page tables to dump: name a paging root "
                          "or a second stage");
    return t->ops->ptdump(t, h, start, end, out, err);
}

/* The spaces a stack describes, with no RAM under them: enough for what
 * reads only kinds, roots and depths (descriptions, permission letters). */
struct shape {
    struct ms_space phys, second, paging;
    struct ms_space *top;
};

static int shape_of(struct ms_target *t, ms_handle h, struct shape *sh, struct ms_err *err)
{
    struct ms_stack s;
    int rc = t->ops->stack(t, h, &s, err);
    if (rc)
        return rc;
    memset(sh, 0, sizeof(*sh));
    sh->phys.kind = MS_SPACE_PHYS;
    sh->top = &sh->phys;
    if (s.second != MS_SECOND_NONE) {
        sh->second.kind = s.second == MS_SECOND_EPT ? MS_SPACE_EPT : MS_SPACE_NPT;
        sh->second.root = s.second_root;
        sh->second.levels =
            s.second == MS_SECOND_EPT ? (((s.second_root >> 3) & 7) + 1) : s.second_levels;
        sh->second.lower = &sh->phys;
        sh->top = &sh->second;
    }
    if (s.first != MS_FIRST_NONE) {
        sh->paging.kind = MS_SPACE_PAGING;
        sh->paging.root = s.cr3;
        sh->paging.levels = s.levels;
        sh->paging.lower = sh->top;
        sh->top = &sh->paging;
    }
    return 0;
}

int ms_target_describe(struct ms_target *t, ms_handle h, struct ms_strbuf *out, struct ms_err *err)
{
    SCRATCH(err);
    struct shape sh;
    int rc = shape_of(t, h, &sh, err);
    if (!rc)
        ms_report_stack(sh.top, out);
    return rc;
}

int ms_target_canonical(struct ms_target *t, ms_handle h, uint64_t addr, uint64_t *out,
                        struct ms_err *err)
{
    SCRATCH(err);
    struct shape sh;
    int rc = shape_of(t, h, &sh, err);
    if (!rc)
        *out = ms_space_canonical(sh.top, addr);
    return rc;
}

int ms_target_perm_text(struct ms_target *t, ms_handle h, unsigned perms, char out[8],
                        struct ms_err *err)
{
    SCRATCH(err);
    struct shape sh;
    int rc = shape_of(t, h, &sh, err);
    if (!rc)
        ms_perm_text(sh.top, perms, out);
    return rc;
}

int ms_target_flush(struct ms_target *t, struct ms_err *err)
{
    SCRATCH(err);
    return t->ops->flush(t, err);
}

int ms_target_info(struct ms_target *t, const struct ms_target_info **out, struct ms_err *err)
{
    (void)err;
    *out = &t->info;
    return 0;
}

int ms_target_stats(struct ms_target *t, struct ms_target_stats *out, struct ms_err *err)
{
    SCRATCH(err);
    memset(out, 0, sizeof(*out));
    return t->ops->stats(t, out, err);
}

int ms_target_enumerate(struct ms_target *t, ms_handle h, uint64_t start, uint64_t end,
                        ms_mapping_fn fn, void *arg, uint64_t max_tables, uint64_t *bad_tables,
                        struct ms_err *err)
{
    SCRATCH(err);
    return t->ops->enumerate(t, h, start, end, fn, arg, max_tables, bad_tables, err);
}

int ms_target_discover(struct ms_target *t, struct ms_candidate *out, unsigned max, unsigned *count,
                       struct ms_err *err)
{
    SCRATCH(err);
    *count = 0;
    return t->ops->discover(t, out, max, count, err);
}

int ms_target_dmesg(struct ms_target *t, ms_handle h, const struct ms_dmesg_opts *opts,
                    struct ms_strbuf *text, struct ms_dmesg_info *info, struct ms_err *err)
{
    SCRATCH(err);
    if (opts->style > MS_DMESG_CRASH)
        return ms_err_set(err, MS_EINVAL, "unknown dmesg style %d", (int)opts->style);
    if (opts->max_level < -1 || opts->max_level > 7)
        return ms_err_set(err, MS_EINVAL, "dmesg level %d out of range (-1 or 0..7)",
                          opts->max_level);
    struct ms_dmesg_info scratch_info;
    memset(info ? info : &scratch_info, 0, sizeof(scratch_info));
    return t->ops->dmesg(t, h, opts, text, info ? info : &scratch_info, err);
}

int ms_target_dmesg_next(struct ms_target *t, ms_handle h, const struct ms_dmesg_opts *opts,
                         struct ms_dmesg_cursor *cursor, struct ms_strbuf *text, uint64_t *lost,
                         struct ms_err *err)
{
    SCRATCH(err);
    if (opts->style > MS_DMESG_CRASH)
        return ms_err_set(err, MS_EINVAL, "unknown dmesg style %d", (int)opts->style);
    if (opts->max_level < -1 || opts->max_level > 7)
        return ms_err_set(err, MS_EINVAL, "dmesg level %d out of range (-1 or 0..7)",
                          opts->max_level);
    uint64_t scratch_lost;
    if (!lost)
        lost = &scratch_lost;
    *lost = 0;
    return t->ops->dmesg_next(t, h, opts, cursor, text, lost, err);
}

int ms_target_symbol(struct ms_target *t, ms_handle h, const char *name, uint64_t *addr,
                     struct ms_err *err)
{
    SCRATCH(err);
    if (!name[0])
        return ms_err_set(err, MS_EINVAL, "an empty symbol name");
    return t->ops->symbol(t, h, name, addr, err);
}

int ms_target_addrsym(struct ms_target *t, ms_handle h, uint64_t addr, struct ms_strbuf *name,
                      uint64_t *offset, struct ms_err *err)
{
    SCRATCH(err);
    return t->ops->addrsym(t, h, addr, name, offset, err);
}

int ms_target_kernel_info(struct ms_target *t, ms_handle h, struct ms_kernel_info *out,
                          struct ms_err *err)
{
    SCRATCH(err);
    memset(out, 0, sizeof(*out));
    return t->ops->kernel_info(t, h, out, err);
}

int ms_target_types_source(struct ms_target *t, ms_handle h, struct ms_strbuf *out,
                           struct ms_err *err)
{
    SCRATCH(err);
    return t->ops->types(t, h, MS_TYPES_SOURCE, "", "", out, err);
}

int ms_target_ptype(struct ms_target *t, ms_handle h, const char *flags, const char *type,
                    struct ms_strbuf *out, struct ms_err *err)
{
    SCRATCH(err);
    if (!flags)
        flags = "";
    if (strspn(flags, "o") != strlen(flags))
        return ms_err_set(err, MS_EINVAL, "ptype/%s: only /o (offsets) is known", flags);
    if (!type || !type[0])
        return ms_err_set(err, MS_EINVAL, "ptype needs a type name");
    return t->ops->types(t, h, MS_TYPES_PTYPE, flags, type, out, err);
}

int ms_target_print(struct ms_target *t, ms_handle h, const char *fmt, const char *expr,
                    struct ms_strbuf *out, struct ms_err *err)
{
    SCRATCH(err);
    if (!fmt)
        fmt = "";
    if (!expr || !expr[0])
        return ms_err_set(err, MS_EINVAL, "print needs an expression");
    if (strlen(fmt) > 16)
        return ms_err_set(err, MS_EINVAL, "print/%.16s...: not a format", fmt);
    return t->ops->print(t, h, fmt, expr, out, err);
}

int ms_target_tasks(struct ms_target *t, ms_handle h, struct ms_task **tasks, size_t *count,
                    uint64_t *bad, struct ms_err *err)
{
    SCRATCH(err);
    *tasks = NULL;
    *count = 0;
    uint64_t scratch_bad;
    if (!bad)
        bad = &scratch_bad;
    *bad = 0;
    return t->ops->tasks(t, h, tasks, count, bad, err);
}

int ms_target_modules(struct ms_target *t, ms_handle h, struct ms_module_list *out,
                      struct ms_err *err)
{
    SCRATCH(err);
    memset(out, 0, sizeof(*out));
    return t->ops->modules(t, h, out, err);
}

int ms_target_file_read(struct ms_target *t, ms_handle h, const char *path, uint64_t offset,
                        void *buf, size_t len, struct ms_file_chunk *out, struct ms_err *err)
{
    SCRATCH(err);
    memset(out, 0, sizeof(*out));
    if (!path)
        return ms_err_set(err, MS_EINVAL, "no path");
    if (len > MS_FILE_READ_MAX)
        return ms_err_set(err, MS_EINVAL, "%zu bytes at once: at most %u", len, MS_FILE_READ_MAX);
    if (len && !buf)
        return ms_err_set(err, MS_EINVAL, "%zu bytes but no buffer", len);
    return t->ops->file_read(t, h, path, offset, buf, len, out, err);
}

int ms_target_dir_list(struct ms_target *t, ms_handle h, const char *path, struct ms_dir *out,
                       struct ms_err *err)
{
    SCRATCH(err);
    memset(out, 0, sizeof(*out));
    if (!path)
        return ms_err_set(err, MS_EINVAL, "no path");
    int rc = t->ops->dir_list(t, h, path, out, err);
    if (rc < 0)
        ms_dir_free(out); /* a listing cut short is not a listing */
    return rc;
}

int ms_target_maps(struct ms_target *t, ms_handle h, int32_t pid, struct ms_vma_list *out,
                   struct ms_err *err)
{
    SCRATCH(err);
    memset(out, 0, sizeof(*out));
    if (pid < 0)
        return ms_err_set(err, MS_EINVAL, "pid %d is negative", pid);
    return t->ops->maps(t, h, pid, out, err);
}

int ms_target_backtrace(struct ms_target *t, ms_handle h, const int32_t *pids, size_t npids,
                        struct ms_strbuf *out, struct ms_err *err)
{
    SCRATCH(err);
    if (npids && !pids)
        return ms_err_set(err, MS_EINVAL, "%zu pids but no array", npids);
    for (size_t i = 0; i < npids; i++)
        if (pids[i] < 0)
            return ms_err_set(err, MS_EINVAL, "pid %d is negative", pids[i]);
    return t->ops->backtrace(t, h, pids, npids, out, err);
}

int ms_target_cpu_backtrace(struct ms_target *t, ms_handle h, uint32_t cpu, struct ms_strbuf *out,
                            struct ms_err *err)
{
    SCRATCH(err);
    return t->ops->cpu_backtrace(t, h, cpu, out, err);
}

int ms_target_task_regs(struct ms_target *t, ms_handle h, uint64_t task, struct ms_task_regs *out,
                        struct ms_err *err)
{
    SCRATCH(err);
    memset(out, 0, sizeof(*out));
    return t->ops->task_regs(t, h, task, out, err);
}

int ms_target_unwind_step(struct ms_target *t, ms_handle h, const struct ms_frame *in,
                          struct ms_frame *out, struct ms_err *err)
{
    SCRATCH(err);
    memset(out, 0, sizeof(*out));
    return t->ops->unwind_step(t, h, in, out, err);
}

int ms_target_export_vmcore(struct ms_target *t, ms_handle h, const char *path,
                            ms_progress_fn progress, void *progress_arg,
                            struct ms_vmcore_info *info, struct ms_err *err)
{
    SCRATCH(err);
    struct ms_vmcore_info scratch_info;
    if (!info)
        info = &scratch_info;
    memset(info, 0, sizeof(*info));
    if (!path || !path[0])
        return ms_err_set(err, MS_EINVAL, "no output file for the vmcore");
    if (!t->ops->export_vmcore)
        return ms_err_set(err, MS_EINVAL,
                          "vmcore export is not offered over a server yet: run it on the RAM "
                          "file");
    return t->ops->export_vmcore(t, h, path, progress, progress_arg, info, err);
}

int ms_target_set_symbols(struct ms_target *t, const char *path, struct ms_err *err)
{
    SCRATCH(err);
    return t->ops->set_symbols(t, path, err);
}

/* Names in an expression: the kernel's symbols. The first lookup's error
 * is kept, so a failure says why (no such symbol in which file, no kernel
 * found, a server gone), not only which name. */
struct eval_ctx {
    struct ms_target *t;
    ms_handle h;
    char name[128];
    struct ms_err why;
};

static int eval_name(void *arg, const char *name, uint64_t *value)
{
    struct eval_ctx *c = arg;
    struct ms_err e;
    ms_err_clear(&e);
    int rc = ms_target_symbol(c->t, c->h, name, value, &e);
    if (rc && !c->why.code) {
        c->why = e;
        snprintf(c->name, sizeof(c->name), "%s", name);
    }
    return rc;
}

int ms_target_eval(struct ms_target *t, ms_handle h, const char *expr, uint64_t *value,
                   struct ms_err *err)
{
    SCRATCH(err);
    struct eval_ctx c = {t, h, "", {0}};
    int rc = ms_parse_expr(expr, eval_name, &c, value, err);
    if (rc == MS_ENOTFOUND && c.why.code) {
        *err = c.why;
        if (!strstr(err->msg, c.name))
            ms_err_prefix(err, "no symbol \"%s\": ", c.name);
        return err->code;
    }
    return rc;
}
