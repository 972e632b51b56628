#include "service.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "strbuf.h"

#define MAX_ITEMS 65536u
#define MAX_NAME 4096u
#define MAX_FORMAT 64u
#define MAX_CANDIDATES 1000u
#define READ_STEP (1u << 20) /* bytes a READ item adds to the response at a time */

void ms_service_init(struct ms_service *svc, struct ms_target *target, const char *token)
{
    memset(svc, 0, sizeof(*svc));
    svc->target = target;
    svc->token = token;
}

/* A string field as a C string; false (an error in item) when it does not
 * fit or holds a NUL. */
static bool get_name(const char *text, uint32_t n, char *out, size_t size, struct ms_err *item)
{
    if (n == 0 || n >= size || memchr(text, '\0', n)) {
        ms_err_set(item, MS_EINVAL, "a name of 1 to %zu bytes, without NUL, is needed", size - 1);
        return false;
    }
    memcpy(out, text, n);
    out[n] = '\0';
    return true;
}

static void put_text(struct ms_wbuf *out, int rc, const struct ms_strbuf *sb,
                     const struct ms_err *err)
{
    ms_wire_put_err(out, rc, err);
    ms_wbuf_str(out, ms_strbuf_str(sb), sb->len);
}

/* The common head of READ and TRANSLATE: handle, [u8 flag,] item count
 * (checked against the payload left: item_size bytes each). False on a
 * malformed payload (r->bad set). */
static bool items_head(struct ms_rbuf *r, bool has_flag, uint32_t *handle, uint8_t *flag,
                       uint32_t *count, unsigned item_size)
{
    ms_rbuf_u32(r, handle);
    if (has_flag)
        ms_rbuf_u8(r, flag);
    ms_rbuf_u32(r, count);
    if (r->bad || *count > MAX_ITEMS || (uint64_t)*count * item_size > r->len - r->pos)
        r->bad = true;
    return !r->bad;
}

static void op_read(struct ms_service *svc, struct ms_rbuf *r, struct ms_wbuf *out,
                    struct ms_err *item)
{
    uint32_t handle = 0, count = 0;
    if (!items_head(r, false, &handle, NULL, &count, 12))
        return;
    struct ms_stack st;
    int rc = ms_target_stack(svc->target, handle, &st, item);
    ms_wire_put_err(out, rc, item);
    if (rc)
        return;
    uint64_t budget = MS_WIRE_MAX_RESPONSE;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t addr = 0;
        uint32_t len = 0;
        ms_rbuf_u64(r, &addr);
        ms_rbuf_u32(r, &len);
        size_t done = 0;
        size_t at = out->len;
        ms_wbuf_u32(out, 0); /* status, patched below */
        ms_wbuf_u32(out, 0); /* bytes done, patched below */
        if (len > budget) {
            rc = ms_err_set(item, MS_ELIMIT,
                            "reads in one request exceed %u bytes; split the request",
                            MS_WIRE_MAX_RESPONSE);
        } else {
            /* In steps, so that a read that fails early never asks for
             * its whole length (up to 64 MiB) first. */
            while (!rc && done < len) {
                size_t step = len - done < READ_STEP ? len - done : READ_STEP, got = 0;
                size_t start = out->len;
                uint8_t *dst = ms_wbuf_grow(out, step); /* read straight into the response */
                if (!dst) {
                    rc = ms_err_set(item, MS_ENOMEM, "out of memory");
                    break;
                }
                rc = ms_target_read(svc->target, handle, addr + done, dst, step, &got, item);
                out->len = start + got;
                done += got;
            }
            budget -= done;
        }
        if (!out->failed) {
            uint32_t st32 = (uint32_t)rc, d32 = (uint32_t)done;
            memcpy(out->data + at, &st32, 4);
            memcpy(out->data + at + 4, &d32, 4);
        }
        if (rc)
            ms_wire_put_err_body(out, item);
    }
}

