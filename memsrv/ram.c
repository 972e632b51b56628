#include "ram.h"

#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* SIGBUS guard. A RAM file that shrinks under MAP_SHARED raises SIGBUS on
 * access; the handler jumps back to the copy that faulted. The jump target
 * is per thread because a signal handler has no other way to find the read
 * it interrupted; faults outside a guarded copy go to the previous handler. */
/* volatile: the compiler knows memcpy never reads bus_guard and would
 * otherwise drop the store before the copy as dead (seen with gcc 12 -O2:
 * the handler found NULL and the process died of SIGBUS). */
static __thread sigjmp_buf *volatile bus_guard;
static struct sigaction bus_previous;
static pthread_once_t bus_once = PTHREAD_ONCE_INIT;

static void bus_handler(int sig, siginfo_t *info, void *uctx)
{
    if (bus_guard)
        siglongjmp(*bus_guard, 1);
    if (bus_previous.sa_flags & SA_SIGINFO) {
        bus_previous.sa_sigaction(sig, info, uctx);
        return;
    }
    if (bus_previous.sa_handler != SIG_DFL && bus_previous.sa_handler != SIG_IGN) {
        bus_previous.sa_handler(sig);
        return;
    }
    signal(sig, SIG_DFL); /* the faulting access repeats and kills us as it should */
}

static void bus_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = bus_handler;
    /* NODEFER: siglongjmp without a saved mask must not leave SIGBUS blocked. */
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &bus_previous);
}

static int guarded_copy(void *dst, const void *src, size_t len)
{
    sigjmp_buf jb;
    sigjmp_buf *volatile outer = bus_guard;
    if (sigsetjmp(jb, 0)) {
        bus_guard = outer;
        return MS_EBUS;
    }
    bus_guard = &jb;
    memcpy(dst, src, len);
    bus_guard = outer;
    return 0;
}

int ms_ram_guarded(struct ms_ram *ram, int (*fn)(void *arg), void *arg, struct ms_err *err)
{
    sigjmp_buf jb;
    sigjmp_buf *volatile outer = bus_guard;
    if (sigsetjmp(jb, 0)) {
        bus_guard = outer;
        ms_ram_refresh(ram, NULL); /* no cached translation may outlive the bytes */
        return ms_err_set(err, MS_EBUS,
                          "RAM file %s shrank under us (QEMU exited or the file was truncated)",
                          ram->nsources ? ram->sources[0].path : "?");
    }
    bus_guard = &jb;
    int rc = fn(arg);
    bus_guard = outer;
    return rc;
}

static struct ms_ram *ram_new(struct ms_err *err)
{
    pthread_once(&bus_once, bus_install);
    struct ms_ram *ram = calloc(1, sizeof(*ram));
    if (!ram)
        ms_err_set(err, MS_ENOMEM, "out of memory");
    return ram;
}

static int add_source(struct ms_ram *ram, const char *path, bool writable, struct ms_err *err)
{
    struct ms_ram_source *s = realloc(ram->sources, (ram->nsources + 1) * sizeof(*s));
    if (!s)
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    ram->sources = s;
    s = &ram->sources[ram->nsources];
    memset(s, 0, sizeof(*s));
    s->fd = -1;
    s->path = strdup(path);
    if (!s->path)
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    ram->nsources++;
    struct stat st;
    int fd = ms_file_open(path, writable ? O_RDWR : O_RDONLY, &st, err);
    if (fd < 0)
        return fd;
    s->fd = fd;
    if (st.st_size <= 0)
        return ms_err_set(err, MS_EFORMAT, "%s is empty", path);
    s->size = (uint64_t)st.st_size;
    s->map_size = s->size;
    s->map = mmap(NULL, s->size, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, s->fd, 0);
    if (s->map == MAP_FAILED) {
        s->map = NULL;
        return ms_err_set(err, MS_EIO, "cannot mmap %s: %s", path, strerror(errno));
    }
    return 0;
}

/* Drops (or clips) regions that their source file no longer backs. */
static void clip_regions(struct ms_ram *ram)
{
    unsigned w = 0;
    for (unsigned i = 0; i < ram->layout.count; i++) {
        struct ms_region r = ram->layout.regions[i];
        uint64_t size = r.source < ram->nsources ? ram->sources[r.source].size : 0;
        if (r.offset >= size)
            continue;
        if (r.offset + r.len > size)
            r.len = size - r.offset;
        ram->layout.regions[w++] = r;
    }
    ram->layout.count = w;
}

