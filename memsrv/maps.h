/* A process's memory map (/proc/PID/maps) from kernel memory: the task's
 * mm_struct, its VMA tree (maple tree, 6.1+: maple.h), and per VMA what
 * fs/proc/task_mmu.c's show_map_vma prints: range, r/w/x and p/s
 * (VM_MAYSHARE), file offset, the file's device and inode, and its name:
 * the file's path (d_path: d_name up d_parent, across mounts by struct
 * mount's mnt_mountpoint and mnt_parent, " (deleted)" for an unlinked
 * dentry, the d_dname of pseudo files), else [heap], [stack], a special
 * mapping's name ([vdso], [vvar]), [anon:NAME]; and the gate VMA
 * ([vsyscall]) last, as /proc adds it. A walker over a read callback
 * (fuzzed with the maple tree); ms_maps_list takes the layouts from the
 * kernel's types (DWARF or BTF) and the task from the task walk. Bounded:
 * paths of at most MS_MAPS_PATH_MAX bytes and as many steps; a VMA whose
 * name cannot be read is kept, named "?", and counted. */
#ifndef MEMSRV_MAPS_H
#define MEMSRV_MAPS_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "kernel.h"

#define MS_MAPS_PATH_MAX 4096   /* d_path's buffer in show_map_vma: a page */
#define MS_MAPS_FIELD_MAX 65536 /* an offset past this: not the struct it claims */

/* Byte offsets of the members read. */
struct ms_maps_layout {
    uint64_t task_mm, task_fs, task_flags;
    uint64_t fs_root; /* fs_struct.root, a struct path */
    uint64_t mm_mt, mm_start_brk, mm_brk, mm_start_stack;
    bool has_context_flags; /* x86's mm->context.flags (MM_CONTEXT_HAS_VSYSCALL) */
    uint64_t mm_context_flags;
    uint64_t mt_root, mt_flags; /* maple_tree.ma_root, ma_flags */
    uint64_t vm_start, vm_end, vm_flags, vm_pgoff, vm_file, vm_ops, vm_private_data;
    bool has_anon_name; /* CONFIG_ANON_VMA_NAME */
    uint64_t vm_anon_name, anon_name_name;
    uint64_t special_name;    /* vm_special_mapping.name */
    uint64_t vmops_name;      /* vm_operations_struct.name */
    uint64_t f_path, f_inode; /* file */
    uint64_t path_mnt, path_dentry;
    uint64_t i_ino, i_sb, s_dev;                   /* inode, super_block */
    uint64_t d_parent, d_name, d_op, d_hash_pprev; /* dentry (d_hash's pprev) */
    uint64_t qstr_name, qstr_len;
    uint64_t d_dname;                                   /* dentry_operations */
    uint64_t mnt_root;                                  /* vfsmount */
    uint64_t mount_parent, mount_mountpoint, mount_mnt; /* mount */
};

/* Kernel addresses that name things /proc names by calling a function:
 * 0 when unknown (then a VMA or file that needs one is named "?"). */
struct ms_maps_kernel {
    uint64_t special_mapping_name; /* vm_ops->name of special mappings */
    uint64_t simple_dname;         /* d_dname of pseudo files ("/NAME (deleted)") */
    uint64_t anon_inodefs_dname;   /* d_dname of anon inodes ("anon_inode:NAME") */
    uint64_t gate_vma;             /* the [vsyscall] VMA, 0 when none (vsyscall=none) */
};

/* Checks the offsets (each below MS_MAPS_FIELD_MAX). */
int ms_maps_layout_check(const struct ms_maps_layout *l, struct ms_err *err);

/* Appends v and its name (len bytes, cut at MS_MAPS_PATH_MAX) to out. */
int ms_vma_list_push(struct ms_vma_list *out, const struct ms_vma *v, const char *name, size_t len,
                     struct ms_err *err);

/* The memory map of the task_struct at task into out (which it clears).
 * A task with no mm (a kernel thread) is an MS_ENOTFOUND error. A walk
 * cut short keeps what it listed. */
int ms_maps_walk(const struct ms_maps_layout *l, const struct ms_maps_kernel *kk, uint64_t task,
                 ms_read_fn read, void *arg, struct ms_vma_list *out, struct ms_err *err);

/* Finds the task with pid (a thread-group leader or a thread) by the
 * task walk and lists its memory map, the layouts from k's types. */
int ms_maps_list(struct ms_kernel *k, int32_t pid, struct ms_vma_list *out, struct ms_err *err);

#endif
