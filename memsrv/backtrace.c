#include "backtrace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "modsyms.h"
#include "modules.h"
#include "ram.h"
#include "space.h"
#include "tasks.h"
#include "vcpus.h"

#define ORC_ENTRIES_MAX (4u << 20) /* a 6.1 distribution kernel has ~370k */
#define MODULE_ORC_MAX (1u << 20)  /* kvm.ko has ~30k */
#define MODULE_TEXT_MAX (1u << 30)
#define THREAD_SIZE_DEFAULT (16u << 10)
#define THREAD_SIZE_KASAN (32u << 10) /* KASAN doubles x86-64 stacks (KASAN_STACK_ORDER) */
#define REG_BIT(r) (1ull << (r))
#define GPR_BITS 0xffffull /* rax .. r15 */
#define KERNEL_CS 0x10     /* __KERNEL_CS, __KERNEL_DS: x86-64 Linux's GDT layout */
#define KERNEL_DS 0x18
#define KERNEL_HALF 0xffff800000000000ull
#define STACK_PAGE 4096ull

const char *const ms_bt_structs[] = {"task_struct", "thread_struct", "thread_info",
                                     "inactive_task_frame", NULL};

int ms_bt_layout_from_typedb(struct ms_bt_layout *l, const struct ms_typedb *db, struct ms_err *err)
{
    memset(l, 0, sizeof(*l));
    uint64_t thread, sp;
    int rc = ms_typedb_offset(db, "task_struct", "stack", &l->task_stack, err);
    if (rc == 0)
        rc = ms_typedb_offset(db, "task_struct", "thread", &thread, err);
    if (rc == 0)
        rc = ms_typedb_offset(db, "thread_struct", "sp", &sp, err);
    if (rc == 0)
        rc = ms_typedb_offset(db, "task_struct", "on_cpu", &l->task_on_cpu, err);
    if (rc == 0)
        rc = ms_typedb_size(db, "inactive_task_frame", &l->frame_size, err);
    if (rc == 0)
        rc = ms_typedb_offset(db, "inactive_task_frame", "bp", &l->frame_bp, err);
    if (rc == 0)
        rc = ms_typedb_offset(db, "inactive_task_frame", "ret_addr", &l->frame_ret_addr, err);
    if (rc < 0)
        return rc;
    l->task_thread_sp = thread + sp;
    struct {
        const char *name;
        uint64_t *off;
    } saved[] = {{"bx", &l->frame_bx},
                 {"r12", &l->frame_r12},
                 {"r13", &l->frame_r13},
                 {"r14", &l->frame_r14},
                 {"r15", &l->frame_r15}};
    for (size_t i = 0; i < sizeof(saved) / sizeof(saved[0]); i++)
        if (ms_typedb_offset(db, "inactive_task_frame", saved[i].name, saved[i].off, NULL) < 0)
            *saved[i].off = UINT64_MAX;
    /* 5.16 moved the CPU number into thread_info (the first member) */
    uint64_t ti, cpu;
    if (ms_typedb_offset(db, "task_struct", "thread_info", &ti, NULL) == 0 &&
        ms_typedb_offset(db, "thread_info", "cpu", &cpu, NULL) == 0)
        l->task_cpu = ti + cpu;
    else if ((rc = ms_typedb_offset(db, "task_struct", "cpu", &l->task_cpu, err)) < 0)
        return rc;
    if (l->frame_size < 16 || l->frame_size > 256 || l->frame_bp + 8 > l->frame_size ||
        l->frame_ret_addr + 8 > l->frame_size)
        return ms_err_set(err, MS_EFORMAT, "inactive_task_frame of %llu bytes: not 6.1's",
                          (unsigned long long)l->frame_size);
    l->thread_size = THREAD_SIZE_DEFAULT;
    return 0;
}

void ms_backtracer_free(struct ms_backtracer *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->ntables; i++)
        ms_orc_table_free(&b->tables[i]);
    free(b->tables);
    free(b);
}

/* Reads len bytes at addr from the vmlinux (link-time addresses) or from
 * the kernel's memory (runtime ones). */
static void *read_table(struct ms_kernel *k, bool file, uint64_t addr, size_t len, const char *what,
                        struct ms_err *err)
{
    void *p = malloc(len ? len : 1);
    if (!p) {
        ms_err_set(err, MS_ENOMEM, "out of memory for %s (%zu bytes)", what, len);
        return NULL;
    }
    int rc = file ? ms_symtab_read_image(k->syms, addr, p, len, err)
                  : ms_space_read(k->space, addr, p, len, NULL, err);
    if (rc < 0) {
        ms_err_prefix(err, "reading %s at 0x%llx: ", what, (unsigned long long)addr);
        free(p);
        return NULL;
    }
    return p;
}

/* The vmlinux's .orc_unwind_ip/.orc_unwind: from the file when it is an
 * ELF (no guest read can disturb it), else from memory through the
 * symbols; ips end up at runtime addresses either way. */