int ms_ram_open_file(struct ms_ram **out, const char *path, const struct ms_layout *layout,
                     const char *machine, unsigned flags, struct ms_err *err)
{
    *out = NULL;
    struct ms_ram *ram = ram_new(err);
    if (!ram)
        return MS_ENOMEM;
    ram->writable = flags & MS_RAM_WRITABLE;
    int rc = add_source(ram, path, ram->writable, err);
    if (rc)
        goto fail;
    if (layout) {
        ram->layout = *layout;
    } else {
        char lpath[4096];
        rc = ms_layout_path_for(path, lpath, sizeof(lpath), err);
        if (rc)
            goto fail;
        if (!machine && access(lpath, F_OK) == 0)
            rc = ms_layout_load(&ram->layout, lpath, err);
        else
            rc = ms_layout_for_machine(&ram->layout, machine, ram->sources[0].size, err);
        if (rc)
            goto fail;
    }
    for (unsigned i = 0; i < ram->layout.count; i++)
        ram->layout.regions[i].source = 0;
    rc = ms_layout_check(&ram->layout, err);
    if (rc)
        goto fail;
    for (unsigned i = 0; i < ram->layout.count; i++) {
        const struct ms_region *r = &ram->layout.regions[i];
        if (r->offset + r->len > ram->sources[0].size) {
            rc = ms_err_set(err, MS_EFORMAT,
                            "%s is 0x%llx bytes but the layout maps GPA 0x%llx+0x%llx at offset "
                            "0x%llx (a wrong layout, or a truncated file)",
                            path, (unsigned long long)ram->sources[0].size,
                            (unsigned long long)r->gpa, (unsigned long long)r->len,
                            (unsigned long long)r->offset);
            ms_err_hint(err, MS_HINT_LAYOUT);
            goto fail;
        }
    }
    *out = ram;
    return 0;
fail:
    ms_ram_close(ram);
    return rc;
}

/* QEMU's "QEMU" note (target/i386/arch_dump.c, QEMUCPUState). */
struct qemu_segment {
    uint32_t selector, limit, flags, pad;
    uint64_t base;
};
struct qemu_cpu_state {
    uint32_t version, size;
    uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
    uint64_t rip, rflags;
    struct qemu_segment cs, ds, es, fs, gs, ss, ldt, tr, gdt, idt;
    uint64_t cr[5];
    uint64_t kernel_gs_base;
};

/* Index of each register in NT_PRSTATUS pr_reg (struct user_regs_struct). */
enum {
    PR_R15,
    PR_R14,
    PR_R13,
    PR_R12,
    PR_RBP,
    PR_RBX,
    PR_R11,
    PR_R10,
    PR_R9,
    PR_R8,
    PR_RAX,
    PR_RCX,
    PR_RDX,
    PR_RSI,
    PR_RDI,
    PR_ORIG_RAX,
    PR_RIP,
    PR_CS,
    PR_EFLAGS,
    PR_RSP,
    PR_SS,
    PR_FS_BASE,
    PR_GS_BASE,
    PR_NREGS = 27
};
#define PRSTATUS_REG_OFFSET 112
#define PRSTATUS_SIZE 336

static struct ms_cpu_state *cpu_slot(struct ms_ram *ram, unsigned index, struct ms_err *err)
{
    if (index > 4096) {
        ms_err_set(err, MS_ELIMIT, "more than 4096 CPU notes");
        return NULL;
    }
    if (index >= ram->ncpus) {
        struct ms_cpu_state *c = realloc(ram->cpus, (index + 1) * sizeof(*c));
        if (!c) {
            ms_err_set(err, MS_ENOMEM, "out of memory");
            return NULL;
        }
        memset(c + ram->ncpus, 0, (index + 1 - ram->ncpus) * sizeof(*c));
        ram->cpus = c;
        ram->ncpus = index + 1;
    }
    return &ram->cpus[index];
}