static void op_translate(struct ms_service *svc, struct ms_rbuf *r, struct ms_wbuf *out,
                         struct ms_err *item)
{
    uint32_t handle = 0, count = 0;
    uint8_t want_trace = 0;
    if (!items_head(r, true, &handle, &want_trace, &count, 8))
        return;
    struct ms_stack st;
    int rc = ms_target_stack(svc->target, handle, &st, item);
    ms_wire_put_err(out, rc, item);
    if (rc)
        return;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t addr = 0;
        ms_rbuf_u64(r, &addr);
        struct ms_xlat x;
        struct ms_trace tr;
        int status = 0;
        tr.count = 0;
        rc = ms_target_translate(svc->target, handle, 1, &addr, &x, &status,
                                 want_trace ? &tr : NULL, item);
        if (!rc)
            rc = status;
        ms_wire_put_err(out, rc, item);
        if (!rc) {
            ms_wbuf_u64(out, x.lower);
            ms_wbuf_u64(out, x.phys);
            ms_wbuf_u64(out, x.page_size);
            ms_wbuf_u32(out, x.perms);
        }
        if (want_trace) {
            ms_wbuf_u8(out, (uint8_t)tr.count);
            for (unsigned k = 0; k < tr.count; k++) {
                const struct ms_trace_entry *e = &tr.entries[k];
                ms_wbuf_u8(out, e->depth);
                ms_wbuf_u8(out, e->kind);
                ms_wbuf_u8(out, e->level);
                ms_wbuf_u16(out, e->index);
                ms_wbuf_u64(out, e->entry_addr);
                ms_wbuf_u64(out, e->entry_phys);
                ms_wbuf_u64(out, e->value);
            }
        }
    }
}

static void op_write(struct ms_service *svc, struct ms_rbuf *r, struct ms_wbuf *out,
                     struct ms_err *item)
{
    uint32_t handle = 0, n = 0;
    uint64_t addr = 0;
    const char *bytes = NULL;
    ms_rbuf_u32(r, &handle);
    ms_rbuf_u64(r, &addr);
    ms_rbuf_str(r, &bytes, &n);
    if (r->bad)
        return;
    const struct ms_target_info *info;
    ms_target_info(svc->target, &info, item);
    size_t done = 0;
    int rc;
    if (!info->writable) {
        rc = ms_err_set(item, MS_EPERM,
                        "this server is read-only (start it with --writable to allow writes)");
        ms_err_hint(item, MS_HINT_WRITABLE);
    } else {
        rc = ms_target_write(svc->target, handle, addr, bytes, n, &done, item);
    }
    ms_wire_put_err(out, rc, item);
    ms_wbuf_u32(out, (uint32_t)done);
}

static void op_report(struct ms_service *svc, uint16_t op, struct ms_rbuf *r, struct ms_wbuf *out,
                      struct ms_err *item)
{
    uint32_t handle = 0, n = 0;
    uint64_t a = 0, b = 0;
    const char *fmt_text = NULL;
    ms_rbuf_u32(r, &handle);
    ms_rbuf_u64(r, &a);
    if (op == MS_OP_X)
        ms_rbuf_str(r, &fmt_text, &n);
    if (op == MS_OP_PTDUMP)
        ms_rbuf_u64(r, &b);
    if (r->bad)
        return;
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    int rc;
    struct ms_x_state xs = {0};
    xs.next = a;
    if (op == MS_OP_X) {
        char f[MAX_FORMAT];
        if (n >= sizeof(f) || memchr(fmt_text, '\0', n)) {
            rc = ms_err_set(item, MS_EINVAL, "format too long");
        } else {
            memcpy(f, fmt_text, n);
            f[n] = '\0';
            rc = ms_target_x(svc->target, handle, f, a, &xs, &sb, item);
        }
    } else if (op == MS_OP_VTOP) {
        rc = ms_target_vtop(svc->target, handle, a, &sb, item);
    } else {
        rc = ms_target_ptdump(svc->target, handle, a, b, &sb, item);
    }
    put_text(out, rc, &sb, item);
    if (op == MS_OP_X)
        ms_wbuf_u64(out, xs.next);
    ms_strbuf_free(&sb);
}

