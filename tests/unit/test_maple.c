/* The maple tree walker and the memory-map walker on synthetic kernel
 * memory: trees built the way lib/maple_tree.c of 6.1 lays them out (a
 * leaf root; an arange_64 root over leaves; full leaves; a root that is a
 * single entry), then broken: wrong node types for the depth, pivots out of
 * order or past the node's range, bad parent pointers, a dead node, a node
 * reached twice, unreadable nodes, limits. Then a task's map: files across
 * mounts, unlinked, pseudo files, [heap], [stack], a special mapping,
 * [anon:NAME], the gate VMA, printed as /proc/PID/maps. */
#include <stdlib.h>

#include "check.h"
#include "../support/arena.h"
#include "maple.h"
#include "maps.h"
#include "strbuf.h"
#include "../support/mapslayout.h"

#define BASE 0xffff888000200000ULL
#define NODES 32
#define OBJ (BASE + NODES * 256) /* other objects from here */
#define ARENA (NODES * 256 + 0x4000)
#define TREE (BASE + ARENA - 0x100) /* a struct maple_tree's address */
#define UMAX UINT64_MAX

static uint8_t mem[ARENA];
static struct test_arena arena = {BASE, mem, ARENA, 0, 0};
static uint64_t obj_next;

static void put64(uint64_t addr, uint64_t v)
{
    memcpy(mem + (addr - BASE), &v, 8);
}

static void put32(uint64_t addr, uint32_t v)
{
    memcpy(mem + (addr - BASE), &v, 4);
}

static uint64_t node(unsigned i)
{
    return BASE + (uint64_t)i * 256;
}

static uint64_t enode(unsigned i, unsigned type)
{
    return node(i) | (uint64_t)type << 3 | 4; /* MAPLE_ENODE_NULL set, as mt_mk_node */
}

static uint64_t child_parent(unsigned parent, unsigned slot)
{
    return node(parent) | (uint64_t)slot << 3 | 6;
}

/* A node of n slots: pivots[0 .. n-2] given, the last slot's pivot too when
 * it has one (n < slots), metadata end n - 1. */
static void set_node(unsigned i, unsigned type, uint64_t parent, unsigned n, const uint64_t *pivots,
                     const uint64_t *slots)
{
    uint64_t a = node(i);
    memset(mem + (a - BASE), 0, 256);
    put64(a, parent);
    bool ar = type == MS_MAPLE_ARANGE_64;
    unsigned nslots = ar ? 10 : 16, slot_off = ar ? 80 : 128, meta = ar ? 240 : 248;
    for (unsigned k = 0; k < n && k < nslots - 1; k++)
        put64(a + 8 + 8 * k, pivots[k]);
    for (unsigned k = 0; k < n; k++)
        put64(a + slot_off + 8 * k, slots[k]);
    if (ar || n < nslots - 1 || pivots[nslots - 2] == 0)
        mem[a - BASE + meta] = (uint8_t)(n - 1);
}

static int walk(uint64_t root, uint32_t flags, struct ms_maple_list *out, struct ms_err *err)
{
    return ms_maple_walk(TREE, root, flags, test_arena_read, &arena, 0, 0, out, err);
}

