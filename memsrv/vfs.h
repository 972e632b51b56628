/* Files from the kernel's own caches (memsrv cat, ls): path lookup in the
 * dentry cache from init_task's root (mount points crossed through the
 * mount namespace's list, "." and "..", symlinks followed), then a file's
 * bytes from its inode's page cache (the address_space's i_pages xarray,
 * xarray.h), each folio turned into a guest-physical address through
 * vmemmap. Linux 6.1's layout: a dentry's children on d_subdirs (linked by
 * d_child), mnt_namespace.list of mounts. A pure decoder of one dentry's
 * bytes and a walker over two read callbacks (kernel virtual, guest-physical;
 * both fuzzed). Bounded: every list walk stops at a loop or after a step
 * budget, at most MS_VFS_SYMLINKS_MAX symlinks, names at most NAME_MAX. */
#ifndef MEMSRV_VFS_H
#define MEMSRV_VFS_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "kernel.h"
#include "xarray.h"

#define MS_VFS_NAME_MAX 255             /* NAME_MAX */
#define MS_VFS_PATH_MAX 4096            /* PATH_MAX */
#define MS_VFS_SYMLINKS_MAX 40          /* MAXSYMLINKS */
#define MS_VFS_MOUNT_DEPTH 64           /* mounts stacked on one point */
#define MS_VFS_FIELD_MAX 65536          /* a field past this: not the struct */
#define MS_VFS_STEPS_DEFAULT (1u << 22) /* list entries and nodes a lookup or read may visit */
#define MS_PAGE_SIZE 4096

/* dcache.h's d_flags */
#define MS_DCACHE_MOUNTED 0x00010000u
#define MS_DCACHE_ENTRY_TYPE 0x00700000u
#define MS_DCACHE_DENTRY_CURSOR 0x20000000u

/* i_mode's file types (stat.h) */
#define MS_S_IFMT 0170000u
#define MS_S_IFDIR 0040000u
#define MS_S_IFREG 0100000u
#define MS_S_IFLNK 0120000u

/* Byte offsets the walk needs. */
struct ms_vfs_layout {
    uint64_t task_fs, task_nsproxy; /* task_struct */
    uint64_t fs_root;               /* fs_struct: struct path root */
    uint64_t path_mnt, path_dentry; /* struct path */
    uint64_t nsproxy_mnt_ns;        /* nsproxy */
    uint64_t ns_list;               /* mnt_namespace: list of mounts */
    uint64_t d_flags, d_parent, d_name_len, d_name_name, d_inode, d_child, d_subdirs; /* dentry */
    uint64_t mnt_parent, mnt_mountpoint, mnt_mnt, mnt_list; /* struct mount */
    uint64_t mnt_root;                                      /* vfsmount */
    uint64_t i_mode, i_size, i_mapping, i_link;             /* inode */
    uint64_t i_pages_head;                                  /* address_space: i_pages.xa_head */
    uint64_t page_size;                                     /* sizeof(struct page) */
    uint64_t page_mapping, page_index;
    struct ms_xa_layout xa;
};

/* The part of struct dentry the decoder reads: [*lo, *hi). */
int ms_dentry_layout_span(const struct ms_vfs_layout *l, uint64_t *lo, uint64_t *hi,
                          struct ms_err *err);

struct ms_dentry {
    uint32_t flags;
    uint64_t parent, inode;
    uint32_t name_len;
    uint64_t name; /* the name's bytes (not NUL-terminated) */
    uint64_t child_next, subdirs_next;
};

/* Decodes a dentry from its [lo, hi) bytes (len must cover them). */
int ms_dentry_decode(const struct ms_vfs_layout *l, const uint8_t *bytes, size_t len,
                     struct ms_dentry *d, struct ms_err *err);

/* Where a walk reads: kernel virtual addresses and guest-physical ones. */
struct ms_vfs {
    const struct ms_vfs_layout *l;
    ms_read_fn read;
    void *arg;
    ms_read_fn pread;
    void *parg;
    uint64_t init_task;
    uint64_t vmemmap; /* vmemmap_base's value: struct page of pfn 0 */
    size_t steps;     /* budget left; 0 at start: MS_VFS_STEPS_DEFAULT */
};

/* A file found by a lookup. */
struct ms_vfs_file {
    uint64_t mnt, dentry, inode, mapping;
    uint32_t mode;
    uint64_t size;
};

/* Looks up an absolute path from init_task's root, following symlinks
 * (also the last component). Not found: MS_ENOTFOUND saying whether the
 * name was absent from the dentry cache or a negative dentry. */
int ms_vfs_lookup(struct ms_vfs *v, const char *path, struct ms_vfs_file *out, struct ms_err *err);

#define MS_VFS_DIR_MAX (1u << 20) /* entries listed at most */

/* Lists the positive entries of the directory f (a lookup's result) into
 * out, at most MS_VFS_DIR_MAX; a mount point shows the mounted root. */
int ms_vfs_list(struct ms_vfs *v, const struct ms_vfs_file *f, struct ms_dir *out,
                struct ms_err *err);
/* Appends e to d (the walker, and the client decoding a server's list). */
int ms_dir_push(struct ms_dir *d, const struct ms_dirent *e, struct ms_err *err);
/* Sorts d's entries by name. */
void ms_dir_sort(struct ms_dir *d);

/* Reads [offset, offset + len) of a regular file (len at most
 * MS_FILE_READ_MAX) into buf: out->len bytes (up to i_size), pages not in
 * the page cache zero-filled and listed in out->holes. */
int ms_vfs_read(struct ms_vfs *v, const struct ms_vfs_file *f, uint64_t offset, void *buf,
                size_t len, struct ms_file_chunk *out, struct ms_err *err);

/* Loads the layout from k's types and the symbols init_task and
 * vmemmap_base (k needs its symbols), and sets v to read k's spaces. */
int ms_vfs_open(struct ms_kernel *k, struct ms_vfs_layout *l, struct ms_vfs *v, struct ms_err *err);

#endif
