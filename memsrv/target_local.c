/* A target over memory in this process: a RAM file or a QEMU dump, the
 * space stacks built on it (shared: one stack per description, so caches
 * stay warm across callers), and one Linux kernel per guest-physical space
 * (RAM, or a nested guest's second stage), found on first use and kept
 * until a flush shows that the guest rebooted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backtrace.h"
#include "discover.h"
#include "error.h"
#include "format.h"
#include "kernel.h"
#include "pte.h"
#include "ptype.h"
#include "layout.h"
#include "maps.h"
#include "modsyms.h"
#include "modules.h"
#include "ram.h"
#include "report.h"
#include "space.h"
#include "strbuf.h"
#include "symbols.h"
#include "target_backend.h"
#include "tasks.h"
#include "valprint.h"
#include "vcpus.h"
#include "vfs.h"
#include "vmcore.h"

#define MAX_STACKS 256
#define CHECK_MAX 4096                   /* bytes compared to tell a rebooted guest */
#define KALLSYMS_DATA_EXTENT (64u << 10) /* see print_addrsym */
#define BANNER_CHECK 64 /* bytes of linux_banner compared when there is no VMCOREINFO */

struct local_stack {
    struct ms_stack desc;
    struct ms_space *second; /* NULL: none */
    struct ms_space *paging; /* MS_FIRST_CR3 only; MS_FIRST_KERNEL uses the kernel's */
};

/* The kernel of one guest-physical space. After a flush, bytes that name
 * this boot (the VMCOREINFO text, with KERNELOFFSET; else linux_banner and
 * its mapping) are compared again; a kernel whose bytes changed is opened
 * anew. Failures to open are not kept: the guest may still be booting. */
struct local_kernel {
    enum ms_second second;
    uint64_t second_root;
    unsigned second_levels;
    struct ms_space *phys;
    struct ms_kernel *k;
    uint64_t generation; /* RAM generation of the last check */
    uint64_t check_pa;   /* guest-physical address of the checked bytes */
    uint64_t check_va;   /* linux_banner (must still map to check_pa), or 0 */
    size_t check_len;    /* 0: nothing can change (a dump's note) */
    uint8_t check[CHECK_MAX];
    bool kallsyms_tried;        /* no symbol file: the kernel's kallsyms, read once */
    struct ms_err kallsyms_err; /* why reading them failed (code 0: they did not) */
    /* A nested guest's CPUs (NPT only): each one's state from the VMCB
     * that runs it, indexed by CPU number (ms_kernel_saved_cpu); found again
     * when the RAM's generation moved. */
    bool vcpus_read;
    uint64_t vcpus_generation;
    struct ms_cpu_state *vcpus;
    unsigned nvcpus;
};

struct local {
    struct ms_target base;
    struct ms_ram *ram;
    struct ms_space *phys;
    struct local_stack stacks[MAX_STACKS]; /* handle = index + 1 */
    unsigned nstacks;
    struct local_kernel *kernels[MAX_STACKS + 1];
    unsigned nkernels;
    char *symbols, *cache_dir, *where;
    bool no_vmcoreinfo;
    ms_progress_fn progress; /* the opener's, for discover and DWARF loads */
    void *progress_arg;
    /* ms_target_info's arrays */
    struct ms_target_region *regions;
    const char **sources;
    uint64_t *source_sizes;
};

static struct local *L(struct ms_target *t)
{
    return (struct local *)t;
}

static void fill_info(struct local *l)
{
    struct ms_target_info *in = &l->base.info;
    struct ms_ram *ram = l->ram;
    for (unsigned i = 0; i < ram->layout.count; i++) {
        const struct ms_region *r = &ram->layout.regions[i];
        l->regions[i] = (struct ms_target_region){r->gpa, r->len, r->offset, r->source};
    }
    for (unsigned i = 0; i < ram->nsources; i++) {
        l->sources[i] = ram->sources[i].path;
        l->source_sizes[i] = ram->sources[i].size;
    }
    in->remote = false;
    in->writable = ram->writable;
    in->ram_size = ms_ram_size(ram);
    in->ram_end = ms_ram_end(ram);
    in->where = l->where;
    in->nregions = ram->layout.count;
    in->regions = l->regions;
    in->nsources = ram->nsources;
    in->sources = l->sources;
    in->source_sizes = l->source_sizes;
    in->ncpus = ram->ncpus;
    in->cpus = ram->cpus;
    in->vmcoreinfo = ram->vmcoreinfo;
    in->vmcoreinfo_len = ram->vmcoreinfo_len;
}

/* ----------------------------------------------------------------- kernels */

static bool same_space(const struct local_kernel *e, const struct ms_stack *s)
{
    /* EPT's walk length is in the EPTP: only NPT's depth tells two apart. */
    return e->second == s->second && e->second_root == s->second_root &&
           (s->second != MS_SECOND_NPT || e->second_levels == s->second_levels);
}

/* Remembers the bytes that identify this boot. */
static void kernel_note_check(struct local_kernel *e)
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

static bool kernel_unchanged(struct local_kernel *e)
{
    uint8_t now[CHECK_MAX];
    struct ms_xlat x;
    if (!e->check_len)
        return true;
    if (ms_space_read(e->phys, e->check_pa, now, e->check_len, NULL, NULL) < 0 ||
        memcmp(now, e->check, e->check_len) != 0)
        return false;
    return !e->check_va || (ms_space_translate(e->k->space, e->check_va, &x, NULL, NULL) == 0 &&
                            x.lower == e->check_pa);
}

static void kernel_drop(struct local_kernel *e)
{
    ms_kernel_close(e->k);
    e->k = NULL;
    e->kallsyms_tried = false;
    ms_err_clear(&e->kallsyms_err);
    free(e->vcpus);
    e->vcpus = NULL;
    e->nvcpus = 0;
    e->vcpus_read = false;
}

