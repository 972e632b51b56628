#include "service.h"

#include <stdlib.h>
#include <string.h>

#include "format.h"
#include "kernel.h"
#include "report.h"
#include "strbuf.h"

#define MAX_ITEMS 65536u
#define MAX_SYMBOL_NAME 4096u
#define BANNER_CHECK 64 /* bytes of linux_banner compared after a FLUSH */

int ms_service_init(struct ms_service *svc, struct ms_ram *ram, bool writable, const char *token,
                    const char *symbols, struct ms_err *err)
{
    memset(svc, 0, sizeof(*svc));
    svc->ram = ram;
    svc->writable = writable;
    svc->token = token;
    svc->symbols = symbols;
    if (writable && !ram->writable)
        return ms_err_set(err, MS_EINVAL, "a writable server needs RAM opened writable");
    return ms_space_phys(&svc->phys, ram, err);
}

void ms_service_fini(struct ms_service *svc)
{
    for (unsigned i = 0; i < svc->nkernels; i++) {
        ms_kernel_close(svc->kernels[i]->k);
        free(svc->kernels[i]);
    }
    for (unsigned i = 0; i < svc->nstacks; i++) {
        if (svc->stacks[i].top != svc->stacks[i].second)
            ms_space_free(svc->stacks[i].top);
        ms_space_free(svc->stacks[i].second);
    }
    ms_space_free(svc->phys);
    memset(svc, 0, sizeof(*svc));
}

static void put_status(struct ms_wbuf *out, int status, const struct ms_err *err)
{
    ms_wbuf_u32(out, (uint32_t)status);
    if (status)
        ms_wbuf_str(out, err->msg, strlen(err->msg));
}

static int stack_for(struct ms_service *svc, const struct ms_wire_stack *d, uint32_t *handle,
                     struct ms_err *err)
{
    for (unsigned i = 0; i < svc->nstacks; i++) {
        const struct ms_wire_stack *o = &svc->stacks[i].desc;
        if (o->second == d->second && o->second_levels == d->second_levels &&
            o->has_cr3 == d->has_cr3 && o->levels == d->levels &&
            o->second_root == d->second_root && o->cr3 == d->cr3) {
            *handle = i + 1;
            return 0;
        }
    }
    if (svc->nstacks >= MS_SERVICE_MAX_SPACES)
        return ms_err_set(err, MS_ELIMIT, "the server holds %d address spaces already",
                          MS_SERVICE_MAX_SPACES);
    struct ms_service_stack st = {*d, NULL, svc->phys};
    int rc = 0;
    if (d->second == 1)
        rc = ms_space_ept(&st.second, svc->phys, d->second_root, err);
    else if (d->second == 2)
        rc = ms_space_npt(&st.second, svc->phys, d->second_root, d->second_levels, err);
    else if (d->second != 0)
        rc = ms_err_set(err, MS_EINVAL, "unknown second stage kind %u", d->second);
    if (rc)
        return rc;
    if (st.second)
        st.top = st.second;
    if (d->has_cr3) {
        struct ms_space *pg;
        rc = ms_space_paging(&pg, st.top, d->cr3, d->levels, err);
        if (rc) {
            ms_space_free(st.second);
            return rc;
        }
        st.top = pg;
    }
    if (!d->has_cr3 && !st.second) {
        *handle = 0;
        return 0;
    }
    svc->stacks[svc->nstacks++] = st;
    *handle = svc->nstacks;
    return 0;
}

static struct ms_space *space_of(struct ms_service *svc, uint32_t handle, struct ms_err *err)
{
    if (handle == 0)
        return svc->phys;
    if (handle > svc->nstacks) {
        ms_err_set(err, MS_EINVAL, "no address space with handle %u", handle);
        return NULL;
    }
    return svc->stacks[handle - 1].top;
}

/* EPT's walk length is in the EPTP: only NPT's depth tells two spaces apart. */
static bool same_space(const struct ms_wire_stack *a, const struct ms_wire_stack *b)
{
    return a->second == b->second && a->second_root == b->second_root &&
           (a->second != 2 || a->second_levels == b->second_levels);
}

