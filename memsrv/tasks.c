#include "tasks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "strbuf.h"
#include "fields.h"

#define COMM_LEN 16 /* TASK_COMM_LEN */

static int layout_from_types(struct ms_kernel *k, struct ms_task_layout *l, struct ms_err *err)
{
    static const char *const want[] = {"task_struct", "signal_struct", NULL};
    int rc = ms_kernel_need_types(k, want, err);
    if (rc < 0)
        return ms_err_prefix(err, "ps needs task_struct's layout: ");
    const struct ms_typedb *db = &k->types;
    memset(l, 0, sizeof(*l));
    const char *fields[] = {"tasks", "pid", "tgid", "comm", "real_parent", "exit_state"};
    uint64_t *dst[] = {&l->tasks, &l->pid, &l->tgid, &l->comm, &l->real_parent, &l->exit_state};
    for (int i = 0; i < 6 && rc == 0; i++)
        rc = ms_typedb_offset(db, "task_struct", fields[i], dst[i], err);
    if (rc < 0)
        return rc;
    /* "unsigned int __state" since 5.14, "long state" before: the low 32
     * bits hold the flags on little-endian x86 */
    if (ms_typedb_offset(db, "task_struct", "__state", &l->state, NULL) < 0) {
        rc = ms_typedb_offset(db, "task_struct", "state", &l->state, err);
        if (rc < 0)
            return rc;
    }
    if (ms_typedb_offset(db, "task_struct", "thread_group", &l->thread_group, NULL) == 0) {
        l->has_thread_group = true;
    } else if (ms_typedb_offset(db, "task_struct", "signal", &l->signal, NULL) < 0 ||
               ms_typedb_offset(db, "task_struct", "thread_node", &l->thread_node, NULL) < 0 ||
               ms_typedb_offset(db, "signal_struct", "thread_head", &l->sig_thread_head, NULL) <
                   0) {
        return ms_err_set(err, MS_ENOTFOUND,
                          "task_struct has neither thread_group nor thread_node");
    }
    return 0;
}

int ms_task_layout_span(const struct ms_task_layout *l, uint64_t *lo, uint64_t *hi,
                        struct ms_err *err)
{
    /* field offsets and sizes; the thread list's instead of the other */
    const uint64_t off[] = {l->tasks,
                            l->pid,
                            l->tgid,
                            l->comm,
                            l->state,
                            l->exit_state,
                            l->real_parent,
                            l->has_thread_group ? l->thread_group : l->thread_node,
                            l->has_thread_group ? l->real_parent : l->signal};
    const uint64_t size[] = {8, 4, 4, COMM_LEN, 4, 4, 8, 8, 8};
    return ms_fields_span(off, size, sizeof(off) / sizeof(off[0]), MS_TASK_FIELD_MAX, "task_struct",
                          lo, hi, err);
}

int ms_task_decode(const struct ms_task_layout *l, uint64_t addr, const uint8_t *bytes, size_t len,
                   struct ms_task *t, struct ms_task_links *links, struct ms_err *err)
{
    uint64_t lo, hi;
    int rc = ms_task_layout_span(l, &lo, &hi, err);
    if (rc < 0)
        return rc;
    if (len < hi - lo)
        return ms_err_set(err, MS_EINVAL, "task_struct bytes: %zu, the layout needs %llu", len,
                          (unsigned long long)(hi - lo));
    const uint8_t *b = bytes - lo; /* b + offset: the field */
    memset(t, 0, sizeof(*t));
    t->addr = addr;
    t->pid = (int32_t)ms_get32(b + l->pid);
    t->tgid = (int32_t)ms_get32(b + l->tgid);
    t->state = ms_get32(b + l->state);
    t->exit_state = ms_get32(b + l->exit_state);
    memcpy(t->comm, b + l->comm, COMM_LEN);
    t->comm[COMM_LEN] = '\0';
    links->tasks_next = ms_get64(b + l->tasks);
    links->real_parent = ms_get64(b + l->real_parent);
    if (l->has_thread_group) {
        links->thread_next = ms_get64(b + l->thread_group);
        links->signal = 0;
    } else {
        links->thread_next = ms_get64(b + l->thread_node);
        links->signal = ms_get64(b + l->signal);
    }
    return 0;
}

/* A small open-addressing set of task addresses: loop detection. */
struct seen {
    uint64_t *v;
    size_t mask;
    bool zero; /* 0 is the empty slot's value */
};