static int load_orc(struct ms_kernel *k, struct ms_orc_table *table, char *source,
                    size_t source_size, struct ms_err *err)
{
    bool file = ms_symtab_is_elf(k->syms);
    uint64_t start_ip, stop_ip, start_orc;
    int rc = 0;
    if (file) {
        const struct ms_symbol *s1 = ms_symtab_find(k->syms, "__start_orc_unwind_ip");
        const struct ms_symbol *s2 = ms_symtab_find(k->syms, "__stop_orc_unwind_ip");
        const struct ms_symbol *s3 = ms_symtab_find(k->syms, "__start_orc_unwind");
        if (!s1 || !s2 || !s3)
            return ms_err_set(err, MS_ENOTFOUND,
                              "%s has no __start_orc_unwind_ip/__stop_orc_unwind_ip/"
                              "__start_orc_unwind: not an ORC kernel (CONFIG_UNWINDER_ORC)",
                              ms_symtab_path(k->syms));
        start_ip = s1->addr;
        stop_ip = s2->addr;
        start_orc = s3->addr;
    } else {
        rc = ms_kernel_symbol(k, "__start_orc_unwind_ip", &start_ip, err);
        if (rc == 0)
            rc = ms_kernel_symbol(k, "__stop_orc_unwind_ip", &stop_ip, err);
        if (rc == 0)
            rc = ms_kernel_symbol(k, "__start_orc_unwind", &start_orc, err);
        if (rc < 0)
            return ms_err_prefix(err, "the kernel's ORC tables (CONFIG_UNWINDER_ORC): ");
    }
    if (stop_ip <= start_ip || stop_ip - start_ip > 4ull * ORC_ENTRIES_MAX)
        return ms_err_set(err, MS_EFORMAT,
                          "__start_orc_unwind_ip 0x%llx .. __stop_orc_unwind_ip 0x%llx: not a "
                          "plausible ORC table",
                          (unsigned long long)start_ip, (unsigned long long)stop_ip);
    size_t n = (size_t)(stop_ip - start_ip) / 4;
    uint8_t *ips = read_table(k, file, start_ip, n * 4, ".orc_unwind_ip", err);
    uint8_t *orc =
        ips ? read_table(k, file, start_orc, n * MS_ORC_ENTRY_SIZE, ".orc_unwind", err) : NULL;
    rc = orc ? ms_orc_table_decode(table, start_ip, ips, n * 4, orc, n * MS_ORC_ENTRY_SIZE,
                                   ORC_ENTRIES_MAX, err)
             : (err ? err->code : MS_EIO);
    free(ips);
    free(orc);
    if (rc < 0)
        return rc;
    if (file)
        ms_orc_table_slide(table, k->slide);
    /* only code between _stext and _etext may hold a return address:
     * init text is gone once the kernel runs */
    uint64_t stext, etext;
    if (ms_kernel_symbol(k, "_stext", &stext, NULL) == 0 &&
        ms_kernel_symbol(k, "_etext", &etext, NULL) == 0 && stext < etext) {
        table->text_start = stext;
        table->text_end = etext;
    }
    snprintf(source, source_size, "%s", file ? "vmlinux" : "guest memory");
    return 0;
}

/* Where a struct module keeps its ORC tables (6.1: arch, a struct
 * mod_arch_specific) and the size of its core text. */
struct module_orc_layout {
    uint64_t num_orcs, orc_unwind_ip, orc_unwind, text_size;
};

static int module_orc_layout(struct ms_kernel *k, struct module_orc_layout *l, struct ms_err *err)
{
    static const char *const want[] = {"module", "mod_arch_specific", NULL};
    static const char *const core[] = {"module_layout", NULL};
    static const char *const mem[] = {"module_memory", NULL};
    const struct ms_typedb *db = &k->types;
    uint64_t arch, text, size;
    int rc = ms_kernel_need_types(k, want, err);
    if (rc == 0)
        rc = ms_typedb_offset(db, "module", "arch", &arch, err);
    if (rc == 0)
        rc = ms_typedb_offset(db, "mod_arch_specific", "num_orcs", &l->num_orcs, err);
    if (rc == 0)
        rc = ms_typedb_offset(db, "mod_arch_specific", "orc_unwind_ip", &l->orc_unwind_ip, err);
    if (rc == 0)
        rc = ms_typedb_offset(db, "mod_arch_specific", "orc_unwind", &l->orc_unwind, err);
    if (rc < 0)
        return rc;
    if (ms_typedb_has(db, "module", "core_layout")) { /* up to 6.3 */
        rc = ms_kernel_need_types(k, core, err);
        if (rc == 0)
            rc = ms_typedb_offset(db, "module", "core_layout", &text, err);
        if (rc == 0)
            rc = ms_typedb_offset(db, "module_layout", "text_size", &size, err);
    } else { /* 6.4+: mem[MOD_TEXT] (index 0) */
        rc = ms_kernel_need_types(k, mem, err);
        if (rc == 0)
            rc = ms_typedb_offset(db, "module", "mem", &text, err);
        if (rc == 0)
            rc = ms_typedb_offset(db, "module_memory", "size", &size, err);
    }
    l->num_orcs += arch;
    l->orc_unwind_ip += arch;
    l->orc_unwind += arch;
    l->text_size = text + size;
    return rc;
}

/* One module's table: its tables are sorted at load and their ips stay
 * self-relative (unwind_module_init), as the vmlinux's are; they cover the
 * module's core text. */
