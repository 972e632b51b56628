/* The task list (ps) from init_task: every thread-group leader on the
 * `tasks` list and every thread on its `thread_group` list (or the
 * signal's thread_head on kernels without thread_group). Bounded: pointer
 * loops that never return to the head, and more than max tasks, stop the
 * walk with an error naming where. task_struct offsets come from DWARF. */
#ifndef MEMSRV_TASKS_H
#define MEMSRV_TASKS_H

#include <stdint.h>

#include "error.h"
#include "kernel.h"
#include "strbuf.h"


struct ms_task_list {
    struct ms_task *tasks;
    size_t count, cap;
    uint64_t bad; /* tasks whose fields could not be read */
};

#define MS_TASKS_MAX_DEFAULT 65536

/* Loads task_struct's layout from DWARF (k must have a vmlinux) and walks. */
int ms_tasks_list(struct ms_kernel *k, size_t max_tasks, struct ms_task_list *out,
                  struct ms_err *err);
void ms_task_list_free(struct ms_task_list *l);



#endif
