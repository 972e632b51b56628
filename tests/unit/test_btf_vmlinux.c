/* BTF against DWARF on the test kernel (scripts/fetch-kernel's -dbg
 * vmlinux, which carries both): every struct the kernel walks use (ps,
 * dmesg, bt, lsmod), member by member: offset, member size, bitfield
 * position and width, struct size; the same set of members on both sides.
 * Run from the repository root (tests/run does). */
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "btf.h"
#include "check.h"
#include "dwarf.h"

static const char *const structs[] = {"task_struct",
                                      "signal_struct",
                                      "thread_struct",
                                      "list_head",
                                      "printk_ringbuffer",
                                      "prb_desc_ring",
                                      "prb_data_ring",
                                      "prb_desc",
                                      "prb_data_blk_lpos",
                                      "printk_info",
                                      "atomic_long_t",
                                      "inactive_task_frame",
                                      "mm_struct",
                                      "module",
                                      "pid",
                                      "upid",
                                      "vm_area_struct",
                                      "maple_tree",
                                      "uts_namespace",
                                      "new_utsname",
                                      "module_layout",
                                      "module_use",
                                      "kernel_symbol",
                                      "mod_kallsyms",
                                      "fork_frame",
                                      "pt_regs",
                                      NULL};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int kernel_dir(char *out, size_t n)
{
    FILE *p = popen("scripts/fetch-kernel", "r");
    if (!p)
        return -1;
    char *got = fgets(out, (int)n, p);
    int rc = pclose(p);
    if (!got || rc != 0)
        return -1;
    out[strcspn(out, "\n")] = '\0';
    return 0;
}

/* The .BTF section's bytes (malloc'd). */
static void *read_btf(const char *path, size_t *len)
{
    elf_version(EV_CURRENT);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return NULL;
    Elf *e = elf_begin(fd, ELF_C_READ, NULL);
    size_t shstr;
    void *out = NULL;
    if (e && elf_getshdrstrndx(e, &shstr) == 0) {
        for (Elf_Scn *s = elf_nextscn(e, NULL); s && !out; s = elf_nextscn(e, s)) {
            GElf_Shdr sh;
            const char *name;
            Elf_Data *d;
            if (gelf_getshdr(s, &sh) && (name = elf_strptr(e, shstr, sh.sh_name)) &&
                !strcmp(name, ".BTF") && (d = elf_getdata(s, NULL)) && d->d_size &&
                (out = malloc(d->d_size))) {
                memcpy(out, d->d_buf, d->d_size);
                *len = d->d_size;
            }
        }
    }
    if (e)
        elf_end(e);
    close(fd);
    return out;
}

static void compare(const struct ms_typedb *dwarf, const struct ms_typedb *btf)
{
    unsigned same = 0;
    for (size_t i = 0; i < dwarf->count; i++) {
        const struct ms_typedb_entry *d = &dwarf->entries[i];
        const struct ms_typedb_entry *b = ms_typedb_get(btf, d->key);
        CHECK(b != NULL, "%s: in DWARF, not in BTF", d->key);
        if (!b)
            continue;
        CHECK(b->value == d->value && b->member_size == d->member_size &&
                  b->bit_offset == d->bit_offset && b->bit_size == d->bit_size,
              "%s: BTF %llu size %llu bits %u:%u, DWARF %llu size %llu bits %u:%u", d->key,
              (unsigned long long)b->value, (unsigned long long)b->member_size, b->bit_offset,
              b->bit_size, (unsigned long long)d->value, (unsigned long long)d->member_size,
              d->bit_offset, d->bit_size);
        same += b->value == d->value && b->member_size == d->member_size;
    }
    for (size_t i = 0; i < btf->count; i++)
        CHECK(ms_typedb_get(dwarf, btf->entries[i].key) != NULL, "%s: in BTF, not in DWARF",
              btf->entries[i].key);
    printf("# %u of %zu entries agree (DWARF %zu, BTF %zu)\n", same, dwarf->count, dwarf->count,
           btf->count);
    CHECK(dwarf->count > 500, "only %zu entries compared", dwarf->count);
}

int main(void)
{
    char dir[4096], vmlinux[4200];
    CHECK(kernel_dir(dir, sizeof(dir)) == 0,
          "scripts/fetch-kernel failed (run from the repo root)");
    if (check_counts_.failed)
        return check_done("test_btf_vmlinux");
    snprintf(vmlinux, sizeof(vmlinux), "%s/vmlinux", dir);
    size_t len = 0;
    void *raw = read_btf(vmlinux, &len);
    CHECK(raw != NULL, "no .BTF section in %s", vmlinux);
    struct ms_btf *btf = NULL;
    struct ms_err err;
    double t0 = now();
    int rc = raw ? ms_btf_parse(&btf, raw, len, &err) : -1;
    double t1 = now();
    CHECK(rc == 0, "parse: %s", err.msg);
    free(raw);
    if (!btf)
        return check_done("test_btf_vmlinux");
    printf("# .BTF: %zu bytes, %u types, %zu bytes of strings, parsed in %.1f ms\n", len,
           ms_btf_count(btf), ms_btf_strings_len(btf), (t1 - t0) * 1e3);

    struct ms_typedb from_btf, from_dwarf;
    ms_typedb_init(&from_btf);
    ms_typedb_init(&from_dwarf);
    rc = ms_btf_load_types(&from_btf, btf, structs, &err);
    CHECK(rc == 0, "BTF layouts: %s", err.msg);
    t0 = now();
    rc = ms_dwarf_scan_types(&from_dwarf, vmlinux, structs, NULL, NULL, &err);
    CHECK(rc == 0, "DWARF layouts: %s", err.msg);
    printf("# DWARF layouts in %.1f s\n", now() - t0);
    compare(&from_dwarf, &from_btf);

    /* the paths the walks take, by name */
    struct ms_btf_member m;
    uint32_t task = ms_btf_find(btf, MS_BTF_STRUCT, "task_struct");
    const struct ms_typedb_entry *thread = ms_typedb_get(&from_dwarf, "task_struct.thread");
    const struct ms_typedb_entry *sp = ms_typedb_get(&from_dwarf, "thread_struct.sp");
    CHECK(task && thread && sp && ms_btf_member_find(btf, task, "thread.sp", &m, &err) == 0 &&
              m.bit_offset == (thread->value + sp->value) * 8,
          "task_struct.thread.sp: %s", err.msg);
    uint64_t size;
    const struct ms_typedb_entry *ts = ms_typedb_get(&from_dwarf, "task_struct");
    CHECK(ts && ms_btf_size(btf, task, &size, &err) == 0 && size == ts->value,
          "sizeof task_struct");
    ms_typedb_free(&from_btf);
    ms_typedb_free(&from_dwarf);
    ms_btf_free(btf);
    return check_done("test_btf_vmlinux");
}
