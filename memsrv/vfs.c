#include "vfs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "strbuf.h"
#include "fields.h"

/* ------------------------------------------------------------- decoder */

int ms_dentry_layout_span(const struct ms_vfs_layout *l, uint64_t *lo, uint64_t *hi,
                          struct ms_err *err)
{
    const uint64_t off[] = {l->d_flags, l->d_parent, l->d_name_len, l->d_name_name,
                            l->d_inode, l->d_child,  l->d_subdirs};
    const uint64_t size[] = {4, 8, 4, 8, 8, 8, 8};
    return ms_fields_span(off, size, sizeof(off) / sizeof(off[0]), MS_VFS_FIELD_MAX,
                          "struct dentry", lo, hi, err);
}

int ms_dentry_decode(const struct ms_vfs_layout *l, const uint8_t *bytes, size_t len,
                     struct ms_dentry *d, struct ms_err *err)
{
    uint64_t lo, hi;
    int rc = ms_dentry_layout_span(l, &lo, &hi, err);
    if (rc < 0)
        return rc;
    if (len < hi - lo)
        return ms_err_set(err, MS_EINVAL, "dentry bytes: %zu, the layout needs %llu", len,
                          (unsigned long long)(hi - lo));
    const uint8_t *b = bytes - lo; /* b + offset: the field */
    d->flags = ms_get32(b + l->d_flags);
    d->parent = ms_get64(b + l->d_parent);
    d->name_len = ms_get32(b + l->d_name_len);
    d->name = ms_get64(b + l->d_name_name);
    d->inode = ms_get64(b + l->d_inode);
    d->child_next = ms_get64(b + l->d_child);
    d->subdirs_next = ms_get64(b + l->d_subdirs);
    return 0;
}

/* -------------------------------------------------------------- walker */

/* A place in the tree: a mount (its struct vfsmount) and a dentry in it. */
struct loc {
    uint64_t mnt, dentry;
};

struct walk {
    struct ms_vfs *v;
    const struct ms_vfs_layout *l;
    struct ms_err *err;
    uint64_t ns; /* the mount namespace */
    struct loc root;
    char where[MS_VFS_PATH_MAX + 1]; /* the path resolved so far, for messages */
};

static int step(struct ms_vfs *v, struct ms_err *err)
{
    if (v->steps == 0)
        return ms_err_set(err, MS_ELIMIT,
                          "more than %u list entries and nodes: a loop, or a directory too large",
                          MS_VFS_STEPS_DEFAULT);
    v->steps--;
    return 0;
}

static int rd64(struct ms_vfs *v, uint64_t addr, uint64_t *out, const char *what,
                struct ms_err *err)
{
    int rc = v->read(v->arg, addr, out, 8, NULL, err);
    return rc < 0 ? ms_err_prefix(err, "%s at 0x%llx: ", what, (unsigned long long)addr) : 0;
}

static int read_dentry(struct walk *w, uint64_t addr, struct ms_dentry *d)
{
    uint64_t lo, hi;
    uint8_t buf[512];
    int rc = ms_dentry_layout_span(w->l, &lo, &hi, w->err);
    if (rc < 0)
        return rc;
    if (hi - lo > sizeof(buf))
        return ms_err_set(w->err, MS_EFORMAT, "struct dentry's fields span %llu bytes",
                          (unsigned long long)(hi - lo));
    if (addr == 0)
        return ms_err_set(w->err, MS_EFORMAT, "a NULL dentry under %s", w->where);
    rc = w->v->read(w->v->arg, addr + lo, buf, hi - lo, NULL, w->err);
    if (rc == 0)
        rc = ms_dentry_decode(w->l, buf, hi - lo, d, w->err);
    return rc < 0 ? ms_err_prefix(w->err, "the dentry at 0x%llx: ", (unsigned long long)addr) : 0;
}

static int inode_mode(struct walk *w, uint64_t inode, uint32_t *mode)
{
    uint16_t m;
    int rc = w->v->read(w->v->arg, inode + w->l->i_mode, &m, 2, NULL, w->err);
    if (rc < 0)
        return ms_err_prefix(w->err, "the inode at 0x%llx: ", (unsigned long long)inode);
    *mode = m;
    return 0;
}

