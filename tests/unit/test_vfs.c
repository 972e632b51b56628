/* Path lookup and page-cache reads (memsrv/vfs.h) on the synthetic kernel
 * of tests/support/vfsimage.h: a file over a two-level xarray with a page
 * not cached (a hole, zeros), a mount point crossed, "." and "..", fast and
 * page-cache symlinks, a symlink loop, negative and missing names, a
 * directory; then broken: a child list that loops, a struct page of
 * another file, a page outside vmemmap, a NULL dentry. */
#include <stdlib.h>

#include "../support/vfsimage.h"
#include "check.h"

static struct vimage img;

static uint8_t expect_byte(uint8_t seed, unsigned i)
{
    return (uint8_t)(seed + i * 7);
}

static int cat(const char *path, uint8_t *buf, size_t len, struct ms_file_chunk *c,
               struct ms_err *err)
{
    struct ms_vfs v;
    struct ms_vfs_file f;
    vi_vfs(&img, &v);
    int rc = ms_vfs_lookup(&v, path, &f, err);
    return rc < 0 ? rc : ms_vfs_read(&v, &f, 0, buf, len, c, err);
}

static void test_read(void)
{
    static uint8_t buf[MS_FILE_READ_MAX];
    static struct ms_file_chunk c;
    struct ms_err err;
    vi_build(&img);
    int rc = cat("/lab/file", buf, sizeof(buf), &c, &err);
    CHECK(rc == 0, "%s", err.msg);
    CHECK(c.size == VI_FILE_SIZE && c.len == VI_FILE_SIZE, "size %llu len %llu",
          (unsigned long long)c.size, (unsigned long long)c.len);
    CHECK(c.nholes == 1 && c.holes[0].offset == 4096 && c.holes[0].len == 4096,
          "one hole at page 1: %u", c.nholes);
    bool same = true;
    for (unsigned i = 0; i < VI_FILE_SIZE; i++) {
        uint8_t want = i < 4096 ? expect_byte(0x10, i) : i < 8192 ? 0 : expect_byte(0x30, i - 8192);
        same = same && buf[i] == want;
    }
    CHECK(same, "the bytes, the hole as zeros");

    /* a chunk from an unaligned offset, up to the end */
    struct ms_vfs v;
    struct ms_vfs_file f;
    vi_vfs(&img, &v);
    rc = ms_vfs_lookup(&v, "/lab/file", &f, &err);
    if (rc == 0)
        rc = ms_vfs_read(&v, &f, 8190, buf, 1000, &c, &err);
    CHECK(rc == 0 && c.len == VI_FILE_SIZE - 8190 && c.nholes == 1 && c.holes[0].offset == 8190 &&
              c.holes[0].len == 2 && buf[2] == expect_byte(0x30, 0),
          "8190..: len %llu", (unsigned long long)c.len);
    rc = ms_vfs_read(&v, &f, VI_FILE_SIZE, buf, 1000, &c, &err);
    CHECK(rc == 0 && c.len == 0, "at the end: nothing");

    const char *same_file[] = {"/link", "/lab/./file", "/mnt/../lab/file", "//lab//file",
                               "/../lab/file"};
    for (unsigned i = 0; i < sizeof(same_file) / sizeof(same_file[0]); i++) {
        rc = cat(same_file[i], buf, sizeof(buf), &c, &err);
        CHECK(rc == 0 && c.len == VI_FILE_SIZE && buf[0] == 0x10, "%s: %s", same_file[i], err.msg);
    }
    /* across the mount, by a page-cache symlink, and a lone xa_head entry */
    const char *f2[] = {"/mnt/f2", "/abs", "/mnt/../abs"};
    for (unsigned i = 0; i < 3; i++) {
        rc = cat(f2[i], buf, sizeof(buf), &c, &err);
        CHECK(rc == 0 && c.len == 100 && c.nholes == 0 && buf[0] == 0x50 &&
                  buf[99] == expect_byte(0x50, 99),
              "%s: %s", f2[i], err.msg);
    }
}