static void op_dmesg(struct ms_service *svc, struct ms_rbuf *r, struct ms_wbuf *out,
                     struct ms_err *item)
{
    uint32_t handle = 0;
    uint8_t style = 0, level = 0;
    ms_rbuf_u32(r, &handle);
    ms_rbuf_u8(r, &style);
    ms_rbuf_u8(r, &level);
    if (r->bad)
        return;
    struct ms_dmesg_opts o = {(enum ms_dmesg_style)style, (int8_t)level};
    struct ms_dmesg_info info;
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    int rc = ms_target_dmesg(svc->target, handle, &o, &sb, &info, item);
    if (!rc && sb.len > MS_WIRE_MAX_RESPONSE)
        rc = ms_err_set(item, MS_ELIMIT, "the log's text (%zu bytes) exceeds %u bytes", sb.len,
                        MS_WIRE_MAX_RESPONSE);
    ms_wire_put_err(out, rc, item);
    if (!rc) {
        ms_wbuf_str(out, ms_strbuf_str(&sb), sb.len);
        ms_wbuf_u64(out, info.records);
        ms_wbuf_u64(out, info.bad);
        ms_wbuf_u64(out, info.lost);
        ms_wbuf_u64(out, info.incomplete);
        ms_wbuf_u64(out, info.truncated);
        ms_wbuf_u32(out, info.retries);
        ms_wbuf_u8(out, info.consistent);
        ms_wbuf_str(out, info.first_bad, strnlen(info.first_bad, sizeof(info.first_bad)));
        ms_wbuf_str(out, info.how, strnlen(info.how, sizeof(info.how)));
    }
    ms_strbuf_free(&sb);
}

/* The cursor is the client's: the server keeps nothing between calls. */
static void op_dmesg_next(struct ms_service *svc, struct ms_rbuf *r, struct ms_wbuf *out,
                          struct ms_err *item)
{
    uint32_t handle = 0;
    uint8_t style = 0, level = 0, started = 0;
    struct ms_dmesg_cursor cur;
    ms_rbuf_u32(r, &handle);
    ms_rbuf_u8(r, &style);
    ms_rbuf_u8(r, &level);
    ms_rbuf_u64(r, &cur.next_seq);
    ms_rbuf_u8(r, &started);
    ms_rbuf_u64(r, &cur.stall_seq);
    ms_rbuf_u32(r, &cur.stalls);
    if (r->bad)
        return;
    cur.started = started != 0;
    struct ms_dmesg_opts o = {(enum ms_dmesg_style)style, (int8_t)level};
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    uint64_t lost = 0;
    int rc = ms_target_dmesg_next(svc->target, handle, &o, &cur, &sb, &lost, item);
    if (!rc && sb.len > MS_WIRE_MAX_RESPONSE)
        rc = ms_err_set(item, MS_ELIMIT, "the new records' text (%zu bytes) exceeds %u bytes",
                        sb.len, MS_WIRE_MAX_RESPONSE);
    ms_wire_put_err(out, rc, item);
    if (!rc) {
        ms_wbuf_str(out, ms_strbuf_str(&sb), sb.len);
        ms_wbuf_u64(out, lost);
        ms_wbuf_u64(out, cur.next_seq);
        ms_wbuf_u8(out, cur.started);
        ms_wbuf_u64(out, cur.stall_seq);
        ms_wbuf_u32(out, cur.stalls);
    }
    ms_strbuf_free(&sb);
}

static void op_symbol(struct ms_service *svc, struct ms_rbuf *r, struct ms_wbuf *out,
                      struct ms_err *item)
{
    uint32_t handle = 0, n = 0;
    const char *text = NULL;
    ms_rbuf_u32(r, &handle);
    ms_rbuf_str(r, &text, &n);
    if (r->bad)
        return;
    char name[MAX_NAME];
    uint64_t addr = 0;
    int rc = get_name(text, n, name, sizeof(name), item) ? 0 : item->code;
    if (!rc)
        rc = ms_target_symbol(svc->target, handle, name, &addr, item);
    ms_wire_put_err(out, rc, item);
    if (!rc)
        ms_wbuf_u64(out, addr);
}

static void op_addrsym(struct ms_service *svc, struct ms_rbuf *r, struct ms_wbuf *out,
                       struct ms_err *item)
{
    uint32_t handle = 0;
    uint64_t addr = 0, off = 0;
    ms_rbuf_u32(r, &handle);
    ms_rbuf_u64(r, &addr);
    if (r->bad)
        return;
    struct ms_strbuf name;
    ms_strbuf_init(&name);
    int rc = ms_target_addrsym(svc->target, handle, addr, &name, &off, item);
    ms_wire_put_err(out, rc, item);
    if (!rc) {
        ms_wbuf_str(out, ms_strbuf_str(&name), name.len);
        ms_wbuf_u64(out, off);
    }
    ms_strbuf_free(&name);
}

