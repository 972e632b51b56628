#include "maps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "maple.h"
#include "strbuf.h"
#include "tasks.h"
#include "fields.h"

#define PAGE_SHIFT 12
#define VM_READ 0x1ull
#define VM_WRITE 0x2ull
#define VM_EXEC 0x4ull
#define VM_MAYSHARE 0x80ull
#define ANON_NAME_MAX 80 /* ANON_VMA_NAME_MAX_LEN */
#define SPECIAL_NAME_MAX 64
#define PF_KTHREAD 0x00200000u      /* task_struct.flags: a kernel thread */
#define MM_CONTEXT_HAS_VSYSCALL 0x2 /* in the u16 mm->context.flags */

int ms_maps_layout_check(const struct ms_maps_layout *l, struct ms_err *err)
{
    const uint64_t all[] = {l->task_mm,      l->task_flags,     l->mm_context_flags,
                            l->task_fs,      l->fs_root,        l->mm_mt,
                            l->mm_start_brk, l->mm_brk,         l->mm_start_stack,
                            l->mt_root,      l->mt_flags,       l->vm_start,
                            l->vm_end,       l->vm_flags,       l->vm_pgoff,
                            l->vm_file,      l->vm_ops,         l->vm_private_data,
                            l->vm_anon_name, l->anon_name_name, l->special_name,
                            l->vmops_name,   l->f_path,         l->f_inode,
                            l->path_mnt,     l->path_dentry,    l->i_ino,
                            l->i_sb,         l->s_dev,          l->d_parent,
                            l->d_name,       l->d_op,           l->d_hash_pprev,
                            l->qstr_name,    l->qstr_len,       l->d_dname,
                            l->mnt_root,     l->mount_parent,   l->mount_mountpoint,
                            l->mount_mnt};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (all[i] > MS_MAPS_FIELD_MAX)
            return ms_err_set(err, MS_EFORMAT, "a maps layout offset is %llu, past %d",
                              (unsigned long long)all[i], MS_MAPS_FIELD_MAX);
    return 0;
}

int ms_vma_list_push(struct ms_vma_list *out, const struct ms_vma *v, const char *name, size_t len,
                     struct ms_err *err)
{
    if (len > MS_MAPS_PATH_MAX)
        len = MS_MAPS_PATH_MAX;
    if (out->names_len + len + 1 > UINT32_MAX) /* name_off is 32 bits */
        return ms_err_set(err, MS_ELIMIT, "the names of %zu memory areas pass 4 GiB", out->count);
    if (!MS_ARRAY_RESERVE(&out->vmas, &out->cap, out->count + 1, 32) ||
        !MS_ARRAY_RESERVE(&out->names, &out->names_cap, out->names_len + len + 1, 1024))
        return ms_err_set(err, MS_ENOMEM, "out of memory for %zu memory areas", out->count);
    struct ms_vma *d = &out->vmas[out->count++];
    *d = *v;
    d->name_off = (uint32_t)out->names_len;
    d->name_len = (uint32_t)len;
    memcpy(out->names + out->names_len, name, len);
    out->names[out->names_len + len] = 0;
    out->names_len += len + 1;
    return 0;
}

void ms_vma_list_free(struct ms_vma_list *l)
{
    free(l->vmas);
    free(l->names);
    memset(l, 0, sizeof(*l));
}

/* The pointer-sized (or u32) value at addr + off. */
static int read64(ms_read_fn read, void *arg, uint64_t addr, uint64_t off, uint64_t *v,
                  const char *what, struct ms_err *err)
{
    uint8_t b[8];
    if (addr + off < addr)
        return ms_err_set(err, MS_EFORMAT, "%s: address %#llx wraps", what,
                          (unsigned long long)addr);
    int rc = read(arg, addr + off, b, 8, NULL, err);
    if (rc < 0)
        return ms_err_prefix(err, "%s at %#llx: ", what, (unsigned long long)(addr + off));
    *v = ms_get64(b);
    return 0;
}

static int read32(ms_read_fn read, void *arg, uint64_t addr, uint64_t off, uint32_t *v,
                  const char *what, struct ms_err *err)
{
    uint8_t b[4];
    if (addr + off < addr)
        return ms_err_set(err, MS_EFORMAT, "%s: address %#llx wraps", what,
                          (unsigned long long)addr);
    int rc = read(arg, addr + off, b, 4, NULL, err);
    if (rc < 0)
        return ms_err_prefix(err, "%s at %#llx: ", what, (unsigned long long)(addr + off));
    *v = ms_get32(b);
    return 0;
}