static int parse_note(struct ms_ram *ram, const char *name, uint32_t type, const uint8_t *desc,
                      size_t len, unsigned *nprstatus, unsigned *nqemu, struct ms_err *err)
{
    if (strcmp(name, "CORE") == 0 && type == 1 /* NT_PRSTATUS */) {
        if (len < PRSTATUS_REG_OFFSET + PR_NREGS * 8)
            return 0; /* not x86-64's layout: ignore rather than misread */
        struct ms_cpu_state *c = cpu_slot(ram, (*nprstatus)++, err);
        if (!c)
            return err ? err->code : MS_ENOMEM;
        uint64_t r[PR_NREGS];
        memcpy(r, desc + PRSTATUS_REG_OFFSET, sizeof(r));
        c->r15 = r[PR_R15], c->r14 = r[PR_R14], c->r13 = r[PR_R13], c->r12 = r[PR_R12];
        c->rbp = r[PR_RBP], c->rbx = r[PR_RBX], c->r11 = r[PR_R11], c->r10 = r[PR_R10];
        c->r9 = r[PR_R9], c->r8 = r[PR_R8], c->rax = r[PR_RAX], c->rcx = r[PR_RCX];
        c->rdx = r[PR_RDX], c->rsi = r[PR_RSI], c->rdi = r[PR_RDI], c->rip = r[PR_RIP];
        c->rflags = r[PR_EFLAGS], c->rsp = r[PR_RSP], c->fs_base = r[PR_FS_BASE];
        c->gs_base = r[PR_GS_BASE];
    } else if (strcmp(name, "QEMU") == 0 && type == 0) {
        struct qemu_cpu_state q;
        size_t need = offsetof(struct qemu_cpu_state, kernel_gs_base);
        if (len < need)
            return 0;
        memset(&q, 0, sizeof(q));
        memcpy(&q, desc, len < sizeof(q) ? len : sizeof(q));
        struct ms_cpu_state *c = cpu_slot(ram, (*nqemu)++, err);
        if (!c)
            return err ? err->code : MS_ENOMEM;
        c->rax = q.rax, c->rbx = q.rbx, c->rcx = q.rcx, c->rdx = q.rdx;
        c->rsi = q.rsi, c->rdi = q.rdi, c->rsp = q.rsp, c->rbp = q.rbp;
        c->r8 = q.r8, c->r9 = q.r9, c->r10 = q.r10, c->r11 = q.r11;
        c->r12 = q.r12, c->r13 = q.r13, c->r14 = q.r14, c->r15 = q.r15;
        c->rip = q.rip, c->rflags = q.rflags;
        c->fs_base = q.fs.base, c->gs_base = q.gs.base;
        c->cr0 = q.cr[0], c->cr2 = q.cr[2], c->cr3 = q.cr[3], c->cr4 = q.cr[4];
        if (len >= sizeof(q))
            c->kernel_gs_base = q.kernel_gs_base;
        c->has_cr = true;
    } else if (strcmp(name, "VMCOREINFO") == 0 && !ram->vmcoreinfo) {
        if (len > (1u << 20))
            return ms_err_set(err, MS_EFORMAT, "VMCOREINFO note is %zu bytes (over 1 MiB)", len);
        ram->vmcoreinfo = malloc(len + 1);
        if (!ram->vmcoreinfo)
            return ms_err_set(err, MS_ENOMEM, "out of memory");
        memcpy(ram->vmcoreinfo, desc, len);
        ram->vmcoreinfo[len] = '\0';
        ram->vmcoreinfo_len = strlen(ram->vmcoreinfo);
    }
    return 0;
}

