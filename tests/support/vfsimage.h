/* A small synthetic kernel for the VFS walk (memsrv/vfs.h), shared by
 * tests/unit/test_vfs.c and tests/fuzz/fuzz_vfs.c (header only: the fuzz
 * build links no test support objects). Kernel memory is one arena at
 * VI_KBASE (struct pages at VI_VMEMMAP inside it), guest-physical memory
 * another from 0. The tree, as Linux 6.1 links it (d_subdirs / d_child,
 * the namespace's mount list):
 *   /                    root mount M0 (its own parent)
 *   /lab/file            regular, VI_FILE_SIZE bytes over 3 pages; page 1
 *                        not cached (a shadow entry), an xarray of 2 levels
 *   /mnt                 a directory with M1 mounted on it
 *   /mnt/f2              in M1: regular, 100 bytes, a lone entry in xa_head
 *   /link -> lab/file    a fast symlink (i_link)
 *   /abs -> /mnt/f2      a symlink in the page cache
 *   /loop -> loop        a symlink to itself
 *   /neg                 a negative dentry
 *   /lab/.cursor         a readdir cursor (no name to match) */
#ifndef TESTS_VFSIMAGE_H
#define TESTS_VFSIMAGE_H

#include <stdint.h>
#include <string.h>

#include "vfs.h"

#define VI_KBASE 0xffff888000000000ULL
#define VI_KSIZE 0x10000
#define VI_VMEMMAP (VI_KBASE + 0xc000) /* struct page of pfn 0 */
#define VI_PSIZE 0x10000               /* guest-physical: 16 pages */
#define VI_FILE_SIZE (2 * 4096 + 300)

struct vimage {
    uint8_t k[VI_KSIZE];
    uint8_t p[VI_PSIZE];
    uint64_t next; /* the bump allocator's next free byte */
    uint64_t init_task;
};

static const struct ms_vfs_layout vi_layout = {
    .task_fs = 0x10,
    .task_nsproxy = 0x18,
    .fs_root = 0x08,
    .path_mnt = 0x00,
    .path_dentry = 0x08,
    .nsproxy_mnt_ns = 0x08,
    .ns_list = 0x10,
    .d_flags = 0x00,
    .d_parent = 0x18,
    .d_name_len = 0x24,
    .d_name_name = 0x28,
    .d_inode = 0x30,
    .d_child = 0x90,
    .d_subdirs = 0xa0,
    .mnt_parent = 0x10,
    .mnt_mountpoint = 0x18,
    .mnt_mnt = 0x20,
    .mnt_list = 0x60,
    .mnt_root = 0x00,
    .i_mode = 0x00,
    .i_size = 0x50,
    .i_mapping = 0x30,
    .i_link = 0x60,
    .i_pages_head = 0x10,
    .page_size = 64,
    .page_mapping = 0x18,
    .page_index = 0x20,
    .xa = {.shift = 0, .slots = 40},
};

static int vi_read_k(void *arg, uint64_t addr, void *buf, size_t len, size_t *done,
                     struct ms_err *err)
{
    const struct vimage *v = arg;
    if (done)
        *done = 0;
    if (addr < VI_KBASE || addr - VI_KBASE > VI_KSIZE || len > VI_KSIZE - (addr - VI_KBASE))
        return ms_err_set(err, MS_EUNMAPPED, "0x%llx not mapped", (unsigned long long)addr);
    memcpy(buf, v->k + (addr - VI_KBASE), len);
    if (done)
        *done = len;
    return 0;
}

static int vi_read_p(void *arg, uint64_t addr, void *buf, size_t len, size_t *done,
                     struct ms_err *err)
{
    const struct vimage *v = arg;
    if (done)
        *done = 0;
    if (addr > VI_PSIZE || len > VI_PSIZE - addr)
        return ms_err_set(err, MS_EOUTSIDE, "0x%llx outside RAM", (unsigned long long)addr);
    memcpy(buf, v->p + addr, len);
    if (done)
        *done = len;
    return 0;
}

static void vi_put(struct vimage *v, uint64_t addr, uint64_t val, unsigned size)
{
    memcpy(v->k + (addr - VI_KBASE), &val, size);
}

