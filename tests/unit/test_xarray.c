/* The xarray walker on synthetic nodes laid out as Linux 6.1 lays out
 * struct xa_node (shift at 0, slots at 40): a lone entry in xa_head, a
 * two-level tree with value (shadow) entries, a multi-index entry (a large
 * folio: its canonical slot and siblings) met from its start and from the
 * middle, ranges cut inside nodes; then broken trees: a child whose shift
 * is not its parent's less 6, a sibling pointing forward, a node under a
 * leaf level, an implausible root, an unreadable node, too many nodes. */
#include <stdlib.h>

#include "check.h"
#include "../support/arena.h"
#include "xarray.h"

#define BASE 0xffff888000100000ULL
#define NODE 0x240 /* one xa_node: 40 + 64 * 8 = 552 bytes */
#define NODES 8
#define ARENA (NODES * NODE)

static uint8_t mem[ARENA];
static struct test_arena arena = {BASE, mem, ARENA, 0, 0};

static const struct ms_xa_layout layout = {.shift = 0, .slots = 40};

static uint64_t node(unsigned i)
{
    return BASE + (uint64_t)i * NODE;
}

static uint64_t node_entry(unsigned i)
{
    return node(i) | 2; /* xa_mk_node */
}

static void set_node(unsigned i, uint8_t shift)
{
    memset(mem + i * NODE, 0, NODE);
    mem[i * NODE] = shift;
}

static void set_slot(unsigned i, unsigned slot, uint64_t v)
{
    memcpy(mem + i * NODE + 40 + slot * 8, &v, 8);
}

static uint64_t page(uint64_t index)
{
    return 0xffffea0000000000ULL + index * 64; /* a struct page pointer (aligned) */
}

#define MAX_SEEN 256

struct seen {
    unsigned n;
    struct ms_xa_entry e[MAX_SEEN];
    unsigned stop_after; /* 0: never */
};

static int collect(void *arg, const struct ms_xa_entry *e)
{
    struct seen *s = arg;
    if (s->n < MAX_SEEN)
        s->e[s->n++] = *e;
    return s->stop_after && s->n >= s->stop_after ? 7 : 0;
}

static int walk(uint64_t head, uint64_t first, uint64_t last, size_t max_nodes, struct seen *s,
                struct ms_err *err)
{
    memset(s, 0, sizeof(*s));
    return ms_xa_walk(&layout, head, first, last, test_arena_read, &arena, max_nodes, collect, s,
                      err);
}

static void test_entries(void)
{
    CHECK(ms_xa_is_node(node_entry(0)) && !ms_xa_is_sibling(node_entry(0)), "node");
    CHECK(ms_xa_is_sibling(2) && ms_xa_is_sibling(62 << 2 | 2) && !ms_xa_is_sibling(63 << 2 | 2),
          "siblings 0..62");
    CHECK(ms_xa_is_value(0x1234 << 1 | 1) && !ms_xa_is_internal(page(1)), "value, pointer");
    CHECK(ms_xa_is_internal(0x402) && !ms_xa_is_node(0x402), "retry entry");
}

static void test_lone(void)
{
    struct seen s;
    struct ms_err err;
    CHECK(walk(page(0), 0, 10, 0, &s, &err) == 0 && s.n == 1 && s.e[0].index == 0 &&
              s.e[0].count == 1 && s.e[0].entry == page(0),
          "a lone entry at index 0: %u", s.n);
    CHECK(walk(page(0), 1, 10, 0, &s, &err) == 0 && s.n == 0, "not from index 1");
    CHECK(walk(0x55, 0, 10, 0, &s, &err) == 0 && s.n == 0, "a value entry is not present");
    CHECK(walk(0, 0, 10, 0, &s, &err) == 0 && s.n == 0, "empty");
}

/* root (shift 6): slot 0 -> node 1 (indices 0..63), slot 1 -> node 2
 * (64..127), slot 3: a 64-index entry (192..255, an order-6 folio) */
static void build_tree(void)
{
    memset(mem, 0, sizeof(mem));
    set_node(0, 6);
    set_node(1, 0);
    set_node(2, 0);
    set_slot(0, 0, node_entry(1));
    set_slot(0, 1, node_entry(2));
    set_slot(0, 3, page(192));
    for (unsigned i = 0; i < 64; i++)
        set_slot(1, i, i == 5 ? (0x777ULL << 1 | 1) : page(i)); /* index 5: a shadow entry */
    /* node 2: an order-2 folio at 64..67, pages at 70, 71 */
    set_slot(2, 0, page(64));
    set_slot(2, 1, 0 << 2 | 2);
    set_slot(2, 2, 0 << 2 | 2);
    set_slot(2, 3, 0 << 2 | 2);
    set_slot(2, 6, page(70));
    set_slot(2, 7, page(71));
}