static void test_leaf_root(void)
{
    uint64_t piv[] = {0x3fffff, 0x400fff, 0x47ffff, UMAX};
    uint64_t slots[] = {0, 0x1000, 0x2000, 0};
    set_node(0, MS_MAPLE_LEAF_64, TREE | 1, 4, piv, slots);
    struct ms_maple_list l;
    struct ms_err err;
    int rc = walk(enode(0, MS_MAPLE_LEAF_64) | 2, 1 << 2 | 1, &l, &err);
    CHECK(rc == 0, "%s", err.msg);
    CHECK(l.count == 2 && l.nodes == 1, "count %zu nodes %llu", l.count,
          (unsigned long long)l.nodes);
    if (l.count == 2) {
        CHECK_EQ_U64(l.entries[0].first, 0x400000, "first");
        CHECK_EQ_U64(l.entries[0].last, 0x400fff, "last");
        CHECK_EQ_U64(l.entries[0].value, 0x1000, "value");
        CHECK_EQ_U64(l.entries[1].first, 0x401000, "first 2");
        CHECK_EQ_U64(l.entries[1].last, 0x47ffff, "last 2");
    }
    ms_maple_list_free(&l);

    /* empty, and a single entry at 0 */
    rc = walk(0, 0, &l, &err);
    CHECK(rc == 0 && l.count == 0, "empty tree");
    rc = walk(0xffff888000001000ULL, 0, &l, &err);
    CHECK(rc == 0 && l.count == 1 && l.entries[0].first == 0 && l.entries[0].last == 0,
          "single entry");
    ms_maple_list_free(&l);
    /* a reserved value (internal, below 4096) */
    rc = walk(0x402, 1 << 2, &l, &err);
    CHECK(rc == MS_EFORMAT && strstr(err.msg, "reserved"), "%s", err.msg);
}

/* 16 entries: no room for metadata; pivot[14] is the max (15 slots used)
 * or below it (the 16th slot runs to the max). */
static void test_full_leaf(void)
{
    uint64_t piv[16], slots[16];
    for (unsigned k = 0; k < 16; k++) {
        piv[k] = 0x1000 * (k + 1) - 1;
        slots[k] = 0x10000 + 8 * k;
    }
    piv[14] = UMAX;
    set_node(0, MS_MAPLE_LEAF_64, TREE | 1, 15, piv, slots);
    struct ms_maple_list l;
    struct ms_err err;
    int rc = walk(enode(0, MS_MAPLE_LEAF_64) | 2, 1 << 2, &l, &err);
    CHECK(rc == 0 && l.count == 15, "%d %zu %s", rc, l.count, err.msg);
    CHECK(l.count == 15 && l.entries[14].last == UMAX, "last slot to the max");
    ms_maple_list_free(&l);
    piv[14] = 0xeffff;
    set_node(0, MS_MAPLE_LEAF_64, TREE | 1, 16, piv, slots);
    rc = walk(enode(0, MS_MAPLE_LEAF_64) | 2, 1 << 2, &l, &err);
    CHECK(rc == 0 && l.count == 16, "%d %zu %s", rc, l.count, err.msg);
    CHECK(l.count == 16 && l.entries[15].first == 0xf0000 && l.entries[15].last == UMAX,
          "16th slot");
    ms_maple_list_free(&l);
}

/* An arange_64 root over two leaves (an mm's tree: MT_FLAGS_ALLOC_RANGE). */
static void build_two_level(void)
{
    uint64_t rpiv[] = {0x7fffffff, UMAX};
    uint64_t rslots[] = {enode(1, MS_MAPLE_LEAF_64), enode(2, MS_MAPLE_LEAF_64)};
    set_node(0, MS_MAPLE_ARANGE_64, TREE | 1, 2, rpiv, rslots);
    uint64_t p1[] = {0xfff, 0x1fff, 0x7fffffff};
    uint64_t s1[] = {0, 0xa000, 0};
    set_node(1, MS_MAPLE_LEAF_64, child_parent(0, 0), 3, p1, s1);
    uint64_t p2[] = {0x80000fff, UMAX};
    uint64_t s2[] = {0xb000, 0};
    set_node(2, MS_MAPLE_LEAF_64, child_parent(0, 1), 2, p2, s2);
}

#define TWO_LEVEL_ROOT (enode(0, MS_MAPLE_ARANGE_64) | 2)
#define TWO_LEVEL_FLAGS (1 | 2 << 2)