static void op_info(struct ms_service *svc, struct ms_rbuf *r, struct ms_wbuf *out,
                    struct ms_err *item)
{
    (void)r;
    const struct ms_target_info *in;
    ms_target_info(svc->target, &in, item);
    ms_wire_put_err(out, 0, item);
    ms_wbuf_u8(out, in->writable);
    ms_wbuf_u64(out, in->ram_size);
    ms_wbuf_u64(out, in->ram_end);
    ms_wbuf_u32(out, in->nregions);
    for (unsigned i = 0; i < in->nregions; i++) {
        ms_wbuf_u64(out, in->regions[i].gpa);
        ms_wbuf_u64(out, in->regions[i].len);
        ms_wbuf_u64(out, in->regions[i].offset);
        ms_wbuf_u32(out, in->regions[i].source);
    }
    ms_wbuf_u32(out, in->nsources);
    for (unsigned i = 0; i < in->nsources; i++) {
        ms_wbuf_str(out, in->sources[i], strlen(in->sources[i]));
        ms_wbuf_u64(out, in->source_sizes[i]);
    }
    ms_wbuf_u32(out, in->ncpus);
    for (unsigned i = 0; i < in->ncpus; i++)
        ms_wire_put_cpu(out, &in->cpus[i]);
    ms_wbuf_str(out, in->vmcoreinfo ? in->vmcoreinfo : "", in->vmcoreinfo_len);
}

static void op_discover(struct ms_service *svc, struct ms_rbuf *r, struct ms_wbuf *out,
                        struct ms_err *item)
{
    uint32_t max = 0;
    ms_rbuf_u32(r, &max);
    if (r->bad)
        return;
    if (max > MAX_CANDIDATES)
        max = MAX_CANDIDATES;
    struct ms_candidate *c = calloc(max ? max : 1, sizeof(*c));
    unsigned found = 0;
    int rc = c ? ms_target_discover(svc->target, c, max, &found, item)
               : ms_err_set(item, MS_ENOMEM, "out of memory");
    ms_wire_put_err(out, rc, item);
    if (!rc) {
        uint32_t sent = found < max ? found : max;
        ms_wbuf_u32(out, found);
        ms_wbuf_u32(out, sent);
        for (uint32_t i = 0; i < sent; i++)
            ms_wire_put_candidate(out, &c[i]);
    }
    free(c);
}

static void op_types(struct ms_service *svc, struct ms_rbuf *r, struct ms_wbuf *out,
                     struct ms_err *item)
{
    uint32_t handle = 0, fn = 0, nn = 0;
    uint8_t what = 0;
    const char *ftext = NULL, *ntext = NULL;
    ms_rbuf_u32(r, &handle);
    ms_rbuf_u8(r, &what);
    ms_rbuf_str(r, &ftext, &fn);
    ms_rbuf_str(r, &ntext, &nn);
    if (r->bad)
        return;
    char flags[MAX_FORMAT] = "", name[MAX_NAME] = "";
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    int rc = 0;
    if (fn >= sizeof(flags) || memchr(ftext, '\0', fn))
        rc = ms_err_set(item, MS_EINVAL, "flags too long");
    else
        memcpy(flags, ftext, fn);
    if (!rc && what == MS_WIRE_TYPES_PTYPE)
        rc = get_name(ntext, nn, name, sizeof(name), item) ? 0 : item->code;
    if (!rc && what == MS_WIRE_TYPES_PTYPE)
        rc = ms_target_ptype(svc->target, handle, flags, name, &sb, item);
    else if (!rc && what == MS_WIRE_TYPES_SOURCE)
        rc = ms_target_types_source(svc->target, handle, &sb, item);
    else if (!rc)
        rc = ms_err_set(item, MS_EINVAL, "unknown types question %u", what);
    if (!rc && sb.len > MS_WIRE_MAX_RESPONSE)
        rc = ms_err_set(item, MS_ELIMIT, "the answer (%zu bytes) exceeds %u bytes", sb.len,
                        MS_WIRE_MAX_RESPONSE);
    put_text(out, rc, &sb, item);
    ms_strbuf_free(&sb);
}

