#include "tasks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct task_layout {
    uint64_t tasks, pid, tgid, comm, state, exit_state, real_parent, group;
    bool state_is_long; /* before 5.14: "long state" */
    bool has_thread_group;
    uint64_t signal, sig_thread_head, thread_node; /* without thread_group */
};

static int layout(struct ms_kernel *k, struct task_layout *l, struct ms_err *err)
{
    static const char *const want[] = {"task_struct", "signal_struct", NULL};
    int rc = ms_kernel_need_types(k, want, err);
    if (rc < 0)
        return ms_err_prefix(err, "ps needs task_struct's layout: ");
    const struct ms_typedb *db = &k->types;
    memset(l, 0, sizeof(*l));
    rc = ms_typedb_offset(db, "task_struct", "tasks", &l->tasks, err);
    if (rc == 0)
        rc = ms_typedb_offset(db, "task_struct", "pid", &l->pid, err);
    if (rc == 0)
        rc = ms_typedb_offset(db, "task_struct", "tgid", &l->tgid, err);
    if (rc == 0)
        rc = ms_typedb_offset(db, "task_struct", "comm", &l->comm, err);
    if (rc == 0)
        rc = ms_typedb_offset(db, "task_struct", "real_parent", &l->real_parent, err);
    if (rc == 0)
        rc = ms_typedb_offset(db, "task_struct", "exit_state", &l->exit_state, err);
    if (rc < 0)
        return rc;
    if (ms_typedb_offset(db, "task_struct", "__state", &l->state, NULL) < 0) {
        rc = ms_typedb_offset(db, "task_struct", "state", &l->state, err);
        if (rc < 0)
            return rc;
        l->state_is_long = true;
    }
    if (ms_typedb_offset(db, "task_struct", "thread_group", &l->group, NULL) == 0) {
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

/* A small open-addressing set of task addresses: loop detection. */
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

static int push(struct ms_task_list *out, const struct ms_task *t, struct ms_err *err)
{
    if (out->count == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 256;
        struct ms_task *p = realloc(out->tasks, cap * sizeof(*p));
        if (!p)
            return ms_err_set(err, MS_ENOMEM, "out of memory for tasks");
        out->tasks = p;
        out->cap = cap;
    }
    out->tasks[out->count++] = *t;
    return 0;
}

static void read_task(struct ms_kernel *k, const struct task_layout *l, uint64_t a,
                      struct ms_task *t, struct ms_task_list *out)
{
    memset(t, 0, sizeof(*t));
    t->addr = a;
    int rc = ms_space_read(k->space, a + l->pid, &t->pid, 4, NULL, NULL);
    rc |= ms_space_read(k->space, a + l->tgid, &t->tgid, 4, NULL, NULL);
    rc |= ms_space_read(k->space, a + l->comm, t->comm, 16, NULL, NULL);
    rc |= ms_space_read(k->space, a + l->state, &t->state, 4, NULL, NULL);
    rc |= ms_space_read(k->space, a + l->exit_state, &t->exit_state, 4, NULL, NULL);
    t->comm[16] = '\0';
    uint64_t parent = 0;
    t->ppid = 0;
    if (ms_space_read(k->space, a + l->real_parent, &parent, 8, NULL, NULL) == 0 && parent &&
        parent != a)
        ms_space_read(k->space, parent + l->pid, &t->ppid, 4, NULL, NULL);
    if (rc)
        out->bad++;
}

/* Walks the circular list whose head is at `head` (an embedded list_head),
 * calling back with each entry's container address (offset off). */
static int walk(struct ms_kernel *k, uint64_t head, uint64_t off, struct seen *seen, size_t max,
                size_t *n, const struct task_layout *l, struct ms_task_list *out, bool threads,
                struct ms_err *err)
{
    uint64_t cur;
    if (ms_space_read(k->space, head, &cur, 8, NULL, err) < 0)
        return ms_err_prefix(err, "reading list head at 0x%llx: ", (unsigned long long)head);
    while (cur != head) {
        if (++*n > max)
            return ms_err_set(err, MS_ELIMIT, "more than %zu tasks: list corrupt or limit too low",
                              max);
        uint64_t task = cur - off;
        if (seen_add(seen, task)) {
            struct ms_task t;
            read_task(k, l, task, &t, out);
            int rc = push(out, &t, err);
            if (rc < 0)
                return rc;
            if (!threads && l->has_thread_group) {
                rc = walk(k, task + l->group, l->group, seen, max, n, l, out, true, err);
                if (rc < 0)
                    return rc;
            }
        } else if (!threads) {
            return ms_err_set(err, MS_EFORMAT,
                              "task list loops at 0x%llx without returning to its head",
                              (unsigned long long)task);
        } else {
            /* a thread already listed (the leader itself): fine */
        }
        if (ms_space_read(k->space, cur, &cur, 8, NULL, err) < 0)
            return ms_err_prefix(err,
                                 "following the task list at 0x%llx: ", (unsigned long long)task);
    }
    return 0;
}

int ms_tasks_list(struct ms_kernel *k, size_t max_tasks, struct ms_task_list *out,
                  struct ms_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!max_tasks)
        max_tasks = MS_TASKS_MAX_DEFAULT;
    struct task_layout l;
    int rc = layout(k, &l, err);
    if (rc < 0)
        return rc;
    uint64_t init;
    rc = ms_kernel_symbol(k, "init_task", &init, err);
    if (rc < 0)
        return rc;
    struct seen seen;
    size_t size = 1024;
    while (size < max_tasks * 2)
        size <<= 1;
    seen.v = calloc(size, sizeof(uint64_t));
    seen.mask = size - 1;
    if (!seen.v)
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    struct ms_task t;
    read_task(k, &l, init, &t, out);
    seen_add(&seen, init);
    rc = push(out, &t, err);
    size_t n = 0;
    if (rc == 0)
        rc = walk(k, init + l.tasks, l.tasks, &seen, max_tasks, &n, &l, out, false, err);
    free(seen.v);
    return rc;
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
