#include "wire.h"

#include "array.h"
#include "error.h"
#include "maps.h"
#include "modules.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

void ms_wbuf_free(struct ms_wbuf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

uint8_t *ms_wbuf_grow(struct ms_wbuf *b, size_t n)
{
    if (b->failed)
        return NULL;
    if (n > SIZE_MAX - b->len || !MS_ARRAY_RESERVE(&b->data, &b->cap, b->len + n, 4096)) {
        b->failed = true;
        return NULL;
    }
    uint8_t *p = b->data + b->len;
    b->len += n;
    return p;
}

void ms_wbuf_put(struct ms_wbuf *b, const void *p, size_t n)
{
    uint8_t *d = ms_wbuf_grow(b, n);
    if (d && n)
        memcpy(d, p, n);
}

/* The protocol is little-endian, like every host this runs on (x86-64):
 * values are copied as they are. */
void ms_wbuf_u8(struct ms_wbuf *b, uint8_t v)
{
    ms_wbuf_put(b, &v, 1);
}
void ms_wbuf_u16(struct ms_wbuf *b, uint16_t v)
{
    ms_wbuf_put(b, &v, 2);
}
void ms_wbuf_u32(struct ms_wbuf *b, uint32_t v)
{
    ms_wbuf_put(b, &v, 4);
}
void ms_wbuf_u64(struct ms_wbuf *b, uint64_t v)
{
    ms_wbuf_put(b, &v, 8);
}

void ms_wbuf_str(struct ms_wbuf *b, const char *s, size_t n)
{
    ms_wbuf_u32(b, (uint32_t)n);
    ms_wbuf_put(b, s, n);
}

size_t ms_wbuf_begin_frame(struct ms_wbuf *b)
{
    size_t at = b->len;
    uint8_t zero[MS_WIRE_HEADER] = {0};
    ms_wbuf_put(b, zero, sizeof(zero));
    return at;
}

void ms_wbuf_end_frame(struct ms_wbuf *b, size_t at, uint16_t op, uint32_t id)
{
    if (b->failed)
        return;
    struct ms_wire_header h = {MS_WIRE_MAGIC, MS_WIRE_VERSION, op, id,
                               (uint32_t)(b->len - at - MS_WIRE_HEADER)};
    memcpy(b->data + at, &h.magic, 4);
    memcpy(b->data + at + 4, &h.version, 2);
    memcpy(b->data + at + 6, &h.op, 2);
    memcpy(b->data + at + 8, &h.id, 4);
    memcpy(b->data + at + 12, &h.length, 4);
}

static bool take(struct ms_rbuf *r, void *v, size_t n)
{
    if (r->bad || r->len - r->pos < n) {
        r->bad = true;
        return false;
    }
    memcpy(v, r->p + r->pos, n);
    r->pos += n;
    return true;
}

bool ms_rbuf_u8(struct ms_rbuf *r, uint8_t *v)
{
    return take(r, v, 1);
}
bool ms_rbuf_u16(struct ms_rbuf *r, uint16_t *v)
{
    return take(r, v, 2);
}
bool ms_rbuf_u32(struct ms_rbuf *r, uint32_t *v)
{
    return take(r, v, 4);
}
bool ms_rbuf_u64(struct ms_rbuf *r, uint64_t *v)
{
    return take(r, v, 8);
}

const uint8_t *ms_rbuf_bytes(struct ms_rbuf *r, size_t n)
{
    if (r->bad || r->len - r->pos < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p + r->pos;
    r->pos += n;
    return p;
}

bool ms_rbuf_str(struct ms_rbuf *r, const char **s, uint32_t *n)
{
    if (!ms_rbuf_u32(r, n))
        return false;
    *s = (const char *)ms_rbuf_bytes(r, *n);
    return *s != NULL;
}

int ms_wire_parse_header(const uint8_t *p, struct ms_wire_header *h, struct ms_err *err)
{
    memcpy(&h->magic, p, 4);
    memcpy(&h->version, p + 4, 2);
    memcpy(&h->op, p + 6, 2);
    memcpy(&h->id, p + 8, 4);
    memcpy(&h->length, p + 12, 4);
    if (h->magic != MS_WIRE_MAGIC)
        return ms_err_set(err, MS_EPROTO, "bad frame magic 0x%08x (not a memsrv peer?)", h->magic);
    if (h->version != MS_WIRE_VERSION)
        return ms_err_set(err, MS_EPROTO, "protocol version %u, this side speaks %u", h->version,
                          MS_WIRE_VERSION);
    return 0;
}

int ms_wire_split_hostport(const char *spec, char *host, size_t host_size, const char **port,
                           struct ms_err *err)
{
    const char *colon = strrchr(spec, ':');
    if (!colon || (size_t)(colon - spec) >= host_size || colon[1] == '\0')
        return ms_err_set(err, MS_EINVAL, "want HOST:PORT, not '%s'", spec);
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    *port = colon + 1;
    return 0;
}

int ms_wire_unix_addr(struct sockaddr_un *sa, const char *path, struct ms_err *err)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path))
        return ms_err_set(err, MS_EINVAL, "socket path too long (%zu bytes at most): %s",
                          sizeof(sa->sun_path) - 1, path);
    strcpy(sa->sun_path, path);
    return 0;
}