static bool seen_add(struct seen *s, uint64_t a)
{
    if (a == 0) {
        bool fresh = !s->zero;
        s->zero = true;
        return fresh;
    }
    size_t h = (size_t)((a >> 4) * 0x9e3779b97f4a7c15ULL) & s->mask;
    while (s->v[h]) {
        if (s->v[h] == a)
            return false;
        h = (h + 1) & s->mask;
    }
    s->v[h] = a;
    return true;
}

struct walk {
    const struct ms_task_layout *l;
    uint64_t lo, hi;
    ms_read_fn read;
    void *arg;
    uint8_t *buf; /* hi - lo bytes */
    struct seen seen;
    size_t steps, max;
    struct ms_task_list *out;
};

static int push(struct ms_task_list *out, const struct ms_task *t, struct ms_err *err)
{
    if (!MS_ARRAY_RESERVE(&out->tasks, &out->cap, out->count + 1, 256))
        return ms_err_set(err, MS_ENOMEM, "out of memory for tasks");
    out->tasks[out->count++] = *t;
    return 0;
}

/* Lists the task at a; *links is valid when it returns true. A task whose
 * fields cannot be read is listed by address and counted bad. */
static int visit(struct walk *w, uint64_t a, struct ms_task_links *links, bool *have_links,
                 struct ms_err *err)
{
    struct ms_task t = {.addr = a};
    *have_links = false;
    if (a + w->lo >= a && w->read(w->arg, a + w->lo, w->buf, w->hi - w->lo, NULL, NULL) == 0 &&
        ms_task_decode(w->l, a, w->buf, w->hi - w->lo, &t, links, NULL) == 0) {
        *have_links = true;
        uint64_t parent = links->real_parent;
        if (parent && parent != a &&
            w->read(w->arg, parent + w->l->pid, &t.ppid, 4, NULL, NULL) < 0)
            t.ppid = 0;
    } else {
        w->out->bad++;
    }
    return push(w->out, &t, err);
}

/* The next pointer of the list_head at node: decoded when we have it. */
static int next_of(struct walk *w, uint64_t node, bool have, uint64_t decoded, uint64_t *next,
                   const char *what, uint64_t task, struct ms_err *err)
{
    if (have) {
        *next = decoded;
        return 0;
    }
    if (w->read(w->arg, node, next, 8, NULL, err) < 0)
        return ms_err_prefix(err, "following the %s at task 0x%llx: ", what,
                             (unsigned long long)task);
    return 0;
}

static int walk_threads(struct walk *w, uint64_t leader, const struct ms_task_links *ll,
                        struct ms_err *err);

/* Walks the circular list whose head is the list_head at head, entries
 * embedded at off in each task_struct. The tasks list leads to each
 * leader's threads; on a thread list, leader (listed already) is passed
 * over. */