static int read_module_orc(struct ms_kernel *k, const struct module_orc_layout *l,
                           const struct ms_module *m, struct ms_orc_table *t, struct ms_err *err)
{
    uint32_t n = 0, text_size = 0;
    uint64_t ip_addr = 0, orc_addr = 0;
    int rc = ms_space_read(k->space, m->addr + l->num_orcs, &n, 4, NULL, err);
    if (rc == 0)
        rc = ms_space_read(k->space, m->addr + l->orc_unwind_ip, &ip_addr, 8, NULL, err);
    if (rc == 0)
        rc = ms_space_read(k->space, m->addr + l->orc_unwind, &orc_addr, 8, NULL, err);
    if (rc == 0)
        rc = ms_space_read(k->space, m->addr + l->text_size, &text_size, 4, NULL, err);
    if (rc < 0)
        return rc;
    if (n == 0 || !ip_addr || !orc_addr)
        return 1; /* no tables: a module built without ORC, or one with no code */
    if (n > MODULE_ORC_MAX || text_size == 0 || text_size > MODULE_TEXT_MAX ||
        m->base + text_size < m->base)
        return ms_err_set(err, MS_EFORMAT, "module %s: %u ORC entries over %u bytes of text",
                          m->name, n, text_size);
    uint8_t *ips = malloc((size_t)n * 4), *orc = malloc((size_t)n * MS_ORC_ENTRY_SIZE);
    rc = ips && orc ? 0 : ms_err_set(err, MS_ENOMEM, "out of memory for module ORC tables");
    if (rc == 0)
        rc = ms_space_read(k->space, ip_addr, ips, (size_t)n * 4, NULL, err);
    if (rc == 0)
        rc = ms_space_read(k->space, orc_addr, orc, (size_t)n * MS_ORC_ENTRY_SIZE, NULL, err);
    if (rc == 0)
        rc = ms_orc_table_decode(t, ip_addr, ips, (size_t)n * 4, orc, (size_t)n * MS_ORC_ENTRY_SIZE,
                                 MODULE_ORC_MAX, err);
    free(ips);
    free(orc);
    if (rc < 0)
        return ms_err_prefix(err, "module %s's ORC tables: ", m->name);
    t->text_start = m->base;
    t->text_end = m->base + text_size;
    return 0;
}

/* The modules' tables, read again when the RAM changed. A kernel whose
 * modules cannot be listed unwinds through its own text only. */
static int load_module_orc(struct ms_kernel *k, struct ms_backtracer *b, struct ms_err *err)
{
    uint64_t now = k->phys->ram->generation;
    if (b->modules_read && b->modules_generation == now)
        return 0;
    for (size_t i = 1; i < b->ntables; i++)
        ms_orc_table_free(&b->tables[i]);
    b->ntables = 1;
    b->modules_bad = 0;
    b->modules_read = true;
    b->modules_generation = now;
    const struct ms_modsyms *ms = ms_kernel_modsyms(k);
    if (!ms)
        return ms_err_set(err, MS_ENOMEM, "out of memory for the module list");
    struct module_orc_layout l;
    if (!ms->mods.count || module_orc_layout(k, &l, NULL) < 0)
        return 0;
    for (size_t i = 0; i < ms->mods.count; i++) {
        const struct ms_module *m = &ms->mods.modules[i];
        if (m->state == MS_MODULE_UNFORMED)
            continue;
        if (!MS_ARRAY_RESERVE(&b->tables, &b->cap, b->ntables + 1, 8))
            return ms_err_set(err, MS_ENOMEM, "out of memory for module ORC tables");
        struct ms_orc_table *t = &b->tables[b->ntables];
        memset(t, 0, sizeof(*t));
        struct ms_err e2;
        int rc = read_module_orc(k, &l, m, t, &e2);
        if (rc == MS_ENOMEM)
            return ms_err_set(err, rc, "%s", e2.msg);
        if (rc == 0)
            b->ntables++;
        else if (rc < 0)
            b->modules_bad++;
    }
    return 0;
}

/* An address in the code of the kernel or of a module with tables. */
static bool in_text(const struct ms_backtracer *b, uint64_t ip)
{
    for (size_t i = 0; i < b->ntables; i++)
        if (ip >= b->tables[i].text_start && ip < b->tables[i].text_end)
            return true;
    return false;
}

int ms_kernel_backtracer(struct ms_kernel *k, struct ms_err *err)
{
    if (k->bt)
        return load_module_orc(k, k->bt, err);
    if (!k->syms)
        return ms_err_set(err, MS_ENOTFOUND,
                          "backtraces need the kernel's symbols (a vmlinux, a System.map or "
                          "its kallsyms)");
    struct ms_backtracer *b = calloc(1, sizeof(*b));
    if (!b)
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    int rc = ms_kernel_need_types(k, ms_bt_structs, err);
    if (rc < 0)
        ms_err_prefix(err, "backtraces need task_struct's layout: ");
    if (rc == 0)
        rc = ms_bt_layout_from_typedb(&b->layout, &k->types, err);
    uint64_t kasan;
    if (rc == 0 && ms_kernel_symbol(k, "kasan_early_init", &kasan, NULL) == 0)
        b->layout.thread_size = THREAD_SIZE_KASAN;
    if (rc == 0)
        rc = ms_kernel_symbol(k, "ret_from_fork", &b->ret_from_fork, err);
    if (rc == 0 && !(b->tables = calloc(1, sizeof(*b->tables))))
        rc = ms_err_set(err, MS_ENOMEM, "out of memory");
    if (rc == 0) {
        b->cap = b->ntables = 1;
        rc = load_orc(k, &b->tables[0], b->orc_source, sizeof(b->orc_source), err);
    }
    if (rc == 0)
        rc = load_module_orc(k, b, err);
    if (rc < 0) {
        ms_backtracer_free(b);
        return rc;
    }
    k->bt = b;
    return 0;
}

void ms_backtrace_free(struct ms_backtrace *bt)
{
    free(bt->frames);
    memset(bt, 0, sizeof(*bt));
}

static int push(struct ms_backtrace *bt, const struct ms_bt_frame *f, struct ms_err *err)
{
    if (!MS_ARRAY_RESERVE(&bt->frames, &bt->cap, bt->count + 1, 32))
        return ms_err_set(err, MS_ENOMEM, "out of memory for frames");
    bt->frames[bt->count++] = *f;
    return 0;
}