void ms_wire_put_err(struct ms_wbuf *b, int status, const struct ms_err *err)
{
    ms_wbuf_u32(b, (uint32_t)status);
    if (status)
        ms_wire_put_err_body(b, err);
}

void ms_wire_put_err_body(struct ms_wbuf *b, const struct ms_err *err)
{
    ms_wbuf_str(b, err->msg, strnlen(err->msg, sizeof(err->msg)));
    ms_wbuf_u8(b, (uint8_t)err->hint);
    ms_wbuf_u8(b, err->has_fault);
    ms_wbuf_u64(b, err->fault_addr);
}

bool ms_wire_get_err(struct ms_rbuf *r, int status, struct ms_err *err)
{
    const char *msg = "";
    uint32_t n = 0;
    uint8_t hint = 0, has_fault = 0;
    uint64_t fault = 0;
    ms_rbuf_str(r, &msg, &n);
    ms_rbuf_u8(r, &hint);
    ms_rbuf_u8(r, &has_fault);
    ms_rbuf_u64(r, &fault);
    if (r->bad) {
        ms_err_set(err, MS_EPROTO, "malformed error in a response");
        return false;
    }
    ms_err_set(err, status, "%.*s", (int)n, msg);
    ms_err_hint(err, hint);
    if (has_fault)
        ms_err_fault(err, fault);
    return true;
}

void ms_wire_put_stack(struct ms_wbuf *b, const struct ms_stack *s)
{
    ms_wbuf_u8(b, (uint8_t)s->second);
    ms_wbuf_u8(b, (uint8_t)s->second_levels);
    ms_wbuf_u8(b, (uint8_t)s->first);
    ms_wbuf_u8(b, (uint8_t)s->levels);
    ms_wbuf_u64(b, s->second_root);
    ms_wbuf_u64(b, s->cr3);
}

bool ms_wire_get_stack(struct ms_rbuf *r, struct ms_stack *s)
{
    uint8_t second = 0, second_levels = 0, first = 0, levels = 0;
    ms_rbuf_u8(r, &second);
    ms_rbuf_u8(r, &second_levels);
    ms_rbuf_u8(r, &first);
    ms_rbuf_u8(r, &levels);
    ms_rbuf_u64(r, &s->second_root);
    ms_rbuf_u64(r, &s->cr3);
    s->second = (enum ms_second)second;
    s->second_levels = second_levels;
    s->first = (enum ms_first)first;
    s->levels = levels;
    return !r->bad;
}

