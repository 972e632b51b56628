#include "maple.h"

#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "fields.h"

/* struct maple_range_64 (leaf_64 too): parent, pivot[15], slot[16], the
 * metadata in the last slot's bytes; struct maple_arange_64: parent,
 * pivot[9], slot[10], gap[10], metadata. */
#define RANGE64_SLOTS 16
#define ARANGE64_SLOTS 10
#define PIVOTS_OFF 8
#define RANGE64_SLOT_OFF (PIVOTS_OFF + (RANGE64_SLOTS - 1) * 8)
#define RANGE64_META_OFF (RANGE64_SLOT_OFF + (RANGE64_SLOTS - 1) * 8)
#define ARANGE64_SLOT_OFF (PIVOTS_OFF + (ARANGE64_SLOTS - 1) * 8)
#define ARANGE64_META_OFF (ARANGE64_SLOT_OFF + 2 * ARANGE64_SLOTS * 8)

#define NODE_MASK 0xffull       /* MAPLE_NODE_MASK */
#define ROOT_NODE 0x02ull       /* MAPLE_ROOT_NODE: ma_root holds a node */
#define ENODE_TYPE_SHIFT 3      /* MAPLE_ENODE_TYPE_SHIFT */
#define ENODE_TYPE_MASK 0x0full /* MAPLE_NODE_TYPE_MASK */
#define PARENT_ROOT 0x01ull     /* MA_ROOT_PARENT */
#define PARENT_RANGE64 0x06ull  /* MAPLE_PARENT_RANGE64: a 64-bit range parent */
#define PARENT_SLOT_SHIFT 3     /* MAPLE_PARENT_SLOT_SHIFT */
#define RESERVED_RANGE 4096     /* MAPLE_RESERVED_RANGE */

static const char *type_name(unsigned type)
{
    static const char *const names[] = {"dense", "leaf_64", "range_64", "arange_64"};
    return type < 4 ? names[type] : "unknown";
}

int ms_maple_node_decode(const uint8_t node[MS_MAPLE_NODE_SIZE], unsigned type, uint64_t min,
                         uint64_t max, struct ms_maple_slot out[MS_MAPLE_SLOTS_MAX],
                         unsigned *count, struct ms_err *err)
{
    *count = 0;
    unsigned nslots, slot_off, end;
    const uint8_t *pivots = node + PIVOTS_OFF;
    if (min > max)
        return ms_err_set(err, MS_EFORMAT, "maple node range %#llx..%#llx is empty",
                          (unsigned long long)min, (unsigned long long)max);
    switch (type) {
    case MS_MAPLE_LEAF_64:
    case MS_MAPLE_RANGE_64:
        nslots = RANGE64_SLOTS;
        slot_off = RANGE64_SLOT_OFF;
        /* ma_data_end: a full node has no room for metadata */
        uint64_t last_pivot = ms_get64(pivots + (nslots - 2) * 8);
        if (last_pivot == 0)
            end = node[RANGE64_META_OFF];
        else if (last_pivot == max)
            end = nslots - 2;
        else
            end = nslots - 1;
        break;
    case MS_MAPLE_ARANGE_64:
        nslots = ARANGE64_SLOTS;
        slot_off = ARANGE64_SLOT_OFF;
        end = node[ARANGE64_META_OFF];
        break;
    default:
        return ms_err_set(err, MS_EFORMAT, "maple node of type %u (%s): not in a 64-bit range tree",
                          type, type_name(type));
    }
    if (end >= nslots)
        return ms_err_set(err, MS_EFORMAT, "maple %s node's data end %u is past its %u slots",
                          type_name(type), end, nslots);
    uint64_t first = min;
    for (unsigned i = 0; i <= end; i++) {
        uint64_t last = i < nslots - 1 ? ms_get64(pivots + i * 8) : max;
        if (last == 0 && i > 0) /* mas_logical_pivot: an unset pivot is the node's max */
            last = max;
        if (last < first || last > max)
            return ms_err_set(err, MS_EFORMAT,
                              "maple %s node: pivot %u (%#llx) out of order (slot covers from "
                              "%#llx, node up to %#llx)",
                              type_name(type), i, (unsigned long long)last,
                              (unsigned long long)first, (unsigned long long)max);
        out[*count].first = first;
        out[*count].last = last;
        out[*count].value = ms_get64(node + slot_off + i * 8);
        (*count)++;
        if (last == max) /* the rest of the node is past its range */
            break;
        first = last + 1;
    }
    return 0;
}