static void op_print(struct ms_service *svc, struct ms_rbuf *r, struct ms_wbuf *out,
                     struct ms_err *item)
{
    uint32_t handle = 0, fn = 0, en = 0;
    const char *ftext = NULL, *etext = NULL;
    ms_rbuf_u32(r, &handle);
    ms_rbuf_str(r, &ftext, &fn);
    ms_rbuf_str(r, &etext, &en);
    if (r->bad)
        return;
    char fmt[MAX_FORMAT] = "", expr[MAX_NAME] = "";
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    int rc = 0;
    if (fn >= sizeof(fmt) || memchr(ftext, '\0', fn))
        rc = ms_err_set(item, MS_EINVAL, "print format too long");
    else
        memcpy(fmt, ftext, fn);
    if (!rc)
        rc = get_name(etext, en, expr, sizeof(expr), item) ? 0 : item->code;
    if (!rc)
        rc = ms_target_print(svc->target, handle, fmt, expr, &sb, item);
    put_text(out, rc, &sb, item);
    ms_strbuf_free(&sb);
}

static void op_tasks(struct ms_service *svc, struct ms_rbuf *r, struct ms_wbuf *out,
                     struct ms_err *item)
{
    uint32_t handle = 0;
    ms_rbuf_u32(r, &handle);
    if (r->bad)
        return;
    struct ms_task *tasks = NULL;
    size_t count = 0;
    uint64_t bad = 0;
    int rc = ms_target_tasks(svc->target, handle, &tasks, &count, &bad, item);
    /* A walk cut short sends what it read after its error. */
    ms_wire_put_err(out, rc, item);
    ms_wbuf_u64(out, bad);
    ms_wbuf_u32(out, (uint32_t)count);
    for (size_t i = 0; i < count; i++)
        ms_wire_put_task(out, &tasks[i]);
    free(tasks);
}

static void op_backtrace(struct ms_service *svc, struct ms_rbuf *r, struct ms_wbuf *out,
                         struct ms_err *item)
{
    uint32_t handle = 0, count = 0;
    if (!items_head(r, false, &handle, NULL, &count, 4))
        return;
    int32_t *pids = calloc(count ? count : 1, sizeof(*pids));
    for (uint32_t i = 0; pids && i < count; i++)
        ms_rbuf_u32(r, (uint32_t *)&pids[i]);
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    int rc = pids ? ms_target_backtrace(svc->target, handle, pids, count, &sb, item)
                  : ms_err_set(item, MS_ENOMEM, "out of memory");
    if (sb.len > MS_WIRE_MAX_RESPONSE) {
        sb.len = 0;
        rc = ms_err_set(item, MS_ELIMIT, "the traces exceed %u bytes: ask for fewer pids",
                        MS_WIRE_MAX_RESPONSE);
    }
    /* A failed report (an unknown pid) still sends the other tasks' text. */
    put_text(out, rc, &sb, item);
    ms_strbuf_free(&sb);
    free(pids);
}

static void op_cpu_backtrace(struct ms_service *svc, struct ms_rbuf *r, struct ms_wbuf *out,
                             struct ms_err *item)
{
    uint32_t handle = 0, cpu = 0;
    ms_rbuf_u32(r, &handle);
    ms_rbuf_u32(r, &cpu);
    if (r->bad)
        return;
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    int rc = ms_target_cpu_backtrace(svc->target, handle, cpu, &sb, item);
    if (sb.len > MS_WIRE_MAX_RESPONSE) {
        sb.len = 0;
        rc = ms_err_set(item, MS_ELIMIT, "the trace exceeds %u bytes", MS_WIRE_MAX_RESPONSE);
    }
    put_text(out, rc, &sb, item);
    ms_strbuf_free(&sb);
}

static void op_task_regs(struct ms_service *svc, struct ms_rbuf *r, struct ms_wbuf *out,
                         struct ms_err *item)
{
    uint32_t handle = 0;
    uint64_t task = 0;
    ms_rbuf_u32(r, &handle);
    ms_rbuf_u64(r, &task);
    if (r->bad)
        return;
    struct ms_task_regs tr;
    int rc = ms_target_task_regs(svc->target, handle, task, &tr, item);
    ms_wire_put_err(out, rc, item);
    if (rc)
        return;
    ms_wbuf_u8(out, (uint8_t)tr.source);
    ms_wbuf_u8(out, tr.on_cpu);
    ms_wbuf_u32(out, tr.cpu);
    ms_wire_put_regs(out, &tr.regs);
}

static void op_unwind_step(struct ms_service *svc, struct ms_rbuf *r, struct ms_wbuf *out,
                           struct ms_err *item)
{
    uint32_t handle = 0;
    struct ms_frame in, caller;
    ms_rbuf_u32(r, &handle);
    if (!ms_wire_get_frame(r, &in))
        return;
    int rc = ms_target_unwind_step(svc->target, handle, &in, &caller, item);
    ms_wire_put_err(out, rc < 0 ? rc : 0, item);
    if (rc < 0)
        return;
    ms_wbuf_u8(out, rc > 0); /* 1: the caller follows; 0: the stack's end */
    ms_wire_put_frame(out, &caller);
}

