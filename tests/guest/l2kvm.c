/* The L2 of the nested tests: run inside L1 (kvm-amd or kvm-intel loaded), it uses
 * /dev/kvm to start a long-mode L2 with its own 4-level page tables, makes
 * L2 write a marker at a known GVA, and prints the ground truth (every L2
 * address and the L1-physical pages behind them, from /proc/self/pagemap).
 * After the first exit L2 spins on a counter forever, so a stopped L0
 * usually catches the CPU inside L2.
 *
 * L2 physical memory (4 MiB, MADV_NOHUGEPAGE so the L1 pages scatter):
 *   0x1000 PML4  0x2000 PDPT(low)  0x3000 PD(low: 0-2M identity, 2M page)
 *   0x4000 PDPT  0x5000 PD  0x6000 PT        (GVA_MARKER -> GPA_MARKER, 4K)
 *   0x10000 code, 0x80000 stack top, GPA_MARKER marker page.
 * The marker text is assembled at run time, so it is not in this binary;
 * L2 code stores it with immediate moves. A preset string is written by L1
 * at GPA_MARKER + 0x100. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define RAM_SIZE (4UL << 20)
#define GVA_MARKER 0x5a5a00042000ULL
#define GPA_MARKER 0x2f3000ULL
#define GPA_CODE 0x10000ULL
#define PRESET_OFF 0x100
#define PTE_P 1ULL
#define PTE_W 2ULL
#define PTE_PS 0x80ULL

static uint8_t *ram;

static void die(const char *what)
{
    fprintf(stderr, "l2kvm: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void kmsg(const char *text)
{
    int fd = open("/dev/kmsg", O_WRONLY);
    if (fd >= 0) {
        if (write(fd, text, strlen(text)) < 0) { /* best effort */
        }
        close(fd);
    }
    printf("%s\n", text);
    fflush(stdout);
}

static void put64(uint64_t gpa, uint64_t v)
{
    memcpy(ram + gpa, &v, 8);
}

static uint64_t l1phys(int pm, uint64_t gpa)
{
    uintptr_t va = (uintptr_t)ram + gpa;
    uint64_t e = 0;
    if (pread(pm, &e, 8, (off_t)(va / 4096) * 8) != 8 || !(e >> 63))
        return 0;
    return (e & ((1ULL << 55) - 1)) * 4096 + (va % 4096);
}

static void seg(struct kvm_segment *s, uint16_t sel, uint8_t type, int code)
{
    memset(s, 0, sizeof *s);
    s->base = 0;
    s->limit = 0xffffffff;
    s->selector = sel;
    s->type = type;
    s->present = 1;
    s->s = 1;
    s->g = 1;
    s->l = code;
    s->db = !code;
}

