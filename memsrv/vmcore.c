#include "vmcore.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGE 4096ULL
#define CHUNK (1ULL << 20) /* bytes read and scanned for zero pages at a time */
#define MAX_CPUS 8192      /* CONFIG_NR_CPUS's largest x86-64 value */
#define PRSTATUS_SIZE 336  /* struct elf_prstatus, x86-64 */
#define PRSTATUS_PID 32    /* its pr_pid */
#define PRSTATUS_REG 112   /* its pr_reg: 27 registers, user_regs_struct's order */
#define KERNEL_CS 0x10     /* __KERNEL_CS, __KERNEL_DS: a kernel-mode frame */
#define KERNEL_DS 0x18
#define USER_CS 0x33
#define USER_DS 0x2b
#define DIRECT_MAP_L4 0xffff888000000000ULL /* page_offset_base's defaults */
#define DIRECT_MAP_L5 0xff11000000000000ULL

static uint64_t align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) & ~(a - 1);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

size_t ms_vmcore_merge_ranges(struct ms_phys_range *r, size_t n, size_t max)
{
    if (n <= max || n < 2)
        return n;
    if (max == 0)
        max = 1;
    uint64_t *gaps = malloc((n - 1) * sizeof(*gaps));
    uint64_t limit = UINT64_MAX; /* without memory for the gaps: merge everything */
    if (gaps) {
        for (size_t i = 1; i < n; i++)
            gaps[i - 1] = r[i].start - (r[i - 1].start + r[i - 1].len);
        qsort(gaps, n - 1, sizeof(*gaps), cmp_u64);
        /* merging every gap up to the (n - max)-th smallest leaves <= max */
        limit = gaps[n - max - 1];
        free(gaps);
    }
    size_t out = 0;
    for (size_t i = 1; i < n; i++) {
        uint64_t end = r[out].start + r[out].len;
        if (r[i].start - end <= limit)
            r[out].len = r[i].start + r[i].len - r[out].start;
        else
            r[++out] = r[i];
    }
    return out + 1;
}

/* ------------------------------------------------------------------ notes */

static size_t note_size(size_t namesz, size_t descsz)
{
    return sizeof(Elf64_Nhdr) + align_up(namesz, 4) + align_up(descsz, 4);
}

static uint8_t *put_note(uint8_t *p, const char *name, uint32_t type, const void *desc,
                         size_t descsz)
{
    Elf64_Nhdr nh = {(Elf64_Word)(strlen(name) + 1), (Elf64_Word)descsz, type};
    memcpy(p, &nh, sizeof(nh));
    p += sizeof(nh);
    memcpy(p, name, nh.n_namesz);
    p += align_up(nh.n_namesz, 4);
    memcpy(p, desc, descsz);
    return p + align_up(descsz, 4);
}

static void fill_prstatus(uint8_t out[PRSTATUS_SIZE], const struct ms_vmcore_cpu *c)
{
    memset(out, 0, PRSTATUS_SIZE);
    memcpy(out + PRSTATUS_PID, &c->pid, 4);
    const struct ms_cpu_state *r = c->regs;
    if (!r)
        return;
    bool kernel = r->rip >> 63;
    uint64_t regs[27] = {
        r->r15,
        r->r14,
        r->r13,
        r->r12,
        r->rbp,
        r->rbx,
        r->r11,
        r->r10,
        r->r9,
        r->r8,
        r->rax,
        r->rcx,
        r->rdx,
        r->rsi,
        r->rdi,
        0, /* orig_rax */
        r->rip,
        kernel ? KERNEL_CS : USER_CS,
        r->rflags,
        r->rsp,
        kernel ? KERNEL_DS : USER_DS,
        r->fs_base,
        r->gs_base,
        0,
        0,
        0,
        0, /* ds es fs gs */
    };
    memcpy(out + PRSTATUS_REG, regs, sizeof(regs));
}

/* ------------------------------------------------------------------ write */

struct writer {
    int fd;
    const char *path;
    uint64_t done, total, next_report;
    ms_progress_fn progress;
    void *progress_arg;
    struct ms_vmcore_info *info;
};

