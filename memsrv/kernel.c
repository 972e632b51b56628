#include "kernel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backtrace.h"
#include "dwarf.h"
#include "kallsyms.h"
#include "modsyms.h"
#include "physscan.h"

#define KERNEL_IMAGE_MAX (1ULL << 30) /* KASLR moves the image within 1 GiB */
#define KASLR_ALIGN (2ULL << 20)      /* CONFIG_PHYSICAL_ALIGN */
#define BTF_SIZE_MAX (64ULL << 20)    /* a 6.1 distribution kernel's .BTF is ~4 MiB */

void ms_kernel_close(struct ms_kernel *k)
{
    if (!k)
        return;
    ms_space_free(k->space);
    free(k->cache_dir);
    ms_vmcoreinfo_free(k->vmcoreinfo);
    ms_symtab_free(k->syms);
    ms_typedb_free(&k->types);
    ms_btf_free(k->btf);
    ms_backtracer_free(k->bt);
    if (k->modsyms)
        ms_modsyms_free(k->modsyms);
    free(k->modsyms);
    free(k);
}

int ms_kernel_symbol(const struct ms_kernel *k, const char *name, uint64_t *addr,
                     struct ms_err *err)
{
    if (k->syms && ms_symtab_lookup(k->syms, name, addr, NULL) == 0)
        return 0;
    if (k->vmcoreinfo && ms_vmcoreinfo_symbol(k->vmcoreinfo, name, addr, NULL) == 0)
        return 0;
    return ms_err_set(err, MS_ENOTFOUND, "symbol %s unknown (%s%s)", name,
                      k->syms ? "not in " : "no symbol file",
                      k->syms         ? ms_symtab_path(k->syms)
                      : k->vmcoreinfo ? ", not in VMCOREINFO"
                                      : ", no VMCOREINFO");
}

/* Reads the banner's expected bytes: the whole string from a vmlinux, else
 * its fixed prefix. */
static size_t banner_bytes(const struct ms_symtab *syms, uint64_t va, char *buf, size_t cap)
{
    if (ms_symtab_is_elf(syms) && ms_symtab_read_image(syms, va, buf, cap, NULL) == 0) {
        size_t n = strnlen(buf, cap);
        if (n > 14 && memcmp(buf, "Linux version ", 14) == 0)
            return n < cap ? n + 1 : n; /* include the NUL: rules out printk copies */
    }
    memcpy(buf, "Linux version ", 14);
    return 14;
}

static int try_root(struct ms_space *phys, uint64_t root, unsigned levels, uint64_t banner_va,
                    uint64_t banner_pa, uint64_t *slide)
{
    struct ms_space *ks;
    if (ms_space_paging(&ks, phys, root, levels, NULL) < 0)
        return -1;
    int found = -1;
    for (uint64_t s = 0; s < KERNEL_IMAGE_MAX && banner_va + s >= banner_va; s += KASLR_ALIGN) {
        struct ms_xlat x;
        if (ms_space_translate(ks, banner_va + s, &x, NULL, NULL) == 0 && x.lower == banner_pa) {
            *slide = s;
            found = 0;
            break;
        }
    }
    ms_space_free(ks);
    return found;
}

