/* The compact struct layout of the synthetic processes that test_maple and
 * fuzz_maple build: every offset small. */
#ifndef TESTS_SUPPORT_MAPSLAYOUT_H
#define TESTS_SUPPORT_MAPSLAYOUT_H

#include "maps.h"

static const struct ms_maps_layout maps_layout = {
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

#endif