/* The stacks a trace may use, each read once: the unwinder's reads come
 * from here. [0] is the task's; [1] the one a CPU's rsp is on, when that is
 * another (an IRQ or exception stack). */
struct stack_copy {
    uint64_t lo;
    size_t len;
    uint8_t *bytes;
};

struct stack_copies {
    struct stack_copy c[2];
    unsigned n;
};

static int read_copy(void *arg, uint64_t addr, void *buf, size_t len, struct ms_err *err)
{
    const struct stack_copies *cs = arg;
    for (unsigned i = 0; i < cs->n; i++) {
        const struct stack_copy *c = &cs->c[i];
        if (addr >= c->lo && addr - c->lo <= c->len && len <= c->len - (addr - c->lo)) {
            memcpy(buf, c->bytes + (addr - c->lo), len);
            return 0;
        }
    }
    return ms_err_set(err, MS_EOUTSIDE, "0x%llx is not on the stack read",
                      (unsigned long long)addr);
}

static void stop(struct ms_backtrace *bt, int code, const char *msg)
{
    bt->end = code;
    snprintf(bt->why, sizeof(bt->why), "%s", msg);
}

/* Steps from s to the stack's end (or an error, which ends the trace with
 * its message), a frame per step. */
static int walk(const struct ms_backtracer *b, const struct stack_copies *cs,
                struct ms_orc_state *s, struct ms_backtrace *bt, struct ms_err *err)
{
    struct ms_orc_unwinder u = {0};
    u.tables = b->tables;
    u.ntables = b->ntables;
    for (unsigned i = 0; i < cs->n; i++)
        u.stacks[i] = (struct ms_orc_stack){cs->c[i].lo, cs->c[i].lo + cs->c[i].len};
    u.nstacks = cs->n;
    u.read = read_copy;
    u.arg = (void *)cs;
    struct ms_err e2;
    ms_err_clear(&e2);
    int rc;
    while ((rc = ms_orc_step(&u, s, &e2)) == 1) {
        struct ms_bt_frame f = {MS_BT_CALL, s->ip, s->sp, 0, 0, 0};
        if (s->has_regs) {
            f.kind = ms_orc_regs_user(&s->regs) ? MS_BT_USER_REGS : MS_BT_KERNEL_REGS;
            f.cs = s->regs.cs;
            f.ss = s->regs.ss;
            f.flags = s->regs.flags;
        }
        if ((rc = push(bt, &f, err)) < 0)
            return rc;
    }
    if (rc < 0)
        stop(bt, rc, e2.msg);
    return 0;
}

static int unwind(const struct ms_backtracer *b, uint64_t thread_sp, const struct stack_copies *cs,
                  struct ms_backtrace *bt, struct ms_err *err)
{
    const struct ms_bt_layout *l = &b->layout;
    const struct stack_copy *c = &cs->c[0];
    char msg[512];
    if (thread_sp < c->lo || thread_sp - c->lo > c->len - l->frame_size) {
        snprintf(msg, sizeof(msg), "thread.sp 0x%llx is not on the task's stack 0x%llx-0x%llx",
                 (unsigned long long)thread_sp, (unsigned long long)c->lo,
                 (unsigned long long)(c->lo + c->len));
        stop(bt, MS_EFORMAT, msg);
        return 0;
    }
    uint64_t bp, ret;
    memcpy(&bp, c->bytes + (thread_sp - c->lo) + l->frame_bp, 8);
    memcpy(&ret, c->bytes + (thread_sp - c->lo) + l->frame_ret_addr, 8);
    struct ms_orc_state s;
    ms_orc_state_init(&s, ret, thread_sp + l->frame_size, bp, ret == b->ret_from_fork);
    if (!in_text(b, ret)) {
        snprintf(msg, sizeof(msg),
                 "the switched-out frame's return address 0x%llx is not kernel "
                 "text",
                 (unsigned long long)ret);
        stop(bt, MS_EFORMAT, msg);
        return 0;
    }
    struct ms_bt_frame f = {MS_BT_CALL, ret, s.sp, 0, 0, 0};
    int rc = push(bt, &f, err);
    return rc < 0 ? rc : walk(b, cs, &s, bt, err);
}

/* A running task from its CPU's registers (the kernel's unwind_start from
 * pt_regs): the CPU's place first, then its callers. In user mode the
 * kernel stack holds nothing to unwind. rsp off the task's stack (an IRQ
 * or exception stack) is read from its page up, at most THREAD_SIZE, to
 * the first page that is not mapped: a vmapped IRQ stack is only page
 * aligned, with a guard page above its top. */