/* The mount on top of cur's dentry, if any, over and over: follow_mount. */
static int cross_mounts(struct walk *w, struct loc *cur)
{
    const struct ms_vfs_layout *l = w->l;
    for (unsigned depth = 0;; depth++) {
        struct ms_dentry d;
        int rc = read_dentry(w, cur->dentry, &d);
        if (rc < 0 || !(d.flags & MS_DCACHE_MOUNTED))
            return rc;
        if (depth >= MS_VFS_MOUNT_DEPTH)
            return ms_err_set(w->err, MS_ELIMIT, "more than %d mounts stacked on %s",
                              MS_VFS_MOUNT_DEPTH, w->where);
        uint64_t head = w->ns + l->ns_list, node, found = 0;
        if ((rc = rd64(w->v, head, &node, "the mount list", w->err)) < 0)
            return rc;
        uint64_t saved = head; /* Brent's cycle finding */
        unsigned power = 1, run = 0;
        for (unsigned n = 0; node != head && !found; n++) {
            if (node == saved)
                return ms_err_set(w->err, MS_EFORMAT, "the mount list loops at 0x%llx",
                                  (unsigned long long)node);
            if (++run == power) {
                saved = node;
                power <<= 1;
                run = 0;
            }
            if ((rc = step(w->v, w->err)) < 0)
                return ms_err_prefix(w->err, "the mount list: ");
            if (node == 0)
                return ms_err_set(w->err, MS_EFORMAT, "NULL in the mount list after %u mounts", n);
            uint64_t m = node - l->mnt_list, parent, mountpoint;
            if ((rc = rd64(w->v, m + l->mnt_parent, &parent, "a mount's parent", w->err)) < 0 ||
                (rc = rd64(w->v, m + l->mnt_mountpoint, &mountpoint, "a mount's mountpoint",
                           w->err)) < 0 ||
                (rc = rd64(w->v, node, &node, "the mount list", w->err)) < 0)
                return rc;
            /* a namespace's root mount is its own parent, on its own root */
            if (parent == cur->mnt - l->mnt_mnt && mountpoint == cur->dentry && m != parent)
                found = m;
        }
        if (!found)
            return 0; /* mounted in another namespace only */
        cur->mnt = found + l->mnt_mnt;
        if ((rc = rd64(w->v, cur->mnt + l->mnt_root, &cur->dentry, "a mount's root", w->err)) < 0)
            return rc;
    }
}

/* "..": up to the mount this one sits on while at a mount's root, then the
 * parent dentry; never above the root. */
static int go_up(struct walk *w, struct loc *cur)
{
    const struct ms_vfs_layout *l = w->l;
    for (unsigned depth = 0; cur->dentry != w->root.dentry || cur->mnt != w->root.mnt; depth++) {
        uint64_t mroot;
        int rc = rd64(w->v, cur->mnt + l->mnt_root, &mroot, "a mount's root", w->err);
        if (rc < 0)
            return rc;
        if (mroot != cur->dentry) {
            struct ms_dentry d;
            if ((rc = read_dentry(w, cur->dentry, &d)) < 0)
                return rc;
            cur->dentry = d.parent;
            return cross_mounts(w, cur);
        }
        if (depth >= MS_VFS_MOUNT_DEPTH)
            return ms_err_set(w->err, MS_ELIMIT, "more than %d mounts under %s", MS_VFS_MOUNT_DEPTH,
                              w->where);
        uint64_t m = cur->mnt - l->mnt_mnt, parent, mountpoint;
        if ((rc = rd64(w->v, m + l->mnt_parent, &parent, "a mount's parent", w->err)) < 0 ||
            (rc = rd64(w->v, m + l->mnt_mountpoint, &mountpoint, "a mount's mountpoint", w->err)) <
                0)
            return rc;
        if (parent == m)
            return 0; /* the namespace's root mount */
        cur->mnt = parent + l->mnt_mnt;
        cur->dentry = mountpoint;
    }
    return 0;
}