static void test_two_levels(void)
{
    build_two_level();
    struct ms_maple_list l;
    struct ms_err err;
    int rc = walk(TWO_LEVEL_ROOT, TWO_LEVEL_FLAGS, &l, &err);
    CHECK(rc == 0 && l.count == 2 && l.nodes == 3, "%d %zu %s", rc, l.count, err.msg);
    if (l.count == 2) {
        CHECK(l.entries[0].first == 0x1000 && l.entries[0].last == 0x1fff &&
                  l.entries[0].value == 0xa000,
              "entry 0");
        CHECK(l.entries[1].first == 0x80000000 && l.entries[1].last == 0x80000fff &&
                  l.entries[1].value == 0xb000,
              "entry 1");
    }
    ms_maple_list_free(&l);
    /* without ALLOC_RANGE the internal nodes would be range_64 */
    rc = walk(TWO_LEVEL_ROOT, 2 << 2, &l, &err);
    CHECK(rc == MS_EFORMAT && strstr(err.msg, "expected range_64"), "%s", err.msg);
    /* a height that says the root is a leaf */
    rc = walk(TWO_LEVEL_ROOT, 1 | 1 << 2, &l, &err);
    CHECK(rc == MS_EFORMAT && strstr(err.msg, "expected leaf_64"), "%s", err.msg);
    /* one too deep: the leaves are not internal nodes */
    rc = walk(TWO_LEVEL_ROOT, 1 | 3 << 2, &l, &err);
    CHECK(rc == MS_EFORMAT && strstr(err.msg, "is leaf_64"), "%s", err.msg);
    rc = walk(TWO_LEVEL_ROOT, 1, &l, &err);
    CHECK(rc == MS_EFORMAT && strstr(err.msg, "height 0"), "%s", err.msg);
    /* limits */
    rc = ms_maple_walk(TREE, TWO_LEVEL_ROOT, TWO_LEVEL_FLAGS, test_arena_read, &arena, 1, 0, &l,
                       &err);
    CHECK(rc == MS_ELIMIT && l.count == 1, "%d %zu %s", rc, l.count, err.msg);
    ms_maple_list_free(&l);
    rc = ms_maple_walk(TREE, TWO_LEVEL_ROOT, TWO_LEVEL_FLAGS, test_arena_read, &arena, 0, 2, &l,
                       &err);
    CHECK(rc == MS_ELIMIT && strstr(err.msg, "maple nodes"), "%d %s", rc, err.msg);
    ms_maple_list_free(&l);
}

