/* A small BTF blob laid out as pahole writes the kernel's (ints, char
 * arrays, a list_head, enums plain and of flags, a function and a pointer
 * to it, a typedef, a union, bitfields with kind_flag, a VAR), and a fake
 * memory around it, for test_cexpr and fuzz_cexpr: `task0` is a struct task
 * at SAMPLE_BASE, `cur` a pointer at SAMPLE_BASE + 0x200, do_thing a
 * function at SAMPLE_TEXT, bigc a char[300] at SAMPLE_BASE + 0x100. */
#ifndef TESTS_CEXPR_SAMPLE_H
#define TESTS_CEXPR_SAMPLE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "btf.h"
#include "valprint.h"

#include "../support/btfblob.h"

#define SAMPLE_BASE 0xffff888000001000ULL
#define SAMPLE_TEXT 0xffffffff81000000ULL

/* The blob's bytes into out (4 KiB is plenty); returns the length. */
static size_t sample_btf(uint8_t *out)
{
    static struct btf_blob blob;
    struct btf_blob *b = &blob;
    btf_blob_init(b);
    btf_type(b, "int", MS_BTF_INT, 0, 0, 4); /* 1 */
    btf_u32(b, 1u << 24 | 32);
    btf_type(b, "char", MS_BTF_INT, 0, 0, 1); /* 2 */
    btf_u32(b, 1u << 24 | 8);
    btf_type(b, "long unsigned int", MS_BTF_INT, 0, 0, 8); /* 3 */
    btf_u32(b, 64);
    btf_type(b, "_Bool", MS_BTF_INT, 0, 0, 1); /* 4 */
    btf_u32(b, 4u << 24 | 8);
    btf_type(b, "", MS_BTF_ARRAY, 0, 0, 0); /* 5: char[16] */
    btf_u32(b, 2);
    btf_u32(b, 1);
    btf_u32(b, 16);
    btf_type(b, "list_head", MS_BTF_STRUCT, 2, 0, 16); /* 6 */
    btf_member(b, "next", 7, 0);
    btf_member(b, "prev", 7, 64);
    btf_type(b, "", MS_BTF_PTR, 0, 0, 6);       /* 7 */
    btf_type(b, "state", MS_BTF_ENUM, 3, 0, 4); /* 8 */
    btf_enumerator(b, "S_RUN", 0);
    btf_enumerator(b, "S_SLEEP", 1);
    btf_enumerator(b, "S_DEAD", 5);
    btf_type(b, "flags", MS_BTF_ENUM, 3, 0, 4); /* 9 */
    btf_enumerator(b, "F_A", 1);
    btf_enumerator(b, "F_B", 2);
    btf_enumerator(b, "F_C", 4);
    btf_type(b, "", MS_BTF_PTR, 0, 0, 2);        /* 10: char * */
    btf_type(b, "", MS_BTF_FUNC_PROTO, 1, 0, 0); /* 11: void (struct list_head *) */
    btf_u32(b, 0);
    btf_u32(b, 7);
    btf_type(b, "do_thing", MS_BTF_FUNC, 1, 0, 11); /* 12 */
    btf_type(b, "", MS_BTF_PTR, 0, 0, 11);          /* 13 */
    btf_type(b, "pid_t", MS_BTF_TYPEDEF, 0, 0, 1);  /* 14 */
    btf_type(b, "u", MS_BTF_UNION, 2, 0, 8);        /* 15 */
    btf_member(b, "a", 3, 0);
    btf_member(b, "b", 1, 0);
    btf_type(b, "task", MS_BTF_STRUCT, 12, 1, 184); /* 16 */
    btf_member(b, "pid", 14, 0);
    btf_member(b, "state", 8, 32);
    btf_member(b, "comm", 5, 64);
    btf_member(b, "tasks", 6, 640);
    btf_member(b, "name", 10, 768);
    btf_member(b, "fn", 13, 832);
    btf_member(b, "flags", 9, 896);
    btf_member(b, "bf1", 1, 3u << 24 | 928);
    btf_member(b, "bf2", 1, 5u << 24 | 931);
    btf_member(b, "ok", 4, 960);
    btf_member(b, "nums", 17, 1024);
    btf_member(b, "", 15, 1408);
    btf_type(b, "", MS_BTF_ARRAY, 0, 0, 0); /* 17: int[12] */
    btf_u32(b, 1);
    btf_u32(b, 1);
    btf_u32(b, 12);
    btf_type(b, "task0", MS_BTF_VAR, 0, 0, 16); /* 18 */
    btf_u32(b, 1);
    btf_type(b, "cur", MS_BTF_VAR, 0, 0, 7); /* 19 */
    btf_u32(b, 1);
    btf_type(b, "", MS_BTF_ARRAY, 0, 0, 0); /* 20: char[300] */
    btf_u32(b, 2);
    btf_u32(b, 1);
    btf_u32(b, 300);
    btf_type(b, "bigc", MS_BTF_VAR, 0, 0, 20); /* 21 */
    btf_u32(b, 1);
    return btf_blob_bytes(b, out);
}

/* Memory: bytes mapped at SAMPLE_BASE; nothing else reads. */
struct sample_mem {
    const uint8_t *bytes;
    size_t len;
};

static int sample_read(void *arg, uint64_t addr, void *buf, size_t len, size_t *done,
                       struct ms_err *err)
{
    const struct sample_mem *m = arg;
    *done = 0;
    if (addr < SAMPLE_BASE || addr - SAMPLE_BASE >= m->len)
        return ms_err_set(err, MS_EUNMAPPED, "unmapped");
    size_t off = (size_t)(addr - SAMPLE_BASE), n = m->len - off < len ? m->len - off : len;
    memcpy(buf, m->bytes + off, n);
    *done = n;
    return n < len ? ms_err_set(err, MS_EUNMAPPED, "unmapped") : 0;
}

static int sample_symbol(void *arg, const char *name, uint64_t *addr, bool *text)
{
    (void)arg;
    *text = false;
    if (!strcmp(name, "task0"))
        *addr = SAMPLE_BASE;
    else if (!strcmp(name, "bigc"))
        *addr = SAMPLE_BASE + 0x100;
    else if (!strcmp(name, "cur"))
        *addr = SAMPLE_BASE + 0x200;
    else if (!strcmp(name, "do_thing") || !strcmp(name, "other_func"))
        *addr = SAMPLE_TEXT + (name[0] == 'o' ? 0x100 : 0), *text = true;
    else if (!strcmp(name, "nodebug_data"))
        *addr = SAMPLE_BASE + 0x300;
    else
        return MS_ENOTFOUND;
    return 0;
}

static int sample_addrsym(void *arg, uint64_t addr, char *name, size_t size, uint64_t *offset)
{
    (void)arg;
    if (addr >= SAMPLE_BASE && addr < SAMPLE_BASE + 184) {
        snprintf(name, size, "task0");
        *offset = addr - SAMPLE_BASE;
        return 0;
    }
    if (addr >= SAMPLE_TEXT && addr < SAMPLE_TEXT + 0x100) {
        snprintf(name, size, "do_thing");
        *offset = addr - SAMPLE_TEXT;
        return 0;
    }
    return -1;
}

#endif
