/* vmcore.c's ELF, read back here: headers as crash's kdump path wants them
 * (one PT_NOTE first, PT_LOAD p_align 0), the notes, every PT_LOAD's bytes
 * through a nested guest's EPT (unmapped pages as zeros), zero pages left
 * as holes, the kernel image sharing its range's bytes; range merging. */
#include <elf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../support/image.h"
#include "check.h"
#include "pte.h"
#include "vmcore.h"

#define MiB (1ULL << 20)
#define PAGE 4096ULL
#define PAGE_OFFSET 0xff11000000000000ULL
#define TEXT_VA 0xffffffff81000000ULL

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(*len);
    if (p && fread(p, 1, *len, f) != *len) {
        free(p);
        p = NULL;
    }
    fclose(f);
    return p;
}

/* The L2 page at gpa holds bytes (gpa >> 12) + i, except the page left all
 * zero; EPT maps L2 [0, 4 pages) and [16, 20 pages) but not page 17. */
static uint8_t want_byte(uint64_t gpa)
{
    uint64_t pg = gpa / PAGE;
    if (pg == 2 || pg == 17)
        return 0;
    return (uint8_t)(pg * 7 + (gpa & 0xfff) + 1);
}

static void test_write_nested(void)
{
    struct img im;
    img_open(&im, 16 * MiB);
    struct img_tree ept;
    img_tree_init(&ept, &im, true, 4, NULL, 0);
    uint64_t leaf = EPT_READ | EPT_WRITE | EPT_EXEC | (6ULL << EPT_MEMTYPE_SHIFT);
    uint64_t l1 = 8 * MiB; /* where L2's pages sit in L1, scattered */
    for (uint64_t pg = 0; pg < 20; pg++) {
        if ((pg >= 4 && pg < 16) || pg == 17)
            continue;
        uint64_t at = l1 + (19 - pg) * 2 * PAGE;
        img_map(&ept, pg * PAGE, at, 1, leaf);
        for (uint64_t i = 0; i < PAGE; i += 8) {
            uint64_t v = 0;
            for (unsigned b = 0; b < 8; b++)
                v |= (uint64_t)want_byte(pg * PAGE + i + b) << (8 * b);
            img_put64(&im, at + i, v);
        }
    }
    struct ms_space *phys, *l2;
    struct ms_err err;
    CHECK(ms_space_phys(&phys, im.ram, &err) == 0, "%s", err.msg);
    CHECK(ms_space_ept(&l2, phys, img_eptp(&ept), &err) == 0, "%s", err.msg);
    struct ms_phys_range *found;
    size_t nfound;
    CHECK(ms_phys_ranges(l2, &found, &nfound, &err) == 0, "%s", err.msg);
    CHECK(nfound == 3, "%zu ranges through EPT", nfound);
    free(found);

    static const char vmci[] = "OSRELEASE=6.1.0-test\nPAGESIZE=4096\nKERNELOFFSET=0\n";
    struct ms_cpu_state regs = {.rip = 0xffffffff81234567ULL, .rsp = 0x1234, .rax = 42};
    struct ms_vmcore_cpu cpus[2] = {{93, &regs}, {0, NULL}};
    /* one range over the hole at page 17: it reads as zeros */
    struct ms_phys_range ranges[2] = {{0, 4 * PAGE}, {16 * PAGE, 4 * PAGE}};
    struct ms_vmcore_spec s = {.phys = l2,
                               .ranges = ranges,
                               .nranges = 2,
                               .page_offset = PAGE_OFFSET,
                               .image_va = TEXT_VA,
                               .image_pa = PAGE,
                               .image_len = 2 * PAGE,
                               .vmcoreinfo = vmci,
                               .vmcoreinfo_len = strlen(vmci),
                               .cpus = cpus,
                               .ncpus = 2};
    char path[] = "/tmp/test_vmcore.XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    struct ms_vmcore_info info;
    CHECK(ms_vmcore_write(&s, path, NULL, NULL, &info, &err) == 0, "%s", err.msg);
    CHECK_EQ_U64(info.loads, 2, "loads");
    CHECK_EQ_U64(info.phys_bytes, 8 * PAGE, "phys bytes");
    CHECK_EQ_U64(info.data_bytes, 6 * PAGE, "written: not the zero page or the hole");
    CHECK_EQ_U64(info.unreadable, PAGE, "unreadable: the unmapped page");

    size_t len = 0;
    uint8_t *f = slurp(path, &len);
    CHECK(f && len == info.file_size, "file of %zu bytes", len);
    if (!f || len < sizeof(Elf64_Ehdr))
        goto out;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)f;
    CHECK(!memcmp(eh->e_ident, ELFMAG, SELFMAG) && eh->e_type == ET_CORE &&
              eh->e_machine == EM_X86_64 && eh->e_phnum == 4,
          "ELF header: type %u machine %u phnum %u", eh->e_type, eh->e_machine, eh->e_phnum);
    const Elf64_Phdr *ph = (const Elf64_Phdr *)(f + eh->e_phoff);
    CHECK(ph[0].p_type == PT_NOTE, "first program header is the PT_NOTE");
    for (unsigned i = 1; i < 4; i++)
        CHECK(ph[i].p_type == PT_LOAD && ph[i].p_align == 0 &&
                  ph[i].p_offset + ph[i].p_filesz <= len,
              "PT_LOAD %u: type %u align %llu", i, ph[i].p_type, (unsigned long long)ph[i].p_align);
    /* the kernel image: at _text, its bytes those of range 0 at its pa */
    CHECK_EQ_U64(ph[1].p_vaddr, TEXT_VA, "image vaddr");
    CHECK_EQ_U64(ph[1].p_paddr, PAGE, "image paddr");
    CHECK_EQ_U64(ph[1].p_offset, ph[2].p_offset + PAGE, "image shares range 0's bytes");
    CHECK_EQ_U64(ph[2].p_vaddr, PAGE_OFFSET, "range 0 at the direct map");
    CHECK_EQ_U64(ph[3].p_vaddr, PAGE_OFFSET + 16 * PAGE, "range 1 at the direct map");
    CHECK_EQ_U64(ph[3].p_paddr, 16 * PAGE, "range 1 paddr");
    unsigned bad = 0;
    for (unsigned i = 2; i < 4; i++)
        for (uint64_t a = 0; a < ph[i].p_filesz; a++)
            bad += f[ph[i].p_offset + a] != want_byte(ph[i].p_paddr + a);
    CHECK(bad == 0, "%u bytes differ from L2's", bad);
    struct stat st;
    stat(path, &st);
    CHECK((uint64_t)st.st_blocks * 512 < info.file_size, "sparse: %llu blocks for %llu bytes",
          (unsigned long long)st.st_blocks, (unsigned long long)info.file_size);

    /* notes: two NT_PRSTATUS (pid, rip), then VMCOREINFO */
    const uint8_t *n = f + ph[0].p_offset, *nend = n + ph[0].p_filesz;
    unsigned prstatus = 0;
    bool vmcoreinfo = false;
    while (n + sizeof(Elf64_Nhdr) <= nend) {
        const Elf64_Nhdr *nh = (const Elf64_Nhdr *)n;
        const char *name = (const char *)(n + sizeof(*nh));
        const uint8_t *desc = n + sizeof(*nh) + ((nh->n_namesz + 3) & ~3u);
        if (nh->n_type == NT_PRSTATUS && !strcmp(name, "CORE") && nh->n_descsz == 336) {
            int32_t pid;
            uint64_t rip;
            memcpy(&pid, desc + 32, 4);
            memcpy(&rip, desc + 112 + 16 * 8, 8);
            CHECK(pid == cpus[prstatus].pid, "CPU %u pid %d", prstatus, pid);
            CHECK_EQ_U64(rip, prstatus == 0 ? regs.rip : 0, "rip");
            prstatus++;
        } else if (!strcmp(name, "VMCOREINFO")) {
            vmcoreinfo = nh->n_descsz == strlen(vmci) && !memcmp(desc, vmci, strlen(vmci));
        }
        n = desc + ((nh->n_descsz + 3) & ~3u);
    }
    CHECK(prstatus == 2 && vmcoreinfo, "%u NT_PRSTATUS, VMCOREINFO %d", prstatus, vmcoreinfo);
    free(f);

    /* an image outside every range gets its own bytes */
    s.image_pa = 18 * PAGE;
    s.image_len = PAGE;
    s.nranges = 1;
    CHECK(ms_vmcore_write(&s, path, NULL, NULL, &info, &err) == 0, "%s", err.msg);
    f = slurp(path, &len);
    if (f) {
        ph = (const Elf64_Phdr *)(f + ((const Elf64_Ehdr *)f)->e_phoff);
        CHECK(ph[1].p_offset >= ph[2].p_offset + ph[2].p_filesz, "image after the ranges");
        CHECK(ph[1].p_offset + PAGE <= len && f[ph[1].p_offset + 5] == want_byte(18 * PAGE + 5),
              "image bytes");
        free(f);
    }
    /* bad arguments */
    struct ms_phys_range overlap[2] = {{0, 2 * PAGE}, {PAGE, PAGE}};
    s.ranges = overlap;
    s.nranges = 2;
    CHECK(ms_vmcore_write(&s, path, NULL, NULL, &info, &err) == MS_EINVAL, "overlap");
    s.ranges = ranges;
    s.ncpus = 0;
    CHECK(ms_vmcore_write(&s, path, NULL, NULL, &info, &err) == MS_EINVAL, "no CPU");
    s.ncpus = 1;
    CHECK(ms_vmcore_write(&s, "/nonexistent/dir/x", NULL, NULL, &info, &err) == MS_EIO, "path");
