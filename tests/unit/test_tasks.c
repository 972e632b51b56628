/* The task-list decoder and walker on synthetic kernel memory: task_structs
 * linked the way the kernel links them (tasks, thread_group, or 6.7+'s
 * signal->thread_head over thread_node), then broken: loops that never
 * return to the head, pointers into nowhere, NULL, unreadable tasks, more
 * tasks than the limit. */
#include <stdlib.h>

#include "check.h"
#include "../support/arena.h"
#include "tasks.h"

#define BASE 0xffff888000100000ULL
#define ARENA 0x4000
#define STRIDE 0x100   /* one task_struct */
#define SIGNALS 0x3000 /* signal_structs from here, 0x40 each */

static uint8_t mem[ARENA];
static struct test_arena arena = {BASE, mem, ARENA, 0, 0};

static const struct ms_task_layout group_layout = {
    .tasks = 0x10,
    .pid = 0x20,
    .tgid = 0x24,
    .comm = 0x30,
    .state = 0x08,
    .exit_state = 0x40,
    .real_parent = 0x48,
    .has_thread_group = true,
    .thread_group = 0x50,
};

static const struct ms_task_layout signal_layout = {
    .tasks = 0x10,
    .pid = 0x20,
    .tgid = 0x24,
    .comm = 0x30,
    .state = 0x08,
    .exit_state = 0x40,
    .real_parent = 0x48,
    .signal = 0x60,
    .thread_node = 0x68,
    .sig_thread_head = 0x10,
};

static uint64_t task(int i)
{
    return BASE + (uint64_t)i * STRIDE;
}

static void put64(uint64_t addr, uint64_t v)
{
    memcpy(mem + (addr - BASE), &v, 8);
}

static void put32(uint64_t addr, uint32_t v)
{
    memcpy(mem + (addr - BASE), &v, 4);
}

static void make_task(const struct ms_task_layout *l, int i, int pid, int tgid, const char *comm,
                      int parent, uint32_t state)
{
    uint64_t a = task(i);
    put32(a + l->pid, (uint32_t)pid);
    put32(a + l->tgid, (uint32_t)tgid);
    put32(a + l->state, state);
    put32(a + l->exit_state, 0);
    memcpy(mem + (a - BASE) + l->comm, comm, strlen(comm) + 1);
    put64(a + l->real_parent, task(parent));
}

/* A circular list through the list_heads at head, then each node in
 * turn. */
static void link_list(uint64_t head, const uint64_t *nodes, size_t n)
{
    uint64_t prev = head;
    for (size_t i = 0; i < n; i++) {
        put64(prev, nodes[i]);
        prev = nodes[i];
    }
    put64(prev, head);
}

/* init(0) -> a(1) -> b(2) -> c(3): b has threads 4 and 5. */
static void build(const struct ms_task_layout *l)
{
    memset(mem, 0, sizeof(mem));
    arena.hole_lo = arena.hole_hi = 0;
    make_task(l, 0, 0, 0, "swapper/0", 0, 0);
    make_task(l, 1, 1, 1, "init", 0, 1);
    make_task(l, 2, 100, 100, "daemon", 1, 2);
    make_task(l, 3, 200, 200, "sh", 1, 0);
    make_task(l, 4, 101, 100, "daemon-w1", 1, 1);
    make_task(l, 5, 102, 100, "daemon-w2", 1, 1);
    uint64_t tl[] = {task(1) + l->tasks, task(2) + l->tasks, task(3) + l->tasks};
    link_list(task(0) + l->tasks, tl, 3);
    if (l->has_thread_group) {
        for (int i = 0; i < 4; i++) /* single-threaded: the list is the leader's own node */
            put64(task(i) + l->thread_group, task(i) + l->thread_group);
        uint64_t th[] = {task(4) + l->thread_group, task(5) + l->thread_group};
        link_list(task(2) + l->thread_group, th, 2);
    } else {
        /* each leader has a signal_struct whose thread_head lists all threads */
        for (int i = 0; i < 4; i++) {
            uint64_t sig = BASE + SIGNALS + (uint64_t)i * 0x40;
            put64(task(i) + l->signal, sig);
            if (i == 2) {
                uint64_t th[] = {task(2) + l->thread_node, task(4) + l->thread_node,
                                 task(5) + l->thread_node};
                link_list(sig + l->sig_thread_head, th, 3);
                put64(task(4) + l->signal, sig);
                put64(task(5) + l->signal, sig);
            } else {
                uint64_t th[] = {task(i) + l->thread_node};
                link_list(sig + l->sig_thread_head, th, 1);
            }
        }
    }
}

