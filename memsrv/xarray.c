#include "xarray.h"

#include <string.h>

/* Node shifts the walker accepts: indices below 2^60 (the page cache's are
 * below 2^52, MAX_LFS_FILESIZE >> PAGE_SHIFT), so no index arithmetic
 * overflows. */
#define XA_SHIFT_MAX 54
#define XA_NODE_READ_MAX (MS_XA_NODE_FIELD_MAX + 8 * MS_XA_CHUNK_SIZE)

bool ms_xa_is_value(uint64_t entry)
{
    return entry & 1;
}

bool ms_xa_is_internal(uint64_t entry)
{
    return (entry & 3) == 2;
}

bool ms_xa_is_node(uint64_t entry)
{
    return ms_xa_is_internal(entry) && entry > 4096;
}

bool ms_xa_is_sibling(uint64_t entry)
{
    /* xa_mk_sibling(offset) for offsets below XA_CHUNK_SIZE - 1 */
    return ms_xa_is_internal(entry) && entry < (((uint64_t)MS_XA_CHUNK_SIZE - 1) << 2 | 2);
}

int ms_xa_layout_span(const struct ms_xa_layout *l, uint64_t *lo, uint64_t *hi, struct ms_err *err)
{
    if (l->shift > MS_XA_NODE_FIELD_MAX || l->slots > MS_XA_NODE_FIELD_MAX)
        return ms_err_set(
            err, MS_EFORMAT, "xa_node's shift at %#llx, slots at %#llx: past %#x, not an xa_node",
            (unsigned long long)l->shift, (unsigned long long)l->slots, MS_XA_NODE_FIELD_MAX);
    uint64_t slots_end = l->slots + 8 * MS_XA_CHUNK_SIZE;
    if (l->shift < l->slots + 8 * MS_XA_CHUNK_SIZE && l->shift >= l->slots)
        return ms_err_set(err, MS_EFORMAT, "xa_node's shift at %#llx lies inside its slots",
                          (unsigned long long)l->shift);
    *lo = l->shift < l->slots ? l->shift : l->slots;
    *hi = l->shift + 1 > slots_end ? l->shift + 1 : slots_end;
    return 0;
}

int ms_xa_node_decode(const struct ms_xa_layout *l, const uint8_t *bytes, size_t len,
                      struct ms_xa_node *node, struct ms_err *err)
{
    uint64_t lo, hi;
    int rc = ms_xa_layout_span(l, &lo, &hi, err);
    if (rc < 0)
        return rc;
    if (len < hi - lo)
        return ms_err_set(err, MS_EINVAL, "xa_node bytes: %zu, the layout needs %llu", len,
                          (unsigned long long)(hi - lo));
    const uint8_t *b = bytes - lo; /* b + offset: the field */
    node->shift = b[l->shift];
    memcpy(node->slots, b + l->slots, sizeof(node->slots));
    return 0;
}

struct walk {
    const struct ms_xa_layout *l;
    ms_read_fn read;
    void *arg;
    uint64_t lo, hi;
    size_t nodes, max_nodes;
    ms_xa_fn fn;
    void *fn_arg;
    struct ms_err *err;
};

static int read_node(struct walk *w, uint64_t entry, struct ms_xa_node *node)
{
    uint8_t buf[XA_NODE_READ_MAX];
    uint64_t addr = entry - 2; /* xa_to_node */
    if (++w->nodes > w->max_nodes)
        return ms_err_set(w->err, MS_ELIMIT, "more than %zu xarray nodes", w->max_nodes);
    int rc = w->read(w->arg, addr + w->lo, buf, w->hi - w->lo, NULL, w->err);
    if (rc == 0)
        rc = ms_xa_node_decode(w->l, buf, w->hi - w->lo, node, w->err);
    return rc < 0 ? ms_err_prefix(w->err, "xarray node at 0x%llx: ", (unsigned long long)addr) : 0;
}

/* The node's slots from first to last (both inside it); base: the index of
 * its slot 0. */
