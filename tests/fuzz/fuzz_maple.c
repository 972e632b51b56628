/* Fuzzes the maple tree walker and the memory-map walk over a fake kernel
 * memory taken from the input: an arena of up to 32 256-byte nodes (or any
 * structs) at BASE, read as it is; then formats what was listed.
 *
 * Input: u8 mode (bit 0: the maps walk of a task at BASE + 0x10 in the
 *        arena, with the compact layout of tests/support/mapslayout.h; bit 1: a gate VMA at
 *        BASE + 0x40), u8 max_entries (1 + n % 64), u8 max_nodes
 *        (1 + n % 64), u8 hole (reads touching arena byte hole * 32 fail;
 *        255: none), u64 ma_root, u32 ma_flags, then the arena. A tree's
 *        address is BASE + 0x20 (the root node's parent must say so).
 * The walks must end within their limits, never read outside what they
 * were given, and list entries in order. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "maple.h"
#include "maps.h"
#include "strbuf.h"
#include "../support/mapslayout.h"

#define BASE 0xffff888000100000ULL
#define ARENA (32 * 256)
#define HEADER 16

struct memory {
    const uint8_t *data;
    size_t len;
    uint64_t hole; /* 0: none */
};

static int read_mem(void *arg, uint64_t addr, void *buf, size_t len, size_t *done,
                    struct ms_err *err)
{
    const struct memory *m = arg;
    if (done)
        *done = 0;
    if (addr < BASE || addr - BASE > m->len || len > m->len - (addr - BASE) ||
        (m->hole && addr < m->hole + 32 && addr + len > m->hole))
        return ms_err_set(err, MS_EUNMAPPED, "0x%llx not mapped", (unsigned long long)addr);
    memcpy(buf, m->data + (addr - BASE), len);
    if (done)
        *done = len;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HEADER)
        return 0;
    uint8_t mode = data[0];
    size_t max_entries = 1 + data[1] % 64, max_nodes = 1 + data[2] % 64;
    uint64_t root;
    uint32_t flags;
    memcpy(&root, data + 4, 8);
    memcpy(&flags, data + 12, 4);
    struct memory m = {data + HEADER, size - HEADER, 0};
    if (m.len > ARENA)
        m.len = ARENA;
    if (data[3] != 255)
        m.hole = BASE + (uint64_t)data[3] * 32;
    struct ms_err err;
    if (!(mode & 1)) {
        struct ms_maple_list l;
        int rc =
            ms_maple_walk(BASE + 0x20, root, flags, read_mem, &m, max_entries, max_nodes, &l, &err);
        if (l.count > max_entries || l.nodes > max_nodes + 1)
            abort();
        for (size_t i = 0; i < l.count; i++)
            if (l.entries[i].first > l.entries[i].last ||
                (i && l.entries[i].first <= l.entries[i - 1].last) || !l.entries[i].value)
                abort();
        (void)rc;
        ms_maple_list_free(&l);
        return 0;
    }
    struct ms_maps_kernel kk = {0x1111, 0x2222, 0x3333, mode & 2 ? BASE + 0x40 : 0};
    struct ms_vma_list l;
    ms_maps_walk(&maps_layout, &kk, BASE + 0x10, read_mem, &m, &l, &err);
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    ms_maps_format(&l, &sb);
    ms_strbuf_free(&sb);
    ms_vma_list_free(&l);
    return 0;
}