int main(void)
{
    char marker[64], preset[64], line[512];
    volatile int n1 = 6000, n2 = 31000;
    snprintf(marker, sizeof marker, "NESTED-L2-%s%s-%d", "MARK", "ER", n1 + 789);
    snprintf(preset, sizeof preset, "L2-PRESET-%s-%d", "STRING", n2 + 337);

    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0)
        die("open /dev/kvm");
    if (ioctl(kvm, KVM_GET_API_VERSION, 0) != 12)
        die("KVM API version");
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0)
        die("KVM_CREATE_VM");
    ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ram == MAP_FAILED)
        die("mmap");
    madvise(ram, RAM_SIZE, MADV_NOHUGEPAGE);
    memset(ram, 0, RAM_SIZE); /* fault every page in: pagemap needs them present */
    mlock(ram, RAM_SIZE);

    /* L2 page tables. */
    put64(0x1000, 0x2000 | PTE_P | PTE_W);
    put64(0x2000, 0x3000 | PTE_P | PTE_W);
    put64(0x3000, 0x0 | PTE_P | PTE_W | PTE_PS);
    put64(0x1000 + 8 * ((GVA_MARKER >> 39) & 511), 0x4000 | PTE_P | PTE_W);
    put64(0x4000 + 8 * ((GVA_MARKER >> 30) & 511), 0x5000 | PTE_P | PTE_W);
    put64(0x5000 + 8 * ((GVA_MARKER >> 21) & 511), 0x6000 | PTE_P | PTE_W);
    put64(0x6000 + 8 * ((GVA_MARKER >> 12) & 511), GPA_MARKER | PTE_P | PTE_W);
    memcpy(ram + GPA_MARKER + PRESET_OFF, preset, strlen(preset) + 1);

    /* L2 code: store the marker (8 bytes per movabs), OUT once, then spin. */
    uint8_t *c = ram + GPA_CODE;
    size_t len = strlen(marker) + 1, words = (len + 7) / 8;
    *c++ = 0x48, *c++ = 0xbf; /* movabs rdi, GVA_MARKER */
    memcpy(c, &(uint64_t){GVA_MARKER}, 8), c += 8;
    for (size_t k = 0; k < words; k++) {
        uint64_t chunk = 0;
        memcpy(&chunk, marker + 8 * k, len - 8 * k < 8 ? len - 8 * k : 8);
        *c++ = 0x48, *c++ = 0xb8; /* movabs rax, chunk */
        memcpy(c, &chunk, 8), c += 8;
        *c++ = 0x48, *c++ = 0x89, *c++ = 0x47, *c++ = (uint8_t)(8 * k); /* mov [rdi+d8],rax */
    }
    *c++ = 0x66, *c++ = 0xba, *c++ = 0xf8, *c++ = 0x03; /* mov dx, 0x3f8 */
    *c++ = 0xb0, *c++ = 'K';                            /* mov al, 'K' */
    *c++ = 0xee;                                        /* out dx, al */
    *c++ = 0x48, *c++ = 0xff, *c++ = 0x47, *c++ = 0x40; /* loop: inc qword [rdi+0x40] */
    *c++ = 0xeb, *c++ = 0xfa;                           /* jmp loop */

    struct kvm_userspace_memory_region mr = {
        .slot = 0, .guest_phys_addr = 0, .memory_size = RAM_SIZE, .userspace_addr = (uintptr_t)ram};
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &mr) < 0)
        die("KVM_SET_USER_MEMORY_REGION");
    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0)
        die("KVM_CREATE_VCPU");
    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    struct kvm_run *run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED)
        die("mmap kvm_run");

    struct kvm_sregs sr;
    if (ioctl(vcpu, KVM_GET_SREGS, &sr) < 0)
        die("KVM_GET_SREGS");
    seg(&sr.cs, 0x8, 11, 1);
    seg(&sr.ds, 0x10, 3, 0);
    sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
    sr.cr0 = 0x80050033; /* PG WP NE ET MP PE */
    sr.cr3 = 0x1000;
    sr.cr4 = 0x20;   /* PAE */
    sr.efer = 0x500; /* LME LMA */
    if (ioctl(vcpu, KVM_SET_SREGS, &sr) < 0)
        die("KVM_SET_SREGS");
    /* IF set: Bochs (VMX) never exits to L1 on an external interrupt while
     * L2 runs with IF clear, so L1 would hang (notes/qemu.md s.6); L2 gets
     * no interrupts of its own (no irqchip), so SVM runs it the same. */
    struct kvm_regs r = {.rip = GPA_CODE, .rsp = 0x80000, .rflags = 0x202};
    if (ioctl(vcpu, KVM_SET_REGS, &r) < 0)
        die("KVM_SET_REGS");

    int pm = open("/proc/self/pagemap", O_RDONLY);
    if (pm < 0)
        die("open pagemap");
    for (int exits = 0;; exits++) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0) {
            if (errno == EINTR)
                continue;
            die("KVM_RUN");
        }
        if (run->exit_reason == KVM_EXIT_INTR)
            continue;
        if (run->exit_reason != KVM_EXIT_IO) {
            snprintf(line, sizeof line, "lab: l2 error unexpected exit reason %u",
                     run->exit_reason);
            kmsg(line);
            return 1;
        }
        char ch = *((char *)run + run->io.data_offset);
        if (strcmp((char *)ram + GPA_MARKER, marker) != 0) {
            kmsg("lab: l2 error marker not written by L2");
            return 1;
        }
        snprintf(line, sizeof line,
                 "lab: l2 truth exit=%d port=0x%x char=%c cr3=0x1000 gva=0x%llx l2gpa=0x%llx "
                 "l1phys=0x%llx pml4_l1phys=0x%llx code_l1phys=0x%llx ram_l1va=0x%lx "
                 "marker=%s preset=%s preset_off=0x%x",
                 exits, run->io.port, ch, GVA_MARKER, GPA_MARKER,
                 (unsigned long long)l1phys(pm, GPA_MARKER), (unsigned long long)l1phys(pm, 0x1000),
                 (unsigned long long)l1phys(pm, GPA_CODE), (unsigned long)(uintptr_t)ram, marker,
                 preset, PRESET_OFF);
        kmsg(line);
        for (uint64_t g = 0x1000; g <= 0x6000; g += 0x1000) {
            snprintf(line, sizeof line, "lab: l2 table l2gpa=0x%llx l1phys=0x%llx",
                     (unsigned long long)g, (unsigned long long)l1phys(pm, g));
            kmsg(line);
        }
        close(open("/tmp/l2.ready", O_WRONLY | O_CREAT, 0644));
    }
}