void ms_wire_put_candidate(struct ms_wbuf *b, const struct ms_candidate *c)
{
    ms_wbuf_u8(b, (uint8_t)c->kind);
    ms_wbuf_u64(b, c->gpa);
    ms_wbuf_u64(b, c->root);
    ms_wbuf_u8(b, (uint8_t)c->root_levels);
    const uint64_t regs[6] = {c->cr0, c->cr3, c->cr4, c->efer, c->rip, c->rsp};
    for (unsigned i = 0; i < 6; i++)
        ms_wbuf_u64(b, regs[i]);
    ms_wbuf_u32(b, c->asid);
    ms_wbuf_u32(b, (uint32_t)c->score);
    ms_wbuf_str(b, c->evidence, strnlen(c->evidence, sizeof(c->evidence)));
    ms_wbuf_u64(b, c->gs_base);
    ms_wbuf_u64(b, c->kernel_gs_base);
    ms_wbuf_u32(b, (uint32_t)c->vcpu);
}

bool ms_rbuf_cstr(struct ms_rbuf *r, char *dst, size_t size)
{
    const char *s;
    uint32_t n;
    if (!ms_rbuf_str(r, &s, &n))
        return false;
    snprintf(dst, size, "%.*s", (int)n, s);
    return true;
}

bool ms_wire_get_candidate(struct ms_rbuf *r, struct ms_candidate *c)
{
    uint8_t kind = 0, levels = 0;
    uint32_t score = 0;
    memset(c, 0, sizeof(*c));
    ms_rbuf_u8(r, &kind);
    ms_rbuf_u64(r, &c->gpa);
    ms_rbuf_u64(r, &c->root);
    ms_rbuf_u8(r, &levels);
    uint64_t *regs[6] = {&c->cr0, &c->cr3, &c->cr4, &c->efer, &c->rip, &c->rsp};
    for (unsigned i = 0; i < 6; i++)
        ms_rbuf_u64(r, regs[i]);
    ms_rbuf_u32(r, &c->asid);
    ms_rbuf_u32(r, &score);
    ms_rbuf_cstr(r, c->evidence, sizeof(c->evidence));
    uint32_t vcpu = 0;
    ms_rbuf_u64(r, &c->gs_base);
    ms_rbuf_u64(r, &c->kernel_gs_base);
    ms_rbuf_u32(r, &vcpu);
    c->vcpu = (int32_t)vcpu;
    if (kind < MS_CAND_VMCB || kind > MS_CAND_EPT || c->vcpu < -1)
        r->bad = true;
    c->kind = (enum ms_cand_kind)kind;
    c->root_levels = levels;
    c->score = (int)score;
    return !r->bad;
}

void ms_wire_put_task(struct ms_wbuf *b, const struct ms_task *t)
{
    ms_wbuf_u64(b, t->addr);
    ms_wbuf_u32(b, (uint32_t)t->pid);
    ms_wbuf_u32(b, (uint32_t)t->tgid);
    ms_wbuf_u32(b, (uint32_t)t->ppid);
    ms_wbuf_u32(b, t->state);
    ms_wbuf_u32(b, t->exit_state);
    ms_wbuf_str(b, t->comm, strnlen(t->comm, sizeof(t->comm)));
}

enum { MODULE_UNLOAD = 1, MODULE_PERMANENT = 2, MODULE_USERS_KNOWN = 4 };

void ms_wire_put_module(struct ms_wbuf *b, const struct ms_module_list *l,
                        const struct ms_module *m)
{
    ms_wbuf_u64(b, m->addr);
    ms_wbuf_str(b, m->name, strnlen(m->name, sizeof(m->name)));
    ms_wbuf_u64(b, m->size);
    ms_wbuf_u64(b, (uint64_t)m->refcount);
    ms_wbuf_u32(b, m->state);
    ms_wbuf_u64(b, m->base);
    ms_wbuf_u64(b, m->taints);
    ms_wbuf_u8(b, (m->has_unload ? MODULE_UNLOAD : 0) | (m->permanent ? MODULE_PERMANENT : 0) |
                      (m->users_known ? MODULE_USERS_KNOWN : 0));
    ms_wbuf_u32(b, m->nusers);
    const char *u = m->nusers ? l->users + m->users_off : "";
    for (uint32_t i = 0; i < m->nusers; i++) {
        size_t n = strlen(u);
        ms_wbuf_str(b, u, n);
        u += n + 1;
    }
}