static int unwind_cpu(struct ms_kernel *k, const struct ms_backtracer *b,
                      const struct ms_cpu_state *c, struct stack_copies *cs,
                      struct ms_backtrace *bt, struct ms_err *err)
{
    struct ms_bt_frame f = {MS_BT_CPU_REGS, c->rip, c->rsp, 0, 0, c->rflags};
    int rc = push(bt, &f, err);
    if (rc < 0 || c->rip < KERNEL_HALF)
        return rc;
    const struct stack_copy *t = &cs->c[0];
    if (c->rsp < t->lo || c->rsp - t->lo >= t->len) {
        uint64_t size = b->layout.thread_size;
        struct stack_copy *o = &cs->c[1];
        o->lo = c->rsp & ~(STACK_PAGE - 1);
        if (!(o->bytes = malloc(size)))
            return ms_err_set(err, MS_ENOMEM, "out of memory for a stack");
        cs->n = 2;
        struct ms_err e2;
        size_t done = 0;
        int rr = ms_space_read(k->space, o->lo, o->bytes, size, &done, &e2);
        if (rr < 0 && done < c->rsp - o->lo + 8) {
            ms_err_prefix(&e2, "reading the stack at rsp 0x%llx: ", (unsigned long long)c->rsp);
            stop(bt, e2.code, e2.msg);
            return 0;
        }
        o->len = rr < 0 ? done : size;
    }
    struct ms_orc_state s;
    if ((c->known == MS_CPU_SAVE_AREA || c->known == MS_CPU_VMCS12) && !c->gprs) {
        /* rip and rsp only (no rbp, no other register): a frame whose ORC
         * needs one stops the unwind with a message, never a guess */
        ms_orc_state_init(&s, c->rip, c->rsp, 0, true);
        s.bp_unknown = true;
        return walk(b, cs, &s, bt, err);
    }
    struct ms_orc_regs p = {0};
    p.ax = c->rax, p.bx = c->rbx, p.cx = c->rcx, p.dx = c->rdx, p.si = c->rsi, p.di = c->rdi;
    p.bp = c->rbp, p.r8 = c->r8, p.r9 = c->r9, p.r10 = c->r10, p.r11 = c->r11, p.r12 = c->r12;
    p.r13 = c->r13, p.r14 = c->r14, p.r15 = c->r15;
    p.ip = c->rip, p.sp = c->rsp, p.flags = c->rflags;
    p.cs = KERNEL_CS, p.ss = KERNEL_DS; /* kernel mode */
    ms_orc_state_init_regs(&s, &p, 0);
    return walk(b, cs, &s, bt, err);
}

int ms_kernel_backtrace(struct ms_kernel *k, const struct ms_task *task,
                        const struct ms_cpu_state *cpus, unsigned ncpus, struct ms_backtrace *out,
                        struct ms_err *err)
{
    memset(out, 0, sizeof(*out));
    out->task = task->addr;
    out->pid = task->pid;
    memcpy(out->comm, task->comm, sizeof(out->comm));
    int rc = ms_kernel_backtracer(k, err);
    if (rc < 0)
        return rc;
    const struct ms_backtracer *b = k->bt;
    const struct ms_bt_layout *l = &b->layout;
    uint64_t stack = 0, thread_sp = 0;
    uint32_t on_cpu = 0;
    struct ms_err e2;
    if (ms_space_read(k->space, task->addr + l->task_cpu, &out->cpu, 4, NULL, &e2) < 0 ||
        ms_space_read(k->space, task->addr + l->task_on_cpu, &on_cpu, 4, NULL, &e2) < 0 ||
        ms_space_read(k->space, task->addr + l->task_stack, &stack, 8, NULL, &e2) < 0 ||
        ms_space_read(k->space, task->addr + l->task_thread_sp, &thread_sp, 8, NULL, &e2) < 0) {
        stop(out, e2.code, e2.msg);
        return 0;
    }
    const struct ms_cpu_state *cpu = NULL;
    if (on_cpu) {
        out->running = true;
        if (!cpus || out->cpu >= ncpus || cpus[out->cpu].known == MS_CPU_NONE)
            return 0;
        cpu = &cpus[out->cpu];
        static const char *const saved_by[2][2] = {
            {"its VMCB: the state at its last #VMEXIT",
             "its VMCB: the state at its last #VMEXIT, all registers from L1's KVM"},
            {"its vmcs12: the state KVM last wrote back",
             "its vmcs12: the state KVM last wrote back, all registers from L1's KVM"}};
        if (cpu->known == MS_CPU_SAVE_AREA || cpu->known == MS_CPU_VMCS12)
            out->saved_by = saved_by[cpu->known == MS_CPU_VMCS12][cpu->gprs];
    }
    if (!stack || stack % l->thread_size) {
        char msg[128];
        snprintf(msg, sizeof(msg), "task->stack 0x%llx is not a kernel stack",
                 (unsigned long long)stack);
        stop(out, MS_EFORMAT, msg);
        return 0;
    }
    struct stack_copies cs = {{{stack, l->thread_size, malloc(l->thread_size)}}, 1};
    if (!cs.c[0].bytes)
        return ms_err_set(err, MS_ENOMEM, "out of memory for a stack");
    if (ms_space_read(k->space, stack, cs.c[0].bytes, cs.c[0].len, NULL, &e2) < 0) {
        ms_err_prefix(&e2, "reading the stack at 0x%llx: ", (unsigned long long)stack);
        stop(out, e2.code, e2.msg);
        rc = 0;
    } else if (cpu) {
        rc = unwind_cpu(k, b, cpu, &cs, out, err);
    } else {
        rc = unwind(b, thread_sp, &cs, out, err);
    }
    free(cs.c[0].bytes);
    free(cs.c[1].bytes);
    if (rc < 0)
        ms_backtrace_free(out);
    return rc;
}

const char *ms_reg_name(unsigned reg)
{
    static const char *const names[MS_REG_COUNT] = {
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp",     "rsp",     "r8",
        "r9",  "r10", "r11", "r12", "r13", "r14", "r15",     "rip",     "eflags",
        "cs",  "ss",  "ds",  "es",  "fs",  "gs",  "fs_base", "gs_base", "k_gs_base",
        "cr0", "cr2", "cr3", "cr4", "cr8", "efer"};
    return reg < MS_REG_COUNT ? names[reg] : NULL;
}