/* The kernel in the guest-physical space of a stack (its second stage,
 * else RAM): kept, unless the guest rebooted; else opened now (the slow
 * part: a RAM scan for VMCOREINFO). */
static int kernel_for(struct local *l, const struct ms_stack *s, struct ms_space *phys,
                      struct local_kernel **out, struct ms_err *err)
{
    struct local_kernel *e = NULL;
    for (unsigned i = 0; i < l->nkernels && !e; i++)
        if (same_space(l->kernels[i], s))
            e = l->kernels[i];
    if (!e) {
        if (l->nkernels >= MAX_STACKS + 1)
            return ms_err_set(err, MS_ELIMIT, "more than %d kernels", MAX_STACKS + 1);
        e = calloc(1, sizeof(*e));
        if (!e)
            return ms_err_set(err, MS_ENOMEM, "out of memory");
        e->second = s->second;
        e->second_root = s->second_root;
        e->second_levels = s->second_levels;
        e->phys = phys;
        l->kernels[l->nkernels++] = e;
    }
    if (e->k && e->generation != l->ram->generation && !kernel_unchanged(e))
        kernel_drop(e);
    e->generation = l->ram->generation;
    if (!e->k) {
        struct ms_kernel_opts o = {0};
        o.symbols = l->symbols;
        o.cache_dir = l->cache_dir;
        o.progress = l->progress;
        o.progress_arg = l->progress_arg;
        o.no_scan = l->no_vmcoreinfo;
        /* A dump's VMCOREINFO note is the outer guest's: never a nested one's. */
        if (s->second == MS_SECOND_NONE && l->ram->vmcoreinfo && !l->no_vmcoreinfo) {
            o.vmcoreinfo = l->ram->vmcoreinfo;
            o.vmcoreinfo_len = l->ram->vmcoreinfo_len;
        }
        int rc = ms_kernel_open(&e->k, e->phys, &o, err);
        if (rc < 0)
            return rc;
        kernel_note_check(e);
    }
    *out = e;
    return 0;
}

/* The stack's guest-physical space and description key for handle h. */
static int stack_of(struct local *l, ms_handle h, const struct local_stack **out,
                    struct ms_err *err)
{
    static const struct local_stack phys_stack; /* handle 0: all zero, guest-physical */
    if (h == 0) {
        *out = &phys_stack;
        return 0;
    }
    if (h > l->nstacks)
        return ms_err_set(err, MS_EINVAL, "no address space with handle %u", h);
    *out = &l->stacks[h - 1];
    return 0;
}

static int kernel_of(struct local *l, ms_handle h, struct local_kernel **e, struct ms_err *err)
{
    const struct local_stack *st = NULL;
    int rc = stack_of(l, h, &st, err);
    if (rc)
        return rc;
    return kernel_for(l, &st->desc, st->second ? st->second : l->phys, e, err);
}

/* The kernel with symbols: the symbol file's, else its own kallsyms (read
 * once per boot). */
