/* The task list (ps) from init_task: every thread-group leader on the
 * `tasks` list and every thread on its `thread_group` list (or the
 * signal's thread_head on kernels without thread_group, 6.7+). A pure
 * decoder of one task_struct's bytes and a walker over a read callback
 * (both fuzzed); ms_tasks_list takes the layout from DWARF and walks the
 * kernel's space. Bounded: pointer loops that never return to the head,
 * and more than max tasks, stop the walk with an error naming where. */
#ifndef MEMSRV_TASKS_H
#define MEMSRV_TASKS_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "kernel.h"

/* Byte offsets in task_struct (and signal_struct). */
struct ms_task_layout {
    uint64_t tasks, pid, tgid, comm, state, exit_state, real_parent;
    bool has_thread_group;
    uint64_t thread_group;                         /* has_thread_group */
    uint64_t signal, thread_node, sig_thread_head; /* otherwise */
};

#define MS_TASK_FIELD_MAX 65536 /* a field past this: not a task_struct */

/* The part of task_struct the decoder reads: [*lo, *hi). Fails on offsets
 * past MS_TASK_FIELD_MAX. */
int ms_task_layout_span(const struct ms_task_layout *l, uint64_t *lo, uint64_t *hi,
                        struct ms_err *err);

/* Where a task_struct's lists lead (the raw list_head.next values). */
struct ms_task_links {
    uint64_t tasks_next;  /* tasks.next */
    uint64_t thread_next; /* thread_group.next, or thread_node.next */
    uint64_t signal;      /* the signal_struct (0 with thread_group) */
    uint64_t real_parent;
};

/* Decodes the task_struct at addr from bytes, its [lo, hi) span as
 * ms_task_layout_span gives it (len must cover it). ppid is left 0: it is
 * the parent's. */
int ms_task_decode(const struct ms_task_layout *l, uint64_t addr, const uint8_t *bytes, size_t len,
                   struct ms_task *t, struct ms_task_links *links, struct ms_err *err);

struct ms_task_list {
    struct ms_task *tasks;
    size_t count, cap;
    uint64_t bad; /* tasks whose fields could not be read */
};

#define MS_TASKS_MAX_DEFAULT 65536
#define MS_TASKS_MAX_LIMIT (1u << 22)

/* Lists init_task and the tasks reached from it into out (which it
 * clears), at most max_tasks (0 = MS_TASKS_MAX_DEFAULT, at most
 * MS_TASKS_MAX_LIMIT) list steps. A walk cut short keeps what it listed. */
int ms_tasks_walk(const struct ms_task_layout *l, uint64_t init_task, ms_read_fn read, void *arg,
                  size_t max_tasks, struct ms_task_list *out, struct ms_err *err);

/* Loads task_struct's layout from DWARF (k must have a vmlinux) and walks
 * k's kernel space from init_task. */
int ms_tasks_list(struct ms_kernel *k, size_t max_tasks, struct ms_task_list *out,
                  struct ms_err *err);
void ms_task_list_free(struct ms_task_list *l);

#endif