static int parse_dump(struct ms_ram *ram, Elf *elf, const char *path, struct ms_err *err)
{
    GElf_Ehdr eh;
    if (!gelf_getehdr(elf, &eh))
        return ms_err_set(err, MS_EFORMAT, "%s: not an ELF file: %s", path, elf_errmsg(-1));
    if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_type != ET_CORE)
        return ms_err_set(err, MS_EFORMAT,
                          "%s: not a 64-bit ELF core file (a QEMU dump-guest-memory file?)", path);
    size_t phnum;
    if (elf_getphdrnum(elf, &phnum) != 0)
        return ms_err_set(err, MS_EFORMAT, "%s: bad program headers: %s", path, elf_errmsg(-1));
    uint64_t fsize = ram->sources[0].size;
    unsigned nprstatus = 0, nqemu = 0, skipped = 0;
    for (size_t i = 0; i < phnum; i++) {
        GElf_Phdr ph;
        if (!gelf_getphdr(elf, (int)i, &ph))
            return ms_err_set(err, MS_EFORMAT, "%s: bad program header %zu", path, i);
        if (ph.p_offset > fsize || ph.p_filesz > fsize - ph.p_offset)
            return ms_err_set(err, MS_EFORMAT,
                              "%s: segment %zu (offset 0x%llx, size 0x%llx) runs past the end of "
                              "the file (0x%llx bytes): truncated dump?",
                              path, i, (unsigned long long)ph.p_offset,
                              (unsigned long long)ph.p_filesz, (unsigned long long)fsize);
        if (ph.p_type == PT_LOAD && ph.p_filesz > 0) {
            /* Paging-mode dumps can list one physical page under several
             * virtual addresses: keep the first, skip overlaps. */
            bool overlap = false;
            for (unsigned j = 0; j < ram->layout.count && !overlap; j++) {
                const struct ms_region *r = &ram->layout.regions[j];
                overlap = ph.p_paddr < r->gpa + r->len && r->gpa < ph.p_paddr + ph.p_filesz;
            }
            if (overlap) {
                skipped++;
                continue;
            }
            if (ram->layout.count >= MS_LAYOUT_MAX)
                return ms_err_set(err, MS_ELIMIT, "%s: more than %d PT_LOAD segments", path,
                                  MS_LAYOUT_MAX);
            ram->layout.regions[ram->layout.count++] =
                (struct ms_region){ph.p_paddr, ph.p_filesz, ph.p_offset, 0};
        } else if (ph.p_type == PT_NOTE && ph.p_filesz > 0) {
            Elf_Data *data =
                elf_getdata_rawchunk(elf, (int64_t)ph.p_offset, ph.p_filesz, ELF_T_NHDR);
            if (!data)
                return ms_err_set(err, MS_EFORMAT, "%s: unreadable note segment: %s", path,
                                  elf_errmsg(-1));
            size_t off = 0, name_off, desc_off;
            GElf_Nhdr nh;
            while (off < data->d_size &&
                   (off = gelf_getnote(data, off, &nh, &name_off, &desc_off)) > 0) {
                char name[32] = "";
                if (nh.n_namesz > 0 && nh.n_namesz < sizeof(name))
                    memcpy(name, (const char *)data->d_buf + name_off, nh.n_namesz);
                name[sizeof(name) - 1] = '\0';
                int rc = parse_note(ram, name, nh.n_type, (const uint8_t *)data->d_buf + desc_off,
                                    nh.n_descsz, &nprstatus, &nqemu, err);
                if (rc)
                    return ms_err_prefix(err, "%s: ", path);
            }
        }
    }
    (void)skipped;
    if (ram->layout.count == 0)
        return ms_err_set(err, MS_EFORMAT,
                          "%s has no memory (no PT_LOAD): QEMU writes such a file for "
                          "`dump-guest-memory -p` while a nested guest runs; dump without -p",
                          path);
    return ms_layout_check(&ram->layout, err);
}

int ms_ram_open_dump(struct ms_ram **out, const char *path, unsigned flags, struct ms_err *err)
{
    *out = NULL;
    struct ms_ram *ram = ram_new(err);
    if (!ram)
        return MS_ENOMEM;
    ram->writable = flags & MS_RAM_WRITABLE;
    int rc = add_source(ram, path, ram->writable, err);
    if (rc)
        goto fail;
    if (elf_version(EV_CURRENT) == EV_NONE) {
        rc = ms_err_set(err, MS_EIO, "libelf: %s", elf_errmsg(-1));
        goto fail;
    }
    /* Parse from our own mapping under the SIGBUS guard's protection of
     * size checks: libelf gets the bytes through elf_memory. */
    Elf *elf = elf_memory((char *)ram->sources[0].map, ram->sources[0].size);
    if (!elf) {
        rc = ms_err_set(err, MS_EFORMAT, "%s: %s", path, elf_errmsg(-1));
        goto fail;
    }
    rc = parse_dump(ram, elf, path, err);
    elf_end(elf);
    if (rc)
        goto fail;
    *out = ram;
    return 0;
fail:
    ms_ram_close(ram);
    return rc;
}

