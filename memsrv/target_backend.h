/* Inside a target: one table of operations per backend. The local backend
 * (target_local.c) holds the RAM, the space stacks and the kernels found
 * in them; the remote one (remote/target_remote.c) asks a memsrv server.
 * target.c checks arguments once and dispatches; what can be built from
 * other operations (describe, eval, x over a read window) is built there,
 * once, for both. */
#ifndef MEMSRV_TARGET_BACKEND_H
#define MEMSRV_TARGET_BACKEND_H

#include "memsrv.h"
#include "format.h"

struct ms_target_ops {
    void (*close)(struct ms_target *t);
    int (*space)(struct ms_target *t, const struct ms_stack *s, ms_handle *out, struct ms_err *err);
    int (*stack)(struct ms_target *t, ms_handle h, struct ms_stack *out, struct ms_err *err);
    int (*readv)(struct ms_target *t, ms_handle h, unsigned count, const uint64_t *addrs,
                 const uint32_t *lens, void *const *bufs, int *statuses, size_t *dones,
                 struct ms_err *err);
    int (*read)(struct ms_target *t, ms_handle h, uint64_t addr, void *buf, size_t len,
                size_t *done, struct ms_err *err);
    int (*write)(struct ms_target *t, ms_handle h, uint64_t addr, const void *buf, size_t len,
                 size_t *done, struct ms_err *err);
    int (*translate)(struct ms_target *t, ms_handle h, unsigned count, const uint64_t *addrs,
                     struct ms_xlat *out, int *statuses, struct ms_trace *trace,
                     struct ms_err *err);
    /* x with GDB's defaults resolved (xf), named by the kernel's symbols
     * when it has them; *next as ms_x_state.next. */
    int (*x)(struct ms_target *t, ms_handle h, const struct ms_xfmt *xf, uint64_t addr,
             struct ms_strbuf *out, uint64_t *next, struct ms_err *err);
    int (*vtop)(struct ms_target *t, ms_handle h, uint64_t addr, struct ms_strbuf *out,
                struct ms_err *err);
    int (*ptdump)(struct ms_target *t, ms_handle h, uint64_t start, uint64_t end,
                  struct ms_strbuf *out, struct ms_err *err);
    int (*flush)(struct ms_target *t, struct ms_err *err);
    int (*stats)(struct ms_target *t, struct ms_target_stats *out, struct ms_err *err);
    int (*enumerate)(struct ms_target *t, ms_handle h, uint64_t start, uint64_t end,
                     ms_mapping_fn fn, void *arg, uint64_t max_tables, uint64_t *bad_tables,
                     struct ms_err *err);
    int (*discover)(struct ms_target *t, struct ms_candidate *out, unsigned max, unsigned *count,
                    struct ms_err *err);
    int (*dmesg)(struct ms_target *t, ms_handle h, const struct ms_dmesg_opts *opts,
                 struct ms_strbuf *text, struct ms_dmesg_info *info, struct ms_err *err);
    int (*dmesg_next)(struct ms_target *t, ms_handle h, const struct ms_dmesg_opts *opts,
                      struct ms_dmesg_cursor *cursor, struct ms_strbuf *text, uint64_t *lost,
                      struct ms_err *err);
    int (*symbol)(struct ms_target *t, ms_handle h, const char *name, uint64_t *addr,
                  struct ms_err *err);
    int (*addrsym)(struct ms_target *t, ms_handle h, uint64_t addr, struct ms_strbuf *name,
                   uint64_t *offset, struct ms_err *err);
    int (*tasks)(struct ms_target *t, ms_handle h, struct ms_task **tasks, size_t *count,
                 uint64_t *bad, struct ms_err *err);
    int (*modules)(struct ms_target *t, ms_handle h, struct ms_module_list *out,
                   struct ms_err *err);
    int (*file_read)(struct ms_target *t, ms_handle h, const char *path, uint64_t offset, void *buf,
                     size_t len, struct ms_file_chunk *out, struct ms_err *err);
    int (*dir_list)(struct ms_target *t, ms_handle h, const char *path, struct ms_dir *out,
                    struct ms_err *err);
    int (*maps)(struct ms_target *t, ms_handle h, int32_t pid, struct ms_vma_list *out,
                struct ms_err *err);
    int (*set_symbols)(struct ms_target *t, const char *path, struct ms_err *err);
    int (*backtrace)(struct ms_target *t, ms_handle h, const int32_t *pids, size_t npids,
                     struct ms_strbuf *out, struct ms_err *err);
    int (*task_regs)(struct ms_target *t, ms_handle h, uint64_t task, struct ms_task_regs *out,
                     struct ms_err *err);
    int (*cpu_backtrace)(struct ms_target *t, ms_handle h, uint32_t cpu, struct ms_strbuf *out,
                         struct ms_err *err);
    int (*unwind_step)(struct ms_target *t, ms_handle h, const struct ms_frame *in,
                       struct ms_frame *out, struct ms_err *err);
    /* NULL: not offered by the backend */
    int (*export_vmcore)(struct ms_target *t, ms_handle h, const char *path,
                         ms_progress_fn progress, void *progress_arg, struct ms_vmcore_info *info,
                         struct ms_err *err);
    int (*kernel_info)(struct ms_target *t, ms_handle h, struct ms_kernel_info *out,
                       struct ms_err *err);
    /* The kernel's types: what (ms_types_what) with flags and a type name. */
    int (*types)(struct ms_target *t, ms_handle h, unsigned what, const char *flags,
                 const char *name, struct ms_strbuf *out, struct ms_err *err);
    /* GDB's print[/fmt] EXPR over the kernel's BTF and memory. */
    int (*print)(struct ms_target *t, ms_handle h, const char *fmt, const char *expr,
                 struct ms_strbuf *out, struct ms_err *err);
};

/* The questions the types operation answers. */
enum ms_types_what {
    MS_TYPES_SOURCE = 0, /* where the layouts came from */
    MS_TYPES_PTYPE = 1,  /* GDB's ptype[/flags] NAME */
};

struct ms_target {
    const struct ms_target_ops *ops;
    struct ms_target_info info; /* filled by the backend at open */
};

int ms_target_open_local(struct ms_target **out, const struct ms_target_opts *o,
                         struct ms_err *err);
int ms_target_open_remote(struct ms_target **out, const struct ms_target_opts *o,
                          struct ms_err *err);

/* The stack's rules, checked the same way by both backends (and by the
 * server before it builds anything). */
int ms_stack_check(const struct ms_stack *s, struct ms_err *err);

#endif