static void set_reg(struct ms_regs *r, unsigned reg, uint64_t value)
{
    r->v[reg] = value;
    r->valid |= REG_BIT(reg);
}

int ms_kernel_task_regs(struct ms_kernel *k, uint64_t task, const struct ms_cpu_state *cpus,
                        unsigned ncpus, struct ms_task_regs *out, struct ms_err *err)
{
    memset(out, 0, sizeof(*out));
    int rc = ms_kernel_backtracer(k, err);
    if (rc < 0)
        return rc;
    const struct ms_bt_layout *l = &k->bt->layout;
    uint32_t on_cpu = 0;
    uint64_t thread_sp = 0;
    if ((rc = ms_space_read(k->space, task + l->task_cpu, &out->cpu, 4, NULL, err)) < 0 ||
        (rc = ms_space_read(k->space, task + l->task_on_cpu, &on_cpu, 4, NULL, err)) < 0 ||
        (rc = ms_space_read(k->space, task + l->task_thread_sp, &thread_sp, 8, NULL, err)) < 0)
        return ms_err_prefix(err, "task 0x%llx: ", (unsigned long long)task);
    struct ms_regs *r = &out->regs;
    if (on_cpu) {
        out->on_cpu = true;
        if (!cpus || out->cpu >= ncpus || cpus[out->cpu].known == MS_CPU_NONE)
            return 0;
        const struct ms_cpu_state *c = &cpus[out->cpu];
        const uint64_t gprs[16] = {c->rax, c->rbx, c->rcx, c->rdx, c->rsi, c->rdi, c->rbp, c->rsp,
                                   c->r8,  c->r9,  c->r10, c->r11, c->r12, c->r13, c->r14, c->r15};
        if (c->known == MS_CPU_ALL) {
            for (unsigned i = 0; i < 16; i++)
                set_reg(r, MS_REG_RAX + i, gprs[i]);
        } else { /* a VMCB's save area */
            set_reg(r, MS_REG_RAX, c->rax);
            set_reg(r, MS_REG_RSP, c->rsp);
        }
        set_reg(r, MS_REG_RIP, c->rip);
        set_reg(r, MS_REG_RFLAGS, c->rflags);
        set_reg(r, MS_REG_FS_BASE, c->fs_base);
        set_reg(r, MS_REG_GS_BASE, c->gs_base);
        if (c->has_cr) {
            set_reg(r, MS_REG_K_GS_BASE, c->kernel_gs_base);
            set_reg(r, MS_REG_CR0, c->cr0);
            set_reg(r, MS_REG_CR2, c->cr2);
            set_reg(r, MS_REG_CR3, c->cr3);
            set_reg(r, MS_REG_CR4, c->cr4);
        }
        out->source = MS_REGS_CPU;
        return 0;
    }
    uint8_t frame[256]; /* ms_bt_layout_from_typedb keeps frame_size within it */
    if ((rc = ms_space_read(k->space, thread_sp, frame, l->frame_size, NULL, err)) < 0)
        return ms_err_prefix(err, "task 0x%llx's switched-out frame at thread.sp 0x%llx: ",
                             (unsigned long long)task, (unsigned long long)thread_sp);
    const struct {
        unsigned reg;
        uint64_t off;
    } saved[] = {{MS_REG_RIP, l->frame_ret_addr}, {MS_REG_RBP, l->frame_bp},
                 {MS_REG_RBX, l->frame_bx},       {MS_REG_R12, l->frame_r12},
                 {MS_REG_R13, l->frame_r13},      {MS_REG_R14, l->frame_r14},
                 {MS_REG_R15, l->frame_r15}};
    for (size_t i = 0; i < sizeof(saved) / sizeof(saved[0]); i++) {
        uint64_t v;
        if (saved[i].off > l->frame_size - 8)
            continue;
        memcpy(&v, frame + saved[i].off, 8);
        set_reg(r, saved[i].reg, v);
    }
    /* __switch_to_asm returns to ret_addr with the frame popped */
    set_reg(r, MS_REG_RSP, thread_sp + l->frame_size);
    set_reg(r, MS_REG_CS, KERNEL_CS);
    set_reg(r, MS_REG_SS, KERNEL_DS);
    out->source = MS_REGS_FRAME;
    return 0;
}

static int read_space_orc(void *arg, uint64_t addr, void *buf, size_t len, struct ms_err *err)
{
    return ms_space_read(arg, addr, buf, len, NULL, err);
}

/* The registers an unwound state knows: pt_regs' (all of them, or the iret
 * frame's), else rip, rsp and rbp. */
static void state_regs(const struct ms_orc_state *s, struct ms_regs *r)
{
    memset(r, 0, sizeof(*r));
    if (s->has_regs && s->full_regs) {
        const struct ms_orc_regs *p = &s->regs;
        const uint64_t gprs[16] = {p->ax, p->bx, p->cx,  p->dx,  p->si,  p->di,  p->bp,  p->sp,
                                   p->r8, p->r9, p->r10, p->r11, p->r12, p->r13, p->r14, p->r15};
        for (unsigned i = 0; i < 16; i++)
            set_reg(r, MS_REG_RAX + i, gprs[i]);
    }
    if (s->has_regs) {
        set_reg(r, MS_REG_RFLAGS, s->regs.flags);
        set_reg(r, MS_REG_CS, s->regs.cs);
        set_reg(r, MS_REG_SS, s->regs.ss);
    }
    set_reg(r, MS_REG_RIP, s->ip);
    set_reg(r, MS_REG_RSP, s->sp);
    if (!s->bp_unknown)
        set_reg(r, MS_REG_RBP, s->bp);
}