int ms_kernel_find_slide(struct ms_space *phys, const struct ms_symtab *syms, unsigned levels,
                         uint64_t *slide, uint64_t *phys_base, uint64_t *root, unsigned *levels_out,
                         struct ms_err *err)
{
    const struct ms_symbol *b = ms_symtab_find(syms, "linux_banner");
    const struct ms_symbol *t = ms_symtab_find(syms, "init_top_pgt");
    if (!b || !t)
        return ms_err_set(err, MS_ENOTFOUND,
                          "finding the KASLR slide needs linux_banner and init_top_pgt in %s",
                          ms_symtab_path(syms));
    char want[512];
    size_t wlen = banner_bytes(syms, b->addr, want, sizeof(want));
    struct ms_phys_range *r;
    size_t n;
    int rc = ms_phys_ranges(phys, &r, &n, err);
    if (rc < 0)
        return rc;
    uint64_t low = b->addr & (KASLR_ALIGN - 1);
    unsigned hits = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t first = (r[i].start & ~(KASLR_ALIGN - 1)) + low;
        if (first < r[i].start)
            first += KASLR_ALIGN;
        for (uint64_t pa = first; pa + wlen <= r[i].start + r[i].len; pa += KASLR_ALIGN) {
            char got[512];
            if (ms_space_read(phys, pa, got, wlen, NULL, NULL) < 0 || memcmp(got, want, wlen))
                continue;
            hits++;
            uint64_t top = pa + (t->addr - b->addr);
            for (unsigned lv = 5; lv >= 4; lv--) {
                if (levels && lv != levels)
                    continue;
                uint64_t s;
                if (try_root(phys, top, lv, b->addr, pa, &s) == 0) {
                    *slide = s;
                    *phys_base = pa - (b->addr + s - MS_KERNEL_MAP_START);
                    *root = top;
                    *levels_out = lv;
                    free(r);
                    return 0;
                }
            }
        }
    }
    free(r);
    return ms_err_set(err, MS_ENOTFOUND,
                      "kernel not found: %u copies of linux_banner in guest-physical memory, "
                      "none mapped by the kernel page tables beside it (wrong vmlinux?)",
                      hits);
}

static int load_vmcoreinfo(struct ms_kernel *k, const struct ms_kernel_opts *o, struct ms_err *err)
{
    if (o->vmcoreinfo && o->vmcoreinfo_len) {
        int rc = ms_vmcoreinfo_parse(&k->vmcoreinfo, o->vmcoreinfo, o->vmcoreinfo_len, err);
        if (rc < 0)
            return ms_err_prefix(err, "the dump's VMCOREINFO note: ");
        return 0;
    }
    if (o->no_scan)
        return 0;
    struct ms_err e2;
    /* a full byte scan only when nothing else can locate the kernel */
    int rc = ms_vmcoreinfo_scan(&k->vmcoreinfo, k->phys, o->symbols == NULL, &e2);
    if (rc < 0 && rc != MS_ENOTFOUND)
        return ms_err_set(err, rc, "%s", e2.msg);
    return 0;
}