/* The positive child of dir named name (len bytes), or MS_ENOTFOUND. */
static int find_child(struct walk *w, uint64_t dir, const char *name, size_t len, uint64_t *out)
{
    const struct ms_vfs_layout *l = w->l;
    struct ms_dentry d;
    int rc = read_dentry(w, dir, &d);
    if (rc < 0)
        return rc;
    uint64_t head = dir + l->d_subdirs, cur = d.subdirs_next;
    uint64_t saved = head; /* Brent's cycle finding */
    unsigned power = 1, run = 0;
    bool negative = false;
    while (cur != head) {
        if (cur == saved)
            return ms_err_set(w->err, MS_EFORMAT, "the entries of %s loop at 0x%llx", w->where,
                              (unsigned long long)cur);
        if (++run == power) {
            saved = cur;
            power <<= 1;
            run = 0;
        }
        if ((rc = step(w->v, w->err)) < 0)
            return ms_err_prefix(w->err, "the entries of %s: ", w->where);
        if (cur == 0)
            return ms_err_set(w->err, MS_EFORMAT, "NULL in the entries of %s", w->where);
        uint64_t child = cur - l->d_child;
        struct ms_dentry c;
        if ((rc = read_dentry(w, child, &c)) < 0)
            return rc;
        cur = c.child_next;
        if (c.flags & MS_DCACHE_DENTRY_CURSOR || c.name_len != len)
            continue;
        char have[MS_VFS_NAME_MAX];
        rc = w->v->read(w->v->arg, c.name, have, len, NULL, w->err);
        if (rc < 0)
            return ms_err_prefix(w->err,
                                 "the name of the dentry at 0x%llx: ", (unsigned long long)child);
        if (memcmp(have, name, len) != 0)
            continue;
        if (c.inode == 0 || (c.flags & MS_DCACHE_ENTRY_TYPE) == 0) {
            negative = true; /* a dying one may still sit beside the live one */
            continue;
        }
        *out = child;
        return 0;
    }
    if (negative)
        return ms_err_set(w->err, MS_ENOTFOUND,
                          "%s/%.*s: no such file (a negative dentry: the guest looked for it)",
                          w->where[1] ? w->where : "", (int)len, name);
    return ms_err_set(w->err, MS_ENOTFOUND,
                      "%s/%.*s: not in the dentry cache (no such file, or a disk file the guest "
                      "has not looked up since its dentry was dropped)",
                      w->where[1] ? w->where : "", (int)len, name);
}

/* A symlink's target: the inode's i_link (fast symlinks), else its page
 * cache's first page. */
static int read_link(struct walk *w, uint64_t inode, char *out, size_t *len);

static int page_phys(struct ms_vfs *v, uint64_t page, uint64_t *phys, struct ms_err *err)
{
    const struct ms_vfs_layout *l = v->l;
    if (page < v->vmemmap || (page - v->vmemmap) % l->page_size ||
        (page - v->vmemmap) / l->page_size > (UINT64_MAX >> 12))
        return ms_err_set(err, MS_EFORMAT,
                          "struct page 0x%llx is not in vmemmap (base 0x%llx, %llu-byte pages)",
                          (unsigned long long)page, (unsigned long long)v->vmemmap,
                          (unsigned long long)l->page_size);
    *phys = (page - v->vmemmap) / l->page_size * MS_PAGE_SIZE;
    return 0;
}

/* Appends a component to the resolved path (cut at PATH_MAX: it only
 * names places in messages). */
static void join(char *where, const char *name, size_t len)
{
    size_t n = strlen(where);
    if (n > 1 && n < MS_VFS_PATH_MAX)
        where[n++] = '/';
    if (len > MS_VFS_PATH_MAX - n)
        len = MS_VFS_PATH_MAX - n;
    memcpy(where + n, name, len);
    where[n + len] = '\0';
}

static void strip(char *where)
{
    char *slash = strrchr(where, '/');
    if (slash && slash != where)
        *slash = '\0';
    else
        strcpy(where, "/");
}

static int open_root(struct walk *w)
{
    const struct ms_vfs_layout *l = w->l;
    struct ms_vfs *v = w->v;
    uint64_t fs, nsproxy;
    int rc = rd64(v, v->init_task + l->task_fs, &fs, "init_task.fs", w->err);
    if (rc == 0)
        rc = rd64(v, fs + l->fs_root + l->path_mnt, &w->root.mnt, "init_task.fs->root.mnt", w->err);
    if (rc == 0)
        rc = rd64(v, fs + l->fs_root + l->path_dentry, &w->root.dentry, "init_task.fs->root.dentry",
                  w->err);
    if (rc == 0)
        rc = rd64(v, v->init_task + l->task_nsproxy, &nsproxy, "init_task.nsproxy", w->err);
    if (rc == 0)
        rc = rd64(v, nsproxy + l->nsproxy_mnt_ns, &w->ns, "init_task.nsproxy->mnt_ns", w->err);
    strcpy(w->where, "/");
    /* after a switch_root the real root is mounted on the initramfs' */
    if (rc == 0)
        rc = cross_mounts(w, &w->root);
    return rc;
}