static void op_kernel(struct ms_service *svc, struct ms_rbuf *r, struct ms_wbuf *out,
                      struct ms_err *item)
{
    uint32_t handle = 0;
    ms_rbuf_u32(r, &handle);
    if (r->bad)
        return;
    struct ms_kernel_info ki;
    int rc = ms_target_kernel_info(svc->target, handle, &ki, item);
    ms_wire_put_err(out, rc, item);
    if (rc)
        return;
    ms_wbuf_str(out, ki.release, strlen(ki.release));
    ms_wbuf_u64(out, ki.slide);
    ms_wbuf_u64(out, ki.phys_base);
    ms_wbuf_u64(out, ki.root);
    ms_wbuf_u32(out, ki.levels);
    ms_wbuf_u64(out, ki.symbols);
    ms_wbuf_str(out, ki.symbols_from, strlen(ki.symbols_from));
    ms_wbuf_str(out, ki.how, strlen(ki.how));
}

static void op_modules(struct ms_service *svc, struct ms_rbuf *r, struct ms_wbuf *out,
                       struct ms_err *item)
{
    uint32_t handle = 0;
    ms_rbuf_u32(r, &handle);
    if (r->bad)
        return;
    struct ms_module_list l;
    int rc = ms_target_modules(svc->target, handle, &l, item);
    /* A walk cut short sends what it read after its error. */
    ms_wire_put_err(out, rc, item);
    ms_wbuf_u64(out, l.bad);
    ms_wbuf_u32(out, (uint32_t)l.count);
    for (size_t i = 0; i < l.count; i++)
        ms_wire_put_module(out, &l, &l.modules[i]);
    ms_module_list_free(&l);
}

static void file_list(struct ms_service *svc, uint32_t handle, const char *path,
                      struct ms_wbuf *out, struct ms_err *item)
{
    struct ms_dir d;
    int rc = ms_target_dir_list(svc->target, handle, path, &d, item);
    uint64_t bytes = 4;
    for (size_t i = 0; rc == 0 && i < d.count; i++)
        bytes += 24 + strlen(d.entries[i].name);
    if (rc == 0 && bytes > MS_WIRE_MAX_RESPONSE)
        rc = ms_err_set(item, MS_ELIMIT, "%zu entries exceed a response's %u bytes", d.count,
                        MS_WIRE_MAX_RESPONSE);
    ms_wire_put_err(out, rc, item);
    if (rc == 0) {
        ms_wbuf_u32(out, (uint32_t)d.count);
        for (size_t i = 0; i < d.count; i++) {
            const struct ms_dirent *e = &d.entries[i];
            ms_wbuf_str(out, e->name, strlen(e->name));
            ms_wbuf_u32(out, e->mode);
            ms_wbuf_u64(out, e->size);
            ms_wbuf_u64(out, e->inode);
        }
    }
    ms_dir_free(&d);
}

static void file_read(struct ms_service *svc, uint32_t handle, const char *path, uint64_t offset,
                      uint32_t len, struct ms_wbuf *out, struct ms_err *item)
{
    struct ms_file_chunk chunk = {0};
    uint8_t *data = NULL;
    int rc = 0;
    if (len > MS_FILE_READ_MAX)
        rc = ms_err_set(item, MS_EINVAL, "%u bytes at once: at most %u", len, MS_FILE_READ_MAX);
    if (!rc && len && !(data = malloc(len)))
        rc = ms_err_set(item, MS_ENOMEM, "out of memory");
    if (!rc)
        rc = ms_target_file_read(svc->target, handle, path, offset, data, len, &chunk, item);
    ms_wire_put_err(out, rc, item);
    if (!rc) {
        ms_wbuf_u64(out, chunk.size);
        ms_wbuf_u32(out, chunk.mode);
        ms_wbuf_u64(out, chunk.inode);
        ms_wbuf_u32(out, chunk.nholes);
        for (unsigned i = 0; i < chunk.nholes; i++) {
            ms_wbuf_u64(out, chunk.holes[i].offset);
            ms_wbuf_u64(out, chunk.holes[i].len);
        }
        ms_wbuf_str(out, data ? (const char *)data : "", (size_t)chunk.len);
    }
    free(data);
}