/* Remembers the bytes that identify this boot (see ms_service_kernel). */
static void kernel_note_check(struct ms_service_kernel *e)
{
    const struct ms_kernel *k = e->k;
    struct ms_xlat x;
    uint64_t va;
    size_t want = 0, done = 0;
    e->check_va = 0;
    if (k->vmcoreinfo && k->vmcoreinfo->found_at != UINT64_MAX) {
        e->check_pa = k->vmcoreinfo->found_at;
        want = k->vmcoreinfo->len < sizeof(e->check) ? k->vmcoreinfo->len : sizeof(e->check);
    } else if (!k->vmcoreinfo && ms_kernel_symbol(k, "linux_banner", &va, NULL) == 0 &&
               ms_space_translate(k->space, va, &x, NULL, NULL) == 0) {
        e->check_va = va;
        e->check_pa = x.lower;
        want = BANNER_CHECK;
    }
    if (want)
        ms_space_read(e->phys, e->check_pa, e->check, want, &done, NULL);
    e->check_len = done;
}

static bool kernel_unchanged(struct ms_service_kernel *e)
{
    uint8_t now[MS_SERVICE_CHECK_MAX];
    struct ms_xlat x;
    if (!e->check_len)
        return true;
    if (ms_space_read(e->phys, e->check_pa, now, e->check_len, NULL, NULL) < 0 ||
        memcmp(now, e->check, e->check_len) != 0)
        return false;
    return !e->check_va || (ms_space_translate(e->k->space, e->check_va, &x, NULL, NULL) == 0 &&
                            x.lower == e->check_pa);
}

/* The kernel in the guest-physical space under handle (the stack's second
 * stage, else RAM): the cached one unless the guest rebooted, else opened
 * now (the slow part: a RAM scan for VMCOREINFO). Failures are not kept:
 * the guest may still be booting. */
static int kernel_for(struct ms_service *svc, uint32_t handle, struct ms_service_kernel **out,
                      struct ms_err *err)
{
    struct ms_wire_stack key;
    memset(&key, 0, sizeof(key));
    struct ms_space *phys = svc->phys;
    if (handle) {
        if (!space_of(svc, handle, err))
            return err->code;
        const struct ms_service_stack *st = &svc->stacks[handle - 1];
        if (st->second) {
            phys = st->second;
            key.second = st->desc.second;
            key.second_levels = st->desc.second_levels;
            key.second_root = st->desc.second_root;
        }
    }
    struct ms_service_kernel *e = NULL;
    for (unsigned i = 0; i < svc->nkernels && !e; i++)
        if (same_space(&svc->kernels[i]->key, &key))
            e = svc->kernels[i];
    if (!e) {
        e = calloc(1, sizeof(*e));
        if (!e)
            return ms_err_set(err, MS_ENOMEM, "out of memory");
        e->key = key;
        e->phys = phys;
        svc->kernels[svc->nkernels++] = e;
    }
    if (e->k && e->generation != svc->ram->generation && !kernel_unchanged(e)) {
        ms_kernel_close(e->k);
        e->k = NULL;
        e->kallsyms_tried = false;
    }
    e->generation = svc->ram->generation;
    if (!e->k) {
        struct ms_kernel_opts o = {0};
        o.symbols = svc->symbols;
        /* A dump's VMCOREINFO note describes the outer guest's kernel. */
        if (!key.second && svc->ram->vmcoreinfo) {
            o.vmcoreinfo = svc->ram->vmcoreinfo;
            o.vmcoreinfo_len = svc->ram->vmcoreinfo_len;
        }
        int rc = ms_kernel_open(&e->k, e->phys, &o, err);
        if (rc < 0)
            return rc;
        kernel_note_check(e);
    }
    *out = e;
    return 0;
}

/* The kernel with symbols: the symbol file's, else its own kallsyms (read
 * once per boot), as `memsrv sym` does. */