int ms_vfs_lookup(struct ms_vfs *v, const char *path, struct ms_vfs_file *out, struct ms_err *err)
{
    struct walk w = {v, v->l, err, 0, {0, 0}, ""};
    if (!v->steps)
        v->steps = MS_VFS_STEPS_DEFAULT;
    if (path[0] != '/')
        return ms_err_set(err, MS_EINVAL, "%s: not an absolute path", path);
    size_t plen = strlen(path);
    if (plen > MS_VFS_PATH_MAX)
        return ms_err_set(err, MS_EINVAL, "a path of %zu bytes: at most %d", plen, MS_VFS_PATH_MAX);
    int rc = open_root(&w);
    if (rc < 0)
        return ms_err_prefix(err, "the root directory: ");
    /* What is left to resolve; a symlink's target goes in front of it. */
    char rest[2 * MS_VFS_PATH_MAX + 2], link[MS_VFS_PATH_MAX + 1];
    memcpy(rest, path, plen + 1);
    struct loc cur = w.root;
    unsigned links = 0;
    size_t pos = 0;
    for (;;) {
        while (rest[pos] == '/')
            pos++;
        if (!rest[pos])
            break;
        const char *name = rest + pos;
        size_t len = strcspn(name, "/");
        pos += len;
        if (len == 1 && name[0] == '.')
            continue;
        if (len == 2 && name[0] == '.' && name[1] == '.') {
            if ((rc = go_up(&w, &cur)) < 0)
                return rc;
            strip(w.where);
            continue;
        }
        if (len > MS_VFS_NAME_MAX)
            return ms_err_set(err, MS_EINVAL, "a name of %zu bytes in %s: at most %d", len, path,
                              MS_VFS_NAME_MAX);
        struct ms_dentry d;
        uint32_t mode;
        if ((rc = read_dentry(&w, cur.dentry, &d)) < 0 || (rc = inode_mode(&w, d.inode, &mode)) < 0)
            return rc;
        if ((mode & MS_S_IFMT) != MS_S_IFDIR)
            return ms_err_set(err, MS_EINVAL, "%s: not a directory", w.where);
        struct loc next = {cur.mnt, 0};
        if ((rc = find_child(&w, cur.dentry, name, len, &next.dentry)) < 0)
            return rc;
        if ((rc = cross_mounts(&w, &next)) < 0 || (rc = read_dentry(&w, next.dentry, &d)) < 0 ||
            (rc = inode_mode(&w, d.inode, &mode)) < 0)
            return rc;
        if ((mode & MS_S_IFMT) != MS_S_IFLNK) {
            join(w.where, name, len);
            cur = next;
            continue;
        }
        if (++links > MS_VFS_SYMLINKS_MAX)
            return ms_err_set(err, MS_ELIMIT, "%s: more than %d symlinks", path,
                              MS_VFS_SYMLINKS_MAX);
        size_t llen;
        if ((rc = read_link(&w, d.inode, link, &llen)) < 0)
            return ms_err_prefix(err, "the symlink %s/%.*s: ", w.where[1] ? w.where : "", (int)len,
                                 name);
        size_t left = strlen(rest + pos);
        if (llen + 1 + left + 1 > sizeof(rest))
            return ms_err_set(err, MS_EINVAL, "%s: the path grows past %zu bytes through symlinks",
                              path, sizeof(rest) - 2);
        memmove(rest + llen + 1, rest + pos, left + 1);
        memcpy(rest, link, llen);
        rest[llen] = '/';
        pos = 0;
        if (link[0] == '/') {
            cur = w.root;
            strcpy(w.where, "/");
        }
    }
    struct ms_dentry d;
    if ((rc = read_dentry(&w, cur.dentry, &d)) < 0 ||
        (rc = inode_mode(&w, d.inode, &out->mode)) < 0)
        return rc;
    out->mnt = cur.mnt;
    out->dentry = cur.dentry;
    out->inode = d.inode;
    if ((rc = rd64(v, d.inode + w.l->i_size, &out->size, "the inode's size", err)) < 0 ||
        (rc = rd64(v, d.inode + w.l->i_mapping, &out->mapping, "the inode's mapping", err)) < 0)
        return rc;
    return 0;
}