/* An open-addressing set of node addresses (never 0): a node met twice. */
struct seen {
    uint64_t *v;
    size_t cap, count;
};

static size_t seen_hash(uint64_t a, size_t mask)
{
    return (size_t)((a >> 8) * 0x9e3779b97f4a7c15ULL >> 17) & mask;
}

static bool seen_insert(uint64_t *v, size_t mask, uint64_t a)
{
    size_t h = seen_hash(a, mask);
    while (v[h]) {
        if (v[h] == a)
            return false;
        h = (h + 1) & mask;
    }
    v[h] = a;
    return true;
}

/* 1 added, 0 already there, < 0 out of memory. */
static int seen_add(struct seen *s, uint64_t a, struct ms_err *err)
{
    if (2 * (s->count + 1) > s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        uint64_t *v = calloc(cap, sizeof(*v));
        if (!v)
            return ms_err_set(err, MS_ENOMEM, "out of memory for %zu maple nodes", s->count);
        for (size_t i = 0; i < s->cap; i++)
            if (s->v[i])
                seen_insert(v, cap - 1, s->v[i]);
        free(s->v);
        s->v = v;
        s->cap = cap;
    }
    if (!seen_insert(s->v, s->cap - 1, a))
        return 0;
    s->count++;
    return 1;
}

struct walk {
    ms_read_fn read;
    void *arg;
    unsigned height;
    unsigned internal_type; /* maple_arange_64 in an alloc tree, else maple_range_64 */
    size_t max_entries, max_nodes;
    struct seen seen;
    struct ms_maple_list *out;
};

/* The node enode points to at depth, covering [min, max]; parent is the
 * value its parent pointer must hold. */
static int walk_node(struct walk *w, uint64_t enode, uint64_t parent, unsigned depth, uint64_t min,
                     uint64_t max, struct ms_err *err)
{
    uint64_t addr = enode & ~NODE_MASK;
    unsigned type = (unsigned)((enode >> ENODE_TYPE_SHIFT) & ENODE_TYPE_MASK);
    bool leaf = depth + 1 == w->height;
    unsigned want = leaf ? MS_MAPLE_LEAF_64 : w->internal_type;
    /* bits 0, 1 and 7 are no part of an encoded node pointer */
    if (addr == 0 || addr + MS_MAPLE_NODE_SIZE < addr || (enode & 0x83))
        return ms_err_set(err, MS_EFORMAT, "maple node pointer %#llx at depth %u",
                          (unsigned long long)enode, depth);
    if (type != want)
        return ms_err_set(
            err, MS_EFORMAT, "maple node %#llx at depth %u of %u is %s (%u), expected %s",
            (unsigned long long)addr, depth, w->height, type_name(type), type, type_name(want));
    int rc = seen_add(&w->seen, addr, err);
    if (rc == 0)
        return ms_err_set(err, MS_EFORMAT, "maple node %#llx is reached twice (a loop)",
                          (unsigned long long)addr);
    if (rc < 0)
        return rc;
    if (++w->out->nodes > w->max_nodes)
        return ms_err_set(err, MS_ELIMIT, "more than %zu maple nodes: the tree is corrupt",
                          w->max_nodes);
    uint8_t node[MS_MAPLE_NODE_SIZE];
    rc = w->read(w->arg, addr, node, sizeof(node), NULL, err);
    if (rc < 0)
        return ms_err_prefix(err, "maple node %#llx: ", (unsigned long long)addr);
    /* a node freed under RCU points to itself: ma_dead_node */
    if (ms_get64(node) != parent)
        return ms_err_set(err, MS_EFORMAT,
                          "maple node %#llx: parent pointer %#llx, expected %#llx%s",
                          (unsigned long long)addr, (unsigned long long)ms_get64(node),
                          (unsigned long long)parent,
                          (ms_get64(node) & ~NODE_MASK) == addr ? " (a dead node)" : "");
    struct ms_maple_slot slots[MS_MAPLE_SLOTS_MAX];
    unsigned n;
    rc = ms_maple_node_decode(node, type, min, max, slots, &n, err);
    if (rc < 0)
        return ms_err_prefix(err, "maple node %#llx: ", (unsigned long long)addr);
    for (unsigned i = 0; i < n; i++) {
        uint64_t v = slots[i].value;
        if (!v)
            continue;
        if (!leaf) {
            /* a child's parent pointer: this node, its slot, a range64 parent */
            uint64_t p = addr | (uint64_t)i << PARENT_SLOT_SHIFT | PARENT_RANGE64;
            rc = walk_node(w, v, p, depth + 1, slots[i].first, slots[i].last, err);
            if (rc < 0)
                return rc;
            continue;
        }
        if (w->out->count >= w->max_entries)
            return ms_err_set(err, MS_ELIMIT, "more than %zu maple tree entries", w->max_entries);
        if (!MS_ARRAY_RESERVE(&w->out->entries, &w->out->cap, w->out->count + 1, 64))
            return ms_err_set(err, MS_ENOMEM, "out of memory for %zu maple entries", w->out->count);
        w->out->entries[w->out->count++] =
            (struct ms_maple_entry){slots[i].first, slots[i].last, v};
    }
    return 0;
}