static void op_file(struct ms_service *svc, struct ms_rbuf *r, struct ms_wbuf *out,
                    struct ms_err *item)
{
    uint32_t handle = 0, n = 0, len = 0;
    uint8_t what = 0;
    uint64_t offset = 0;
    const char *text = NULL;
    ms_rbuf_u32(r, &handle);
    ms_rbuf_u8(r, &what);
    ms_rbuf_str(r, &text, &n);
    ms_rbuf_u64(r, &offset);
    ms_rbuf_u32(r, &len);
    if (r->bad)
        return;
    char path[MAX_NAME + 1];
    if (!get_name(text, n, path, sizeof(path), item))
        ms_wire_put_err(out, item->code, item);
    else if (what == MS_WIRE_FILE_READ)
        file_read(svc, handle, path, offset, len, out, item);
    else if (what == MS_WIRE_FILE_LIST)
        file_list(svc, handle, path, out, item);
    else
        ms_wire_put_err(out, ms_err_set(item, MS_EINVAL, "unknown file question %u", what), item);
}

static void op_maps(struct ms_service *svc, struct ms_rbuf *r, struct ms_wbuf *out,
                    struct ms_err *item)
{
    uint32_t handle = 0, pid = 0;
    ms_rbuf_u32(r, &handle);
    ms_rbuf_u32(r, &pid);
    if (r->bad)
        return;
    struct ms_vma_list l;
    int rc = ms_target_maps(svc->target, handle, (int32_t)pid, &l, item);
    /* as many areas as one response holds (57 bytes each and the name) */
    size_t n = 0, bytes = 64;
    while (n < l.count && bytes + 57 + l.vmas[n].name_len <= MS_WIRE_MAX_RESPONSE)
        bytes += 57 + l.vmas[n++].name_len;
    if (n < l.count && rc == 0)
        rc =
            ms_err_set(item, MS_ELIMIT, "the map of pid %u exceeds %u bytes: %zu of %zu areas sent",
                       pid, MS_WIRE_MAX_RESPONSE, n, l.count);
    /* A walk cut short sends what it read after its error. */
    ms_wire_put_err(out, rc, item);
    ms_wbuf_u64(out, l.bad);
    ms_wbuf_u32(out, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        ms_wire_put_vma(out, &l, &l.vmas[i]);
    ms_vma_list_free(&l);
}

static void op_space(struct ms_service *svc, struct ms_rbuf *r, struct ms_wbuf *out,
                     struct ms_err *item)
{
    struct ms_stack s;
    if (!ms_wire_get_stack(r, &s))
        return;
    ms_handle handle = 0;
    int rc = ms_target_space(svc->target, &s, &handle, item);
    ms_wire_put_err(out, rc, item);
    if (!rc)
        ms_wbuf_u32(out, handle);
}

static void op_stack(struct ms_service *svc, struct ms_rbuf *r, struct ms_wbuf *out,
                     struct ms_err *item)
{
    uint32_t handle = 0;
    if (!ms_rbuf_u32(r, &handle))
        return;
    struct ms_stack s;
    int rc = ms_target_stack(svc->target, handle, &s, item);
    ms_wire_put_err(out, rc, item);
    if (!rc)
        ms_wire_put_stack(out, &s);
}

static void op_flush(struct ms_service *svc, struct ms_rbuf *r, struct ms_wbuf *out,
                     struct ms_err *item)
{
    (void)r;
    ms_wire_put_err(out, ms_target_flush(svc->target, item), item);
}

static void op_stats(struct ms_service *svc, struct ms_rbuf *r, struct ms_wbuf *out,
                     struct ms_err *item)
{
    (void)r;
    struct ms_target_stats st;
    ms_target_stats(svc->target, &st, item);
    ms_wire_put_err(out, 0, item);
    ms_wbuf_u64(out, svc->requests);
    ms_wbuf_u64(out, svc->errors);
    ms_wbuf_u64(out, st.generation);
    ms_wbuf_u64(out, st.hits);
    ms_wbuf_u64(out, st.misses);
    ms_wbuf_u64(out, st.walks);
    ms_wbuf_u64(out, st.table_reads);
}

static void op_x(struct ms_service *svc, struct ms_rbuf *r, struct ms_wbuf *out,
                 struct ms_err *item)
{
    op_report(svc, MS_OP_X, r, out, item);
}

static void op_vtop(struct ms_service *svc, struct ms_rbuf *r, struct ms_wbuf *out,
                    struct ms_err *item)
{
    op_report(svc, MS_OP_VTOP, r, out, item);
}

static void op_ptdump(struct ms_service *svc, struct ms_rbuf *r, struct ms_wbuf *out,
                      struct ms_err *item)
{
    op_report(svc, MS_OP_PTDUMP, r, out, item);
}

/* Every op but HELLO (which authenticates the connection): decode the
 * payload, run it on the target, encode the answer. */
typedef void (*op_fn)(struct ms_service *svc, struct ms_rbuf *r, struct ms_wbuf *out,
                      struct ms_err *item);
static const op_fn ops[] = {
    [MS_OP_SPACE] = op_space,
    [MS_OP_READ] = op_read,
    [MS_OP_TRANSLATE] = op_translate,
    [MS_OP_FLUSH] = op_flush,
    [MS_OP_STATS] = op_stats,
    [MS_OP_WRITE] = op_write,
    [MS_OP_X] = op_x,
    [MS_OP_VTOP] = op_vtop,
    [MS_OP_PTDUMP] = op_ptdump,
    [MS_OP_DMESG] = op_dmesg,
    [MS_OP_SYMBOL] = op_symbol,
    [MS_OP_ADDRSYM] = op_addrsym,
    [MS_OP_INFO] = op_info,
    [MS_OP_DISCOVER] = op_discover,
    [MS_OP_TASKS] = op_tasks,
    [MS_OP_STACK] = op_stack,
    [MS_OP_TYPES] = op_types,
    [MS_OP_PRINT] = op_print,
    [MS_OP_KERNEL] = op_kernel,
    [MS_OP_DMESG_NEXT] = op_dmesg_next,
    [MS_OP_BACKTRACE] = op_backtrace,
    [MS_OP_TASK_REGS] = op_task_regs,
    [MS_OP_UNWIND_STEP] = op_unwind_step,
    [MS_OP_MODULES] = op_modules,
    [MS_OP_MAPS] = op_maps,
    [MS_OP_FILE] = op_file,
    [MS_OP_CPU_BACKTRACE] = op_cpu_backtrace,
};

int ms_service_request(struct ms_service *svc, struct ms_service_conn *conn,
                       const struct ms_wire_header *h, const uint8_t *payload, struct ms_wbuf *out,
                       struct ms_err *err)
{
    struct ms_rbuf r = {payload, h->length, 0, false};
    struct ms_err item;
    ms_err_clear(&item);
    svc->requests++;
    size_t frame = ms_wbuf_begin_frame(out);
    uint16_t op = h->op;