int ms_kernel_unwind_step(struct ms_kernel *k, struct ms_space *mem, const struct ms_frame *in,
                          struct ms_frame *out, struct ms_err *err)
{
    memset(out, 0, sizeof(*out));
    const struct ms_regs *r = &in->regs;
    const uint64_t need = REG_BIT(MS_REG_RIP) | REG_BIT(MS_REG_RSP);
    if ((r->valid & need) != need)
        return ms_err_set(err, MS_EINVAL, "an unwind step needs the frame's rip and rsp");
    int rc = ms_kernel_backtracer(k, err);
    if (rc < 0)
        return rc;
    uint64_t rbp = r->valid & REG_BIT(MS_REG_RBP) ? r->v[MS_REG_RBP] : 0;
    struct ms_orc_state s;
    if (in->exact && (r->valid & GPR_BITS) == GPR_BITS) {
        /* interrupted registers: the kernel's unwind_start(regs) */
        struct ms_orc_regs p = {0};
        p.ax = r->v[MS_REG_RAX];
        p.bx = r->v[MS_REG_RBX];
        p.cx = r->v[MS_REG_RCX];
        p.dx = r->v[MS_REG_RDX];
        p.si = r->v[MS_REG_RSI];
        p.di = r->v[MS_REG_RDI];
        p.bp = rbp;
        p.r8 = r->v[MS_REG_R8];
        p.r9 = r->v[MS_REG_R9];
        p.r10 = r->v[MS_REG_R10];
        p.r11 = r->v[MS_REG_R11];
        p.r12 = r->v[MS_REG_R12];
        p.r13 = r->v[MS_REG_R13];
        p.r14 = r->v[MS_REG_R14];
        p.r15 = r->v[MS_REG_R15];
        p.ip = r->v[MS_REG_RIP];
        p.sp = r->v[MS_REG_RSP];
        p.cs = r->valid & REG_BIT(MS_REG_CS) ? r->v[MS_REG_CS] : KERNEL_CS;
        p.ss = r->valid & REG_BIT(MS_REG_SS) ? r->v[MS_REG_SS] : KERNEL_DS;
        p.flags = r->valid & REG_BIT(MS_REG_RFLAGS) ? r->v[MS_REG_RFLAGS] : 0;
        ms_orc_state_init_regs(&s, &p, 0);
    } else {
        ms_orc_state_init(&s, r->v[MS_REG_RIP], r->v[MS_REG_RSP], rbp, in->exact);
        s.bp_unknown = !(r->valid & REG_BIT(MS_REG_RBP));
    }
    uint64_t size = k->bt->layout.thread_size, lo = s.sp & ~(size - 1);
    struct ms_orc_unwinder u = {0};
    u.tables = k->bt->tables;
    u.ntables = k->bt->ntables;
    u.stacks[0] = (struct ms_orc_stack){lo, lo + size ? lo + size : UINT64_MAX};
    /* the way back from an IRQ or exception stack: anywhere in the kernel
     * half (one step: no loop to guard against here) */
    u.stacks[1] = (struct ms_orc_stack){KERNEL_HALF, UINT64_MAX};
    u.nstacks = 2;
    u.read = read_space_orc;
    u.arg = mem;
    rc = ms_orc_step(&u, &s, err);
    if (rc < 0)
        return rc;
    bool user = s.has_regs && ms_orc_regs_user(&s.regs);
    if (rc == 0 && !user)
        return 0;
    state_regs(&s, &out->regs);
    out->exact = s.has_regs;
    out->user = user;
    return user ? 0 : 1;
}

/* The kernel's %pS (exact) or %pB (a return address: the symbol of the
 * call before it): "func+0xoff/0xsize", "func+0xoff/0xsize [module]", or
 * the bare address. */
static void put_symbol(const struct ms_kernel *k, uint64_t addr, bool ret, struct ms_strbuf *sb)
{
    const struct ms_symbol *s;
    uint64_t off, size;
    uint64_t at = ret ? addr - 1 : addr;
    if (k->syms && ms_symtab_addr_extent(k->syms, at, &s, &off, &size, NULL) == 0 && off < size) {
        ms_strbuf_printf(sb, "%s+0x%llx/0x%llx", s->name, (unsigned long long)(off + (ret ? 1 : 0)),
                         (unsigned long long)size);
        return;
    }
    const struct ms_modsyms *ms = k->modsyms;
    const struct ms_modsym *m;
    uint64_t end = UINT64_MAX;
    for (size_t i = 1; k->bt && i < k->bt->ntables; i++)
        if (at >= k->bt->tables[i].text_start && at < k->bt->tables[i].text_end)
            end = k->bt->tables[i].text_end;
    if (ms && ms_modsyms_addr_extent(ms, at, end, &m, &off, &size, NULL) == 0 && off < size) {
        ms_strbuf_printf(sb, "%s+0x%llx/0x%llx [%s]", ms->names + m->name,
                         (unsigned long long)(off + (ret ? 1 : 0)), (unsigned long long)size,
                         ms->mods.modules[m->module].name);
        return;
    }
    ms_strbuf_printf(sb, "0x%llx", (unsigned long long)addr);
}