static void test_errors(void)
{
    static uint8_t buf[8192];
    static struct ms_file_chunk c;
    struct ms_err err;
    vi_build(&img);
    CHECK(cat("/lab", buf, sizeof(buf), &c, &err) == MS_EINVAL && strstr(err.msg, "is a directory"),
          "%s", err.msg);
    CHECK(cat("/neg", buf, sizeof(buf), &c, &err) == MS_ENOTFOUND && strstr(err.msg, "negative"),
          "%s", err.msg);
    CHECK(cat("/lab/nope", buf, sizeof(buf), &c, &err) == MS_ENOTFOUND &&
              strstr(err.msg, "/lab/nope: not in the dentry cache"),
          "%s", err.msg);
    CHECK(cat("/lab/file/x", buf, sizeof(buf), &c, &err) == MS_EINVAL &&
              strstr(err.msg, "/lab/file: not a directory"),
          "%s", err.msg);
    CHECK(cat("/loop", buf, sizeof(buf), &c, &err) == MS_ELIMIT, "%s", err.msg);
    CHECK(cat("lab/file", buf, sizeof(buf), &c, &err) == MS_EINVAL, "relative");
    char longname[300];
    memset(longname, 'a', sizeof(longname));
    longname[0] = '/';
    longname[299] = '\0';
    CHECK(cat(longname, buf, sizeof(buf), &c, &err) == MS_EINVAL, "a name too long");
}

/* The address of a field in the image, found by walking as the kernel
 * would: the dentry of /lab, the first page of /lab/file. */
static uint64_t k64(uint64_t addr)
{
    uint64_t v;
    memcpy(&v, img.k + (addr - VI_KBASE), 8);
    return v;
}

static void test_broken(void)
{
    static uint8_t buf[16384];
    static struct ms_file_chunk c;
    struct ms_err err;
    struct ms_vfs v;
    struct ms_vfs_file f;
    const struct ms_vfs_layout *l = &vi_layout;

    vi_build(&img);
    vi_vfs(&img, &v);
    CHECK(ms_vfs_lookup(&v, "/lab/file", &f, &err) == 0, "%s", err.msg);
    uint64_t lab = k64(f.dentry + l->d_parent);
    /* the last child of /lab points back at the first: a loop */
    uint64_t first = k64(lab + l->d_subdirs), last = k64(lab + l->d_subdirs + 8);
    vi_put(&img, last, first, 8);
    CHECK(cat("/lab/nope", buf, sizeof(buf), &c, &err) == MS_EFORMAT && strstr(err.msg, "loop"),
          "%s", err.msg);

    vi_build(&img);
    /* page 0 of the file claims another mapping: not this file's, a hole */
    uint64_t top = k64(f.mapping + l->i_pages_head) - 2, leaf = k64(top + 40) - 2;
    uint64_t page0 = k64(leaf + 40);
    vi_put(&img, page0 + l->page_mapping, 0x1234, 8);
    CHECK(cat("/lab/file", buf, sizeof(buf), &c, &err) == 0 && c.nholes == 1 &&
              c.holes[0].offset == 0 && c.holes[0].len == 8192 && buf[0] == 0,
          "another file's page: %u holes", c.nholes);

    vi_build(&img);
    vi_put(&img, leaf + 40, VI_VMEMMAP - 64, 8); /* before vmemmap */
    CHECK(cat("/lab/file", buf, sizeof(buf), &c, &err) == 0 && c.nholes == 1 &&
              c.holes[0].len == 8192,
          "a page outside vmemmap: a hole");

    vi_build(&img);
    vi_put(&img, leaf + 40, VI_VMEMMAP + 1000 * 64, 8); /* a page past the arena: unreadable */
    CHECK(cat("/lab/file", buf, sizeof(buf), &c, &err) == 0 && c.nholes == 1,
          "an unreadable struct page: a hole");

    vi_build(&img);
    vi_put(&img, top, 7, 1); /* a root node of shift 7 */
    CHECK(cat("/lab/file", buf, sizeof(buf), &c, &err) == MS_EFORMAT &&
              strstr(err.msg, "page cache"),
          "%s", err.msg);

    vi_build(&img);
    vi_put(&img, f.dentry + l->d_inode, 0, 8); /* now negative */
    vi_put(&img, f.dentry + l->d_flags, 0, 4);
    CHECK(cat("/lab/file", buf, sizeof(buf), &c, &err) == MS_ENOTFOUND, "%s", err.msg);

    vi_build(&img);
    vi_put(&img, lab + l->d_subdirs, 0, 8); /* NULL in the children */
    CHECK(cat("/lab/file", buf, sizeof(buf), &c, &err) == MS_EFORMAT && strstr(err.msg, "NULL"),
          "%s", err.msg);

    vi_build(&img);
    /* the mount list's last entry leads back to its first: a loop without the head */
    vi_vfs(&img, &v);
    uint64_t ns = k64(k64(v.init_task + l->task_nsproxy) + l->nsproxy_mnt_ns);
    uint64_t mfirst = k64(ns + l->ns_list), mlast = k64(ns + l->ns_list + 8);
    vi_put(&img, mlast, mfirst, 8);
    /* /mnt's mount is the last one: found before the loop shows; f2 in it */
    CHECK(cat("/mnt/f2", buf, sizeof(buf), &c, &err) == 0, "%s", err.msg);
    vi_put(&img, mlast, mlast, 8); /* now the last one leads to itself, the first is found */
    vi_put(&img, mfirst, mlast, 8);
    vi_put(&img, mlast + l->mnt_mountpoint - l->mnt_list, 0x1000, 8); /* not on /mnt */
    CHECK(cat("/mnt/f2", buf, sizeof(buf), &c, &err) == MS_EFORMAT &&
              strstr(err.msg, "mount list loops"),
          "%s", err.msg);

    /* a budget too small */
    vi_build(&img);
    vi_vfs(&img, &v);
    v.steps = 2;
    CHECK(ms_vfs_lookup(&v, "/lab/file", &f, &err) == MS_ELIMIT, "%s", err.msg);

    /* the decoder on its own */
    uint8_t bytes[0x100] = {0};
    struct ms_dentry d;
    CHECK(ms_dentry_decode(l, bytes, 8, &d, &err) == MS_EINVAL, "short");
    bytes[0] = 0x34;
    bytes[0x24] = 5;
    CHECK(ms_dentry_decode(l, bytes, sizeof(bytes), &d, &err) == 0 && d.flags == 0x34 &&
              d.name_len == 5,
          "decoded");
    struct ms_vfs_layout bad = vi_layout;
    bad.d_subdirs = 1 << 20;
    CHECK(ms_dentry_decode(&bad, bytes, sizeof(bytes), &d, &err) == MS_EFORMAT, "far field");
}