int ms_kernel_open(struct ms_kernel **out, struct ms_space *phys, const struct ms_kernel_opts *o,
                   struct ms_err *err)
{
    *out = NULL;
    struct ms_kernel *k = calloc(1, sizeof(*k));
    if (!k)
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    ms_typedb_init(&k->types);
    k->phys = phys;
    k->progress = o->progress;
    k->progress_arg = o->progress_arg;
    int rc = 0;
    if (o->cache_dir && !(k->cache_dir = strdup(o->cache_dir))) {
        rc = ms_err_set(err, MS_ENOMEM, "out of memory");
        goto fail;
    }
    if (o->symbols) {
        rc = ms_symtab_load(&k->syms, o->symbols, err);
        if (rc < 0)
            goto fail;
    }
    rc = load_vmcoreinfo(k, o, err);
    if (rc < 0)
        goto fail;
    if (!k->vmcoreinfo && !k->syms) {
        rc = ms_err_set(err, MS_ENOTFOUND,
                        "no VMCOREINFO in guest memory and no symbol file: cannot locate the "
                        "kernel");
        ms_err_hint(err, MS_HINT_SYMBOLS);
        goto fail;
    }
    if (k->vmcoreinfo) {
        ms_typedb_from_vmcoreinfo(&k->types, k->vmcoreinfo, NULL);
        const char *bid = ms_vmcoreinfo_get(k->vmcoreinfo, "BUILD-ID");
        if (bid && k->syms && ms_symtab_build_id(k->syms)[0] &&
            strncmp(bid, ms_symtab_build_id(k->syms), 40) != 0) {
            rc =
                ms_err_set(err, MS_EINVAL,
                           "%s (build id %s) is not the running kernel (VMCOREINFO BUILD-ID %.40s)",
                           ms_symtab_path(k->syms), ms_symtab_build_id(k->syms), bid);
            goto fail;
        }
    }
    uint64_t slide = 0, pb = 0, top_va = 0;
    int64_t pbn = 0, l5 = 0;
    bool have_slide = k->vmcoreinfo && ms_vmcoreinfo_kerneloffset(k->vmcoreinfo, &slide, NULL) == 0;
    bool have_pb =
        k->vmcoreinfo && ms_vmcoreinfo_number(k->vmcoreinfo, "phys_base", &pbn, NULL) == 0;
    bool have_top =
        k->vmcoreinfo && ms_vmcoreinfo_symbol(k->vmcoreinfo, "init_top_pgt", &top_va, NULL) == 0;
    bool have_l5 =
        k->vmcoreinfo && ms_vmcoreinfo_number(k->vmcoreinfo, "pgtable_l5_enabled", &l5, NULL) == 0;
    if (have_slide && have_pb && have_top) {
        k->slide = slide;
        k->phys_base = (uint64_t)pbn;
        k->levels = have_l5 && l5 ? 5 : 4;
        k->root = top_va - MS_KERNEL_MAP_START + k->phys_base;
        snprintf(k->how, sizeof(k->how),
                 "VMCOREINFO: KERNELOFFSET=%llx phys_base=%#llx init_top_pgt PA %#llx, %u-level",
                 (unsigned long long)k->slide, (unsigned long long)k->phys_base,
                 (unsigned long long)k->root, k->levels);
    } else if (k->syms) {
        unsigned lv = have_l5 ? (l5 ? 5 : 4) : 0;
        rc = ms_kernel_find_slide(phys, k->syms, lv, &k->slide, &k->phys_base, &k->root, &k->levels,
                                  err);
        if (rc < 0)
            goto fail;
        (void)pb;
        snprintf(k->how, sizeof(k->how),
                 "linux_banner in RAM + page tables: slide %#llx phys_base %#llx root %#llx, "
                 "%u-level",
                 (unsigned long long)k->slide, (unsigned long long)k->phys_base,
                 (unsigned long long)k->root, k->levels);
    } else {
        rc = ms_err_set(err, MS_ENOTFOUND,
                        "VMCOREINFO lacks KERNELOFFSET/phys_base/init_top_pgt and no symbol "
                        "file was given");
        goto fail;
    }
    if (k->syms)
        ms_symtab_set_slide(k->syms, k->slide);
    rc = ms_space_paging(&k->space, phys, k->root, k->levels, err);
    if (rc < 0)
        goto fail;
    *out = k;
    return 0;
fail:
    ms_kernel_close(k);
    return rc;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int ms_kernel_load_btf(struct ms_kernel *k, struct ms_err *err)
{
    if (k->btf)
        return 0;
    int rc = 0;
    if (!k->syms)
        rc = ms_kernel_load_kallsyms(k, 0, err);
    double t0 = now_ms();
    uint64_t start = 0, stop = 0;
    if (rc == 0)
        rc = ms_kernel_symbol(k, "__start_BTF", &start, err);
    if (rc == 0)
        rc = ms_kernel_symbol(k, "__stop_BTF", &stop, err);
    if (rc < 0)
        return ms_err_prefix(err, "the kernel's BTF (CONFIG_DEBUG_INFO_BTF): ");
    if (stop <= start || stop - start > BTF_SIZE_MAX)
        return ms_err_set(err, MS_EFORMAT,
                          "__start_BTF 0x%llx .. __stop_BTF 0x%llx: not a plausible .BTF section",
                          (unsigned long long)start, (unsigned long long)stop);
    size_t len = (size_t)(stop - start);
    void *raw = malloc(len);
    if (!raw)
        return ms_err_set(err, MS_ENOMEM, "out of memory for %zu bytes of BTF", len);
    rc = ms_space_read(k->space, start, raw, len, NULL, err);
    if (rc < 0)
        ms_err_prefix(err, "reading the kernel's BTF at 0x%llx: ", (unsigned long long)start);
    else
        rc = ms_btf_parse(&k->btf, raw, len, err);
    free(raw);
    if (rc < 0)
        return rc;
    k->btf_load_ms = now_ms() - t0;
    return 0;
}

static int need_btf_types(struct ms_kernel *k, const char *const *structs, struct ms_err *err)
{
    int rc = ms_kernel_load_btf(k, err);
    if (rc == 0)
        rc = ms_btf_load_types(&k->types, k->btf, structs, err);
    if (rc == 0)
        snprintf(k->types.source, sizeof(k->types.source), "BTF (guest memory, %u types)",
                 ms_btf_count(k->btf) - 1);
    return rc;
}

int ms_kernel_need_types(struct ms_kernel *k, const char *const *structs, struct ms_err *err)
{
    if (!k->syms || !ms_symtab_is_elf(k->syms)) {
        int rc = need_btf_types(k, structs, err);
        if (rc < 0) {
            ms_err_prefix(err, "struct layouts beyond VMCOREINFO's: ");
            ms_err_hint(err, MS_HINT_DWARF);
        }
        return rc;
    }
    struct ms_err dwarf_err;
    int rc = ms_dwarf_load_types(&k->types, ms_symtab_path(k->syms), structs, k->cache_dir,
                                 k->progress, k->progress_arg, &dwarf_err);
    if (rc == 0) {
        k->dwarf_loaded = true;
        return 0;
    }
    /* a vmlinux without debug info: the kernel may still carry its own types */
    struct ms_err btf_err;
    if (need_btf_types(k, structs, &btf_err) == 0)
        return 0;
    ms_err_set(err, rc, "%s; and %s", dwarf_err.msg, btf_err.msg);
    ms_err_hint(err, MS_HINT_DWARF);
    return rc;
}

int ms_kernel_dmesg(struct ms_kernel *k, struct ms_printk_log *log, struct ms_err *err)
{
    uint64_t prb_sym;
    if (ms_kernel_symbol(k, "prb", &prb_sym, NULL) == 0) {
        struct ms_prb_layout l;
        if (ms_prb_layout_from_typedb(&l, &k->types, NULL) < 0) {
            static const char *const want[] = {
                "printk_ringbuffer", "prb_desc_ring", "prb_data_ring", "prb_desc",
                "prb_data_blk_lpos", "printk_info",   "atomic_long_t", NULL};
            int rc = ms_kernel_need_types(k, want, err);
            if (rc < 0)
                return ms_err_prefix(err, "no printk layout in VMCOREINFO: ");
            rc = ms_prb_layout_from_typedb(&l, &k->types, err);
            if (rc < 0)
                return rc;
        }
        uint64_t rb;
        int rc = ms_space_read(k->space, prb_sym, &rb, 8, NULL, err);
        if (rc < 0)
            return ms_err_prefix(err, "reading prb at 0x%llx: ", (unsigned long long)prb_sym);
        return ms_prb_read(k->space, &l, rb, 0, log, err);
    }
    struct ms_plog_symbols s;
    int rc = 0;
    const char *names[] = {"log_buf", "log_buf_len", "log_first_idx", "log_next_idx",
                           "log_first_seq"};
    uint64_t *dst[] = {&s.log_buf, &s.log_buf_len, &s.log_first_idx, &s.log_next_idx,
                       &s.log_first_seq};
    for (int i = 0; i < 5 && rc == 0; i++)
        rc = ms_kernel_symbol(k, names[i], dst[i], err);
    if (rc < 0)
        return ms_err_prefix(err, "neither prb (5.10+) nor log_buf (3.5-5.9): ");
    struct ms_plog_layout l;
    if (ms_plog_layout_from_typedb(&l, &k->types, NULL) < 0) {
        static const char *const want[] = {"printk_log", NULL};
        rc = ms_kernel_need_types(k, want, err);
        if (rc == 0)
            rc = ms_plog_layout_from_typedb(&l, &k->types, err);
        if (rc < 0)
            return rc;
    }
    return ms_plog_read(k->space, &l, &s, log, err);
}

/* Reads len bytes of kernel memory into a new buffer. */
static uint8_t *read_kmem(struct ms_kernel *k, uint64_t addr, size_t len, const char *what,
                          struct ms_err *err)
{
    uint8_t *p = malloc(len ? len : 1);
    if (!p) {
        ms_err_set(err, MS_ENOMEM, "out of memory for %s (%zu bytes)", what, len);
        return NULL;
    }
    if (ms_space_read(k->space, addr, p, len, NULL, err) < 0) {
        ms_err_prefix(err, "reading %s at 0x%llx: ", what, (unsigned long long)addr);
        free(p);
        return NULL;
    }
    return p;
}

#define KALLSYMS_NAMES_MAX (64u << 20)

int ms_kernel_load_kallsyms(struct ms_kernel *k, size_t max_syms, struct ms_err *err)
{
    if (!max_syms)
        max_syms = MS_KALLSYMS_MAX_DEFAULT;
    uint64_t a_num, a_names, a_tt, a_ti, a_off, a_base;
    int rc = 0;
    const char *names[] = {"kallsyms_num_syms",    "kallsyms_names",   "kallsyms_token_table",
                           "kallsyms_token_index", "kallsyms_offsets", "kallsyms_relative_base"};
    uint64_t *dst[] = {&a_num, &a_names, &a_tt, &a_ti, &a_off, &a_base};
    for (int i = 0; i < 6 && rc == 0; i++)
        rc = k->vmcoreinfo ? ms_vmcoreinfo_symbol(k->vmcoreinfo, names[i], dst[i], err)
                           : ms_err_set(err, MS_ENOTFOUND, "no VMCOREINFO");
    if (rc < 0)
        return ms_err_prefix(err, "kallsyms: ");
    struct ms_kallsyms_tables t = {0};
    if (ms_space_read(k->space, a_num, &t.num_syms, 4, NULL, err) < 0 ||
        ms_space_read(k->space, a_base, &t.relative_base, 8, NULL, err) < 0)
        return ms_err_prefix(err, "kallsyms: ");
    if (t.num_syms == 0 || t.num_syms > max_syms)
        return ms_err_set(err, MS_EFORMAT, "kallsyms: kallsyms_num_syms %u implausible",
                          t.num_syms);
    /* scripts/kallsyms.c lays out names < token_table < token_index; each
     * table ends where the next begins */
    if (a_tt <= a_names || a_tt - a_names > KALLSYMS_NAMES_MAX || a_ti <= a_tt ||
        a_ti - a_tt > 65536)
        return ms_err_set(err, MS_EFORMAT,
                          "kallsyms: tables out of order (names 0x%llx, token_table 0x%llx, "
                          "token_index 0x%llx)",
                          (unsigned long long)a_names, (unsigned long long)a_tt,
                          (unsigned long long)a_ti);
    t.names_len = (size_t)(a_tt - a_names);
    t.token_table_len = (size_t)(a_ti - a_tt);
    t.token_index_len = MS_KALLSYMS_TOKEN_INDEX_LEN;
    t.offsets_len = (size_t)t.num_syms * 4;
    uint8_t *nm = read_kmem(k, a_names, t.names_len, "kallsyms_names", err);
    uint8_t *tt = nm ? read_kmem(k, a_tt, t.token_table_len, "kallsyms_token_table", err) : NULL;
    uint8_t *ti = tt ? read_kmem(k, a_ti, t.token_index_len, "kallsyms_token_index", err) : NULL;
    uint8_t *off = ti ? read_kmem(k, a_off, t.offsets_len, "kallsyms_offsets", err) : NULL;
    struct ms_kallsyms ks = {0};
    rc = off ? 0 : (err ? err->code : MS_EIO);
    if (rc == 0) {
        t.names = nm;
        t.token_table = tt;
        t.token_index = ti;
        t.offsets = off;
        rc = ms_kallsyms_decode(&t, max_syms, &ks, err);
    }
    free(nm);
    free(tt);
    free(ti);
    free(off);
    if (rc == 0) {
        rc = ms_symtab_adopt(&k->syms, "the kernel's kallsyms", ks.syms, ks.count, ks.strings, err);
        if (rc == 0)
            ms_symtab_set_slide(k->syms, 0); /* runtime addresses already */
    }
    return rc < 0 ? ms_err_prefix(err, "kallsyms: ") : 0;
}