/* ------------------------------------------------------------ directories */

int ms_dir_push(struct ms_dir *d, const struct ms_dirent *e, struct ms_err *err)
{
    if (!MS_ARRAY_RESERVE(&d->entries, &d->cap, d->count + 1, 64))
        return ms_err_set(err, MS_ENOMEM, "out of memory for directory entries");
    d->entries[d->count++] = *e;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct ms_dirent *)a)->name, ((const struct ms_dirent *)b)->name);
}

void ms_dir_sort(struct ms_dir *d)
{
    if (d->count)
        qsort(d->entries, d->count, sizeof(d->entries[0]), by_name);
}

void ms_dir_free(struct ms_dir *d)
{
    free(d->entries);
    memset(d, 0, sizeof(*d));
}

void ms_dir_format(const struct ms_dir *d, bool inodes, struct ms_strbuf *sb)
{
    static const char types[16] = {'?', 'p', 'c', '?', 'd', '?', 'b', '?',
                                   '-', '?', 'l', '?', 's', '?', '?', '?'};
    for (size_t i = 0; i < d->count; i++) {
        const struct ms_dirent *e = &d->entries[i];
        char mode[11];
        mode[0] = types[(e->mode >> 12) & 15];
        for (int b = 0; b < 9; b++)
            mode[1 + b] = e->mode & (1u << (8 - b)) ? "rwxrwxrwx"[b] : '-';
        mode[10] = '\0';
        if (inodes)
            ms_strbuf_printf(sb, "0x%016llx ", (unsigned long long)e->inode);
        ms_strbuf_printf(sb, "%s %10llu ", mode, (unsigned long long)e->size);
        /* names as the kernel holds them; anything unprintable as \xHH */
        for (const unsigned char *c = (const unsigned char *)e->name; *c; c++)
            if (*c >= 0x20 && *c < 0x7f && *c != '\\')
                ms_strbuf_printf(sb, "%c", *c);
            else
                ms_strbuf_printf(sb, "\\x%02x", *c);
        ms_strbuf_printf(sb, "\n");
    }
}

int ms_vfs_list(struct ms_vfs *v, const struct ms_vfs_file *f, struct ms_dir *out,
                struct ms_err *err)
{
    const struct ms_vfs_layout *l = v->l;
    struct walk w = {v, l, err, 0, {0, 0}, ""};
    memset(out, 0, sizeof(*out));
    if (!v->steps)
        v->steps = MS_VFS_STEPS_DEFAULT;
    if ((f->mode & MS_S_IFMT) != MS_S_IFDIR)
        return ms_err_set(err, MS_EINVAL, "not a directory");
    int rc = open_root(&w);
    if (rc < 0)
        return ms_err_prefix(err, "the root directory: ");
    strcpy(w.where, "the directory");
    struct ms_dentry d;
    if ((rc = read_dentry(&w, f->dentry, &d)) < 0)
        return rc;
    uint64_t head = f->dentry + l->d_subdirs, cur = d.subdirs_next;
    uint64_t saved = head; /* Brent's cycle finding */
    unsigned power = 1, run = 0;
    while (cur != head) {
        if (cur == saved)
            return ms_err_set(err, MS_EFORMAT, "the entries loop at 0x%llx",
                              (unsigned long long)cur);
        if (++run == power) {
            saved = cur;
            power <<= 1;
            run = 0;
        }
        if ((rc = step(v, err)) < 0)
            return rc;
        if (cur == 0)
            return ms_err_set(err, MS_EFORMAT, "NULL in the entries after %zu", out->count);
        if (out->count >= MS_VFS_DIR_MAX)
            return ms_err_set(err, MS_ELIMIT, "more than %u entries", MS_VFS_DIR_MAX);
        struct loc at = {f->mnt, cur - l->d_child};
        struct ms_dentry c;
        if ((rc = read_dentry(&w, at.dentry, &c)) < 0)
            return rc;
        cur = c.child_next;
        if (c.flags & MS_DCACHE_DENTRY_CURSOR || c.inode == 0 ||
            (c.flags & MS_DCACHE_ENTRY_TYPE) == 0)
            continue;
        struct ms_dirent e = {0};
        if (c.name_len == 0 || c.name_len > MS_VFS_NAME_MAX)
            return ms_err_set(err, MS_EFORMAT, "the dentry at 0x%llx: a name of %u bytes",
                              (unsigned long long)at.dentry, c.name_len);
        if ((rc = v->read(v->arg, c.name, e.name, c.name_len, NULL, err)) < 0)
            return ms_err_prefix(
                err, "the name of the dentry at 0x%llx: ", (unsigned long long)at.dentry);
        if (memchr(e.name, '\0', c.name_len) || memchr(e.name, '/', c.name_len))
            return ms_err_set(err, MS_EFORMAT, "the dentry at 0x%llx: a name with a NUL or '/'",
                              (unsigned long long)at.dentry);
        e.inode = c.inode;
        if (c.flags & MS_DCACHE_MOUNTED) {
            if ((rc = cross_mounts(&w, &at)) < 0 || (rc = read_dentry(&w, at.dentry, &c)) < 0)
                return rc;
            e.inode = c.inode;
        }
        if ((rc = inode_mode(&w, e.inode, &e.mode)) < 0 ||
            (rc = rd64(v, e.inode + l->i_size, &e.size, "the inode's size", err)) < 0 ||
            (rc = ms_dir_push(out, &e, err)) < 0)
            return rc;
    }
    ms_dir_sort(out);
    return 0;
}