static int kernel_syms(struct ms_service *svc, uint32_t handle, struct ms_kernel **k,
                       struct ms_err *err)
{
    struct ms_service_kernel *e;
    int rc = kernel_for(svc, handle, &e, err);
    if (rc < 0)
        return rc;
    if (!e->k->syms && !e->kallsyms_tried) {
        e->kallsyms_tried = true;
        ms_err_clear(&e->kallsyms_err);
        ms_kernel_load_kallsyms(e->k, 0, &e->kallsyms_err);
    }
    if (!e->k->syms) {
        *err = e->kallsyms_err;
        return err->code;
    }
    *k = e->k;
    return 0;
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
    struct ms_service_kernel *e = NULL;
    struct ms_printk_log log;
    struct ms_strbuf sb;
    ms_printk_log_init(&log);
    ms_strbuf_init(&sb);
    int rc = 0;
    if (style > MS_DMESG_CRASH)
        rc = ms_err_set(item, MS_EINVAL, "unknown dmesg style %u", style);
    else if (o.max_level < -1 || o.max_level > 7)
        rc = ms_err_set(item, MS_EINVAL, "dmesg level %d out of range (-1 or 0..7)", o.max_level);
    if (!rc)
        rc = kernel_for(svc, handle, &e, item);
    if (!rc && ms_kernel_dmesg(e->k, &log, item) < 0)
        rc = item->code;
    if (!rc) {
        ms_dmesg_format(&log, &o, &sb);
        if (sb.failed)
            rc = ms_err_set(item, MS_ENOMEM, "out of memory formatting the log");
        else if (sb.len > MS_WIRE_MAX_RESPONSE)
            rc = ms_err_set(item, MS_ELIMIT, "the log's text (%zu bytes) exceeds %u bytes", sb.len,
                            MS_WIRE_MAX_RESPONSE);
    }
    put_status(out, rc, item);
    if (!rc) {
        ms_wbuf_str(out, ms_strbuf_str(&sb), sb.len);
        ms_wbuf_u64(out, log.count);
        ms_wbuf_u64(out, log.bad);
        ms_wbuf_u64(out, log.lost);
        ms_wbuf_u64(out, log.incomplete);
        ms_wbuf_u64(out, log.truncated);
        ms_wbuf_u32(out, log.retries);
        ms_wbuf_u8(out, log.consistent);
        ms_wbuf_str(out, log.first_bad, strnlen(log.first_bad, sizeof(log.first_bad)));
        ms_wbuf_str(out, e->k->how, strnlen(e->k->how, sizeof(e->k->how)));
    }
    ms_strbuf_free(&sb);
    ms_printk_log_free(&log);
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
    char name[MAX_SYMBOL_NAME];
    struct ms_kernel *k = NULL;
    uint64_t addr = 0;
    int rc = 0;
    if (n == 0 || n >= sizeof(name) || memchr(text, '\0', n))
        rc = ms_err_set(item, MS_EINVAL, "a symbol name of 1 to %u bytes, without NUL, is needed",
                        MAX_SYMBOL_NAME - 1);
    if (!rc) {
        memcpy(name, text, n);
        name[n] = '\0';
        rc = kernel_syms(svc, handle, &k, item);
    }
    if (!rc)
        rc = ms_kernel_symbol(k, name, &addr, item);
    put_status(out, rc, item);
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
    struct ms_kernel *k = NULL;
    const struct ms_symbol *sym = NULL;
    int rc = kernel_syms(svc, handle, &k, item);
    if (!rc)
        rc = ms_symtab_addr(k->syms, addr, &sym, &off, item);
    put_status(out, rc, item);
    if (!rc) {
        ms_wbuf_str(out, sym->name, strlen(sym->name));
        ms_wbuf_u64(out, off);
    }
}

static int read_fn(void *arg, uint64_t addr, void *buf, size_t len, size_t *done,
                   struct ms_err *err)
{
    return ms_space_read(arg, addr, buf, len, done, err);
}

/* The common head of READ and TRANSLATE: handle, [u8 flag,] item count
 * (checked against the payload left: item_size bytes each). Writes the
 * request's status; NULL when there is nothing more to do (r->bad set for a
 * malformed payload). */
