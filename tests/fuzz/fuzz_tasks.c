/* Fuzzes the task-list walker on a small synthetic kernel built from the
 * input: up to 16 task_structs (init_task first) and their signal_structs
 * in a 8 KiB arena, every list pointer chosen by a selector byte.
 *
 * Input: u8 flags (bit 0: 6.7+ layout, threads on signal->thread_head),
 *        u8 ntasks (1 + n % 16), u8 max_tasks (1 + n % 64),
 *        u8 hole (the task whose fields are unreadable, when < ntasks),
 *        then per task 9 bytes: tasks.next, thread list next, real_parent,
 *        signal, signal's thread_head.next (selectors), pid, state, comm[0],
 *        exit_state.
 * A selector s picks, with n tasks and k = s % (n + 4): k < n task k (its
 * list node, or the task / its signal_struct), n the list's head, n + 1 an
 * address outside the arena, n + 2 NULL, n + 3 a misaligned address in
 * the arena. Missing bytes read as 0. The walk must end, list each task
 * once and take no more steps than allowed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "../support/arena.h"
#include "tasks.h"

#define BASE 0xffff888000100000ULL
#define STRIDE 0x100
#define MAX_TASKS 16
#define SIGNALS (MAX_TASKS * STRIDE)
#define ARENA (SIGNALS + MAX_TASKS * 0x40)
#define PER_TASK 9

static uint8_t mem[ARENA];
static struct test_arena arena = {BASE, mem, ARENA, 0, 0};

static const struct ms_task_layout layouts[2] = {
    {.tasks = 0x10,
     .pid = 0x20,
     .tgid = 0x24,
     .comm = 0x30,
     .state = 0x08,
     .exit_state = 0x40,
     .real_parent = 0x48,
     .has_thread_group = true,
     .thread_group = 0x50},
    {.tasks = 0x10,
     .pid = 0x20,
     .tgid = 0x24,
     .comm = 0x30,
     .state = 0x08,
     .exit_state = 0x40,
     .real_parent = 0x48,
     .signal = 0x60,
     .thread_node = 0x68,
     .sig_thread_head = 0x10},
};

static uint64_t task(unsigned i)
{
    return BASE + (uint64_t)i * STRIDE;
}

static uint64_t sig_struct(unsigned i)
{
    return BASE + SIGNALS + (uint64_t)i * 0x40;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t in[4 + MAX_TASKS * PER_TASK] = {0};
    memcpy(in, data, size < sizeof(in) ? size : sizeof(in));
    const struct ms_task_layout *l = &layouts[in[0] & 1];
    unsigned n = 1 + in[1] % MAX_TASKS;
    size_t max = 1 + in[2] % 64;
    memset(mem, 0, sizeof(mem));
    arena.hole_lo = in[3] < n ? task(in[3]) + l->pid : 0;
    arena.hole_hi = arena.hole_lo ? arena.hole_lo + 4 : 0;
    uint64_t thread_off = l->has_thread_group ? l->thread_group : l->thread_node;
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *b = in + 4 + i * PER_TASK;
        uint64_t t = task(i);
        uint64_t sig = test_arena_pick(&arena, b[3], n, sig_struct, 0, sig_struct(i));
        uint64_t own_head = sig_struct(i) + l->sig_thread_head;
        /* a thread list's head: in the leader, or in the signal_struct */
        uint64_t head = l->has_thread_group ? t + l->thread_group : sig + l->sig_thread_head;
        test_arena_put64(&arena, t + l->tasks,
                         test_arena_pick(&arena, b[0], n, task, l->tasks, task(0) + l->tasks));
        test_arena_put64(&arena, t + thread_off,
                         test_arena_pick(&arena, b[1], n, task, thread_off, head));
        test_arena_put64(&arena, t + l->real_parent, test_arena_pick(&arena, b[2], n, task, 0, t));
        if (!l->has_thread_group) {
            test_arena_put64(&arena, t + l->signal, sig);
            test_arena_put64(&arena, own_head,
                             test_arena_pick(&arena, b[4], n, task, l->thread_node, own_head));
        }
        uint32_t pid = b[5];
        memcpy(mem + (t - BASE) + l->pid, &pid, 4);
        memcpy(mem + (t - BASE) + l->tgid, &pid, 4);
        uint32_t state = b[6], exit_state = b[8];
        memcpy(mem + (t - BASE) + l->state, &state, 4);
        memcpy(mem + (t - BASE) + l->exit_state, &exit_state, 4);
        memset(mem + (t - BASE) + l->comm, b[7], 16); /* no NUL: the decoder adds one */
    }
    struct ms_task_list tl;
    struct ms_err err;
    ms_tasks_walk(l, task(0), test_arena_read, &arena, max, &tl, &err);
    if (tl.count > max + 1)
        abort();
    for (size_t i = 0; i < tl.count; i++) {
        if (strlen(tl.tasks[i].comm) > 16)
            abort();
        for (size_t j = 0; j < i; j++)
            if (tl.tasks[i].addr == tl.tasks[j].addr)
                abort(); /* listed twice */
    }
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    ms_tasks_format(tl.tasks, tl.count, &sb);
    ms_strbuf_free(&sb);
    ms_task_list_free(&tl);
    return 0;
}