void ms_backtrace_format(const struct ms_kernel *k, const struct ms_backtrace *bt,
                         struct ms_strbuf *sb)
{
    char comm[17 * 4];
    size_t o = 0;
    for (size_t j = 0; j < 16 && bt->comm[j]; j++) {
        unsigned char ch = (unsigned char)bt->comm[j];
        o += (size_t)snprintf(comm + o, sizeof(comm) - o,
                              ch >= 0x20 && ch < 0x7f && ch != '"' ? "%c" : "\\x%02x", ch);
    }
    comm[o] = '\0';
    ms_strbuf_printf(sb, "PID: %-7d  TASK: %llx  CPU: %-3u  COMMAND: \"%s\"\n", bt->pid,
                     (unsigned long long)bt->task, bt->cpu, comm);
    if (bt->running && !bt->count && !bt->end)
        ms_strbuf_printf(sb, "    (running on CPU %u: its saved frame is stale)\n", bt->cpu);
    unsigned n = 0;
    for (size_t i = 0; i < bt->count; i++) {
        const struct ms_bt_frame *f = &bt->frames[i];
        if (f->kind == MS_BT_CPU_REGS) {
            if (bt->saved_by)
                ms_strbuf_printf(sb, "    running on CPU %u (%s): RIP ", bt->cpu, bt->saved_by);
            else
                ms_strbuf_printf(sb, "    running on CPU %u: RIP ", bt->cpu);
            if (f->ip >= KERNEL_HALF)
                put_symbol(k, f->ip, false, sb);
            else
                ms_strbuf_printf(sb, "0x%llx", (unsigned long long)f->ip);
            ms_strbuf_printf(sb, " RSP %016llx EFLAGS %08llx%s\n", (unsigned long long)f->sp,
                             (unsigned long long)f->flags,
                             f->ip >= KERNEL_HALF ? "" : " (user mode)");
            continue;
        }
        if (f->kind == MS_BT_CALL) {
            ms_strbuf_printf(sb, "%s#%u ", n < 10 ? " " : "", n);
            put_symbol(k, f->ip, true, sb);
            ms_strbuf_printf(sb, "\n");
            n++;
            continue;
        }
        /* pt_regs: shown as the kernel shows them, not as a trace line */
        ms_strbuf_printf(sb, "    RIP: %04llx:", (unsigned long long)(f->cs & 0xffff));
        if (f->kind == MS_BT_KERNEL_REGS)
            put_symbol(k, f->ip, false, sb);
        else
            ms_strbuf_printf(sb, "0x%llx", (unsigned long long)f->ip);
        ms_strbuf_printf(sb, "\n    RSP: %04llx:%016llx EFLAGS: %08llx\n",
                         (unsigned long long)(f->ss & 0xffff), (unsigned long long)f->sp,
                         (unsigned long long)f->flags);
    }
    if (bt->end)
        ms_strbuf_printf(sb, "    bt: %s\n", bt->why);
}

int ms_kernel_bt_report(struct ms_kernel *k, const int32_t *pids, size_t npids,
                        const struct ms_cpu_state *cpus, unsigned ncpus, struct ms_strbuf *out,
                        struct ms_err *err)
{
    int rc = ms_kernel_backtracer(k, err);
    if (rc < 0)
        return rc;
    struct ms_task_list list;
    rc = ms_tasks_list(k, 0, &list, err);
    if (rc < 0)
        return rc;
    size_t shown = 0;
    int32_t missing = -1;
    for (size_t p = 0; p < (npids ? npids : 1) && rc == 0; p++) {
        bool found = false;
        for (size_t i = 0; i < list.count && rc == 0; i++) {
            if (npids && list.tasks[i].pid != pids[p])
                continue;
            found = true;
            struct ms_backtrace bt;
            rc = ms_kernel_backtrace(k, &list.tasks[i], cpus, ncpus, &bt, err);
            if (rc < 0)
                break;
            if (shown++)
                ms_strbuf_printf(out, "\n");
            ms_backtrace_format(k, &bt, out);
            ms_backtrace_free(&bt);
            if (npids)
                break; /* a pid names one task (its thread-group leader first) */
        }
        if (npids && !found && missing < 0)
            missing = pids[p];
    }
    ms_task_list_free(&list);
    if (rc == 0 && out->failed)
        rc = ms_err_set(err, MS_ENOMEM, "out of memory for the report");
    if (rc == 0 && missing >= 0)
        rc = ms_err_set(err, MS_ENOTFOUND, "no task with pid %d", missing);
    return rc;
}

int ms_kernel_cpu_bt_report(struct ms_kernel *k, uint32_t cpu, const struct ms_cpu_state *cpus,
                            unsigned ncpus, struct ms_strbuf *out, struct ms_err *err)
{
    uint64_t addr;
    int rc = ms_kernel_backtracer(k, err);
    if (rc == 0)
        rc = ms_kernel_current_task(k, cpu, &addr, err);
    if (rc < 0)
        return rc;
    struct ms_task_list list;
    rc = ms_tasks_list(k, 0, &list, err);
    if (rc < 0)
        return rc;
    /* the idle tasks but CPU 0's are on no list: init_idle names them */
    struct ms_task task = {addr, 0, 0, 0, 0, 0, ""};
    snprintf(task.comm, sizeof(task.comm), "swapper/%u", cpu);
    for (size_t i = 0; i < list.count; i++)
        if (list.tasks[i].addr == addr)
            task = list.tasks[i];
    ms_task_list_free(&list);
    struct ms_backtrace bt;
    rc = ms_kernel_backtrace(k, &task, cpus, ncpus, &bt, err);
    if (rc < 0)
        return rc;
    ms_backtrace_format(k, &bt, out);
    ms_backtrace_free(&bt);
    if (out->failed)
        return ms_err_set(err, MS_ENOMEM, "out of memory for the report");
    return 0;
}