static void test_broken(void)
{
    struct ms_maple_list l;
    struct ms_err err;
    int rc;
    /* the root's parent must name the tree */
    build_two_level();
    rc = ms_maple_walk(TREE + 0x40, TWO_LEVEL_ROOT, TWO_LEVEL_FLAGS, test_arena_read, &arena, 0, 0,
                       &l, &err);
    CHECK(rc == MS_EFORMAT && strstr(err.msg, "parent pointer"), "%s", err.msg);
    /* a child's parent: the wrong slot */
    put64(node(2), child_parent(0, 0));
    rc = walk(TWO_LEVEL_ROOT, TWO_LEVEL_FLAGS, &l, &err);
    CHECK(rc == MS_EFORMAT && strstr(err.msg, "parent pointer"), "%s", err.msg);
    CHECK(l.count == 1, "the first leaf's entry kept: %zu", l.count);
    ms_maple_list_free(&l);
    /* a dead node points to itself */
    put64(node(2), node(2));
    rc = walk(TWO_LEVEL_ROOT, TWO_LEVEL_FLAGS, &l, &err);
    CHECK(rc == MS_EFORMAT && strstr(err.msg, "dead node"), "%s", err.msg);
    ms_maple_list_free(&l);
    /* both slots lead to the same leaf: reached twice */
    build_two_level();
    put64(node(0) + 80 + 8, enode(1, MS_MAPLE_LEAF_64));
    rc = walk(TWO_LEVEL_ROOT, TWO_LEVEL_FLAGS, &l, &err);
    CHECK(rc == MS_EFORMAT && strstr(err.msg, "reached twice"), "%s", err.msg);
    ms_maple_list_free(&l);
    /* a child pointer with bits no encoded node has */
    build_two_level();
    put64(node(0) + 80 + 8, enode(2, MS_MAPLE_LEAF_64) | 1);
    rc = walk(TWO_LEVEL_ROOT, TWO_LEVEL_FLAGS, &l, &err);
    CHECK(rc == MS_EFORMAT && strstr(err.msg, "node pointer"), "%s", err.msg);
    ms_maple_list_free(&l);
    /* a dense node */
    build_two_level();
    put64(node(0) + 80 + 8, enode(2, MS_MAPLE_DENSE));
    rc = walk(TWO_LEVEL_ROOT, TWO_LEVEL_FLAGS, &l, &err);
    CHECK(rc == MS_EFORMAT && strstr(err.msg, "dense"), "%s", err.msg);
    ms_maple_list_free(&l);
    /* pivots out of order */
    build_two_level();
    put64(node(1) + 8 + 8, 0x800);
    rc = walk(TWO_LEVEL_ROOT, TWO_LEVEL_FLAGS, &l, &err);
    CHECK(rc == MS_EFORMAT && strstr(err.msg, "out of order"), "%s", err.msg);
    ms_maple_list_free(&l);
    /* a pivot past the node's range (the parent gave it up to 0x7fffffff) */
    build_two_level();
    put64(node(1) + 8 + 8, 0x90000000);
    rc = walk(TWO_LEVEL_ROOT, TWO_LEVEL_FLAGS, &l, &err);
    CHECK(rc == MS_EFORMAT && strstr(err.msg, "out of order"), "%s", err.msg);
    ms_maple_list_free(&l);
    /* metadata end past the slots */
    build_two_level();
    mem[node(0) - BASE + 240] = 10;
    rc = walk(TWO_LEVEL_ROOT, TWO_LEVEL_FLAGS, &l, &err);
    CHECK(rc == MS_EFORMAT && strstr(err.msg, "data end"), "%s", err.msg);
    ms_maple_list_free(&l);
    /* an unreadable leaf: the first leaf's entries stay */
    build_two_level();
    arena.hole_lo = node(2) + 100;
    arena.hole_hi = arena.hole_lo + 1;
    rc = walk(TWO_LEVEL_ROOT, TWO_LEVEL_FLAGS, &l, &err);
    CHECK(rc == MS_EUNMAPPED && l.count == 1 && strstr(err.msg, "maple node"), "%d %s", rc,
          err.msg);
    ms_maple_list_free(&l);
    arena.hole_lo = arena.hole_hi = 0;
    /* a node at address 0 */
    rc = walk(0x12 | 0x100, 1 << 2, &l, &err);
    CHECK(rc == MS_EFORMAT, "%s", err.msg);
}

/* ---------------------------------------------------------- the maps walk */

#define SPECIAL_NAME_FN 0xffffffff81111000ULL
#define SIMPLE_DNAME_FN 0xffffffff82222000ULL
#define ANON_DNAME_FN 0xffffffff83333000ULL

static uint64_t obj(size_t size)
{
    uint64_t a = obj_next;
    obj_next += (size + 15) & ~15ull;
    return a;
}

static uint64_t str(const char *s)
{
    uint64_t a = obj(strlen(s) + 1);
    memcpy(mem + (a - BASE), s, strlen(s) + 1);
    return a;
}

static uint64_t dentry(uint64_t parent, const char *name, bool hashed)
{
    uint64_t d = obj(0x28);
    put64(d, parent ? parent : d);
    put32(d + 0x08 + 0x04, (uint32_t)strlen(name));
    put64(d + 0x08 + 0x08, str(name));
    put64(d + 0x20, hashed ? d + 0x100 : 0);
    return d;
}

/* A struct mount; returns its vfsmount (mount + 0x10). */
static uint64_t mount(uint64_t parent_vfs, uint64_t mountpoint, uint64_t root)
{
    uint64_t m = obj(0x18);
    put64(m, parent_vfs ? parent_vfs - 0x10 : m);
    put64(m + 0x08, mountpoint);
    put64(m + 0x10, root);
    return m + 0x10;
}