bool ms_wire_get_module(struct ms_rbuf *r, struct ms_module_list *l)
{
    struct ms_module m = {0};
    uint64_t refcount = 0;
    uint8_t flags = 0;
    uint32_t nusers = 0;
    ms_rbuf_u64(r, &m.addr);
    ms_rbuf_cstr(r, m.name, sizeof(m.name));
    ms_rbuf_u64(r, &m.size);
    ms_rbuf_u64(r, &refcount);
    ms_rbuf_u32(r, &m.state);
    ms_rbuf_u64(r, &m.base);
    ms_rbuf_u64(r, &m.taints);
    ms_rbuf_u8(r, &flags);
    ms_rbuf_u32(r, &nusers);
    if (r->bad || nusers > (r->len - r->pos) / 4) /* each name takes at least 4 bytes */
        return r->bad = true, false;
    m.refcount = (int64_t)refcount;
    m.has_unload = flags & MODULE_UNLOAD;
    m.permanent = flags & MODULE_PERMANENT;
    m.users_known = flags & MODULE_USERS_KNOWN;
    m.users_off = (uint32_t)l->users_len;
    for (uint32_t i = 0; i < nusers; i++) {
        const char *s;
        uint32_t n;
        if (!ms_rbuf_str(r, &s, &n) || ms_module_list_add_user(l, &m, s, n, NULL) < 0)
            return r->bad = true, false;
    }
    if (ms_module_list_push(l, &m, NULL) < 0)
        return r->bad = true, false;
    return true;
}

void ms_wire_put_vma(struct ms_wbuf *b, const struct ms_vma_list *l, const struct ms_vma *v)
{
    ms_wbuf_u64(b, v->addr);
    ms_wbuf_u64(b, v->start);
    ms_wbuf_u64(b, v->end);
    ms_wbuf_u64(b, v->flags);
    ms_wbuf_u64(b, v->offset);
    ms_wbuf_u32(b, v->dev);
    ms_wbuf_u64(b, v->ino);
    ms_wbuf_u8(b, v->name_known ? 1 : 0);
    ms_wbuf_str(b, l->names ? l->names + v->name_off : "", v->name_len);
}

bool ms_wire_get_vma(struct ms_rbuf *r, struct ms_vma_list *l)
{
    struct ms_vma v = {0};
    uint8_t known = 0;
    const char *name = "";
    uint32_t n = 0;
    ms_rbuf_u64(r, &v.addr);
    ms_rbuf_u64(r, &v.start);
    ms_rbuf_u64(r, &v.end);
    ms_rbuf_u64(r, &v.flags);
    ms_rbuf_u64(r, &v.offset);
    ms_rbuf_u32(r, &v.dev);
    ms_rbuf_u64(r, &v.ino);
    ms_rbuf_u8(r, &known);
    ms_rbuf_str(r, &name, &n);
    if (r->bad || known > 1 || n > MS_MAPS_PATH_MAX || memchr(name, 0, n))
        return r->bad = true, false;
    v.name_known = known;
    if (ms_vma_list_push(l, &v, name, n, NULL) < 0)
        return r->bad = true, false;
    return true;
}

bool ms_wire_get_task(struct ms_rbuf *r, struct ms_task *t)
{
    uint32_t pid = 0, tgid = 0, ppid = 0;
    memset(t, 0, sizeof(*t));
    ms_rbuf_u64(r, &t->addr);
    ms_rbuf_u32(r, &pid);
    ms_rbuf_u32(r, &tgid);
    ms_rbuf_u32(r, &ppid);
    ms_rbuf_u32(r, &t->state);
    ms_rbuf_u32(r, &t->exit_state);
    ms_rbuf_cstr(r, t->comm, sizeof(t->comm));
    t->pid = (int32_t)pid;
    t->tgid = (int32_t)tgid;
    t->ppid = (int32_t)ppid;
    return !r->bad;
}