/* A NUL-terminated string of at most max bytes at addr into out (which
 * must hold max + 1); *len its length. Reads a byte run at a time up to
 * the page end, so a short string next to an unmapped page reads. */
static int read_cstr(ms_read_fn read, void *arg, uint64_t addr, char *out, size_t max, size_t *len,
                     const char *what, struct ms_err *err)
{
    size_t got = 0;
    while (got < max) {
        uint64_t a = addr + got;
        if (a < addr)
            return ms_err_set(err, MS_EFORMAT, "%s: address wraps", what);
        size_t chunk = 4096 - (size_t)(a & 4095);
        if (chunk > max - got)
            chunk = max - got;
        int rc = read(arg, a, out + got, chunk, NULL, err);
        if (rc < 0)
            return ms_err_prefix(err, "%s at %#llx: ", what, (unsigned long long)a);
        void *nul = memchr(out + got, 0, chunk);
        if (nul) {
            *len = (size_t)((char *)nul - out);
            return 0;
        }
        got += chunk;
    }
    return ms_err_set(err, MS_EFORMAT, "%s at %#llx: no NUL within %zu bytes", what,
                      (unsigned long long)addr, max);
}

/* Builds a path from its end: d_path's prepend buffer. */
struct prepend {
    char buf[MS_MAPS_PATH_MAX + 1];
    size_t pos; /* the text is buf[pos .. MS_MAPS_PATH_MAX) */
};

static int prepend(struct prepend *p, const char *s, size_t len, struct ms_err *err)
{
    if (len > p->pos)
        return ms_err_set(err, MS_ELIMIT, "a path longer than %d bytes", MS_MAPS_PATH_MAX);
    p->pos -= len;
    memcpy(p->buf + p->pos, s, len);
    return 0;
}

/* A dentry's d_name into p (at most NAME_MAX-ish bytes, bounded by p). */
static int prepend_name(const struct ms_maps_layout *l, ms_read_fn read, void *arg, uint64_t dentry,
                        struct prepend *p, struct ms_err *err)
{
    uint64_t name;
    uint32_t len;
    int rc = read64(read, arg, dentry, l->d_name + l->qstr_name, &name, "dentry name", err);
    if (rc == 0)
        rc = read32(read, arg, dentry, l->d_name + l->qstr_len, &len, "dentry name length", err);
    if (rc < 0)
        return rc;
    if (len > p->pos)
        return ms_err_set(err, MS_ELIMIT, "a path longer than %d bytes", MS_MAPS_PATH_MAX);
    if (len) {
        rc = read(arg, name, p->buf + p->pos - len, len, NULL, err);
        if (rc < 0)
            return ms_err_prefix(err, "dentry %#llx's name at %#llx: ", (unsigned long long)dentry,
                                 (unsigned long long)name);
    }
    p->pos -= len;
    return 0;
}

struct root {
    uint64_t mnt, dentry; /* the task's fs root; 0: the mount tree's own root */
};

/* d_path's __prepend_path and prepend_path: up to the root (the task's,
 * else the global one), across mounts. */
static int prepend_path(const struct ms_maps_layout *l, ms_read_fn read, void *arg, uint64_t vfsmnt,
                        uint64_t dentry, const struct root *root, struct prepend *p,
                        struct ms_err *err)
{
    size_t start = p->pos;
    if (vfsmnt < l->mount_mnt)
        return ms_err_set(err, MS_EFORMAT, "vfsmount pointer %#llx", (unsigned long long)vfsmnt);
    uint64_t mnt = vfsmnt - l->mount_mnt; /* real_mount */
    for (unsigned steps = 0;; steps++) {
        if (steps > MS_MAPS_PATH_MAX)
            return ms_err_set(err, MS_ELIMIT,
                              "a path of more than %d dentries and mounts (a loop?)",
                              MS_MAPS_PATH_MAX);
        if (root->dentry && dentry == root->dentry && mnt + l->mount_mnt == root->mnt)
            break;
        uint64_t mnt_root, parent;
        int rc = read64(read, arg, mnt, l->mount_mnt + l->mnt_root, &mnt_root, "mount's root", err);
        if (rc == 0)
            rc = read64(read, arg, dentry, l->d_parent, &parent, "dentry's parent", err);
        if (rc < 0)
            return rc;
        if (dentry == mnt_root) {
            uint64_t up, mountpoint;
            rc = read64(read, arg, mnt, l->mount_parent, &up, "mount's parent", err);
            if (rc == 0)
                rc = read64(read, arg, mnt, l->mount_mountpoint, &mountpoint, "mount's mountpoint",
                            err);
            if (rc < 0)
                return rc;
            if (up == mnt) /* the global root */
                break;
            dentry = mountpoint;
            mnt = up;
            continue;
        }
        if (dentry == parent) { /* escaped: d_path gives "/" */
            p->pos = start;
            break;
        }
        rc = prepend_name(l, read, arg, dentry, p, err);
        if (rc == 0)
            rc = prepend(p, "/", 1, err);
        if (rc < 0)
            return rc;
        dentry = parent;
    }
    if (p->pos == start)
        return prepend(p, "/", 1, err);
    return 0;
}