static struct ms_space *begin_items(struct ms_service *svc, struct ms_rbuf *r, bool has_flag,
                                    uint8_t *flag, uint32_t *count, unsigned item_size,
                                    struct ms_wbuf *out, struct ms_err *item)
{
    uint32_t handle = 0;
    ms_rbuf_u32(r, &handle);
    if (has_flag)
        ms_rbuf_u8(r, flag);
    ms_rbuf_u32(r, count);
    if (r->bad || *count > MAX_ITEMS || (uint64_t)*count * item_size > r->len - r->pos) {
        r->bad = true;
        return NULL;
    }
    struct ms_space *sp = space_of(svc, handle, item);
    put_status(out, sp ? 0 : item->code, item);
    return sp;
}

static void put_text(struct ms_wbuf *out, int rc, const struct ms_strbuf *sb,
                     const struct ms_err *err)
{
    put_status(out, rc, err);
    const char *s = ms_strbuf_str(sb);
    ms_wbuf_str(out, s, strlen(s));
}

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
        put_status(out, 0, &item);
        ms_wbuf_u32(out, MS_WIRE_VERSION);
        ms_wbuf_u32(out, svc->writable ? 1 : 0);
        ms_wbuf_u64(out, ms_ram_size(svc->ram));
        break;
    }
    case MS_OP_SPACE: {
        struct ms_wire_stack d;
        memset(&d, 0, sizeof(d));
        ms_rbuf_u8(&r, &d.second);
        ms_rbuf_u8(&r, &d.second_levels);
        ms_rbuf_u8(&r, &d.has_cr3);
        ms_rbuf_u8(&r, &d.levels);
        ms_rbuf_u64(&r, &d.second_root);
        ms_rbuf_u64(&r, &d.cr3);
        if (r.bad)
            break;
        uint32_t handle = 0;
        int rc = stack_for(svc, &d, &handle, &item);
        put_status(out, rc, &item);
        if (!rc)
            ms_wbuf_u32(out, handle);
        break;
    }
    case MS_OP_READ: {
        uint32_t count = 0;
        struct ms_space *sp = begin_items(svc, &r, false, NULL, &count, 12, out, &item);
        if (!sp)
            break;
        uint64_t budget = MS_WIRE_MAX_RESPONSE;
        for (uint32_t i = 0; i < count; i++) {
            uint64_t addr = 0;
            uint32_t len = 0;
            ms_rbuf_u64(&r, &addr);
            ms_rbuf_u32(&r, &len);
            int rc = 0;
            size_t done = 0;
            size_t at = out->len;
            ms_wbuf_u32(out, 0); /* status, patched below */
            ms_wbuf_u32(out, 0); /* bytes done, patched below */
            if (len > budget) {
                rc = ms_err_set(&item, MS_ELIMIT,
                                "reads in one request exceed %u bytes; split the request",
                                MS_WIRE_MAX_RESPONSE);
            } else {
                size_t start = out->len;
                uint8_t *dst = ms_wbuf_grow(out, len); /* read straight into the response */
                if (!dst) {
                    rc = ms_err_set(&item, MS_ENOMEM, "out of memory");
                } else {
                    rc = ms_space_read(sp, addr, dst, len, &done, &item);
                    out->len = start + done;
                    budget -= done;
                }
            }
            if (!out->failed) {
                uint32_t st = (uint32_t)rc, d32 = (uint32_t)done;
                memcpy(out->data + at, &st, 4);
                memcpy(out->data + at + 4, &d32, 4);
            }
            if (rc)
                ms_wbuf_str(out, item.msg, strlen(item.msg));
        }
        break;
    }
    case MS_OP_TRANSLATE: {
        uint32_t count = 0;
        uint8_t want_trace = 0;
        struct ms_space *sp = begin_items(svc, &r, true, &want_trace, &count, 8, out, &item);
        if (!sp)
            break;
        for (uint32_t i = 0; i < count; i++) {
            uint64_t addr = 0;
            ms_rbuf_u64(&r, &addr);
            struct ms_xlat x;
            struct ms_trace tr;
            tr.count = 0;
            int rc = ms_space_translate(sp, addr, &x, want_trace ? &tr : NULL, &item);
            put_status(out, rc, &item);
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
        break;
    }
    case MS_OP_FLUSH: {
        int rc = ms_ram_refresh(svc->ram, &item);
        put_status(out, rc, &item);
        break;
    }
    case MS_OP_STATS: {
        struct ms_space_stats total = {0, 0, 0, 0};
        for (unsigned i = 0; i < svc->nstacks; i++)
            for (struct ms_space *s = svc->stacks[i].top; s && s != svc->phys; s = s->lower) {
                total.hits += s->stats.hits;
                total.misses += s->stats.misses;
                total.walks += s->stats.walks;
                total.table_reads += s->stats.table_reads;
            }
        put_status(out, 0, &item);
        ms_wbuf_u64(out, svc->requests);
        ms_wbuf_u64(out, svc->errors);
        ms_wbuf_u64(out, svc->ram->generation);
        ms_wbuf_u64(out, total.hits);
        ms_wbuf_u64(out, total.misses);
        ms_wbuf_u64(out, total.walks);
        ms_wbuf_u64(out, total.table_reads);
        break;
    }
    case MS_OP_WRITE: {
        uint32_t handle = 0, n = 0;
        uint64_t addr = 0;
        const char *bytes = NULL;
        ms_rbuf_u32(&r, &handle);
        ms_rbuf_u64(&r, &addr);
        ms_rbuf_str(&r, &bytes, &n);
        if (r.bad)
            break;
        struct ms_space *sp = space_of(svc, handle, &item);
        int rc;
        size_t done = 0;
        if (!sp)
            rc = item.code;
        else if (!svc->writable)
            rc = ms_err_set(&item, MS_EPERM,
                            "this server is read-only (start it with --writable to allow writes)");
        else
            rc = ms_space_write(sp, addr, bytes, n, &done, &item);
        put_status(out, rc, &item);
        ms_wbuf_u32(out, (uint32_t)done);
        break;
    }
    case MS_OP_X:
    case MS_OP_VTOP:
    case MS_OP_PTDUMP: {
        uint32_t handle = 0, n = 0;
        uint64_t a = 0, b = 0;
        const char *fmt_text = NULL;
        ms_rbuf_u32(&r, &handle);
        ms_rbuf_u64(&r, &a);
        if (op == MS_OP_X)
            ms_rbuf_str(&r, &fmt_text, &n);
        if (op == MS_OP_PTDUMP)
            ms_rbuf_u64(&r, &b);
        if (r.bad)
            break;
        struct ms_strbuf sb;
        ms_strbuf_init(&sb);
        struct ms_space *sp = space_of(svc, handle, &item);
        int rc = sp ? 0 : item.code;
        if (!rc && op == MS_OP_X) {
            char f[64];
            struct ms_xfmt xf = {1, 'x', 'w'};
            if (n >= sizeof(f)) {
                rc = ms_err_set(&item, MS_EINVAL, "format too long");
            } else {
                memcpy(f, fmt_text, n);
                f[n] = '\0';
                rc = ms_xfmt_parse(f, &xf, &item);
            }
            if (!rc)
                rc = ms_format_x(&xf, a, read_fn, sp, NULL, NULL, &sb, NULL, &item);
        } else if (!rc && op == MS_OP_VTOP) {
            rc = ms_report_vtop(sp, a, &sb, &item);
        } else if (!rc) {
            rc = ms_report_ptdump(sp, a, b, &sb, &item);
        }
        put_text(out, rc, &sb, &item);
        ms_strbuf_free(&sb);
        break;
    }
    case MS_OP_DMESG:
        op_dmesg(svc, &r, out, &item);
        break;
    case MS_OP_SYMBOL:
        op_symbol(svc, &r, out, &item);
        break;
    case MS_OP_ADDRSYM:
        op_addrsym(svc, &r, out, &item);
        break;
    default:
        ms_err_set(&item, MS_EINVAL, "unknown operation %u (client newer than server?)", op);
        put_status(out, MS_EINVAL, &item);
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