/* ------------------------------------------------------------ page cache */

#define CHUNK_PAGES (MS_FILE_READ_MAX / MS_PAGE_SIZE + 1)

struct pages {
    struct ms_vfs *v;
    uint64_t mapping, first, last;
    uint64_t page[CHUNK_PAGES]; /* struct page per index from first; 0: not cached */
    struct ms_err *err;
};

/* A folio: its head page must name this mapping and index (else it is not
 * this file's: its pages count as not cached). */
static int got_folio(void *arg, const struct ms_xa_entry *e)
{
    struct pages *p = arg;
    const struct ms_vfs_layout *l = p->v->l;
    uint64_t mapping, index;
    if (step(p->v, p->err) < 0)
        return MS_ELIMIT;
    if (p->v->read(p->v->arg, e->entry + l->page_mapping, &mapping, 8, NULL, NULL) < 0 ||
        p->v->read(p->v->arg, e->entry + l->page_index, &index, 8, NULL, NULL) < 0 ||
        mapping != p->mapping || index != e->index)
        return 0;
    for (uint64_t i = e->index > p->first ? e->index : p->first;
         i <= p->last && i - e->index < e->count; i++)
        p->page[i - p->first] = e->entry + (i - e->index) * l->page_size;
    return 0;
}

static int xa_read(void *arg, uint64_t addr, void *buf, size_t len, size_t *done,
                   struct ms_err *err)
{
    struct ms_vfs *v = arg;
    int rc = step(v, err);
    return rc < 0 ? rc : v->read(v->arg, addr, buf, len, done, err);
}

/* Fills p->page for [p->first, p->last] from the xarray at mapping. */
static int cached_pages(struct ms_vfs *v, uint64_t mapping, struct pages *p, struct ms_err *err)
{
    uint64_t head;
    int rc = rd64(v, mapping + v->l->i_pages_head, &head, "the page cache's xarray", err);
    if (rc < 0)
        return rc;
    p->v = v;
    p->mapping = mapping;
    p->err = err;
    memset(p->page, 0, sizeof(p->page));
    rc = ms_xa_walk(&v->l->xa, head, p->first, p->last, xa_read, v, 0, got_folio, p, err);
    return rc < 0 ? ms_err_prefix(err, "the page cache: ") : 0;
}

static void add_hole(struct ms_file_chunk *out, uint64_t offset, uint64_t len)
{
    if (out->nholes &&
        out->holes[out->nholes - 1].offset + out->holes[out->nholes - 1].len == offset)
        out->holes[out->nholes - 1].len += len;
    else if (out->nholes < MS_FILE_HOLES_MAX)
        out->holes[out->nholes++] = (struct ms_file_hole){offset, len};
}