/* A file's path as d_path gives it, escaped as seq_file_path(m, file,
 * "\n") prints it; its inode number and device. */
static int file_name(const struct ms_maps_layout *l, const struct ms_maps_kernel *kk,
                     ms_read_fn read, void *arg, uint64_t file, const struct root *root,
                     struct ms_vma *v, struct ms_strbuf *name, struct ms_err *err)
{
    uint64_t mnt, dentry, inode, sb, d_op, d_dname = 0;
    uint32_t dev;
    int rc = read64(read, arg, file, l->f_path + l->path_mnt, &mnt, "file's vfsmount", err);
    if (rc == 0)
        rc = read64(read, arg, file, l->f_path + l->path_dentry, &dentry, "file's dentry", err);
    if (rc == 0)
        rc = read64(read, arg, file, l->f_inode, &inode, "file's inode", err);
    if (rc == 0)
        rc = read64(read, arg, inode, l->i_ino, &v->ino, "inode number", err);
    if (rc == 0)
        rc = read64(read, arg, inode, l->i_sb, &sb, "inode's super_block", err);
    if (rc == 0)
        rc = read32(read, arg, sb, l->s_dev, &dev, "super_block's s_dev", err);
    if (rc == 0)
        rc = read64(read, arg, dentry, l->d_op, &d_op, "dentry's d_op", err);
    if (rc == 0 && d_op)
        rc = read64(read, arg, d_op, l->d_dname, &d_dname, "d_op's d_dname", err);
    if (rc < 0)
        return rc;
    v->dev = dev;
    struct prepend *p = malloc(sizeof(*p));
    if (!p)
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    p->pos = MS_MAPS_PATH_MAX;
    uint64_t parent = 0, mnt_root = 0;
    if (d_dname) {
        rc = read64(read, arg, dentry, l->d_parent, &parent, "dentry's parent", err);
        if (rc == 0)
            rc = read64(read, arg, mnt, l->mnt_root, &mnt_root, "mount's root", err);
    }
    /* d_dname names pseudo files, unless mounted (IS_ROOT and the mount's root) */
    if (rc == 0 && d_dname && !(parent == dentry && dentry == mnt_root)) {
        if (d_dname == kk->simple_dname) {
            rc = prepend(p, " (deleted)", 10, err);
            if (rc == 0)
                rc = prepend_name(l, read, arg, dentry, p, err);
            if (rc == 0)
                rc = prepend(p, "/", 1, err);
        } else if (d_dname == kk->anon_inodefs_dname) {
            rc = prepend_name(l, read, arg, dentry, p, err);
            if (rc == 0)
                rc = prepend(p, "anon_inode:", 11, err);
        } else {
            rc = ms_err_set(err, MS_ENOTFOUND, "dentry %#llx is named by d_dname %#llx",
                            (unsigned long long)dentry, (unsigned long long)d_dname);
        }
    } else if (rc == 0) {
        uint64_t pprev;
        rc = read64(read, arg, dentry, l->d_parent, &parent, "dentry's parent", err);
        if (rc == 0)
            rc = read64(read, arg, dentry, l->d_hash_pprev, &pprev, "dentry's d_hash", err);
        /* d_unlinked: not a root and unhashed */
        if (rc == 0 && parent != dentry && pprev == 0)
            rc = prepend(p, " (deleted)", 10, err);
        if (rc == 0)
            rc = prepend_path(l, read, arg, mnt, dentry, root, p, err);
    }
    for (size_t i = p->pos; rc == 0 && i < MS_MAPS_PATH_MAX; i++) { /* mangle_path */
        if (p->buf[i] == '\n')
            ms_strbuf_append(name, "\\012", 4);
        else
            ms_strbuf_append(name, p->buf + i, 1);
    }
    free(p);
    return rc;
}

