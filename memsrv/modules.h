/* The kernel's loaded modules (lsmod, /proc/modules) from the `modules`
 * list head: every struct module on its `list`, with the modules using it
 * from its source_list. A pure decoder of one struct module's bytes and a
 * walker over a read callback (both fuzzed); ms_modules_list takes the
 * layout from the kernel's types (DWARF or BTF) and walks the kernel's
 * space. Bounded: a list that loops without returning to its head, a NULL
 * or unreadable link, and more than max modules end the walk with an error
 * naming where, after what was listed. */
#ifndef MEMSRV_MODULES_H
#define MEMSRV_MODULES_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "kernel.h"

#define MS_MODULE_SIZES_MAX 8     /* layouts whose sizes /proc/modules adds up */
#define MS_MODULE_FIELD_MAX 65536 /* a field past this: not a struct module */

/* Byte offsets in struct module (and struct module_use). */
struct ms_module_layout {
    uint64_t list, name, name_len, state;
    uint64_t base; /* the core text's base pointer: core_layout.base, mem[MOD_TEXT].base */
    unsigned nsizes;
    uint64_t sizes[MS_MODULE_SIZES_MAX]; /* unsigned int sizes summed: init + core layouts,
                                            or every mem[] (6.4+) */
    bool has_taints;
    uint64_t taints;
    bool has_unload; /* CONFIG_MODULE_UNLOAD: refcnt, source_list, init, exit */
    uint64_t refcnt, source_list, init, exit;
    uint64_t use_source_list, use_source; /* struct module_use */
};

/* The part of struct module the decoder reads: [*lo, *hi). Fails on
 * offsets past MS_MODULE_FIELD_MAX, a name longer than MS_MODULE_NAME_MAX,
 * or more than MS_MODULE_SIZES_MAX sizes. */
int ms_module_layout_span(const struct ms_module_layout *l, uint64_t *lo, uint64_t *hi,
                          struct ms_err *err);

/* Where a struct module's lists lead (the raw list_head.next values). */
struct ms_module_links {
    uint64_t list_next;
    uint64_t source_next; /* source_list.next (has_unload) */
};

/* Decodes the struct module at addr from bytes, its [lo, hi) span as
 * ms_module_layout_span gives it (len must cover it). users_* are left 0. */
int ms_module_decode(const struct ms_module_layout *l, uint64_t addr, const uint8_t *bytes,
                     size_t len, struct ms_module *m, struct ms_module_links *links,
                     struct ms_err *err);

/* Appends m to l (the walker, and the client decoding a server's list). */
int ms_module_list_push(struct ms_module_list *l, const struct ms_module *m, struct ms_err *err);
/* Adds a user's name (at most MS_MODULE_NAME_MAX bytes, cut there) to m,
 * the module about to be pushed: m->users_off must be l->users_len as it
 * was before its first user. */
int ms_module_list_add_user(struct ms_module_list *l, struct ms_module *m, const char *name,
                            size_t len, struct ms_err *err);

#define MS_MODULES_MAX_DEFAULT 8192
#define MS_MODULES_MAX_LIMIT (1u << 20)
#define MS_MODULE_USERS_MAX 4096 /* module_use entries on one source_list */

/* Lists the modules on the list whose head is at head into out (which it
 * clears), at most max_modules (0 = MS_MODULES_MAX_DEFAULT, at most
 * MS_MODULES_MAX_LIMIT). A module whose users cannot be read keeps
 * users_known false and counts in out->bad. A walk cut short keeps what
 * it listed. */
int ms_modules_walk(const struct ms_module_layout *l, uint64_t head, ms_read_fn read, void *arg,
                    size_t max_modules, struct ms_module_list *out, struct ms_err *err);

/* Loads struct module's layout from k's types and walks k's kernel space
 * from the `modules` list head (a symbol: k needs its symbols). */
int ms_modules_list(struct ms_kernel *k, size_t max_modules, struct ms_module_list *out,
                    struct ms_err *err);

#endif