static uint64_t vi_alloc(struct vimage *v, uint64_t size)
{
    uint64_t a = VI_KBASE + v->next;
    v->next += (size + 0x3f) & ~0x3fULL;
    return a;
}

static void vi_list_init(struct vimage *v, uint64_t head)
{
    vi_put(v, head, head, 8);
    vi_put(v, head + 8, head, 8);
}

static void vi_list_add_tail(struct vimage *v, uint64_t head, uint64_t node)
{
    uint64_t prev;
    memcpy(&prev, v->k + (head + 8 - VI_KBASE), 8);
    vi_put(v, node, head, 8);
    vi_put(v, node + 8, prev, 8);
    vi_put(v, prev, node, 8);
    vi_put(v, head + 8, node, 8);
}

static uint64_t vi_inode(struct vimage *v, uint32_t mode, uint64_t size)
{
    uint64_t i = vi_alloc(v, 0x100), as = vi_alloc(v, 0x40);
    vi_put(v, i + vi_layout.i_mode, mode, 2);
    vi_put(v, i + vi_layout.i_size, size, 8);
    vi_put(v, i + vi_layout.i_mapping, as, 8);
    return i;
}

static uint64_t vi_dentry(struct vimage *v, uint64_t parent, const char *name, uint64_t inode,
                          uint32_t type)
{
    const struct ms_vfs_layout *l = &vi_layout;
    uint64_t d = vi_alloc(v, 0x100), n = vi_alloc(v, strlen(name) + 1);
    memcpy(v->k + (n - VI_KBASE), name, strlen(name));
    vi_put(v, d + l->d_flags, type, 4);
    vi_put(v, d + l->d_parent, parent ? parent : d, 8);
    vi_put(v, d + l->d_name_len, strlen(name), 4);
    vi_put(v, d + l->d_name_name, n, 8);
    vi_put(v, d + l->d_inode, inode, 8);
    vi_list_init(v, d + l->d_subdirs);
    if (parent)
        vi_list_add_tail(v, parent + l->d_subdirs, d + l->d_child);
    else
        vi_list_init(v, d + l->d_child);
    return d;
}

static uint64_t vi_mount(struct vimage *v, uint64_t ns, uint64_t parent, uint64_t mountpoint,
                         uint64_t root)
{
    const struct ms_vfs_layout *l = &vi_layout;
    uint64_t m = vi_alloc(v, 0x100);
    vi_put(v, m + l->mnt_parent, parent ? parent : m, 8);
    vi_put(v, m + l->mnt_mountpoint, mountpoint ? mountpoint : root, 8);
    vi_put(v, m + l->mnt_mnt + l->mnt_root, root, 8);
    vi_list_add_tail(v, ns + l->ns_list, m + l->mnt_list);
    return m;
}

/* Caches page pfn (filled with bytes from seed) at index of the inode's
 * mapping: its struct page names the mapping and the index. */
static uint64_t vi_page(struct vimage *v, uint64_t inode, uint64_t index, uint64_t pfn,
                        uint8_t seed)
{
    uint64_t page = VI_VMEMMAP + pfn * vi_layout.page_size, as;
    memcpy(&as, v->k + (inode + vi_layout.i_mapping - VI_KBASE), 8);
    vi_put(v, page + vi_layout.page_mapping, as, 8);
    vi_put(v, page + vi_layout.page_index, index, 8);
    for (unsigned i = 0; i < 4096; i++)
        v->p[pfn * 4096 + i] = (uint8_t)(seed + i * 7);
    return page;
}

static uint64_t vi_mapping(const struct vimage *v, uint64_t inode)
{
    uint64_t as;
    memcpy(&as, v->k + (inode + vi_layout.i_mapping - VI_KBASE), 8);
    return as;
}