/* What show_map_vma names a VMA without a file: vm_ops->name (special
 * mappings), [heap], [stack], [anon:NAME]. */
static int anon_name(const struct ms_maps_layout *l, const struct ms_maps_kernel *kk,
                     ms_read_fn read, void *arg, uint64_t vma, const uint64_t mm[3],
                     const struct ms_vma *v, struct ms_strbuf *name, struct ms_err *err)
{
    uint64_t ops, fn = 0;
    int rc = read64(read, arg, vma, l->vm_ops, &ops, "vm_ops", err);
    if (rc == 0 && ops)
        rc = read64(read, arg, ops, l->vmops_name, &fn, "vm_ops' name", err);
    if (rc < 0)
        return rc;
    if (fn) {
        if (fn != kk->special_mapping_name)
            return ms_err_set(err, MS_ENOTFOUND, "the area is named by vm_ops->name %#llx",
                              (unsigned long long)fn);
        uint64_t sm, s;
        char text[SPECIAL_NAME_MAX + 1];
        size_t len;
        rc = read64(read, arg, vma, l->vm_private_data, &sm, "vm_private_data", err);
        if (rc == 0)
            rc = read64(read, arg, sm, l->special_name, &s, "special mapping's name", err);
        if (rc == 0 && s)
            rc = read_cstr(read, arg, s, text, SPECIAL_NAME_MAX, &len, "special mapping's name",
                           err);
        if (rc < 0)
            return rc;
        if (s) {
            ms_strbuf_append(name, text, len);
            return 0;
        }
    }
    /* mm: start_brk, brk, start_stack */
    if (v->start <= mm[1] && v->end >= mm[0]) {
        ms_strbuf_append(name, "[heap]", 6);
        return 0;
    }
    if (v->start <= mm[2] && v->end >= mm[2]) {
        ms_strbuf_append(name, "[stack]", 7);
        return 0;
    }
    if (!l->has_anon_name)
        return 0;
    uint64_t an;
    rc = read64(read, arg, vma, l->vm_anon_name, &an, "anon_name", err);
    if (rc < 0 || !an)
        return rc;
    char text[ANON_NAME_MAX + 1];
    size_t len;
    rc = read_cstr(read, arg, an + l->anon_name_name, text, ANON_NAME_MAX, &len, "anon_name", err);
    if (rc < 0)
        return rc;
    ms_strbuf_printf(name, "[anon:%.*s]", (int)len, text);
    return 0;
}

/* One VMA (vma at its address) into out. */
static int add_vma(const struct ms_maps_layout *l, const struct ms_maps_kernel *kk, ms_read_fn read,
                   void *arg, uint64_t vma, const uint64_t mm[3], const struct root *root,
                   bool gate, struct ms_vma_list *out, struct ms_err *err)
{
    struct ms_vma v = {.addr = vma, .name_known = true};
    uint64_t pgoff, file = 0;
    int rc = read64(read, arg, vma, l->vm_start, &v.start, "vm_start", err);
    if (rc == 0)
        rc = read64(read, arg, vma, l->vm_end, &v.end, "vm_end", err);
    if (rc == 0)
        rc = read64(read, arg, vma, l->vm_flags, &v.flags, "vm_flags", err);
    if (rc == 0)
        rc = read64(read, arg, vma, l->vm_pgoff, &pgoff, "vm_pgoff", err);
    if (rc == 0 && !gate)
        rc = read64(read, arg, vma, l->vm_file, &file, "vm_file", err);
    if (rc < 0)
        return ms_err_prefix(err, "the VMA at %#llx: ", (unsigned long long)vma);
    if (v.end <= v.start)
        return ms_err_set(err, MS_EFORMAT, "the VMA at %#llx: vm_start %#llx, vm_end %#llx",
                          (unsigned long long)vma, (unsigned long long)v.start,
                          (unsigned long long)v.end);
    struct ms_strbuf name;
    ms_strbuf_init(&name);
    struct ms_err why;
    if (file) {
        v.offset = pgoff << PAGE_SHIFT;
        rc = file_name(l, kk, read, arg, file, root, &v, &name, &why);
    } else if (gate) {
        ms_strbuf_append(&name, "[vsyscall]", 10); /* gate_vma_ops' name */
    } else {
        rc = anon_name(l, kk, read, arg, vma, mm, &v, &name, &why);
    }
    if (rc < 0 || name.failed) { /* kept, named "?" */
        v.name_known = false;
        out->bad++;
        ms_strbuf_reset(&name);
        ms_strbuf_append(&name, "?", 1);
    }
    rc = ms_vma_list_push(out, &v, ms_strbuf_str(&name), name.len, err);
    ms_strbuf_free(&name);
    return rc;
}