static uint64_t file(uint64_t vfs, uint64_t d, uint64_t ino, uint32_t dev)
{
    uint64_t sb = obj(8), inode = obj(0x10), f = obj(0x18);
    put32(sb, dev);
    put64(inode, ino);
    put64(inode + 8, sb);
    put64(f, vfs);
    put64(f + 8, d);
    put64(f + 0x10, inode);
    return f;
}

static uint64_t vma(uint64_t start, uint64_t end, uint64_t flags, uint64_t pgoff, uint64_t f)
{
    uint64_t v = obj(0x40);
    put64(v, start);
    put64(v + 8, end);
    put64(v + 0x10, flags);
    put64(v + 0x18, pgoff);
    put64(v + 0x20, f);
    return v;
}

struct built {
    uint64_t task, kthread, zombie, mm;
};

static struct built build_process(void)
{
    memset(mem, 0, sizeof(mem));
    obj_next = OBJ;
    /* the mount tree: / (rootfs), /tmp/m (a tmpfs) */
    uint64_t root = dentry(0, "/", true);
    uint64_t rootvfs = mount(0, root, root);
    uint64_t bin = dentry(root, "bin", true), tmp = dentry(root, "tmp", true);
    uint64_t busybox = dentry(bin, "busybox", true), m = dentry(tmp, "m", true);
    uint64_t mroot = dentry(0, "/", true);
    uint64_t mvfs = mount(rootvfs, m, mroot);
    uint64_t prog = dentry(mroot, "pro\ng", false); /* unlinked, a newline in its name */
    /* pseudo files: named by d_dname */
    uint64_t ops_simple = obj(8), ops_anon = obj(8), ops_other = obj(8);
    put64(ops_simple, SIMPLE_DNAME_FN);
    put64(ops_anon, ANON_DNAME_FN);
    put64(ops_other, 0xffffffff84444000ULL);
    uint64_t zero = dentry(0, "dev/zero", false), kvm = dentry(0, "kvm-vcpu:0", false);
    uint64_t other = dentry(0, "pipe", false);
    put64(zero + 0x18, ops_simple);
    put64(kvm + 0x18, ops_anon);
    put64(other + 0x18, ops_other);
    uint64_t f1 = file(rootvfs, busybox, 6, 2), f2 = file(mvfs, prog, 77, 8u << 20 | 1);
    uint64_t f3 = file(rootvfs, zero, 1234, 1), f4 = file(rootvfs, kvm, 9964, 14);
    uint64_t f5 = file(rootvfs, other, 1, 12);
    /* the VMAs */
    uint64_t v1 = vma(0x400000, 0x401000, 0x75, 0, f1);    /* r-x, VM_MAY* */
    uint64_t v2 = vma(0x401000, 0x402000, 0xfb, 0x12, f2); /* rw-s */
    uint64_t heap = vma(0x600000, 0x621000, 0x73, 0, 0);   /* rw-p */
    uint64_t anon = vma(0x7f0000000000, 0x7f0000001000, 0x73, 0, 0);
    uint64_t z = vma(0x7f0000001000, 0x7f0000002000, 0xfb, 0, f3);
    uint64_t k = vma(0x7f0000002000, 0x7f0000005000, 0xfb, 0, f4);
    uint64_t o = vma(0x7f0000005000, 0x7f0000006000, 0x71, 0, f5);
    uint64_t stack = vma(0x7ffd00000000, 0x7ffd00021000, 0x100173, 0, 0);
    uint64_t vdso = vma(0x7ffd00100000, 0x7ffd00102000, 0x75, 0, 0);
    uint64_t anon_name = obj(16);
    memcpy(mem + (anon_name + 4 - BASE), "hello", 6);
    put64(anon + 0x38, anon_name);
    uint64_t vmops = obj(0x18), special = obj(8);
    put64(vmops + 0x10, SPECIAL_NAME_FN);
    put64(special, str("[vdso]"));
    put64(vdso + 0x28, vmops);
    put64(vdso + 0x30, special);
    /* the mm and its tree: one leaf */
    uint64_t mm = obj(0x40);
    put64(mm, 0x600000);
    put64(mm + 0x08, 0x610000);
    put64(mm + 0x10, 0x7ffd00020ff0);
    uint64_t piv[] = {
        0x3fffff,       0x400fff,       0x401fff,       0x5fffff,       0x620fff,
        0x7effffffffff, 0x7f0000000fff, 0x7f0000001fff, 0x7f0000004fff, 0x7f0000005fff,
        0x7ffcffffffff, 0x7ffd00020fff, 0x7ffd000fffff, 0x7ffd00101fff, UMAX};
    uint64_t slots[] = {0, v1, v2, 0, heap, 0, anon, z, k, o, 0, stack, 0, vdso, 0};
    set_node(0, MS_MAPLE_LEAF_64, (mm + 0x20) | 1, 15, piv, slots);
    put64(mm + 0x20 + 0x08, enode(0, MS_MAPLE_LEAF_64) | 2);
    put32(mm + 0x20 + 0x10, 1 | 1 << 2);
    put32(mm + 0x38, 2); /* MM_CONTEXT_HAS_VSYSCALL: a 64-bit process */
    uint64_t fs = obj(0x10);
    put64(fs, rootvfs);
    put64(fs + 8, root);
    struct built b = {obj(0x18), obj(0x18), obj(0x18), mm};
    put32(b.kthread + 0x10, 0x00200000); /* PF_KTHREAD */
    put64(b.task, mm);
    put64(b.task + 8, fs);
    return b;
}