out:
    unlink(path);
    ms_space_free(l2);
    ms_space_free(phys);
    img_close(&im);
}

static void test_merge(void)
{
    /* gaps of 1, 5, 2 and 9 pages */
    struct ms_phys_range r[5] = {
        {0, PAGE}, {2 * PAGE, PAGE}, {8 * PAGE, PAGE}, {11 * PAGE, PAGE}, {21 * PAGE, PAGE}};
    CHECK(ms_vmcore_merge_ranges(r, 5, 8) == 5, "under the limit: unchanged");
    size_t n = ms_vmcore_merge_ranges(r, 5, 3);
    CHECK(n == 3, "%zu ranges", n);
    CHECK_EQ_U64(r[0].len, 3 * PAGE, "gap of 1 merged");
    CHECK_EQ_U64(r[1].start, 8 * PAGE, "gap of 5 kept");
    CHECK_EQ_U64(r[1].len, 4 * PAGE, "gap of 2 merged");
    CHECK_EQ_U64(r[2].start, 21 * PAGE, "gap of 9 kept");
    CHECK(ms_vmcore_merge_ranges(r, 3, 1) == 1 && r[0].len == 22 * PAGE, "down to one");
}

int main(void)
{
    test_write_nested();
    test_merge();
    return check_done("test_vmcore");
}