static int walk_list(struct walk *w, uint64_t head, uint64_t first, uint64_t off, bool threads,
                     uint64_t leader, struct ms_err *err)
{
    const char *what = threads ? "thread list" : "task list";
    uint64_t cur = first;
    while (cur != head) {
        if (++w->steps > w->max)
            return ms_err_set(err, MS_ELIMIT,
                              "more than %zu tasks: the %s is corrupt or the limit too low", w->max,
                              what);
        if (cur == 0)
            return ms_err_set(err, MS_EFORMAT, "NULL in the %s after %zu tasks", what,
                              w->out->count);
        uint64_t task = cur - off;
        struct ms_task_links links = {0};
        bool have = false;
        if (threads && task == leader) {
            /* the signal's thread list holds the leader too */
        } else if (!seen_add(&w->seen, task)) {
            return ms_err_set(err, MS_EFORMAT, "%s loops at 0x%llx without returning to its head",
                              what, (unsigned long long)task);
        } else {
            int rc = visit(w, task, &links, &have, err);
            if (rc == 0 && !threads && have)
                rc = walk_threads(w, task, &links, err);
            if (rc < 0)
                return rc;
        }
        int rc = next_of(w, cur, have, threads ? links.thread_next : links.tasks_next, &cur, what,
                         task, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int walk_threads(struct walk *w, uint64_t leader, const struct ms_task_links *ll,
                        struct ms_err *err)
{
    const struct ms_task_layout *l = w->l;
    if (l->has_thread_group) /* the list runs through the leader itself */
        return walk_list(w, leader + l->thread_group, ll->thread_next, l->thread_group, true,
                         leader, err);
    if (!ll->signal) /* no signal_struct: an exited task */
        return 0;
    uint64_t head = ll->signal + l->sig_thread_head, first;
    if (w->read(w->arg, head, &first, 8, NULL, err) < 0)
        return ms_err_prefix(
            err, "reading the thread list of task 0x%llx: ", (unsigned long long)leader);
    return walk_list(w, head, first, l->thread_node, true, leader, err);
}

int ms_tasks_walk(const struct ms_task_layout *l, uint64_t init_task, ms_read_fn read, void *arg,
                  size_t max_tasks, struct ms_task_list *out, struct ms_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!max_tasks)
        max_tasks = MS_TASKS_MAX_DEFAULT;
    if (max_tasks > MS_TASKS_MAX_LIMIT)
        return ms_err_set(err, MS_EINVAL, "at most %u tasks", MS_TASKS_MAX_LIMIT);
    struct walk w = {.l = l, .read = read, .arg = arg, .max = max_tasks, .out = out};
    int rc = ms_task_layout_span(l, &w.lo, &w.hi, err);
    if (rc < 0)
        return rc;
    size_t size = 16;
    while (size < max_tasks * 2)
        size <<= 1;
    w.seen.v = calloc(size, sizeof(uint64_t));
    w.seen.mask = size - 1;
    w.buf = malloc(w.hi - w.lo);
    if (!w.seen.v || !w.buf) {
        rc = ms_err_set(err, MS_ENOMEM, "out of memory");
        goto out;
    }
    seen_add(&w.seen, init_task);
    struct ms_task_links links;
    bool have;
    rc = visit(&w, init_task, &links, &have, err);
    if (rc < 0)
        goto out;
    if (!have) {
        rc = ms_err_set(err, MS_EIO, "init_task at 0x%llx is unreadable",
                        (unsigned long long)init_task);
        goto out;
    }
    rc = walk_threads(&w, init_task, &links, err);
    if (rc == 0)
        rc = walk_list(&w, init_task + l->tasks, links.tasks_next, l->tasks, false, 0, err);
out:
    free(w.seen.v);
    free(w.buf);
    return rc;
}

int ms_tasks_list(struct ms_kernel *k, size_t max_tasks, struct ms_task_list *out,
                  struct ms_err *err)
{
    memset(out, 0, sizeof(*out));
    struct ms_task_layout l;
    int rc = layout_from_types(k, &l, err);
    if (rc < 0)
        return rc;
    uint64_t init;
    rc = ms_kernel_symbol(k, "init_task", &init, err);
    if (rc < 0)
        return rc;
    return ms_tasks_walk(&l, init, ms_space_read_fn, k->space, max_tasks, out, err);
}

void ms_task_list_free(struct ms_task_list *l)
{
    free(l->tasks);
    memset(l, 0, sizeof(*l));
}

const char *ms_task_state_name(uint32_t state, uint32_t exit_state)
{
    if (exit_state & 0x20)
        return "ZO";
    if (exit_state & 0x10)
        return "DE";
    if (state == 0)
        return "RU";
    if (state & 0x1)
        return "IN";
    if (state & 0x2)
        return (state & 0x400) ? "ID" : "UN";
    if (state & 0x4)
        return "ST";
    if (state & 0x8)
        return "TR";
    if (state & 0x40)
        return "PA";
    if (state & 0x80)
        return "DE";
    if (state & 0x800)
        return "NE";
    return "??";
}

void ms_tasks_format(const struct ms_task *tasks, size_t count, struct ms_strbuf *sb)
{
    ms_strbuf_printf(sb, "%7s %7s  %-2s  %-16s  %s\n", "PID", "PPID", "ST", "TASK", "COMM");
    for (size_t i = 0; i < count; i++) {
        const struct ms_task *t = &tasks[i];
        char comm[17 * 4];
        size_t o = 0;
        for (size_t j = 0; t->comm[j] && j < 16; j++) {
            unsigned char c = (unsigned char)t->comm[j];
            o += (size_t)snprintf(comm + o, sizeof(comm) - o,
                                  c >= 0x20 && c < 0x7f ? "%c" : "\\x%02x", c);
        }
        comm[o] = '\0';
        ms_strbuf_printf(sb, "%7d %7d  %-2s  %016llx  %s\n", t->pid, t->ppid,
                         ms_task_state_name(t->state, t->exit_state), (unsigned long long)t->addr,
                         comm);
    }
}
