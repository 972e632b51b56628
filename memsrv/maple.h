/* Linux's maple tree (6.1+: the VMA tree, mm_struct.mm_mt) from guest
 * memory: a pure decoder of one 256-byte node and a bounded walker over a
 * read callback that lists every non-NULL entry with its index range, in
 * order (both fuzzed). Follows include/linux/maple_tree.h and
 * lib/maple_tree.c of 6.1 (64-bit): nodes maple_leaf_64, maple_range_64 and
 * maple_arange_64 (dense nodes are not used by the kernel's trees), encoded
 * node pointers (node | type << 3 | flags), pivots and metadata. Every node
 * pointer, its parent pointer and slot, the pivots' order and the depth
 * against the tree's height are checked; a node met twice (a loop, or two
 * parents) and more than max nodes or entries end the walk with an error. */
#ifndef MEMSRV_MAPLE_H
#define MEMSRV_MAPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "memsrv.h"

#define MS_MAPLE_NODE_SIZE 256 /* every node, 256-byte aligned */
#define MS_MAPLE_SLOTS_MAX 16  /* maple_range_64 and maple_leaf_64 */
#define MS_MAPLE_HEIGHT_MAX 31 /* MAPLE_HEIGHT_MAX */

/* enum maple_type */
enum ms_maple_type {
    MS_MAPLE_DENSE = 0,
    MS_MAPLE_LEAF_64 = 1,
    MS_MAPLE_RANGE_64 = 2,
    MS_MAPLE_ARANGE_64 = 3,
};

/* struct maple_tree's ma_flags bits the walker reads. */
#define MS_MAPLE_FLAGS_ALLOC_RANGE 0x01 /* internal nodes are maple_arange_64 */
#define MS_MAPLE_FLAGS_HEIGHT(f) (((f)&0x7c) >> 2)

/* One slot of a node: the indices [first, last] it covers and its value
 * (a child's encoded pointer, or an entry in a leaf; 0 for none). */
struct ms_maple_slot {
    uint64_t first, last, value;
};

/* Decodes the node of the given type covering [min, max] from its 256
 * bytes: its used slots (up to its data end) with their ranges, in order,
 * into out (*count of them). Fails on a dense or unknown type, a data end
 * past the node's slots, and pivots out of order or outside [min, max]. */
int ms_maple_node_decode(const uint8_t node[MS_MAPLE_NODE_SIZE], unsigned type, uint64_t min,
                         uint64_t max, struct ms_maple_slot out[MS_MAPLE_SLOTS_MAX],
                         unsigned *count, struct ms_err *err);

struct ms_maple_entry {
    uint64_t first, last; /* the indices it covers (a VMA: vm_start .. vm_end - 1) */
    uint64_t value;       /* the entry (a VMA: its vm_area_struct) */
};

struct ms_maple_list {
    struct ms_maple_entry *entries; /* in index order */
    size_t count, cap;
    uint64_t nodes; /* nodes read */
};

#define MS_MAPLE_ENTRIES_MAX_DEFAULT (1u << 20)
#define MS_MAPLE_NODES_MAX_DEFAULT (1u << 18)

/* Lists the entries of the maple tree at tree (its address: the root
 * node's parent pointer names it) whose ma_root and ma_flags are given,
 * into out (which it clears), reading nodes through read. At most
 * max_entries entries and max_nodes nodes (0: the defaults). A walk cut
 * short keeps the entries before the fault; the error names the node. */
int ms_maple_walk(uint64_t tree, uint64_t ma_root, uint32_t ma_flags, ms_read_fn read, void *arg,
                  size_t max_entries, size_t max_nodes, struct ms_maple_list *out,
                  struct ms_err *err);
void ms_maple_list_free(struct ms_maple_list *l);

#endif