int ms_vfs_read(struct ms_vfs *v, const struct ms_vfs_file *f, uint64_t offset, void *buf,
                size_t len, struct ms_file_chunk *out, struct ms_err *err)
{
    memset(out, 0, sizeof(*out));
    out->size = f->size;
    out->mode = f->mode;
    out->inode = f->inode;
    if (!v->steps)
        v->steps = MS_VFS_STEPS_DEFAULT;
    if (len > MS_FILE_READ_MAX)
        return ms_err_set(err, MS_EINVAL, "%zu bytes at once: at most %u", len, MS_FILE_READ_MAX);
    if ((f->mode & MS_S_IFMT) == MS_S_IFDIR)
        return ms_err_set(err, MS_EINVAL, "is a directory");
    if ((f->mode & MS_S_IFMT) != MS_S_IFREG)
        return ms_err_set(err, MS_EINVAL, "not a regular file (mode 0%o)", f->mode);
    if ((int64_t)f->size < 0)
        return ms_err_set(err, MS_EFORMAT, "the inode's size is %lld", (long long)(int64_t)f->size);
    if (offset >= f->size || len == 0)
        return 0;
    uint64_t n = f->size - offset < len ? f->size - offset : len;
    struct pages p;
    p.first = offset / MS_PAGE_SIZE;
    p.last = (offset + n - 1) / MS_PAGE_SIZE;
    int rc = cached_pages(v, f->mapping, &p, err);
    if (rc < 0)
        return rc;
    uint8_t *b = buf;
    for (uint64_t pos = offset; pos < offset + n;) {
        uint64_t in = pos % MS_PAGE_SIZE, take = MS_PAGE_SIZE - in;
        if (take > offset + n - pos)
            take = offset + n - pos;
        uint64_t page = p.page[pos / MS_PAGE_SIZE - p.first], phys;
        if (!page || page_phys(v, page, &phys, NULL) < 0 ||
            v->pread(v->parg, phys + in, b + (pos - offset), take, NULL, NULL) < 0) {
            memset(b + (pos - offset), 0, take);
            add_hole(out, pos, take);
        }
        pos += take;
    }
    out->len = n;
    return 0;
}

static int read_link(struct walk *w, uint64_t inode, char *out, size_t *len)
{
    struct ms_vfs *v = w->v;
    uint64_t size, link;
    int rc = rd64(v, inode + w->l->i_size, &size, "the inode's size", w->err);
    if (rc == 0)
        rc = rd64(v, inode + w->l->i_link, &link, "the inode's i_link", w->err);
    if (rc < 0)
        return rc;
    if (size == 0 || size > MS_VFS_PATH_MAX - 1)
        return ms_err_set(w->err, MS_EFORMAT, "a target of %llu bytes", (unsigned long long)size);
    if (link) {
        rc = v->read(v->arg, link, out, size, NULL, w->err);
        if (rc < 0)
            return ms_err_prefix(w->err, "its target at 0x%llx: ", (unsigned long long)link);
    } else {
        uint64_t mapping;
        if ((rc = rd64(v, inode + w->l->i_mapping, &mapping, "the inode's mapping", w->err)) < 0)
            return rc;
        struct pages p;
        p.first = p.last = 0;
        uint64_t phys;
        if ((rc = cached_pages(v, mapping, &p, w->err)) < 0)
            return rc;
        if (!p.page[0])
            return ms_err_set(w->err, MS_ENOTFOUND, "its target is not in the page cache");
        if ((rc = page_phys(v, p.page[0], &phys, w->err)) < 0 ||
            (rc = v->pread(v->parg, phys, out, size, NULL, w->err)) < 0)
            return ms_err_prefix(w->err, "its target: ");
    }
    out[size] = '\0';
    *len = strnlen(out, size);
    if (*len == 0)
        return ms_err_set(w->err, MS_EFORMAT, "an empty target");
    return 0;
}

/* -------------------------------------------------------------- layout */

static int member(const struct ms_typedb *db, const char *key, uint64_t *off, struct ms_err *err)
{
    const struct ms_typedb_entry *e = ms_typedb_get(db, key);
    if (!e)
        return ms_err_set(err, MS_ENOTFOUND, "no %s (types: %s)", key, db->source);
    *off = e->value;
    return 0;
}