int ms_maps_walk(const struct ms_maps_layout *l, const struct ms_maps_kernel *kk, uint64_t task,
                 ms_read_fn read, void *arg, struct ms_vma_list *out, struct ms_err *err)
{
    memset(out, 0, sizeof(*out));
    int rc = ms_maps_layout_check(l, err);
    if (rc < 0)
        return rc;
    uint64_t mm, fs, mmv[3], ma_root;
    uint32_t ma_flags;
    rc = read64(read, arg, task, l->task_mm, &mm, "task's mm", err);
    if (rc < 0)
        return rc;
    if (!mm) {
        uint32_t flags = 0;
        read32(read, arg, task, l->task_flags, &flags, "task's flags", NULL);
        return ms_err_set(err, MS_ENOTFOUND, "the task at %#llx %s: it has no memory map",
                          (unsigned long long)task,
                          flags & PF_KTHREAD ? "is a kernel thread" : "has exited");
    }
    /* the task's root: d_path stops there (0: at the mount tree's root) */
    struct root root = {0, 0};
    if (read64(read, arg, task, l->task_fs, &fs, "task's fs", NULL) < 0 || !fs ||
        read64(read, arg, fs, l->fs_root + l->path_mnt, &root.mnt, "fs root", NULL) < 0 ||
        read64(read, arg, fs, l->fs_root + l->path_dentry, &root.dentry, "fs root", NULL) < 0)
        root.mnt = root.dentry = 0;
    rc = read64(read, arg, mm, l->mm_start_brk, &mmv[0], "mm's start_brk", err);
    if (rc == 0)
        rc = read64(read, arg, mm, l->mm_brk, &mmv[1], "mm's brk", err);
    if (rc == 0)
        rc = read64(read, arg, mm, l->mm_start_stack, &mmv[2], "mm's start_stack", err);
    if (rc == 0)
        rc = read64(read, arg, mm, l->mm_mt + l->mt_root, &ma_root, "mm's VMA tree root", err);
    if (rc == 0)
        rc = read32(read, arg, mm, l->mm_mt + l->mt_flags, &ma_flags, "mm's VMA tree flags", err);
    if (rc < 0)
        return rc;
    struct ms_maple_list vmas;
    rc = ms_maple_walk(mm + l->mm_mt, ma_root, ma_flags, read, arg, 0, 0, &vmas, err);
    if (rc < 0)
        ms_err_prefix(err, "the VMA tree of mm %#llx: ", (unsigned long long)mm);
    for (size_t i = 0; rc == 0 && i < vmas.count; i++) {
        const struct ms_maple_entry *e = &vmas.entries[i];
        if (e->value & 7) {
            rc = ms_err_set(err, MS_EFORMAT, "the VMA tree holds %#llx at %#llx: not a VMA",
                            (unsigned long long)e->value, (unsigned long long)e->first);
            break;
        }
        rc = add_vma(l, kk, read, arg, e->value, mmv, &root, false, out, err);
        /* the tree's range is the VMA's: [vm_start, vm_end - 1] */
        const struct ms_vma *v = rc == 0 ? &out->vmas[out->count - 1] : NULL;
        if (v && (v->start != e->first || v->end - 1 != e->last))
            rc = ms_err_set(err, MS_EFORMAT,
                            "the VMA at %#llx spans %#llx-%#llx but the tree has it at "
                            "%#llx-%#llx",
                            (unsigned long long)e->value, (unsigned long long)v->start,
                            (unsigned long long)v->end, (unsigned long long)e->first,
                            (unsigned long long)e->last + 1);
    }
    ms_maple_list_free(&vmas);
    /* get_gate_vma: /proc adds it after the tree's, to 64-bit processes */
    uint32_t context = 0;
    if (rc == 0 && kk->gate_vma && l->has_context_flags)
        rc = read32(read, arg, mm, l->mm_context_flags, &context, "mm's context.flags", err);
    if (rc == 0 && kk->gate_vma && (!l->has_context_flags || (context & MM_CONTEXT_HAS_VSYSCALL)))
        rc = add_vma(l, kk, read, arg, kk->gate_vma, mmv, &root, true, out, err);
    return rc;
}