static int kernel_syms(struct local *l, ms_handle h, struct ms_kernel **k, struct ms_err *err)
{
    struct local_kernel *e;
    int rc = kernel_of(l, h, &e, err);
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

/* ------------------------------------------------------------------ spaces */

static int space_of(struct local *l, ms_handle h, struct ms_space **out, struct ms_err *err)
{
    const struct local_stack *st = NULL;
    int rc = stack_of(l, h, &st, err);
    if (rc)
        return rc;
    if (st->desc.first == MS_FIRST_KERNEL) {
        struct local_kernel *e;
        rc = kernel_of(l, h, &e, err);
        if (rc < 0)
            return ms_err_prefix(err, "the kernel's own page tables: ");
        *out = e->k->space;
    } else {
        *out = st->paging ? st->paging : st->second ? st->second : l->phys;
    }
    return 0;
}

static bool same_stack(const struct ms_stack *a, const struct ms_stack *b)
{
    return a->second == b->second && a->first == b->first &&
           (a->second == MS_SECOND_NONE ||
            (a->second_root == b->second_root &&
             (a->second != MS_SECOND_NPT || a->second_levels == b->second_levels))) &&
           (a->first != MS_FIRST_CR3 || (a->cr3 == b->cr3 && a->levels == b->levels));
}

static int local_space(struct ms_target *t, const struct ms_stack *s, ms_handle *out,
                       struct ms_err *err)
{
    struct local *l = L(t);
    if (s->first == MS_FIRST_NONE && s->second == MS_SECOND_NONE) {
        *out = 0;
        return 0;
    }
    for (unsigned i = 0; i < l->nstacks; i++)
        if (same_stack(&l->stacks[i].desc, s)) {
            *out = i + 1;
            return 0;
        }
    if (l->nstacks >= MAX_STACKS)
        return ms_err_set(err, MS_ELIMIT, "%d address spaces are open already", MAX_STACKS);
    struct local_stack st = {*s, NULL, NULL};
    /* Only what the description uses is kept, so equal stacks compare equal. */
    if (s->second == MS_SECOND_NONE)
        st.desc.second_root = st.desc.second_levels = 0;
    if (s->second == MS_SECOND_EPT)
        st.desc.second_levels = 0;
    if (s->first != MS_FIRST_CR3)
        st.desc.cr3 = st.desc.levels = 0;
    int rc = 0;
    if (s->second == MS_SECOND_EPT)
        rc = ms_space_ept(&st.second, l->phys, s->second_root, err);
    else if (s->second == MS_SECOND_NPT)
        rc = ms_space_npt(&st.second, l->phys, s->second_root, s->second_levels, err);
    if (rc)
        return rc;
    if (s->first == MS_FIRST_CR3) {
        rc = ms_space_paging(&st.paging, st.second ? st.second : l->phys, s->cr3, s->levels, err);
        if (rc) {
            ms_space_free(st.second);
            return rc;
        }
    }
    l->stacks[l->nstacks++] = st;
    *out = l->nstacks;
    return 0;
}

static int local_stack(struct ms_target *t, ms_handle h, struct ms_stack *out, struct ms_err *err)
{
    struct local *l = L(t);
    const struct local_stack *st = NULL;
    int rc = stack_of(l, h, &st, err);
    if (rc)
        return rc;
    *out = st->desc;
    if (st->desc.first == MS_FIRST_KERNEL) {
        struct ms_space *sp;
        rc = space_of(l, h, &sp, err);
        if (rc)
            return rc;
        out->cr3 = sp->root;
        out->levels = sp->levels;
    }
    return 0;
}

static int local_read(struct ms_target *t, ms_handle h, uint64_t addr, void *buf, size_t len,
                      size_t *done, struct ms_err *err)
{
    struct ms_space *sp;
    int rc = space_of(L(t), h, &sp, err);
    return rc ? rc : ms_space_read(sp, addr, buf, len, done, err);
}

static int local_readv(struct ms_target *t, ms_handle h, unsigned count, const uint64_t *addrs,
                       const uint32_t *lens, void *const *bufs, int *statuses, size_t *dones,
                       struct ms_err *err)
{
    struct ms_space *sp;
    int rc = space_of(L(t), h, &sp, err);
    if (rc)
        return rc;
    for (unsigned i = 0; i < count; i++) {
        dones[i] = 0;
        statuses[i] = ms_space_read(sp, addrs[i], bufs[i], lens[i], &dones[i], NULL);
    }
    return 0;
}

static int local_write(struct ms_target *t, ms_handle h, uint64_t addr, const void *buf, size_t len,
                       size_t *done, struct ms_err *err)
{
    struct ms_space *sp;
    int rc = space_of(L(t), h, &sp, err);
    return rc ? rc : ms_space_write(sp, addr, buf, len, done, err);
}

static int local_translate(struct ms_target *t, ms_handle h, unsigned count, const uint64_t *addrs,
                           struct ms_xlat *out, int *statuses, struct ms_trace *trace,
                           struct ms_err *err)
{
    struct ms_space *sp;
    int rc = space_of(L(t), h, &sp, err);
    if (rc)
        return rc;
    for (unsigned i = 0; i < count; i++) {
        /* The one traced translation keeps its message for the caller. */
        statuses[i] =
            ms_space_translate(sp, addrs[i], &out[i], i == 0 ? trace : NULL, i == 0 ? err : NULL);
    }
    return 0;
}

/* "<sym+off>" for x's address column, from the kernel's symbols, else a
 * module's ("<func+off [mod]>"). */
struct naming {
    struct local *l;
    ms_handle h;
    const struct ms_kernel *k;
};

static const struct ms_modsyms *modsyms_of(struct local *l, ms_handle h);

static int symbolize(void *arg, uint64_t addr, char *out, size_t size)
{
    const struct naming *n = arg;
    const char *name, *module = NULL;
    uint64_t off;
    const struct ms_symbol *sym;
    const struct ms_modsym *msym;
    const struct ms_modsyms *ms;
    if (n->k->syms && ms_symtab_addr(n->k->syms, addr, &sym, &off, NULL) == 0) {
        name = sym->name;
    } else if ((ms = modsyms_of(n->l, n->h)) && ms_modsyms_addr(ms, addr, &msym, &off, NULL) == 0) {
        name = ms->names + msym->name;
        module = ms->mods.modules[msym->module].name;
    } else {
        return -1;
    }
    int len = off ? snprintf(out, size, "%s+%llu", name, (unsigned long long)off)
                  : snprintf(out, size, "%s", name);
    if (module && len >= 0 && (size_t)len < size)
        snprintf(out + len, size - (size_t)len, " [%s]", module);
    return 0;
}

/* The kernel whose symbols name x's addresses: one already open with
 * symbols, or (with a symbol file) opened now. A plain x on memory with no
 * Linux in it never pays for a RAM scan. Physical addresses are never named
 * with the kernel's virtual ones. */
static struct ms_kernel *naming_kernel(struct local *l, ms_handle h)
{
    const struct local_stack *st = NULL;
    struct ms_kernel *k;
    if (stack_of(l, h, &st, NULL) || st->desc.first == MS_FIRST_NONE)
        return NULL;
    bool open = false;
    for (unsigned i = 0; i < l->nkernels; i++)
        open |= same_space(l->kernels[i], &st->desc) && l->kernels[i]->k && l->kernels[i]->k->syms;
    if ((open || l->symbols) && kernel_syms(l, h, &k, NULL) == 0)
        return k;
    return NULL;
}

static int local_x(struct ms_target *t, ms_handle h, const struct ms_xfmt *xf, uint64_t addr,
                   struct ms_strbuf *out, uint64_t *next, struct ms_err *err)
{
    struct local *l = L(t);
    struct ms_space *sp;
    int rc = space_of(l, h, &sp, err);
    if (rc)
        return rc;
    struct naming n = {l, h, naming_kernel(l, h)};
    return ms_format_x(xf, addr, ms_space_read_fn, sp, n.k ? symbolize : NULL, &n, out, next, err);
}

static int local_vtop(struct ms_target *t, ms_handle h, uint64_t addr, struct ms_strbuf *out,
                      struct ms_err *err)
{
    struct ms_space *sp;
    int rc = space_of(L(t), h, &sp, err);
    return rc ? rc : ms_report_vtop(sp, addr, out, err);
}

static int local_ptdump(struct ms_target *t, ms_handle h, uint64_t start, uint64_t end,
                        struct ms_strbuf *out, struct ms_err *err)
{
    struct ms_space *sp;
    int rc = space_of(L(t), h, &sp, err);
    return rc ? rc : ms_report_ptdump(sp, start, end, out, err);
}

static int local_enumerate(struct ms_target *t, ms_handle h, uint64_t start, uint64_t end,
                           ms_mapping_fn fn, void *arg, uint64_t max_tables, uint64_t *bad_tables,
                           struct ms_err *err)
{
    struct ms_space *sp;
    int rc = space_of(L(t), h, &sp, err);
    return rc ? rc : ms_space_enumerate(sp, start, end, fn, arg, max_tables, bad_tables, err);
}

static int local_flush(struct ms_target *t, struct ms_err *err)
{
    struct local *l = L(t);
    int rc = ms_ram_refresh(l->ram, err);
    fill_info(l);
    return rc;
}

static int local_stats(struct ms_target *t, struct ms_target_stats *st, struct ms_err *err)
{
    (void)err;
    struct local *l = L(t);
    st->generation = l->ram->generation;
    for (unsigned i = 0; i < l->nstacks; i++) {
        struct ms_space *chain[2] = {l->stacks[i].paging, l->stacks[i].second};
        for (unsigned j = 0; j < 2; j++) {
            if (!chain[j])
                continue;
            st->hits += chain[j]->stats.hits;
            st->misses += chain[j]->stats.misses;
            st->walks += chain[j]->stats.walks;
            st->table_reads += chain[j]->stats.table_reads;
        }
    }
    return 0;
}

/* A VMCB or vmcs12 whose nested guest's CPU is told proves it holds a
 * live vCPU. */
#define PROOF_VCPU 3

/* Which CPU of the nested kernel each VMCB or vmcs12 candidate at a known
 * depth holds (vcpus.h: its GS base against that kernel's per-CPU offsets,
 * read through the candidate's own NPT or EPT). */
static void tell_vcpus(struct local *l, struct ms_candidate *c, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        bool vmcb = c[i].kind == MS_CAND_VMCB;
        if ((!vmcb && c[i].kind != MS_CAND_VMCS12) || !c[i].root_levels ||
            !ms_cand_reaches_kernel(&c[i]))
            continue;
        struct ms_stack s = {vmcb ? MS_SECOND_NPT : MS_SECOND_EPT,
                             vmcb ? c[i].root & PTE_ADDR_MASK : c[i].root,
                             vmcb ? c[i].root_levels : 0,
                             MS_FIRST_KERNEL,
                             0,
                             0};
        struct ms_err err;
        ms_handle h;
        struct ms_kernel *k;
        uint32_t cpu;
        char how[200];
        size_t len = strlen(c[i].evidence);
        if (local_space(&l->base, &s, &h, &err) || kernel_syms(l, h, &k, &err)) {
            snprintf(c[i].evidence + len, sizeof(c[i].evidence) - len,
                     "; its L2 CPU not told: %.150s", err.msg);
        } else if (ms_kernel_saved_cpu(k, &c[i], &cpu, how, sizeof(how), &err) == 0) {
            c[i].vcpu = (int32_t)cpu;
            c[i].score += PROOF_VCPU;
            snprintf(c[i].evidence + len, sizeof(c[i].evidence) - len, "; L2 CPU %u: %s", cpu, how);
        } else {
            snprintf(c[i].evidence + len, sizeof(c[i].evidence) - len,
                     "; its L2 CPU not told: %.150s", how);
        }
    }
}