static int write_all(struct writer *w, uint64_t off, const void *buf, size_t len,
                     struct ms_err *err)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = pwrite(w->fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return ms_err_set(err, MS_EIO, "writing %s at offset %#llx: %s", w->path,
                              (unsigned long long)off, n < 0 ? strerror(errno) : "no progress");
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    uint64_t acc = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        acc |= v;
    }
    for (; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

/* Writes the pages of buf[0..len) that are not all zero, runs at a time;
 * the zero ones stay holes of the pre-sized file. */
static int write_nonzero(struct writer *w, uint64_t off, const uint8_t *buf, size_t len,
                         struct ms_err *err)
{
    size_t run = 0, at = 0;
    while (at < len) {
        size_t n = len - at < PAGE ? len - at : PAGE;
        if (all_zero(buf + at, n)) {
            if (at > run) {
                int rc = write_all(w, off + run, buf + run, at - run, err);
                if (rc)
                    return rc;
                w->info->data_bytes += at - run;
            }
            run = at + n;
        }
        at += n;
    }
    if (len > run) {
        int rc = write_all(w, off + run, buf + run, len - run, err);
        if (rc)
            return rc;
        w->info->data_bytes += len - run;
    }
    return 0;
}

/* Copies guest-physical [pa, pa + len) to file offset off. Pages that cannot
 * be read are skipped (holes) and counted. */
static int copy_range(struct writer *w, struct ms_space *phys, uint64_t pa, uint64_t len,
                      uint64_t off, uint8_t *buf, struct ms_err *err)
{
    uint64_t at = 0;
    while (at < len) {
        size_t n = (size_t)(len - at < CHUNK ? len - at : CHUNK);
        size_t done = 0;
        int rc = ms_space_read(phys, pa + at, buf, n, &done, NULL);
        if (rc == MS_EBUS)
            return ms_err_set(err, rc, "the RAM file shrank while it was read at %#llx",
                              (unsigned long long)(pa + at + done));
        size_t good = rc ? done : n;
        rc = write_nonzero(w, off + at, buf, good, err);
        if (rc)
            return rc;
        uint64_t step = good;
        if (good < n) { /* skip the page that failed */
            uint64_t next = align_up(pa + at + good + 1, PAGE) - (pa + at);
            step = next < len - at ? next : len - at;
            w->info->unreadable += step - good;
        }
        at += step;
        w->done += step;
        if (w->progress && w->done >= w->next_report && w->done < w->total) {
            w->progress(w->progress_arg, "export-vmcore", w->done, w->total);
            w->next_report = w->done + w->total / 256;
        }
    }
    return 0;
}

int ms_vmcore_write(const struct ms_vmcore_spec *s, const char *path, ms_progress_fn progress,
                    void *progress_arg, struct ms_vmcore_info *info, struct ms_err *err)
{
    if (s->nranges > MS_VMCORE_MAX_LOADS)
        return ms_err_set(err, MS_ELIMIT, "%zu memory ranges: a vmcore holds at most %d",
                          s->nranges, MS_VMCORE_MAX_LOADS);
    if (s->ncpus == 0 || s->ncpus > MAX_CPUS)
        return ms_err_set(err, MS_EINVAL, "%u CPUs: want 1..%d", s->ncpus, MAX_CPUS);
    for (size_t i = 0; i < s->nranges; i++)
        if (s->ranges[i].len == 0 || s->ranges[i].start + s->ranges[i].len < s->ranges[i].start ||
            (i && s->ranges[i].start < s->ranges[i - 1].start + s->ranges[i - 1].len))
            return ms_err_set(err, MS_EINVAL, "memory range %zu is empty, wraps or overlaps", i);

    bool image = s->image_len != 0;
    size_t nph = 1 + (image ? 1 : 0) + s->nranges;
    size_t notes = (size_t)s->ncpus * note_size(5, PRSTATUS_SIZE) +
                   note_size(sizeof("VMCOREINFO"), s->vmcoreinfo_len);
    uint64_t hdr_len = sizeof(Elf64_Ehdr) + nph * sizeof(Elf64_Phdr) + notes;
    uint64_t data = align_up(hdr_len, PAGE);

    uint8_t *hdr = calloc(1, (size_t)hdr_len);
    uint8_t *buf = malloc(CHUNK);
    if (!hdr || !buf) {
        free(hdr);
        free(buf);
        return ms_err_set(err, MS_ENOMEM, "out of memory for the vmcore's headers");
    }
    Elf64_Ehdr *eh = (Elf64_Ehdr *)hdr;
    memcpy(eh->e_ident, ELFMAG, SELFMAG);
    eh->e_ident[EI_CLASS] = ELFCLASS64;
    eh->e_ident[EI_DATA] = ELFDATA2LSB;
    eh->e_ident[EI_VERSION] = EV_CURRENT;
    eh->e_ident[EI_OSABI] = ELFOSABI_NONE;
    eh->e_type = ET_CORE;
    eh->e_machine = EM_X86_64;
    eh->e_version = EV_CURRENT;
    eh->e_phoff = sizeof(Elf64_Ehdr);
    eh->e_ehsize = sizeof(Elf64_Ehdr);
    eh->e_phentsize = sizeof(Elf64_Phdr);
    eh->e_phnum = (Elf64_Half)nph;
    Elf64_Phdr *ph = (Elf64_Phdr *)(hdr + sizeof(Elf64_Ehdr));
    uint64_t notes_off = sizeof(Elf64_Ehdr) + nph * sizeof(Elf64_Phdr);
    ph[0] =
        (Elf64_Phdr){.p_type = PT_NOTE, .p_offset = notes_off, .p_filesz = notes, .p_memsz = notes};
    uint8_t *p = hdr + notes_off;
    for (unsigned i = 0; i < s->ncpus; i++) {
        uint8_t pr[PRSTATUS_SIZE];
        fill_prstatus(pr, &s->cpus[i]);
        p = put_note(p, "CORE", NT_PRSTATUS, pr, sizeof(pr));
    }
    put_note(p, "VMCOREINFO", 0, s->vmcoreinfo, s->vmcoreinfo_len);

    /* RAM at the direct map; the kernel image shares the bytes of the range
     * that holds it, else has its own. */
    uint64_t off = data, image_off = 0;
    Elf64_Phdr *loads = ph + 1 + (image ? 1 : 0);
    for (size_t i = 0; i < s->nranges; i++) {
        const struct ms_phys_range *r = &s->ranges[i];
        loads[i] = (Elf64_Phdr){.p_type = PT_LOAD,
                                .p_flags = PF_R | PF_W | PF_X,
                                .p_offset = off,
                                .p_vaddr = s->page_offset + r->start,
                                .p_paddr = r->start,
                                .p_filesz = r->len,
                                .p_memsz = r->len};
        if (image && !image_off && s->image_pa >= r->start && s->image_pa - r->start <= r->len &&
            s->image_len <= r->len - (s->image_pa - r->start))
            image_off = off + (s->image_pa - r->start);
        off += r->len;
    }
    uint64_t total = off - data;
    bool image_own = image && !image_off;
    if (image_own) {
        image_off = off;
        off += s->image_len;
        total += s->image_len;
    }
    if (image)
        ph[1] = (Elf64_Phdr){.p_type = PT_LOAD,
                             .p_flags = PF_R | PF_W | PF_X,
                             .p_offset = image_off,
                             .p_vaddr = s->image_va,
                             .p_paddr = s->image_pa,
                             .p_filesz = s->image_len,
                             .p_memsz = s->image_len};

    memset(info, 0, sizeof(*info));
    info->loads = s->nranges;
    info->phys_bytes = off - data - (image_own ? s->image_len : 0);
    info->ncpus = s->ncpus;
    info->file_size = off;
    struct writer w = {-1, path, 0, total, 0, progress, progress_arg, info};
    if (progress)
        progress(progress_arg, "export-vmcore", 0, total);
    int rc = 0;
    w.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w.fd < 0)
        rc = ms_err_set(err, MS_EIO, "cannot create %s: %s", path, strerror(errno));
    else if (ftruncate(w.fd, (off_t)off) < 0)
        rc = ms_err_set(err, MS_EIO, "cannot size %s to %llu bytes: %s", path,
                        (unsigned long long)off, strerror(errno));
    if (!rc)
        rc = write_all(&w, 0, hdr, (size_t)hdr_len, err);
    for (size_t i = 0; !rc && i < s->nranges; i++)
        rc = copy_range(&w, s->phys, s->ranges[i].start, s->ranges[i].len, loads[i].p_offset, buf,
                        err);
    if (!rc && image_own)
        rc = copy_range(&w, s->phys, s->image_pa, s->image_len, image_off, buf, err);
    if (w.fd >= 0 && close(w.fd) < 0 && !rc)
        rc = ms_err_set(err, MS_EIO, "closing %s: %s", path, strerror(errno));
    if (progress) /* the end, also of a failed export */
        progress(progress_arg, "export-vmcore", total, total);
    free(hdr);
    free(buf);
    return rc;
}