static int member(const struct ms_typedb *db, const char *type, const char *name, uint64_t *off,
                  struct ms_err *err)
{
    return ms_typedb_offset(db, type, name, off, err);
}

static int layout_from_types(struct ms_kernel *k, struct ms_maps_layout *l, struct ms_err *err)
{
    static const char *const want[] = {"task_struct",
                                       "fs_struct",
                                       "mm_struct",
                                       "maple_tree",
                                       "vm_area_struct",
                                       "vm_special_mapping",
                                       "vm_operations_struct",
                                       "file",
                                       "path",
                                       "inode",
                                       "super_block",
                                       "dentry",
                                       "qstr",
                                       "hlist_bl_node",
                                       "dentry_operations",
                                       "vfsmount",
                                       "mount",
                                       NULL};
    static const char *const want_anon[] = {"anon_vma_name", NULL};
    static const char *const want_context[] = {"mm_context_t", NULL};
    const struct ms_typedb *db = &k->types;
    int rc = ms_kernel_need_types(k, want, err);
    if (rc < 0)
        return ms_err_prefix(err, "maps needs the kernel's VMA and file layouts: ");
    memset(l, 0, sizeof(*l));
    uint64_t d_hash = 0, pprev = 0;
    struct {
        const char *type, *name;
        uint64_t *off;
    } m[] = {
        {"task_struct", "mm", &l->task_mm},
        {"task_struct", "fs", &l->task_fs},
        {"task_struct", "flags", &l->task_flags},
        {"fs_struct", "root", &l->fs_root},
        {"mm_struct", "mm_mt", &l->mm_mt},
        {"mm_struct", "start_brk", &l->mm_start_brk},
        {"mm_struct", "brk", &l->mm_brk},
        {"mm_struct", "start_stack", &l->mm_start_stack},
        {"maple_tree", "ma_root", &l->mt_root},
        {"maple_tree", "ma_flags", &l->mt_flags},
        {"vm_area_struct", "vm_start", &l->vm_start},
        {"vm_area_struct", "vm_end", &l->vm_end},
        {"vm_area_struct", "vm_flags", &l->vm_flags},
        {"vm_area_struct", "vm_pgoff", &l->vm_pgoff},
        {"vm_area_struct", "vm_file", &l->vm_file},
        {"vm_area_struct", "vm_ops", &l->vm_ops},
        {"vm_area_struct", "vm_private_data", &l->vm_private_data},
        {"vm_special_mapping", "name", &l->special_name},
        {"vm_operations_struct", "name", &l->vmops_name},
        {"file", "f_path", &l->f_path},
        {"file", "f_inode", &l->f_inode},
        {"path", "mnt", &l->path_mnt},
        {"path", "dentry", &l->path_dentry},
        {"inode", "i_ino", &l->i_ino},
        {"inode", "i_sb", &l->i_sb},
        {"super_block", "s_dev", &l->s_dev},
        {"dentry", "d_parent", &l->d_parent},
        {"dentry", "d_name", &l->d_name},
        {"dentry", "d_op", &l->d_op},
        {"dentry", "d_hash", &d_hash},
        {"hlist_bl_node", "pprev", &pprev},
        {"qstr", "name", &l->qstr_name},
        {"qstr", "len", &l->qstr_len},
        {"dentry_operations", "d_dname", &l->d_dname},
        {"vfsmount", "mnt_root", &l->mnt_root},
        {"mount", "mnt_parent", &l->mount_parent},
        {"mount", "mnt_mountpoint", &l->mount_mountpoint},
        {"mount", "mnt", &l->mount_mnt},
    };
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
        rc = member(db, m[i].type, m[i].name, m[i].off, err);
        if (rc < 0)
            return ms_err_prefix(err, "maps: ");
    }
    l->d_hash_pprev = d_hash + pprev;
    /* x86: whether a process has the [vsyscall] page (not 32-bit ones) */
    uint64_t context, flags;
    if (ms_typedb_has(db, "mm_struct", "context") &&
        ms_kernel_need_types(k, want_context, NULL) == 0 &&
        member(db, "mm_struct", "context", &context, NULL) == 0 &&
        member(db, "mm_context_t", "flags", &flags, NULL) == 0) {
        l->has_context_flags = true;
        l->mm_context_flags = context + flags;
    }
    /* CONFIG_ANON_VMA_NAME: [anon:NAME] */
    if (ms_typedb_has(db, "vm_area_struct", "anon_name") &&
        ms_kernel_need_types(k, want_anon, NULL) == 0 &&
        member(db, "vm_area_struct", "anon_name", &l->vm_anon_name, NULL) == 0 &&
        member(db, "anon_vma_name", "name", &l->anon_name_name, NULL) == 0)
        l->has_anon_name = true;
    return 0;
}