static int walk_node(struct walk *w, const struct ms_xa_node *node, uint64_t base, uint64_t first,
                     uint64_t last)
{
    unsigned shift = node->shift;
    unsigned o_first = first > base ? (unsigned)((first - base) >> shift) : 0;
    unsigned o_last = (unsigned)((last - base) >> shift);
    if (o_last >= MS_XA_CHUNK_SIZE)
        o_last = MS_XA_CHUNK_SIZE - 1;
    for (unsigned o = o_first; o <= o_last; o++) {
        uint64_t e = node->slots[o];
        unsigned start = o;
        if (ms_xa_is_sibling(e)) {
            if (o != o_first)
                continue; /* part of the entry handed already */
            start = (unsigned)(e >> 2);
            if (start >= o)
                return ms_err_set(w->err, MS_EFORMAT,
                                  "xarray slot %u at index 0x%llx: a sibling of slot %u after it",
                                  o, (unsigned long long)(base + ((uint64_t)o << shift)), start);
            e = node->slots[start];
        }
        if (ms_xa_is_node(e)) {
            if (start != o)
                return ms_err_set(w->err, MS_EFORMAT, "xarray: a sibling of a node");
            if (shift < MS_XA_CHUNK_SHIFT)
                return ms_err_set(w->err, MS_EFORMAT,
                                  "xarray: a node below a node of shift %u (its leaves)", shift);
            struct ms_xa_node child;
            int rc = read_node(w, e, &child);
            if (rc < 0)
                return rc;
            if (child.shift != shift - MS_XA_CHUNK_SHIFT)
                return ms_err_set(w->err, MS_EFORMAT,
                                  "xarray node at 0x%llx: shift %u under a node of shift %u",
                                  (unsigned long long)(e - 2), child.shift, shift);
            uint64_t child_base = base + ((uint64_t)o << shift);
            uint64_t child_last = child_base + ((uint64_t)1 << shift) - 1;
            rc = walk_node(w, &child, child_base, first > child_base ? first : child_base,
                           last < child_last ? last : child_last);
            if (rc)
                return rc;
            continue;
        }
        if (!e || ms_xa_is_value(e) || ms_xa_is_internal(e))
            continue; /* empty, a shadow or swap entry, a retry or zero entry */
        unsigned n = 1;
        while (start + n < MS_XA_CHUNK_SIZE && node->slots[start + n] == ((uint64_t)start << 2 | 2))
            n++;
        if (start + n <= o) /* the siblings before o are not all start's */
            return ms_err_set(w->err, MS_EFORMAT,
                              "xarray slot %u at index 0x%llx: a sibling of slot %u, cut off "
                              "from it",
                              o, (unsigned long long)(base + ((uint64_t)o << shift)), start);
        struct ms_xa_entry x = {base + ((uint64_t)start << shift), (uint64_t)n << shift, e};
        int rc = w->fn(w->fn_arg, &x);
        if (rc)
            return rc;
    }
    return 0;
}

int ms_xa_walk(const struct ms_xa_layout *l, uint64_t head, uint64_t first, uint64_t last,
               ms_read_fn read, void *arg, size_t max_nodes, ms_xa_fn fn, void *fn_arg,
               struct ms_err *err)
{
    struct walk w = {l,  read,   arg, 0, 0, 0, max_nodes ? max_nodes : MS_XA_NODES_MAX_DEFAULT,
                     fn, fn_arg, err};
    int rc = ms_xa_layout_span(l, &w.lo, &w.hi, err);
    if (rc < 0 || first > last)
        return rc;
    if (!ms_xa_is_node(head)) {
        /* a lone entry: index 0 only */
        if (first > 0 || !head || ms_xa_is_value(head) || ms_xa_is_internal(head))
            return 0;
        struct ms_xa_entry x = {0, 1, head};
        return fn(fn_arg, &x);
    }
    struct ms_xa_node root;
    rc = read_node(&w, head, &root);
    if (rc < 0)
        return rc;
    if (root.shift % MS_XA_CHUNK_SHIFT || root.shift > XA_SHIFT_MAX)
        return ms_err_set(err, MS_EFORMAT, "xarray root node at 0x%llx: shift %u",
                          (unsigned long long)(head - 2), root.shift);
    uint64_t max = ((uint64_t)MS_XA_CHUNK_SIZE << root.shift) - 1;
    if (first > max)
        return 0;
    return walk_node(&w, &root, 0, first, last < max ? last : max);
}