/* The layout from the typedb; MS_ENOTFOUND naming the first key missing. */
static int layout_from_db(const struct ms_typedb *db, struct ms_vfs_layout *l, struct ms_err *err)
{
    memset(l, 0, sizeof(*l));
    uint64_t d_name = 0, qlen = 0, qname = 0, i_pages = 0, xa_head = 0;
    struct {
        const char *key;
        uint64_t *dst;
    } fields[] = {
        {"task_struct.fs", &l->task_fs},
        {"task_struct.nsproxy", &l->task_nsproxy},
        {"fs_struct.root", &l->fs_root},
        {"path.mnt", &l->path_mnt},
        {"path.dentry", &l->path_dentry},
        {"nsproxy.mnt_ns", &l->nsproxy_mnt_ns},
        {"mnt_namespace.list", &l->ns_list},
        {"dentry.d_flags", &l->d_flags},
        {"dentry.d_parent", &l->d_parent},
        {"dentry.d_name", &d_name},
        {"qstr.len", &qlen},
        {"qstr.name", &qname},
        {"dentry.d_inode", &l->d_inode},
        {"dentry.d_child", &l->d_child},
        {"dentry.d_subdirs", &l->d_subdirs},
        {"mount.mnt_parent", &l->mnt_parent},
        {"mount.mnt_mountpoint", &l->mnt_mountpoint},
        {"mount.mnt", &l->mnt_mnt},
        {"mount.mnt_list", &l->mnt_list},
        {"vfsmount.mnt_root", &l->mnt_root},
        {"inode.i_mode", &l->i_mode},
        {"inode.i_size", &l->i_size},
        {"inode.i_mapping", &l->i_mapping},
        {"inode.i_link", &l->i_link},
        {"address_space.i_pages", &i_pages},
        {"xarray.xa_head", &xa_head},
        {"page", &l->page_size},
        {"page.mapping", &l->page_mapping},
        {"page.index", &l->page_index},
        {"xa_node.shift", &l->xa.shift},
        {"xa_node.slots", &l->xa.slots},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        int rc = member(db, fields[i].key, fields[i].dst, err);
        if (rc < 0)
            return !strcmp(fields[i].key, "dentry.d_subdirs")
                       ? ms_err_prefix(err, "a kernel without 6.1's d_subdirs: ")
                       : rc;
    }
    l->d_name_len = d_name + qlen;
    l->d_name_name = d_name + qname;
    l->i_pages_head = i_pages + xa_head;
    if (l->page_size == 0 || l->page_size > 1024)
        return ms_err_set(err, MS_EFORMAT, "sizeof(struct page) is %llu",
                          (unsigned long long)l->page_size);
    return 0;
}

int ms_vfs_open(struct ms_kernel *k, struct ms_vfs_layout *l, struct ms_vfs *v, struct ms_err *err)
{
    static const char *const want[] = {
        "task_struct",   "fs_struct", "path",    "nsproxy",  "mnt_namespace",
        "dentry",        "qstr",      "mount",   "vfsmount", "inode",
        "address_space", "xarray",    "xa_node", "page",     NULL};
    /* the structs are loaded once per kernel: later calls find them */
    int rc = layout_from_db(&k->types, l, NULL);
    if (rc < 0) {
        rc = ms_kernel_need_types(k, want, err);
        if (rc == 0)
            rc = layout_from_db(&k->types, l, err);
        if (rc < 0)
            return ms_err_prefix(err, "files from the page cache: ");
    }
    memset(v, 0, sizeof(*v));
    v->l = l;
    v->read = ms_space_read_fn;
    v->arg = k->space;
    v->pread = ms_space_read_fn;
    v->parg = k->phys;
    if ((rc = ms_kernel_symbol(k, "init_task", &v->init_task, err)) < 0)
        return ms_err_prefix(err, "files from the page cache: ");
    uint64_t vmemmap_sym;
    if ((rc = ms_kernel_symbol(k, "vmemmap_base", &vmemmap_sym, err)) < 0 ||
        (rc = ms_space_read(k->space, vmemmap_sym, &v->vmemmap, 8, NULL, err)) < 0)
        return ms_err_prefix(err, "files from the page cache: vmemmap_base: ");
    return 0;
}