static void test_list(void)
{
    struct ms_err err;
    struct ms_vfs v;
    struct ms_vfs_file f;
    struct ms_dir d;
    vi_build(&img);
    vi_vfs(&img, &v);
    int rc = ms_vfs_lookup(&v, "/", &f, &err);
    if (rc == 0)
        rc = ms_vfs_list(&v, &f, &d, &err);
    CHECK(rc == 0, "%s", err.msg);
    /* sorted, the negative /neg left out, /mnt as the mounted root */
    const char *names[] = {"abs", "lab", "link", "loop", "mnt"};
    CHECK(d.count == 5, "%zu entries", d.count);
    for (unsigned i = 0; i < 5 && i < d.count; i++)
        CHECK(!strcmp(d.entries[i].name, names[i]), "%u: %s", i, d.entries[i].name);
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    ms_dir_format(&d, false, &sb);
    CHECK(strstr(ms_strbuf_str(&sb), "lrwxrwxrwx          8 link\n") &&
              strstr(ms_strbuf_str(&sb), "drwxr-xr-x          0 mnt\n"),
          "%s", ms_strbuf_str(&sb));
    ms_strbuf_free(&sb);
    ms_dir_free(&d);

    /* through the symlink-free path into the mount: f2 only */
    rc = ms_vfs_lookup(&v, "/mnt", &f, &err);
    if (rc == 0)
        rc = ms_vfs_list(&v, &f, &d, &err);
    CHECK(rc == 0 && d.count == 1 && !strcmp(d.entries[0].name, "f2") && d.entries[0].size == 100,
          "/mnt: %s", err.msg);
    ms_dir_free(&d);

    /* /lab: the cursor left out */
    rc = ms_vfs_lookup(&v, "/lab", &f, &err);
    if (rc == 0)
        rc = ms_vfs_list(&v, &f, &d, &err);
    CHECK(rc == 0 && d.count == 1 && !strcmp(d.entries[0].name, "file"), "/lab: %zu", d.count);
    ms_dir_free(&d);

    rc = ms_vfs_lookup(&v, "/lab/file", &f, &err);
    CHECK(rc == 0 && ms_vfs_list(&v, &f, &d, &err) == MS_EINVAL, "a file is no directory");
    ms_dir_free(&d);
}

int main(void)
{
    test_list();
    test_read();
    test_errors();
    test_broken();
    return check_done("test_vfs");
}