static const char *const want_lines[] = {
    "00400000-00401000 r-xp 00000000 00:02 6",
    "00401000-00402000 rw-s 00012000 08:01 77",
    "00600000-00621000 rw-p 00000000 00:00 0",
    "7f0000000000-7f0000001000 rw-p 00000000 00:00 0",
    "7f0000001000-7f0000002000 rw-s 00000000 00:01 1234",
    "7f0000002000-7f0000005000 rw-s 00000000 00:0e 9964",
    "7f0000005000-7f0000006000 r--p 00000000 00:0c 1",
    "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0",
    "7ffd00100000-7ffd00102000 r-xp 00000000 00:00 0",
    "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0",
};
static const char *const want_names[] = {
    "/bin/busybox",
    "/tmp/m/pro\\012g (deleted)",
    "[heap]",
    "[anon:hello]",
    "/dev/zero (deleted)",
    "anon_inode:kvm-vcpu:0",
    "?",
    "[stack]",
    "[vdso]",
    "[vsyscall]",
};

static void test_maps(void)
{
    struct built b = build_process();
    uint64_t gate = vma(0xffffffffff600000ULL, 0xffffffffff601000ULL, 0x4, 0, 0x1234);
    struct ms_maps_kernel kk = {SPECIAL_NAME_FN, SIMPLE_DNAME_FN, ANON_DNAME_FN, gate};
    struct ms_vma_list l;
    struct ms_err err;
    int rc = ms_maps_walk(&maps_layout, &kk, b.task, test_arena_read, &arena, &l, &err);
    CHECK(rc == 0, "%s", err.msg);
    CHECK(l.count == 10 && l.bad == 1, "count %zu bad %llu", l.count, (unsigned long long)l.bad);
    struct ms_strbuf sb, want;
    ms_strbuf_init(&sb);
    ms_strbuf_init(&want);
    ms_maps_format(&l, &sb);
    for (size_t i = 0; i < 10; i++) {
        char line[256];
        snprintf(line, sizeof(line), "%-72s %s\n", want_lines[i], want_names[i]);
        ms_strbuf_append(&want, line, strlen(line));
    }
    CHECK(!strcmp(ms_strbuf_str(&sb), ms_strbuf_str(&want)), "got\n%s\nwant\n%s",
          ms_strbuf_str(&sb), ms_strbuf_str(&want));
    ms_strbuf_free(&sb);
    ms_strbuf_free(&want);
    ms_vma_list_free(&l);

    /* a 32-bit process has no [vsyscall] */
    put32(b.mm + 0x38, 0);
    rc = ms_maps_walk(&maps_layout, &kk, b.task, test_arena_read, &arena, &l, &err);
    CHECK(rc == 0 && l.count == 9, "%d %zu %s", rc, l.count, err.msg);
    ms_vma_list_free(&l);
    put32(b.mm + 0x38, 2);

    /* an unnamed anonymous area: the prefix and its trailing space */
    put64(b.mm, 0x500000);
    put64(b.mm + 8, 0x500000);
    kk.gate_vma = 0;
    rc = ms_maps_walk(&maps_layout, &kk, b.task, test_arena_read, &arena, &l, &err);
    ms_strbuf_init(&sb);
    ms_maps_format(&l, &sb);
    CHECK(rc == 0 && strstr(ms_strbuf_str(&sb), "\n00600000-00621000 rw-p 00000000 00:00 0 \n"),
          "%s", ms_strbuf_str(&sb));
    CHECK(l.count == 9, "no gate VMA: %zu", l.count);
    ms_strbuf_free(&sb);
    ms_vma_list_free(&l);

    /* a VMA whose range is not the tree's */
    uint64_t v1 = 0;
    memcpy(&v1, mem + (node(0) - BASE) + 128 + 8, 8);
    put64(v1 + 8, 0x401800);
    rc = ms_maps_walk(&maps_layout, &kk, b.task, test_arena_read, &arena, &l, &err);
    CHECK(rc == MS_EFORMAT && strstr(err.msg, "the tree has it"), "%s", err.msg);
    ms_vma_list_free(&l);
    put64(v1 + 8, 0x401000);
    /* an entry no VMA can be */
    put64(node(0) + 128 + 8, v1 | 2);
    rc = ms_maps_walk(&maps_layout, &kk, b.task, test_arena_read, &arena, &l, &err);
    CHECK(rc == MS_EFORMAT && strstr(err.msg, "not a VMA"), "%s", err.msg);
    ms_vma_list_free(&l);
    put64(node(0) + 128 + 8, v1);

    /* a kernel thread */
    rc = ms_maps_walk(&maps_layout, &kk, b.kthread, test_arena_read, &arena, &l, &err);
    CHECK(rc == MS_ENOTFOUND && strstr(err.msg, "kernel thread"), "%s", err.msg);
    /* an exited process (a zombie) has no mm either */
    rc = ms_maps_walk(&maps_layout, &kk, b.zombie, test_arena_read, &arena, &l, &err);
    CHECK(rc == MS_ENOTFOUND && strstr(err.msg, "has exited"), "%s", err.msg);
    /* an unreadable task */
    rc = ms_maps_walk(&maps_layout, &kk, BASE + ARENA + 0x1000, test_arena_read, &arena, &l, &err);
    CHECK(rc == MS_EUNMAPPED, "%s", err.msg);
    /* a mount loop: d_path ends with an error, the area is named "?" */
    uint64_t f1;
    memcpy(&f1, mem + (v1 + 0x20 - BASE), 8);
    uint64_t d1;
    memcpy(&d1, mem + (f1 + 8 - BASE), 8);
    uint64_t bin;
    memcpy(&bin, mem + (d1 - BASE), 8);
    put64(bin, d1); /* bin's parent is busybox, whose parent is bin */
    rc = ms_maps_walk(&maps_layout, &kk, b.task, test_arena_read, &arena, &l, &err);
    CHECK(rc == 0 && l.count >= 1 && !l.vmas[0].name_known && l.bad == 2, "%d %zu %llu %s", rc,
          l.count, (unsigned long long)l.bad, err.msg);
    ms_vma_list_free(&l);
    /* a bad layout */
    struct ms_maps_layout bad = maps_layout;
    bad.vm_file = 1 << 20;
    rc = ms_maps_walk(&bad, &kk, b.task, test_arena_read, &arena, &l, &err);
    CHECK(rc == MS_EFORMAT, "%s", err.msg);
}

int main(void)
{
    test_leaf_root();
    test_full_leaf();
    test_two_levels();
    test_broken();
    test_maps();
    return check_done("test_maple");
}