/* By score, then a nested guest's vCPUs in order. */
static int by_score_vcpu(const void *a, const void *b)
{
    const struct ms_candidate *x = a, *y = b;
    if (x->score != y->score)
        return y->score - x->score;
    if (x->root != y->root)
        return x->root < y->root ? -1 : 1;
    if (x->vcpu != y->vcpu)
        return x->vcpu < y->vcpu ? -1 : 1;
    return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

static int local_discover(struct ms_target *t, struct ms_candidate *out, unsigned max,
                          unsigned *count, struct ms_err *err)
{
    struct local *l = L(t);
    /* a few more than asked: telling vCPUs may move one up */
    unsigned cap = max + 16, n = 0;
    struct ms_candidate *all = calloc(cap, sizeof(*all));
    if (!all)
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    int rc = ms_discover(l->ram, all, cap, &n, l->progress, l->progress_arg, err);
    if (rc) {
        free(all);
        return rc;
    }
    unsigned kept = n < cap ? n : cap;
    tell_vcpus(l, all, kept);
    qsort(all, kept, sizeof(*all), by_score_vcpu);
    *count = n;
    if (out && max)
        memcpy(out, all, (kept < max ? kept : max) * sizeof(*out));
    free(all);
    return 0;
}

static int local_dmesg(struct ms_target *t, ms_handle h, const struct ms_dmesg_opts *opts,
                       struct ms_strbuf *text, struct ms_dmesg_info *info, struct ms_err *err)
{
    struct local_kernel *e;
    int rc = kernel_of(L(t), h, &e, err);
    if (rc < 0)
        return rc;
    struct ms_printk_log log;
    ms_printk_log_init(&log);
    rc = ms_kernel_dmesg(e->k, &log, err);
    if (rc >= 0) {
        rc = 0;
        ms_dmesg_format(&log, opts, text);
        if (text->failed)
            rc = ms_err_set(err, MS_ENOMEM, "out of memory formatting the log");
        info->records = log.count;
        info->bad = log.bad;
        info->lost = log.lost;
        info->incomplete = log.incomplete;
        info->truncated = log.truncated;
        info->retries = log.retries;
        info->consistent = log.consistent;
        snprintf(info->first_bad, sizeof(info->first_bad), "%s", log.first_bad);
        snprintf(info->how, sizeof(info->how), "%s", e->k->how);
    }
    ms_printk_log_free(&log);
    return rc;
}

static int local_dmesg_next(struct ms_target *t, ms_handle h, const struct ms_dmesg_opts *opts,
                            struct ms_dmesg_cursor *cursor, struct ms_strbuf *text, uint64_t *lost,
                            struct ms_err *err)
{
    struct local_kernel *e;
    int rc = kernel_of(L(t), h, &e, err);
    if (rc < 0)
        return rc;
    struct ms_printk_log log;
    ms_printk_log_init(&log);
    rc = ms_kernel_dmesg(e->k, &log, err);
    if (rc >= 0) {
        rc = 0;
        size_t first, end;
        ms_dmesg_follow_step(&log, cursor, &first, &end, lost);
        if (*lost)
            ms_strbuf_printf(text, "-- %llu records lost --\n", (unsigned long long)*lost);
        struct ms_printk_log run = log;
        run.recs = log.count ? log.recs + first : NULL; /* an empty ring has no array */
        run.count = end - first;
        ms_dmesg_format(&run, opts, text);
        if (text->failed)
            rc = ms_err_set(err, MS_ENOMEM, "out of memory formatting the log");
    }
    ms_printk_log_free(&log);
    return rc;
}

/* The symbols of the modules of the kernel at h (with its symbols), read
 * once per RAM generation; none when they cannot be read. */
static const struct ms_modsyms *modsyms_of(struct local *l, ms_handle h)
{
    struct ms_kernel *k;
    struct ms_err scratch; /* kernel_syms copies its kept error into it */
    return kernel_syms(l, h, &k, &scratch) < 0 ? NULL : ms_kernel_modsyms(k);
}

/* Kernel symbols first, then the modules'. */
static int local_symbol(struct ms_target *t, ms_handle h, const char *name, uint64_t *addr,
                        struct ms_err *err)
{
    struct ms_kernel *k;
    int rc = kernel_syms(L(t), h, &k, err);
    if (rc == 0)
        rc = ms_kernel_symbol(k, name, addr, err);
    const struct ms_modsyms *ms;
    if (rc == MS_ENOTFOUND && (ms = modsyms_of(L(t), h)) &&
        ms_modsyms_lookup(ms, name, addr, NULL) == 0) {
        ms_err_clear(err);
        return 0;
    }
    return rc;
}

/* "func [module]" for an address in a module's memory. */
static void modsym_name(const struct ms_modsyms *ms, const struct ms_modsym *s,
                        struct ms_strbuf *out)
{
    ms_strbuf_printf(out, "%s [%s]", ms->names + s->name, ms->mods.modules[s->module].name);
}

static int local_addrsym(struct ms_target *t, ms_handle h, uint64_t addr, struct ms_strbuf *name,
                         uint64_t *offset, struct ms_err *err)
{
    struct ms_kernel *k;
    const struct ms_symbol *sym;
    int rc = kernel_syms(L(t), h, &k, err);
    if (!rc)
        rc = ms_symtab_addr(k->syms, addr, &sym, offset, err);
    if (!rc)
        ms_strbuf_append(name, sym->name, strlen(sym->name));
    const struct ms_modsyms *ms;
    const struct ms_modsym *msym;
    if (rc == MS_ENOTFOUND && (ms = modsyms_of(L(t), h)) &&
        ms_modsyms_addr(ms, addr, &msym, offset, NULL) == 0) {
        ms_err_clear(err);
        modsym_name(ms, msym, name);
        return 0;
    }
    return rc;
}

static int local_tasks(struct ms_target *t, ms_handle h, struct ms_task **tasks, size_t *count,
                       uint64_t *bad, struct ms_err *err)
{
    struct local_kernel *e;
    int rc = kernel_of(L(t), h, &e, err);
    if (rc < 0)
        return rc;
    struct ms_task_list list;
    rc = ms_tasks_list(e->k, 0, &list, err);
    /* A walk cut short still hands back what it read, with its error. */
    *tasks = list.tasks;
    *count = list.count;
    *bad = list.bad;
    return rc < 0 ? rc : 0;
}

/* The `modules` list head is a symbol: the kernel's symbols are needed. */
static int local_modules(struct ms_target *t, ms_handle h, struct ms_module_list *out,
                         struct ms_err *err)
{
    struct ms_kernel *k;
    int rc = kernel_syms(L(t), h, &k, err);
    return rc < 0 ? rc : ms_modules_list(k, 0, out, err);
}

/* path in the kernel's file systems. init_task and vmemmap_base are
 * symbols: the kernel's symbols are needed. */
static int vfs_lookup(struct ms_target *t, ms_handle h, const char *path, struct ms_vfs_layout *l,
                      struct ms_vfs *v, struct ms_vfs_file *f, struct ms_err *err)
{
    struct ms_kernel *k;
    int rc = kernel_syms(L(t), h, &k, err);
    if (rc == 0)
        rc = ms_vfs_open(k, l, v, err);
    return rc == 0 ? ms_vfs_lookup(v, path, f, err) : rc;
}

static int local_file_read(struct ms_target *t, ms_handle h, const char *path, uint64_t offset,
                           void *buf, size_t len, struct ms_file_chunk *out, struct ms_err *err)
{
    struct ms_vfs_layout l;
    struct ms_vfs v;
    struct ms_vfs_file f;
    int rc = vfs_lookup(t, h, path, &l, &v, &f, err);
    if (rc < 0)
        return rc;
    rc = ms_vfs_read(&v, &f, offset, buf, len, out, err);
    return rc < 0 ? ms_err_prefix(err, "%s: ", path) : 0;
}

static int local_dir_list(struct ms_target *t, ms_handle h, const char *path, struct ms_dir *out,
                          struct ms_err *err)
{
    struct ms_vfs_layout l;
    struct ms_vfs v;
    struct ms_vfs_file f;
    int rc = vfs_lookup(t, h, path, &l, &v, &f, err);
    if (rc < 0)
        return rc;
    rc = ms_vfs_list(&v, &f, out, err);
    return rc < 0 ? ms_err_prefix(err, "%s: ", path) : 0;
}

/* The names /proc gives special mappings and pseudo files come from the
 * kernel's symbols (its kallsyms when there is no symbol file). */
static int local_maps(struct ms_target *t, ms_handle h, int32_t pid, struct ms_vma_list *out,
                      struct ms_err *err)
{
    struct ms_kernel *k;
    int rc = kernel_syms(L(t), h, &k, err);
    return rc < 0 ? rc : ms_maps_list(k, pid, out, err);
}

/* new_utsname is uapi: release follows sysname[65] and nodename[65], and
 * uts_namespace starts with it. */
#define UTS_RELEASE_OFFSET 130

static int local_kernel_info(struct ms_target *t, ms_handle h, struct ms_kernel_info *out,
                             struct ms_err *err)
{
    struct ms_kernel *k;
    int rc = kernel_syms(L(t), h, &k, err);
    if (rc == MS_ENOTFOUND) { /* a kernel with no symbols but VMCOREINFO's */
        struct local_kernel *e;
        struct ms_err e2;
        if (kernel_of(L(t), h, &e, &e2) == 0) {
            k = e->k;
            rc = 0;
            ms_err_clear(err);
        }
    }
    if (rc < 0)
        return rc;
    const char *release = k->vmcoreinfo ? ms_vmcoreinfo_get(k->vmcoreinfo, "OSRELEASE") : NULL;
    uint64_t uts;
    if (release) {
        snprintf(out->release, sizeof(out->release), "%s", release);
    } else if (ms_kernel_symbol(k, "init_uts_ns", &uts, NULL) == 0 &&
               ms_space_read(k->space, uts + UTS_RELEASE_OFFSET, out->release,
                             sizeof(out->release) - 1, NULL, NULL) == 0) {
        for (size_t i = 0; out->release[i]; i++)
            if (out->release[i] < 0x20 || out->release[i] > 0x7e)
                out->release[i] = '?';
    }
    out->slide = k->slide;
    out->phys_base = k->phys_base;
    out->root = k->root;
    out->levels = k->levels;
    if (k->syms) {
        out->symbols = ms_symtab_count(k->syms);
        snprintf(out->symbols_from, sizeof(out->symbols_from), "%s", ms_symtab_path(k->syms));
    } else {
        snprintf(out->symbols_from, sizeof(out->symbols_from), "VMCOREINFO's SYMBOL() lines");
    }
    snprintf(out->how, sizeof(out->how), "%s", k->how);
    return 0;
}

static int local_types(struct ms_target *t, ms_handle h, unsigned what, const char *flags,
                       const char *name, struct ms_strbuf *out, struct ms_err *err)
{
    struct local_kernel *e;
    int rc = kernel_of(L(t), h, &e, err);
    if (rc < 0)
        return rc;
    struct ms_kernel *k = e->k;
    if (what == MS_TYPES_SOURCE) {
        ms_strbuf_printf(out, "%s", k->types.source[0] ? k->types.source : "none yet");
        if (k->btf && strncmp(k->types.source, "BTF", 3) == 0)
            ms_strbuf_printf(out, ", read and parsed in %.1f ms", k->btf_load_ms);
        return 0;
    }
    if (what != MS_TYPES_PTYPE)
        return ms_err_set(err, MS_EINVAL, "unknown types question %u", what);
    rc = ms_kernel_load_btf(k, err);
    if (rc < 0) {
        ms_err_hint(err, MS_HINT_DWARF);
        return ms_err_prefix(err, "ptype reads the kernel's own types: ");
    }
    uint32_t id;
    rc = ms_ptype_lookup(k->btf, name, &id, err);
    return rc < 0 ? rc : ms_ptype_format(k->btf, id, strchr(flags, 'o') != NULL, out, err);
}

#define MAX_VCPUS 64 /* VMCBs of one nested guest looked at */

/* The nested guest's CPUs: the VMCBs whose nCR3 is its NPT root (the
 * vmcs12s whose EPTP is its EPT's), each at the CPU its GS base names;
 * CPUs none names are MS_CPU_NONE. */
static void read_vcpus(struct local *l, struct local_kernel *e, struct ms_kernel *k)
{
    struct ms_vcpu_state *v = calloc(MAX_VCPUS, sizeof(*v));
    unsigned n = 0, ncpus = 0;
    struct ms_err err;
    enum ms_cand_kind kind = e->second == MS_SECOND_EPT ? MS_CAND_VMCS12 : MS_CAND_VMCB;
    if (!v || ms_discover_vcpu_states(l->ram, kind, e->second_root, v, MAX_VCPUS, &n, &err) < 0 ||
        ms_discover_saved_gprs(l->ram, v, n < MAX_VCPUS ? n : MAX_VCPUS, &err) < 0) {
        free(v);
        return;
    }
    uint32_t cpu_of[MAX_VCPUS];
    for (unsigned i = 0; i < n && i < MAX_VCPUS; i++) {
        char how[200];
        cpu_of[i] = UINT32_MAX;
        if (ms_kernel_saved_cpu(k, &v[i].cand, &cpu_of[i], how, sizeof(how), &err) == 0 &&
            cpu_of[i] < MAX_VCPUS && cpu_of[i] + 1 > ncpus)
            ncpus = cpu_of[i] + 1;
    }
    struct ms_cpu_state *cpus = ncpus ? calloc(ncpus, sizeof(*cpus)) : NULL;
    for (unsigned c = 0; cpus && c < ncpus; c++)
        cpus[c].known = MS_CPU_NONE;
    /* two VMCBs naming one CPU (a stale one): the first is kept */
    for (unsigned i = 0; cpus && i < n && i < MAX_VCPUS; i++)
        if (cpu_of[i] < ncpus && cpus[cpu_of[i]].known == MS_CPU_NONE)
            cpus[cpu_of[i]] = v[i].regs;
    free(v);
    e->vcpus = cpus;
    e->nvcpus = cpus ? ncpus : 0;
}

/* The registers of the CPUs of handle h's kernel: a dump's notes for the
 * outer guest (they are its CPUs); for a nested guest its VMCBs' save
 * areas (NPT) or its vmcs12s' guest state (EPT), found again when the RAM
 * moved. */
static int kernel_cpus(struct local *l, ms_handle h, struct ms_kernel **k,
                       const struct ms_cpu_state **cpus, unsigned *ncpus, struct ms_err *err)
{
    const struct local_stack *st = NULL;
    struct local_kernel *e;
    int rc = stack_of(l, h, &st, err);
    if (rc == 0)
        rc = kernel_syms(l, h, k, err);
    if (rc == 0)
        rc = kernel_of(l, h, &e, err);
    if (rc < 0)
        return rc;
    *cpus = NULL;
    *ncpus = 0;
    if (st->desc.second == MS_SECOND_NONE) {
        *cpus = l->ram->cpus;
        *ncpus = l->ram->ncpus;
    } else {
        if (!e->vcpus_read || e->vcpus_generation != l->ram->generation) {
            free(e->vcpus);
            e->vcpus = NULL;
            e->nvcpus = 0;
            e->vcpus_read = true;
            e->vcpus_generation = l->ram->generation;
            read_vcpus(l, e, *k);
        }
        *cpus = e->vcpus;
        *ncpus = e->nvcpus;
    }
    return 0;
}

/* print's view of a kernel: reads through its own page tables, names
 * from its symbol file or kallsyms. */
static int print_read(void *arg, uint64_t addr, void *buf, size_t len, size_t *done,
                      struct ms_err *err)
{
    struct ms_kernel *k = arg;
    return ms_space_read(k->space, addr, buf, len, done, err);
}

static int print_symbol(void *arg, const char *name, uint64_t *addr, bool *text)
{
    struct ms_kernel *k = arg;
    struct ms_err scratch;
    int rc = ms_kernel_symbol(k, name, addr, &scratch);
    if (rc < 0)
        return rc;
    const struct ms_symbol *s = k->syms ? ms_symtab_find(k->syms, name) : NULL;
    *text = s && (s->type == 'T' || s->type == 't');
    return 0;
}

/* GDB names an address only inside a symbol's extent: its ELF size, or
 * (kallsyms has no sizes) the size of its type when print knows it, else
 * up to the next symbol, for data at most KALLSYMS_DATA_EXTENT (string
 * literals and other unnamed data follow small statics); zero-sized data
 * symbols name nothing. */
static int print_addrsym(void *arg, uint64_t addr, char *name, size_t size, uint64_t *offset)
{
    struct ms_kernel *k = arg;
    const struct ms_symbol *s;
    uint64_t extent = 0;
    if (!k->syms)
        return -1;
    if (addr < MS_KERNEL_MAP_START) {
        if (ms_symtab_addr_percpu(k->syms, addr, &s, offset, &extent) < 0)
            return -1;
    } else if (ms_symtab_addr_extent(k->syms, addr, &s, offset, &extent, NULL) < 0) {
        return -1;
    }
    /* an object whose type print knows ends where its type does */
    uint64_t known;
    if (k->btf && ms_print_symbol_size(k->btf, s->name, &known) == 0 && known < extent)
        extent = known;
    bool text = s->type == 'T' || s->type == 't';
    if (ms_symtab_is_elf(k->syms)) {
        if (s->size ? *offset >= s->size : !text)
            return -1;
    } else if (*offset >= extent || (!text && *offset >= KALLSYMS_DATA_EXTENT)) {
        return -1;
    }
    snprintf(name, size, "%s", s->name);
    return 0;
}

static int local_print(struct ms_target *t, ms_handle h, const char *fmt, const char *expr,
                       struct ms_strbuf *out, struct ms_err *err)
{
    struct ms_kernel *k;
    int rc = kernel_syms(L(t), h, &k, err);
    if (rc < 0)
        return rc;
    rc = ms_kernel_load_btf(k, err);
    if (rc < 0) {
        ms_err_hint(err, MS_HINT_DWARF);
        return ms_err_prefix(err, "print reads the kernel's own types: ");
    }
    struct ms_print_env env = {k->btf, print_read, k, print_symbol, print_addrsym, k};
    return ms_print_expr(&env, fmt, expr, out, err);
}

static int local_backtrace(struct ms_target *t, ms_handle h, const int32_t *pids, size_t npids,
                           struct ms_strbuf *out, struct ms_err *err)
{
    struct ms_kernel *k;
    const struct ms_cpu_state *cpus;
    unsigned ncpus;
    int rc = kernel_cpus(L(t), h, &k, &cpus, &ncpus, err);
    return rc < 0 ? rc : ms_kernel_bt_report(k, pids, npids, cpus, ncpus, out, err);
}

static int local_cpu_backtrace(struct ms_target *t, ms_handle h, uint32_t cpu,
                               struct ms_strbuf *out, struct ms_err *err)
{
    struct ms_kernel *k;
    const struct ms_cpu_state *cpus;
    unsigned ncpus;
    int rc = kernel_cpus(L(t), h, &k, &cpus, &ncpus, err);
    return rc < 0 ? rc : ms_kernel_cpu_bt_report(k, cpu, cpus, ncpus, out, err);
}

static int local_task_regs(struct ms_target *t, ms_handle h, uint64_t task,
                           struct ms_task_regs *out, struct ms_err *err)
{
    struct ms_kernel *k;
    const struct ms_cpu_state *cpus;
    unsigned ncpus;
    int rc = kernel_cpus(L(t), h, &k, &cpus, &ncpus, err);
    return rc < 0 ? rc : ms_kernel_task_regs(k, task, cpus, ncpus, out, err);
}

static int local_unwind_step(struct ms_target *t, ms_handle h, const struct ms_frame *in,
                             struct ms_frame *out, struct ms_err *err)
{
    struct local *l = L(t);
    struct ms_kernel *k;
    struct ms_space *sp;
    int rc = kernel_syms(l, h, &k, err);
    if (rc == 0)
        rc = space_of(l, h, &sp, err);
    return rc < 0 ? rc : ms_kernel_unwind_step(k, sp, in, out, err);
}

/* A dump's CPU notes are the registers of the guest it holds, never of one
 * nested in it. */
static int local_export_vmcore(struct ms_target *t, ms_handle h, const char *path,
                               ms_progress_fn progress, void *progress_arg,
                               struct ms_vmcore_info *info, struct ms_err *err)
{
    struct local *l = L(t);
    struct ms_kernel *k;
    const struct local_stack *st = NULL;
    int rc = stack_of(l, h, &st, err);
    if (!rc)
        rc = kernel_syms(l, h, &k, err);
    if (rc < 0)
        return rc;
    if (!progress) {
        progress = l->progress;
        progress_arg = l->progress_arg;
    }
    bool outer = st->desc.second == MS_SECOND_NONE;
    return ms_vmcore_export(k, outer ? l->ram->cpus : NULL, outer ? l->ram->ncpus : 0, path,
                            progress, progress_arg, info, err);
}

static int set_string(char **dst, const char *src, struct ms_err *err)
{
    char *copy = src ? strdup(src) : NULL;
    if (src && !copy)
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    free(*dst);
    *dst = copy;
    return 0;
}

static int local_set_symbols(struct ms_target *t, const char *path, struct ms_err *err)
{
    struct local *l = L(t);
    if (path) {
        /* Fail here, not at the first use, when the file is wrong. */
        struct ms_symtab *st;
        int rc = ms_symtab_load(&st, path, err);
        if (rc)
            return rc;
        ms_symtab_free(st);
    }
    int rc = set_string(&l->symbols, path, err);
    if (rc)
        return rc;
    for (unsigned i = 0; i < l->nkernels; i++)
        kernel_drop(l->kernels[i]);
    return 0;
}

static void local_close(struct ms_target *t)
{
    struct local *l = L(t);
    for (unsigned i = 0; i < l->nkernels; i++) {
        ms_kernel_close(l->kernels[i]->k);
        free(l->kernels[i]->vcpus);
        free(l->kernels[i]);
    }
    for (unsigned i = 0; i < l->nstacks; i++) {
        ms_space_free(l->stacks[i].paging);
        ms_space_free(l->stacks[i].second);
    }
    ms_space_free(l->phys);
    ms_ram_close(l->ram);
    free(l->symbols);
    free(l->cache_dir);
    free(l->where);
    free(l->regions);
    free(l->sources);
    free(l->source_sizes);
    free(l);
}

static const struct ms_target_ops local_ops = {
    .close = local_close,
    .space = local_space,
    .stack = local_stack,
    .readv = local_readv,
    .read = local_read,
    .write = local_write,
    .translate = local_translate,
    .x = local_x,
    .vtop = local_vtop,
    .ptdump = local_ptdump,
    .flush = local_flush,
    .stats = local_stats,
    .enumerate = local_enumerate,
    .discover = local_discover,
    .dmesg = local_dmesg,
    .dmesg_next = local_dmesg_next,
    .symbol = local_symbol,
    .addrsym = local_addrsym,
    .print = local_print,
    .tasks = local_tasks,
    .modules = local_modules,
    .maps = local_maps,
    .file_read = local_file_read,
    .dir_list = local_dir_list,
    .types = local_types,
    .kernel_info = local_kernel_info,
    .set_symbols = local_set_symbols,
    .backtrace = local_backtrace,
    .task_regs = local_task_regs,
    .cpu_backtrace = local_cpu_backtrace,
    .unwind_step = local_unwind_step,
    .export_vmcore = local_export_vmcore,
};

int ms_target_open_local(struct ms_target **out, const struct ms_target_opts *o, struct ms_err *err)
{
    struct local *l = calloc(1, sizeof(*l));
    if (!l)
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    l->base.ops = &local_ops;
    l->no_vmcoreinfo = o->no_vmcoreinfo;
    l->progress = o->progress;
    l->progress_arg = o->progress_arg;
    unsigned flags = o->writable ? MS_RAM_WRITABLE : 0;
    int rc = 0;
    if (o->dump) {
        if (o->machine || o->map)
            rc = ms_err_set(err, MS_EINVAL, "a dump carries its own layout: no machine or map");
        else
            rc = ms_ram_open_dump(&l->ram, o->dump, flags, err);
    } else {
        struct ms_layout map;
        if (o->map && o->map[0]) {
            rc = ms_layout_parse_map(&map, o->map, err);
            if (!rc)
                rc = ms_layout_check(&map, err);
        }
        if (!rc)
            rc = ms_ram_open_file(&l->ram, o->ram, o->map && o->map[0] ? &map : NULL, o->machine,
                                  flags, err);
    }
    if (!rc)
        rc = ms_space_phys(&l->phys, l->ram, err);
    if (!rc)
        rc = set_string(&l->where, o->dump ? o->dump : o->ram, err);
    if (!rc)
        rc = set_string(&l->cache_dir, o->cache_dir, err);
    if (!rc && o->symbols)
        rc = local_set_symbols(&l->base, o->symbols, err);
    if (!rc) {
        l->regions = calloc(MS_LAYOUT_MAX, sizeof(*l->regions));
        l->sources = calloc(l->ram->nsources + 1, sizeof(*l->sources));
        l->source_sizes = calloc(l->ram->nsources + 1, sizeof(*l->source_sizes));
        if (!l->regions || !l->sources || !l->source_sizes)
            rc = ms_err_set(err, MS_ENOMEM, "out of memory");
    }
    if (rc) {
        local_close(&l->base);
        return rc;
    }
    fill_info(l);
    *out = &l->base;
    return 0;
}