/* ----------------------------------------------------------------- export */

static int read_kvar(struct ms_kernel *k, const char *name, void *buf, size_t len,
                     struct ms_err *err)
{
    uint64_t va;
    int rc = ms_kernel_symbol(k, name, &va, err);
    if (!rc && (rc = ms_space_read(k->space, va, buf, len, NULL, err)) < 0)
        ms_err_prefix(err, "reading %s: ", name);
    return rc;
}

/* The online CPUs and the task running on each: the per-CPU current_task
 * (6.1; pcpu_hot, whose first member it is, on 6.2+) and its pid through
 * task_struct's layout (DWARF, else BTF). What cannot be read leaves one note per
 * CPU the registers name, or pid 0. Fills cpus[] (malloc'd); says how in
 * info->how. */
static int running_tasks(struct ms_kernel *k, const struct ms_cpu_state *regs, unsigned nregs,
                         struct ms_vmcore_cpu **out, unsigned *count, struct ms_vmcore_info *info,
                         struct ms_err *err)
{
    uint32_t nr = 0;
    uint64_t mask[MAX_CPUS / 64] = {0};
    uint64_t *offsets = NULL;
    uint64_t cur = 0, pid_off = 0;
    struct ms_err why;
    ms_err_clear(&why);
    int rc = read_kvar(k, "nr_cpu_ids", &nr, 4, &why);
    if (!rc && (nr == 0 || nr > MAX_CPUS))
        rc = ms_err_set(&why, MS_EFORMAT, "nr_cpu_ids %u is implausible", nr);
    if (!rc)
        rc = read_kvar(k, "__cpu_online_mask", mask, (nr + 63) / 64 * 8, &why);
    unsigned n = 0;
    for (uint32_t c = 0; !rc && c < nr; c++)
        n += (mask[c / 64] >> (c % 64)) & 1;
    if (!rc && n == 0)
        rc = ms_err_set(&why, MS_EFORMAT, "no CPU is online in __cpu_online_mask");
    if (rc) { /* no per-CPU view: one note per CPU the registers name */
        n = nregs ? nregs : 1;
        nr = 0;
    }
    /* the pids: a failure here keeps the CPUs */
    int pid_rc = rc;
    if (!pid_rc && !(offsets = calloc(nr, sizeof(*offsets))))
        pid_rc = ms_err_set(&why, MS_ENOMEM, "out of memory");
    if (!pid_rc)
        pid_rc = read_kvar(k, "__per_cpu_offset", offsets, nr * sizeof(*offsets), &why);
    if (!pid_rc && ms_kernel_symbol(k, "current_task", &cur, NULL) < 0)
        pid_rc = ms_kernel_symbol(k, "pcpu_hot", &cur, &why);
    if (!pid_rc && ms_typedb_offset(&k->types, "task_struct", "pid", &pid_off, NULL) < 0) {
        static const char *const want[] = {"task_struct", NULL};
        pid_rc = ms_kernel_need_types(k, want, &why);
        if (!pid_rc)
            pid_rc = ms_typedb_offset(&k->types, "task_struct", "pid", &pid_off, &why);
    }
    struct ms_vmcore_cpu *cpus = calloc(n, sizeof(*cpus));
    if (!cpus) {
        free(offsets);
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    }
    unsigned i = 0;
    for (uint32_t c = 0; c < nr; c++) {
        if (!((mask[c / 64] >> (c % 64)) & 1))
            continue;
        uint64_t task = 0;
        int32_t pid = 0;
        if (!pid_rc && ms_space_read(k->space, offsets[c] + cur, &task, 8, NULL, NULL) == 0 &&
            ms_space_read(k->space, task + pid_off, &pid, 4, NULL, NULL) == 0) {
            cpus[i].pid = pid;
            info->pids_known++;
        }
        cpus[i].regs = c < nregs ? &regs[c] : NULL;
        i++;
    }
    for (; i < n; i++)
        cpus[i].regs = i < nregs ? &regs[i] : NULL;
    if (rc)
        snprintf(info->how, sizeof(info->how), "online CPUs unknown, running tasks pid 0: %.140s",
                 why.msg);
    else if (pid_rc)
        snprintf(info->how, sizeof(info->how), "%u online CPUs, running tasks pid 0: %.140s", n,
                 why.msg);
    else
        snprintf(info->how, sizeof(info->how),
                 "%u online CPUs, running task pids from per-CPU current_task: %u of %u read", n,
                 info->pids_known, n);
    free(offsets);
    *out = cpus;
    *count = n;
    return 0;
}