/* The functions and objects /proc's names depend on, from the symbols. */
static void kernel_names(struct ms_kernel *k, struct ms_maps_kernel *kk)
{
    memset(kk, 0, sizeof(*kk));
    ms_kernel_symbol(k, "special_mapping_name", &kk->special_mapping_name, NULL);
    ms_kernel_symbol(k, "simple_dname", &kk->simple_dname, NULL);
    ms_kernel_symbol(k, "anon_inodefs_dname", &kk->anon_inodefs_dname, NULL);
    /* get_gate_vma: none with vsyscall=none (enum { EMULATE, XONLY, NONE }) */
    uint64_t gate, mode_sym;
    uint32_t mode = 0;
    if (ms_kernel_symbol(k, "gate_vma", &gate, NULL) < 0)
        return;
    if (ms_kernel_symbol(k, "vsyscall_mode", &mode_sym, NULL) == 0 &&
        ms_space_read(k->space, mode_sym, &mode, 4, NULL, NULL) == 0 && mode == 2)
        return;
    kk->gate_vma = gate;
}

int ms_maps_list(struct ms_kernel *k, int32_t pid, struct ms_vma_list *out, struct ms_err *err)
{
    memset(out, 0, sizeof(*out));
    struct ms_maps_layout l;
    int rc = layout_from_types(k, &l, err);
    if (rc < 0)
        return rc;
    struct ms_task_list tasks;
    rc = ms_tasks_list(k, 0, &tasks, err);
    uint64_t task = 0;
    for (size_t i = 0; i < tasks.count && !task; i++)
        if (tasks.tasks[i].pid == pid)
            task = tasks.tasks[i].addr;
    ms_task_list_free(&tasks);
    if (!task)
        return rc < 0 ? ms_err_prefix(err, "no task with pid %d in the tasks read: ", pid)
                      : ms_err_set(err, MS_ENOTFOUND, "no task with pid %d", pid);
    struct ms_maps_kernel kk;
    kernel_names(k, &kk);
    rc = ms_maps_walk(&l, &kk, task, ms_space_read_fn, k->space, out, err);
    return rc < 0 ? ms_err_prefix(err, "pid %d: ", pid) : 0;
}

/* show_vma_header_prefix and the padding of seq_pad: names start at
 * column 73 (seq_setwidth 25 + 6 * sizeof(void *) - 1, then a space). */
void ms_maps_format(const struct ms_vma_list *l, struct ms_strbuf *sb)
{
    for (size_t i = 0; i < l->count; i++) {
        const struct ms_vma *v = &l->vmas[i];
        char line[160];
        int n = snprintf(line, sizeof(line), "%08llx-%08llx %c%c%c%c %08llx %02x:%02x %llu ",
                         (unsigned long long)v->start, (unsigned long long)v->end,
                         v->flags & VM_READ ? 'r' : '-', v->flags & VM_WRITE ? 'w' : '-',
                         v->flags & VM_EXEC ? 'x' : '-', v->flags & VM_MAYSHARE ? 's' : 'p',
                         (unsigned long long)v->offset, v->dev >> 20, v->dev & 0xfffff,
                         (unsigned long long)v->ino);
        ms_strbuf_append(sb, line, (size_t)n);
        const char *name = l->names ? l->names + v->name_off : "";
        if (v->name_len) {
            for (int col = n; col < 72; col++)
                ms_strbuf_append(sb, " ", 1);
            ms_strbuf_append(sb, " ", 1);
            ms_strbuf_append(sb, name, v->name_len);
        }
        ms_strbuf_append(sb, "\n", 1);
    }
}
