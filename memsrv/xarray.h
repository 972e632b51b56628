/* The kernel's xarray (include/linux/xarray.h, lib/xarray.c), read from
 * guest memory: the radix tree behind every address_space's page cache
 * (i_pages). A pure decoder of one xa_node's bytes and a walker over a read
 * callback (both fuzzed) that hands back, in index order, the entries
 * present in a range of indices: pointers (in the page cache, folios), each
 * with the indices it covers (a multi-index entry: its canonical slot and
 * the sibling slots after it). Value entries (shadow and swap entries:
 * pages not in memory) and internal entries other than nodes and siblings
 * are not present. Bounded: every node's shift must be its parent's less
 * XA_CHUNK_SHIFT (so the walk cannot loop or go deeper than the index
 * width allows), and at most max_nodes nodes are read. */
#ifndef MEMSRV_XARRAY_H
#define MEMSRV_XARRAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define MS_XA_CHUNK_SHIFT 6 /* CONFIG_BASE_SMALL=0 */
#define MS_XA_CHUNK_SIZE (1u << MS_XA_CHUNK_SHIFT)
#define MS_XA_NODE_FIELD_MAX 4096 /* a field past this: not an xa_node */

/* Byte offsets in struct xa_node. */
struct ms_xa_layout {
    uint64_t shift; /* unsigned char: bits of the index below this node's slots */
    uint64_t slots; /* void *slots[XA_CHUNK_SIZE] */
};

struct ms_xa_node {
    uint8_t shift;
    uint64_t slots[MS_XA_CHUNK_SIZE];
};

/* The part of xa_node the decoder reads: [*lo, *hi). */
int ms_xa_layout_span(const struct ms_xa_layout *l, uint64_t *lo, uint64_t *hi, struct ms_err *err);
/* Decodes an xa_node from its [lo, hi) bytes (len must cover them). */
int ms_xa_node_decode(const struct ms_xa_layout *l, const uint8_t *bytes, size_t len,
                      struct ms_xa_node *node, struct ms_err *err);

/* What an entry is (xarray.h's xa_is_* tests on its raw value). */
bool ms_xa_is_value(uint64_t entry);
bool ms_xa_is_internal(uint64_t entry);
bool ms_xa_is_node(uint64_t entry);
bool ms_xa_is_sibling(uint64_t entry);

/* A present entry: the pointer stored for indices [index, index + count). */
struct ms_xa_entry {
    uint64_t index, count;
    uint64_t entry;
};

/* Called per present entry in index order; non-zero stops the walk (that
 * value is returned). An entry reaching outside [first, last] is handed
 * whole. */
typedef int (*ms_xa_fn)(void *arg, const struct ms_xa_entry *e);

#define MS_XA_NODES_MAX_DEFAULT 65536

/* Walks the xarray whose xa_head holds head (a raw entry) over the indices
 * [first, last], reading nodes through read; at most max_nodes node reads
 * (0: MS_XA_NODES_MAX_DEFAULT). */
int ms_xa_walk(const struct ms_xa_layout *l, uint64_t head, uint64_t first, uint64_t last,
               ms_read_fn read, void *arg, size_t max_nodes, ms_xa_fn fn, void *fn_arg,
               struct ms_err *err);

#endif