void ms_ram_close(struct ms_ram *ram)
{
    if (!ram)
        return;
    for (unsigned i = 0; i < ram->nsources; i++) {
        struct ms_ram_source *s = &ram->sources[i];
        if (s->map)
            munmap(s->map, s->map_size);
        if (s->fd >= 0)
            close(s->fd);
        free(s->path);
    }
    free(ram->sources);
    free(ram->cpus);
    free(ram->vmcoreinfo);
    free(ram);
}

static int ram_access(struct ms_ram *ram, uint64_t gpa, void *buf, const void *src, size_t len,
                      size_t *done, struct ms_err *err)
{
    size_t copied = 0;
    int rc = 0;
    while (copied < len) {
        uint64_t at = gpa + copied;
        const struct ms_region *r = ms_ram_region(ram, at);
        if (!r) {
            rc = ms_err_set(err, MS_EOUTSIDE, "guest-physical address 0x%llx is not in RAM",
                            (unsigned long long)at);
            break;
        }
        uint64_t in = at - r->gpa;
        size_t n = len - copied;
        if (n > r->len - in)
            n = (size_t)(r->len - in);
        uint8_t *p = ram->sources[r->source].map + r->offset + in;
        rc = src ? guarded_copy(p, (const uint8_t *)src + copied, n)
                 : guarded_copy((uint8_t *)buf + copied, p, n);
        if (rc) {
            ms_ram_refresh(ram, NULL); /* no cached translation may outlive the bytes */
            rc = ms_err_set(err, MS_EBUS,
                            "RAM file %s shrank under us at guest-physical 0x%llx (QEMU exited "
                            "or the file was truncated)",
                            ram->sources[r->source].path, (unsigned long long)at);
            break;
        }
        copied += n;
    }
    if (done)
        *done = copied;
    return rc;
}

int ms_ram_read(struct ms_ram *ram, uint64_t gpa, void *buf, size_t len, size_t *done,
                struct ms_err *err)
{
    return ram_access(ram, gpa, buf, NULL, len, done, err);
}

int ms_ram_check_writable(const struct ms_ram *ram, struct ms_err *err)
{
    if (!ram->writable) {
        int rc = ms_err_set(err, MS_EPERM, "RAM is open read-only");
        ms_err_hint(err, MS_HINT_WRITABLE);
        return rc;
    }
    return 0;
}

int ms_ram_write(struct ms_ram *ram, uint64_t gpa, const void *buf, size_t len, size_t *done,
                 struct ms_err *err)
{
    int rc = ms_ram_check_writable(ram, err);
    if (rc) {
        if (done)
            *done = 0;
        return rc;
    }
    return ram_access(ram, gpa, NULL, buf, len, done, err);
}

bool ms_ram_contains(const struct ms_ram *ram, uint64_t gpa, uint64_t len)
{
    while (len > 0) {
        const struct ms_region *r = ms_ram_region(ram, gpa);
        if (!r)
            return false;
        uint64_t n = r->len - (gpa - r->gpa);
        if (n >= len)
            return true;
        gpa += n;
        len -= n;
    }
    return true;
}

uint64_t ms_ram_size(const struct ms_ram *ram)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < ram->layout.count; i++)
        total += ram->layout.regions[i].len;
    return total;
}

uint64_t ms_ram_end(const struct ms_ram *ram)
{
    if (ram->layout.count == 0)
        return 0;
    const struct ms_region *r = &ram->layout.regions[ram->layout.count - 1];
    return r->gpa + r->len;
}

void ms_ram_flush(struct ms_ram *ram)
{
    ram->generation++;
}

int ms_ram_refresh(struct ms_ram *ram, struct ms_err *err)
{
    ms_ram_flush(ram);
    for (unsigned i = 0; i < ram->nsources; i++) {
        struct stat st;
        if (fstat(ram->sources[i].fd, &st) != 0)
            return ms_err_set(err, MS_EIO, "cannot stat %s: %s", ram->sources[i].path,
                              strerror(errno));
        if ((uint64_t)st.st_size < ram->sources[i].size)
            ram->sources[i].size = (uint64_t)st.st_size; /* the mapping stays; reads are clipped */
    }
    clip_regions(ram);
    ms_ram_flush(ram);
    return 0;
}