    if (svc->token && !conn->authed && op != MS_OP_HELLO)
        return ms_err_set(err, MS_EPERM, "request before HELLO on an authenticated server");

    switch (op) {
    case MS_OP_HELLO: {
        const char *tok = NULL;
        uint32_t n = 0;
        ms_rbuf_str(&r, &tok, &n);
        if (r.bad)
            break;
        if (svc->token && (n != strlen(svc->token) || memcmp(tok, svc->token, n) != 0))
            return ms_err_set(err, MS_EPERM, "bad token");
        conn->authed = true;
        const struct ms_target_info *info;
        ms_target_info(svc->target, &info, &item);
        ms_wire_put_err(out, 0, &item);
        ms_wbuf_u32(out, MS_WIRE_VERSION);
        ms_wbuf_u32(out, info->writable ? 1 : 0);
        ms_wbuf_u64(out, info->ram_size);
        break;
    }
    default:
        if (op < sizeof(ops) / sizeof(ops[0]) && ops[op]) {
            ops[op](svc, &r, out, &item);
            break;
        }
        ms_err_set(&item, MS_EINVAL, "unknown operation %u (client newer than server?)", op);
        ms_wire_put_err(out, MS_EINVAL, &item);
        break;
    }
    if (r.bad) {
        svc->errors++;
        out->len = frame;
        return ms_err_set(err, MS_EPROTO, "malformed payload for operation %u", op);
    }
    if (out->failed)
        return ms_err_set(err, MS_ENOMEM, "out of memory building a response");
    ms_wbuf_end_frame(out, frame, (uint16_t)(op | MS_WIRE_REPLY), h->id);
    return 0;
}