static void check_full(const struct ms_task_list *tl, const char *what)
{
    static const struct {
        int i, pid, ppid;
        const char *comm;
    } want[] = {{0, 0, 0, "swapper/0"},   {1, 1, 0, "init"},        {2, 100, 1, "daemon"},
                {4, 101, 1, "daemon-w1"}, {5, 102, 1, "daemon-w2"}, {3, 200, 1, "sh"}};
    CHECK(tl->count == 6, "%s: %zu tasks", what, tl->count);
    for (size_t j = 0; j < 6 && j < tl->count; j++) {
        const struct ms_task *t = &tl->tasks[j];
        CHECK(t->addr == task(want[j].i) && t->pid == want[j].pid && t->ppid == want[j].ppid &&
                  strcmp(t->comm, want[j].comm) == 0,
              "%s: task %zu is %d/%d %s at 0x%llx", what, j, t->pid, t->ppid, t->comm,
              (unsigned long long)t->addr);
    }
    CHECK(tl->bad == 0, "%s: bad %llu", what, (unsigned long long)tl->bad);
}

static void test_walks(void)
{
    struct ms_task_list tl;
    struct ms_err err;
    build(&group_layout);
    CHECK(ms_tasks_walk(&group_layout, task(0), test_arena_read, &arena, 0, &tl, &err) == 0,
          "walk: %s", err.msg);
    check_full(&tl, "thread_group");
    if (tl.count > 2)
        CHECK(tl.tasks[2].tgid == 100 && tl.tasks[2].state == 2, "tgid/state");
    ms_task_list_free(&tl);

    build(&signal_layout);
    CHECK(ms_tasks_walk(&signal_layout, task(0), test_arena_read, &arena, 0, &tl, &err) == 0,
          "walk: %s", err.msg);
    check_full(&tl, "signal thread_head");
    ms_task_list_free(&tl);

    /* exactly the limit is fine; one fewer is not */
    build(&group_layout);
    CHECK(ms_tasks_walk(&group_layout, task(0), test_arena_read, &arena, 5, &tl, &err) == 0,
          "walk: %s", err.msg);
    ms_task_list_free(&tl);
    CHECK(ms_tasks_walk(&group_layout, task(0), test_arena_read, &arena, 4, &tl, &err) == MS_ELIMIT,
          "limit 4: %s", err.msg);
    ms_task_list_free(&tl);
}

/* The walk fails with code and a message containing want, keeping the
 * first `kept` tasks it listed. */
static void expect_fail(const struct ms_task_layout *l, int code, const char *want, size_t kept)
{
    struct ms_task_list tl;
    struct ms_err err;
    int rc = ms_tasks_walk(l, task(0), test_arena_read, &arena, 0, &tl, &err);
    CHECK(rc == code && strstr(err.msg, want), "want %d \"%s\": rc %d %s", code, want, rc,
          rc ? err.msg : "");
    CHECK(tl.count == kept, "\"%s\": kept %zu tasks, want %zu", want, tl.count, kept);
    ms_task_list_free(&tl);
}