int ms_vmcore_export(struct ms_kernel *k, const struct ms_cpu_state *regs, unsigned nregs,
                     const char *path, ms_progress_fn progress, void *progress_arg,
                     struct ms_vmcore_info *info, struct ms_err *err)
{
    if (!k->vmcoreinfo)
        return ms_err_set(err, MS_ENOTFOUND,
                          "crash and drgn need the kernel's VMCOREINFO: none was found in its "
                          "memory");
    struct ms_vmcore_spec s = {.phys = k->phys};
    s.vmcoreinfo = k->vmcoreinfo->raw;
    s.vmcoreinfo_len = k->vmcoreinfo->len;
    uint64_t pob, text, end;
    int rc = 0;
    if (ms_kernel_symbol(k, "page_offset_base", &pob, NULL) == 0) {
        rc = ms_space_read(k->space, pob, &s.page_offset, 8, NULL, err);
        if (rc < 0)
            return ms_err_prefix(err, "reading page_offset_base: ");
    } else { /* a kernel without a movable direct map */
        s.page_offset = k->levels == 5 ? DIRECT_MAP_L5 : DIRECT_MAP_L4;
    }
    if ((rc = ms_kernel_symbol(k, "_text", &text, err)) < 0 ||
        (rc = ms_kernel_symbol(k, "_end", &end, err)) < 0)
        return ms_err_prefix(err, "the kernel image's bounds: ");
    struct ms_xlat x;
    if (end <= text || end - text > (1ULL << 30))
        return ms_err_set(err, MS_EFORMAT,
                          "the kernel image _text %#llx.._end %#llx is implausible",
                          (unsigned long long)text, (unsigned long long)end);
    if ((rc = ms_space_translate(k->space, text, &x, NULL, err)) < 0)
        return ms_err_prefix(err, "the kernel image's physical address: ");
    s.image_va = text;
    s.image_pa = x.lower;
    s.image_len = align_up(end - text, PAGE);