/* Registers in struct order, as offsets: one table for both directions. */
static const size_t cpu_reg_offsets[] = {
    offsetof(struct ms_cpu_state, rax),
    offsetof(struct ms_cpu_state, rbx),
    offsetof(struct ms_cpu_state, rcx),
    offsetof(struct ms_cpu_state, rdx),
    offsetof(struct ms_cpu_state, rsi),
    offsetof(struct ms_cpu_state, rdi),
    offsetof(struct ms_cpu_state, rsp),
    offsetof(struct ms_cpu_state, rbp),
    offsetof(struct ms_cpu_state, r8),
    offsetof(struct ms_cpu_state, r9),
    offsetof(struct ms_cpu_state, r10),
    offsetof(struct ms_cpu_state, r11),
    offsetof(struct ms_cpu_state, r12),
    offsetof(struct ms_cpu_state, r13),
    offsetof(struct ms_cpu_state, r14),
    offsetof(struct ms_cpu_state, r15),
    offsetof(struct ms_cpu_state, rip),
    offsetof(struct ms_cpu_state, rflags),
    offsetof(struct ms_cpu_state, fs_base),
    offsetof(struct ms_cpu_state, gs_base),
    offsetof(struct ms_cpu_state, kernel_gs_base),
    offsetof(struct ms_cpu_state, cr0),
    offsetof(struct ms_cpu_state, cr2),
    offsetof(struct ms_cpu_state, cr3),
    offsetof(struct ms_cpu_state, cr4),
};
#define CPU_REGS (sizeof(cpu_reg_offsets) / sizeof(cpu_reg_offsets[0]))

void ms_wire_put_cpu(struct ms_wbuf *b, const struct ms_cpu_state *c)
{
    for (unsigned i = 0; i < CPU_REGS; i++) {
        uint64_t v;
        memcpy(&v, (const char *)c + cpu_reg_offsets[i], 8);
        ms_wbuf_u64(b, v);
    }
    ms_wbuf_u8(b, c->has_cr);
}

bool ms_wire_get_cpu(struct ms_rbuf *r, struct ms_cpu_state *c)
{
    memset(c, 0, sizeof(*c));
    for (unsigned i = 0; i < CPU_REGS; i++) {
        uint64_t v = 0;
        ms_rbuf_u64(r, &v);
        memcpy((char *)c + cpu_reg_offsets[i], &v, 8);
    }
    uint8_t has_cr = 0;
    ms_rbuf_u8(r, &has_cr);
    c->has_cr = has_cr != 0;
    return !r->bad;
}

_Static_assert(MS_REG_COUNT < 64, "a register's valid bit fits a u64");

void ms_wire_put_regs(struct ms_wbuf *b, const struct ms_regs *regs)
{
    ms_wbuf_u64(b, regs->valid);
    ms_wbuf_u8(b, MS_REG_COUNT);
    for (unsigned i = 0; i < MS_REG_COUNT; i++)
        ms_wbuf_u64(b, regs->v[i]);
}

bool ms_wire_get_regs(struct ms_rbuf *r, struct ms_regs *regs)
{
    memset(regs, 0, sizeof(*regs));
    uint8_t n = 0;
    ms_rbuf_u64(r, &regs->valid);
    ms_rbuf_u8(r, &n);
    for (unsigned i = 0; i < n && !r->bad; i++) {
        uint64_t v = 0;
        ms_rbuf_u64(r, &v);
        if (i < MS_REG_COUNT)
            regs->v[i] = v;
    }
    /* a register neither side knows, or one not sent, is not valid */
    unsigned known = n < MS_REG_COUNT ? n : MS_REG_COUNT;
    regs->valid &= (1ull << known) - 1;
    return !r->bad;
}

void ms_wire_put_frame(struct ms_wbuf *b, const struct ms_frame *f)
{
    ms_wire_put_regs(b, &f->regs);
    ms_wbuf_u8(b, (uint8_t)((f->exact ? 1 : 0) | (f->user ? 2 : 0)));
}

bool ms_wire_get_frame(struct ms_rbuf *r, struct ms_frame *f)
{
    memset(f, 0, sizeof(*f));
    uint8_t flags = 0;
    ms_wire_get_regs(r, &f->regs);
    ms_rbuf_u8(r, &flags);
    f->exact = flags & 1;
    f->user = (flags & 2) != 0;
    return !r->bad;
}