int ms_maple_walk(uint64_t tree, uint64_t ma_root, uint32_t ma_flags, ms_read_fn read, void *arg,
                  size_t max_entries, size_t max_nodes, struct ms_maple_list *out,
                  struct ms_err *err)
{
    memset(out, 0, sizeof(*out));
    if (ma_root == 0)
        return 0;
    /* xa_is_node: internal (low bits 10) and above the reserved values */
    bool internal = (ma_root & 3) == 2;
    if (!internal) { /* a single entry at index 0 (mas_is_ptr) */
        out->entries = malloc(sizeof(*out->entries));
        if (!out->entries)
            return ms_err_set(err, MS_ENOMEM, "out of memory");
        out->cap = out->count = 1;
        out->entries[0] = (struct ms_maple_entry){0, 0, ma_root};
        return 0;
    }
    if (ma_root < RESERVED_RANGE)
        return ms_err_set(err, MS_EFORMAT, "maple tree root %#llx is a reserved value",
                          (unsigned long long)ma_root);
    unsigned height = MS_MAPLE_FLAGS_HEIGHT(ma_flags);
    if (height == 0 || height > MS_MAPLE_HEIGHT_MAX)
        return ms_err_set(err, MS_EFORMAT,
                          "maple tree at %#llx: height %u with a root node (flags %#x)",
                          (unsigned long long)tree, height, ma_flags);
    struct walk w = {
        .read = read,
        .arg = arg,
        .height = height,
        .internal_type =
            ma_flags & MS_MAPLE_FLAGS_ALLOC_RANGE ? MS_MAPLE_ARANGE_64 : MS_MAPLE_RANGE_64,
        .max_entries = max_entries ? max_entries : MS_MAPLE_ENTRIES_MAX_DEFAULT,
        .max_nodes = max_nodes ? max_nodes : MS_MAPLE_NODES_MAX_DEFAULT,
        .out = out,
    };
    int rc = walk_node(&w, ma_root & ~ROOT_NODE, tree | PARENT_ROOT, 0, 0, UINT64_MAX, err);
    free(w.seen.v);
    return rc;
}

void ms_maple_list_free(struct ms_maple_list *l)
{
    free(l->entries);
    memset(l, 0, sizeof(*l));
}
