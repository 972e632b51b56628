/* Fuzzes the maple tree walker and the memory-map walk over a fake kernel
 * memory taken from the input: an arena of up to 32 256-byte nodes (or any
 * structs) at BASE, read as it is; then formats what was listed.
 *
 * Input: u8 mode (bit 0: the maps walk of a task at BASE + 0x10 in the
 *        arena, with test_maple's compact layout; bit 1: a gate VMA at
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

/* test_maple's layout: every offset small */
static const struct ms_maps_layout layout = {
    .task_mm = 0x00,
    .task_fs = 0x08,
    .task_flags = 0x10,
    .fs_root = 0x00,
    .mm_start_brk = 0x00,
    .mm_brk = 0x08,
    .mm_start_stack = 0x10,
    .mm_mt = 0x20,
    .has_context_flags = true,
    .mm_context_flags = 0x38,
    .mt_root = 0x08,
    .mt_flags = 0x10,
    .vm_start = 0x00,
    .vm_end = 0x08,
    .vm_flags = 0x10,
    .vm_pgoff = 0x18,
    .vm_file = 0x20,
    .vm_ops = 0x28,
    .vm_private_data = 0x30,
    .has_anon_name = true,
    .vm_anon_name = 0x38,
    .anon_name_name = 0x04,
    .special_name = 0x00,
    .vmops_name = 0x10,
    .f_path = 0x00,
    .f_inode = 0x10,
    .path_mnt = 0x00,
    .path_dentry = 0x08,
    .i_ino = 0x00,
    .i_sb = 0x08,
    .s_dev = 0x00,
    .d_parent = 0x00,
    .d_name = 0x08,
    .qstr_len = 0x04,
    .qstr_name = 0x08,
    .d_op = 0x18,
    .d_hash_pprev = 0x20,
    .d_dname = 0x00,
    .mnt_root = 0x00,
    .mount_parent = 0x00,
    .mount_mountpoint = 0x08,
    .mount_mnt = 0x10,
};

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
    ms_maps_walk(&layout, &kk, BASE + 0x10, read_mem, &m, &l, &err);
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    ms_maps_format(&l, &sb);
    ms_strbuf_free(&sb);
    ms_vma_list_free(&l);
    return 0;
}