static void vi_build(struct vimage *v)
{
    const struct ms_vfs_layout *l = &vi_layout;
    memset(v, 0, sizeof(*v));
    v->next = 0x40;
    uint64_t task = vi_alloc(v, 0x40), fs = vi_alloc(v, 0x40), nsp = vi_alloc(v, 0x40);
    uint64_t ns = vi_alloc(v, 0x40);
    v->init_task = task;
    vi_put(v, task + l->task_fs, fs, 8);
    vi_put(v, task + l->task_nsproxy, nsp, 8);
    vi_put(v, nsp + l->nsproxy_mnt_ns, ns, 8);
    vi_list_init(v, ns + l->ns_list);

    uint32_t dir = MS_S_IFDIR | 0755, reg = MS_S_IFREG | 0644, lnk = MS_S_IFLNK | 0777;
    uint32_t tdir = 0x00200000, treg = 0x00400000, tlnk = 0x00600000;
    uint64_t root = vi_dentry(v, 0, "/", vi_inode(v, dir, 0), tdir);
    uint64_t m0 = vi_mount(v, ns, 0, 0, root);
    vi_put(v, fs + l->fs_root + l->path_mnt, m0 + l->mnt_mnt, 8);
    vi_put(v, fs + l->fs_root + l->path_dentry, root, 8);

    uint64_t lab = vi_dentry(v, root, "lab", vi_inode(v, dir, 0), tdir);
    vi_dentry(v, lab, "", 0, 0x20000000); /* a cursor */
    uint64_t fi = vi_inode(v, reg, VI_FILE_SIZE);
    vi_dentry(v, lab, "file", fi, treg);
    /* the file's xarray: a root node of shift 6, slot 0 -> a leaf node */
    uint64_t top = vi_alloc(v, 40 + 64 * 8), leaf = vi_alloc(v, 40 + 64 * 8);
    vi_put(v, top, 6, 1);
    vi_put(v, top + 40, leaf | 2, 8);
    vi_put(v, leaf + 40, vi_page(v, fi, 0, 1, 0x10), 8);
    vi_put(v, leaf + 48, 0x1235, 8); /* index 1: a shadow entry */
    vi_put(v, leaf + 56, vi_page(v, fi, 2, 3, 0x30), 8);
    vi_put(v, vi_mapping(v, fi) + l->i_pages_head, top | 2, 8);

    uint64_t mnt = vi_dentry(v, root, "mnt", vi_inode(v, dir, 0), tdir | 0x10000);
    uint64_t troot = vi_dentry(v, 0, "/", vi_inode(v, dir, 0), tdir);
    vi_mount(v, ns, m0, mnt, troot);
    uint64_t f2 = vi_inode(v, reg, 100);
    vi_dentry(v, troot, "f2", f2, treg);
    vi_put(v, vi_mapping(v, f2) + l->i_pages_head, vi_page(v, f2, 0, 5, 0x50), 8);

    uint64_t li = vi_inode(v, lnk, 8), target = vi_alloc(v, 16);
    memcpy(v->k + (target - VI_KBASE), "lab/file", 9);
    vi_put(v, li + l->i_link, target, 8);
    vi_dentry(v, root, "link", li, tlnk);

    uint64_t ai = vi_inode(v, lnk, 7);
    uint64_t apage = vi_page(v, ai, 0, 6, 0);
    memcpy(v->p + 6 * 4096, "/mnt/f2", 7);
    vi_put(v, vi_mapping(v, ai) + l->i_pages_head, apage, 8);
    vi_dentry(v, root, "abs", ai, tlnk);

    uint64_t loopi = vi_inode(v, lnk, 4), ltarget = vi_alloc(v, 8);
    memcpy(v->k + (ltarget - VI_KBASE), "loop", 5);
    vi_put(v, loopi + l->i_link, ltarget, 8);
    vi_dentry(v, root, "loop", loopi, tlnk);

    vi_dentry(v, root, "neg", 0, 0);
}

/* A walker over the image. */
static void vi_vfs(struct vimage *v, struct ms_vfs *vfs)
{
    memset(vfs, 0, sizeof(*vfs));
    vfs->l = &vi_layout;
    vfs->read = vi_read_k;
    vfs->arg = v;
    vfs->pread = vi_read_p;
    vfs->parg = v;
    vfs->init_task = v->init_task;
    vfs->vmemmap = VI_VMEMMAP;
}

#endif