    struct ms_phys_range *ranges = NULL;
    size_t nranges = 0;
    rc = ms_phys_ranges(k->phys, &ranges, &nranges, err);
    if (rc < 0)
        return ms_err_prefix(err, "the guest-physical ranges: ");
    /* PT_LOADs of whole pages, as the kernel's own */
    size_t m = 0;
    for (size_t i = 0; i < nranges; i++) {
        uint64_t a = align_up(ranges[i].start, PAGE);
        uint64_t b = (ranges[i].start + ranges[i].len) & ~(PAGE - 1);
        if (b <= a)
            continue;
        if (m && ranges[m - 1].start + ranges[m - 1].len >= a)
            ranges[m - 1].len = b - ranges[m - 1].start;
        else
            ranges[m++] = (struct ms_phys_range){a, b - a};
    }
    s.ranges = ranges;
    s.nranges = ms_vmcore_merge_ranges(ranges, m, MS_VMCORE_MAX_LOADS);

    struct ms_vmcore_cpu *cpus = NULL;
    struct ms_vmcore_info found = {0};
    rc = running_tasks(k, regs, nregs, &cpus, &s.ncpus, &found, err);
    if (!rc) {
        s.cpus = cpus;
        rc = ms_vmcore_write(&s, path, progress, progress_arg, info, err);
        info->pids_known = found.pids_known;
        memcpy(info->how, found.how, sizeof(info->how));
    }
    free(cpus);
    free(ranges);
    return rc;
}