static void test_broken(void)
{
    const struct ms_task_layout *l = &group_layout;
    /* sh's next leads back to daemon: a loop that never reaches init */
    build(l);
    put64(task(3) + l->tasks, task(2) + l->tasks);
    expect_fail(l, MS_EFORMAT, "task list loops at 0xffff888000100200", 6);
    /* a thread list that loops without its leader */
    build(l);
    put64(task(5) + l->thread_group, task(4) + l->thread_group);
    expect_fail(l, MS_EFORMAT, "thread list loops", 5);
    /* a pointer into nowhere: the next task cannot even be followed */
    build(l);
    put64(task(1) + l->tasks, 0xffff888012345678ULL);
    expect_fail(l, MS_EUNMAPPED, "following the task list at task 0xffff888012345668", 3);
    /* NULL */
    build(l);
    put64(task(1) + l->tasks, 0);
    expect_fail(l, MS_EFORMAT, "NULL in the task list", 2);
    /* init_task itself unreadable */
    build(l);
    arena.hole_lo = task(0);
    arena.hole_hi = task(1);
    expect_fail(l, MS_EIO, "init_task at 0xffff888000100000 is unreadable", 1);

    /* a task whose fields cannot be read (but whose list pointer can) is
     * listed by address and counted; the walk goes on */
    build(l);
    arena.hole_lo = task(3) + l->pid;
    arena.hole_hi = arena.hole_lo + 4;
    struct ms_task_list tl;
    struct ms_err err;
    CHECK(ms_tasks_walk(l, task(0), test_arena_read, &arena, 0, &tl, &err) == 0, "walk: %s",
          err.msg);
    CHECK(tl.count == 6 && tl.bad == 1, "%zu tasks, %llu bad", tl.count,
          (unsigned long long)tl.bad);
    if (tl.count == 6)
        CHECK(tl.tasks[5].addr == task(3) && tl.tasks[5].pid == 0, "bad task by address");
    ms_task_list_free(&tl);

    /* a signal variant whose thread list loops through another group */
    build(&signal_layout);
    put64(task(5) + signal_layout.thread_node, task(4) + signal_layout.thread_node);
    expect_fail(&signal_layout, MS_EFORMAT, "thread list loops", 5);
}

static void test_decode(void)
{
    uint8_t b[0x70] = {0};
    const struct ms_task_layout *l = &signal_layout;
    uint64_t lo, hi;
    struct ms_err err;
    CHECK(ms_task_layout_span(l, &lo, &hi, &err) == 0 && lo == 0x08 && hi == 0x70,
          "span [%#llx, %#llx)", (unsigned long long)lo, (unsigned long long)hi);
    uint32_t pid = 42;
    memcpy(b + 0x20 - lo, &pid, 4);
    memcpy(b + 0x30 - lo, "0123456789abcdefXYZ", 19); /* comm fills all 16 bytes */
    uint64_t next = 0xffff888000000010ULL, sig = 0xffff888000003000ULL;
    memcpy(b + 0x10 - lo, &next, 8);
    memcpy(b + 0x60 - lo, &sig, 8);
    struct ms_task t;
    struct ms_task_links k;
    CHECK(ms_task_decode(l, 0x1000, b, hi - lo, &t, &k, &err) == 0, "decode: %s", err.msg);
    CHECK(t.pid == 42 && strcmp(t.comm, "0123456789abcdef") == 0 && k.tasks_next == next &&
              k.signal == sig && t.addr == 0x1000,
          "decoded %d %s", t.pid, t.comm);
    CHECK(ms_task_decode(l, 0x1000, b, hi - lo - 1, &t, &k, &err) == MS_EINVAL, "short bytes");
    struct ms_task_layout far = *l;
    far.comm = 0x20000;
    CHECK(ms_task_layout_span(&far, &lo, &hi, &err) == MS_EFORMAT, "far field");
    struct ms_task_list tl;
    CHECK(ms_tasks_walk(&far, task(0), test_arena_read, &arena, 0, &tl, &err) == MS_EFORMAT &&
              tl.count == 0,
          "walk with a far field");
}

int main(void)
{
    test_walks();
    test_broken();
    test_decode();
    return check_done("test_tasks");
}