static void test_tree(void)
{
    struct seen s;
    struct ms_err err;
    build_tree();
    int rc = walk(node_entry(0), 0, UINT64_MAX, 0, &s, &err);
    CHECK(rc == 0, "%s", err.msg);
    CHECK(s.n == 63 + 3 + 1, "entries: %u", s.n);
    CHECK(s.e[4].index == 4 && s.e[5].index == 6, "the shadow entry at 5 is skipped");
    CHECK(s.e[63].index == 64 && s.e[63].count == 4 && s.e[63].entry == page(64),
          "the order-2 folio: index %llu count %llu", (unsigned long long)s.e[63].index,
          (unsigned long long)s.e[63].count);
    CHECK(s.e[64].index == 70 && s.e[65].index == 71, "after it");
    CHECK(s.e[66].index == 192 && s.e[66].count == 64, "the order-6 folio in the root");
    for (unsigned i = 1; i < s.n; i++)
        CHECK(s.e[i].index >= s.e[i - 1].index + s.e[i - 1].count, "in order at %u", i);

    /* from the middle of the folio: it is handed whole, once */
    rc = walk(node_entry(0), 66, 70, 0, &s, &err);
    CHECK(rc == 0 && s.n == 2 && s.e[0].index == 64 && s.e[0].count == 4 && s.e[1].index == 70,
          "66..70: %u entries", s.n);
    rc = walk(node_entry(0), 200, 200, 0, &s, &err);
    CHECK(rc == 0 && s.n == 1 && s.e[0].index == 192, "inside the root's folio");
    rc = walk(node_entry(0), 10, 12, 0, &s, &err);
    CHECK(rc == 0 && s.n == 3 && s.e[0].index == 10 && s.e[2].index == 12, "10..12");
    rc = walk(node_entry(0), 256, 100000, 0, &s, &err);
    CHECK(rc == 0 && s.n == 0, "past the root's reach");
    rc = walk(node_entry(0), 5, 5, 0, &s, &err);
    CHECK(rc == 0 && s.n == 0, "a shadow entry alone");

    /* the callback's stop */
    memset(&s, 0, sizeof(s));
    s.stop_after = 2;
    rc = ms_xa_walk(&layout, node_entry(0), 0, UINT64_MAX, test_arena_read, &arena, 0, collect, &s,
                    &err);
    CHECK(rc == 7 && s.n == 2, "stopped: %d", rc);
}

static void test_broken(void)
{
    struct seen s;
    struct ms_err err;

    build_tree();
    mem[1 * NODE] = 6; /* node 1 claims shift 6 under the root's 6 */
    CHECK(walk(node_entry(0), 0, 100, 0, &s, &err) == MS_EFORMAT && strstr(err.msg, "shift 6"),
          "%s", err.msg);

    build_tree();
    set_slot(1, 3, 10 << 2 | 2); /* a sibling of slot 10, after it */
    CHECK(walk(node_entry(0), 3, 3, 0, &s, &err) == MS_EFORMAT && strstr(err.msg, "sibling"), "%s",
          err.msg);

    build_tree();
    set_slot(2, 1, page(65)); /* slot 2's sibling of slot 0 is cut off from it */
    CHECK(walk(node_entry(0), 66, 66, 0, &s, &err) == MS_EFORMAT && strstr(err.msg, "cut off"),
          "%s", err.msg);

    build_tree();
    set_slot(1, 7, node_entry(0)); /* a node in a leaf node: the loop back to the root */
    CHECK(walk(node_entry(0), 0, 100, 0, &s, &err) == MS_EFORMAT && strstr(err.msg, "below"), "%s",
          err.msg);

    build_tree();
    mem[0] = 7; /* a root shift that is no multiple of 6 */
    CHECK(walk(node_entry(0), 0, 100, 0, &s, &err) == MS_EFORMAT, "%s", err.msg);
    mem[0] = 60; /* beyond the indices the page cache has */
    CHECK(walk(node_entry(0), 0, 100, 0, &s, &err) == MS_EFORMAT, "%s", err.msg);

    build_tree();
    arena.hole_lo = node(2) + 40;
    arena.hole_hi = arena.hole_lo + 1;
    int rc = walk(node_entry(0), 0, 100, 0, &s, &err);
    CHECK(rc == MS_EUNMAPPED && s.n == 63 && strstr(err.msg, "xarray node at"),
          "unreadable node 2: %d %s", rc, err.msg);
    arena.hole_lo = arena.hole_hi = 0;

    CHECK(walk(node_entry(0), 0, 200, 2, &s, &err) == MS_ELIMIT, "two nodes at most: %s", err.msg);
    CHECK(walk(node_entry(0), 0, 63, 2, &s, &err) == 0, "two are enough for 0..63");

    /* a layout whose shift sits inside the slots, or far away */
    struct ms_xa_layout bad = {.shift = 48, .slots = 40};
    uint64_t lo, hi;
    CHECK(ms_xa_layout_span(&bad, &lo, &hi, &err) == MS_EFORMAT, "shift in the slots");
    bad = (struct ms_xa_layout){.shift = 0, .slots = 1 << 20};
    CHECK(ms_xa_layout_span(&bad, &lo, &hi, &err) == MS_EFORMAT, "slots far away");
    uint8_t bytes[600] = {0};
    struct ms_xa_node n;
    CHECK(ms_xa_node_decode(&layout, bytes, 100, &n, &err) == MS_EINVAL, "short bytes");
    bytes[0] = 12;
    CHECK(ms_xa_node_decode(&layout, bytes, sizeof(bytes), &n, &err) == 0 && n.shift == 12,
          "decoded");
}

int main(void)
{
    test_entries();
    test_lone();
    test_tree();
    test_broken();
    return check_done("test_xarray");
}
