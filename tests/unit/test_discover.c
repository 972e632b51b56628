/* ms_discover on hand-built L1 RAM. First: a VMCB with its NPT, the HSAVE
 * page that gives the NPT depth, a KVM vmcs12 with its EPT, noise pages, and
 * a VMCB-shaped decoy whose nCR3 leads nowhere. Then (issue 16, seen on a
 * real L1 with -cpu max,la57=off) an L2 Linux behind a 4-level NPT with a
 * true HSAVE (LA57 clear) beside false ones that say LA57 (a kernel-virtual
 * "CR3", a CR3 whose tables do not map the RIP), a stale VMCB copy, and
 * bare EPT trees of 4 and 5 levels over the same L2 kernel. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "progress.h"
#include "discover.h"
#include "../support/image.h"
#include "../support/kimage.h"
#include "pte.h"
#include "ram.h"
#include "vmcoreinfo.h"

#define MiB (1024ULL * 1024)
#define RAM_SIZE (8 * MiB)

static uint8_t *mem;

static void put64(uint64_t gpa, uint64_t v)
{
    memcpy(mem + gpa, &v, 8);
}

static void put32(uint64_t gpa, uint32_t v)
{
    memcpy(mem + gpa, &v, 4);
}

static void classic(void)
{
    mem = calloc(1, RAM_SIZE);
    /* NPT at 0x100000: identity 2 MiB leaves over 0..8 MiB (4-level). */
    put64(0x100000, 0x101000 | 0x7);
    put64(0x101000, 0x102000 | 0x7);
    for (uint64_t i = 0; i < 4; i++)
        put64(0x102000 + 8 * i, (i << 21) | 0x87);
    /* EPT at 0x600000: identity 2 MiB leaves, WB. */
    put64(0x600000, 0x601000 | 0x907);
    put64(0x601000, 0x602000 | 0x907);
    for (uint64_t i = 0; i < 4; i++)
        put64(0x602000 + 8 * i, (i << 21) | 0x80 | (6 << 3) | 0x7);
    /* L2 page tables at 0x300000: VA 0x400000 -> 0x500000. */
    put64(0x300000, 0x301000 | 0x7);
    put64(0x301000, 0x302000 | 0x7);
    put64(0x302000 + 8 * 2, 0x303000 | 0x7);
    put64(0x303000, 0x500000 | 0x7);
    /* VMCB at 0x200000 */
    put32(0x200010, 1);          /* VMRUN intercept */
    put32(0x200058, 7);          /* ASID */
    put64(0x200090, 1);          /* NP_ENABLE */
    put64(0x2000b0, 0x100000);   /* nCR3 */
    put64(0x2004d0, 0x1d00);     /* EFER: SVME LMA LME */
    put64(0x200548, 0x20);       /* CR4: PAE */
    put64(0x200550, 0x300000);   /* CR3 */
    put64(0x200558, 0x80000011); /* CR0: PG */
    put64(0x200578, 0x400010);   /* RIP */
    /* a second vCPU's VMCB at 0x240000, same nCR3 (an SMP L2), in user
     * mode: its GS base user's, KERNEL_GS_BASE the per-CPU offset */
    memcpy(mem + 0x240000, mem + 0x200000, 4096);
    put32(0x240058, 8);                     /* ASID */
    put64(0x240448, 0x7f0000001000ULL);     /* FS base */
    put64(0x240458, 0x7f0000002000ULL);     /* GS base */
    put64(0x240570, 0x246);                 /* RFLAGS */
    put64(0x2405d8, 0x7ffc00001000ULL);     /* RSP */
    put64(0x2405f8, 0x1234);                /* RAX */
    put64(0x240620, 0xffff888007800000ULL); /* KernelGSBase */
    put64(0x240640, 0x400000);              /* CR2 */
    /* L1's page tables at 0x1000: 0xffffffffc0000000 -> 0 (2 MiB), for its RIP. */
    put64(0x1000 + 8 * 511, 0x2000 | 0x3);
    put64(0x2000 + 8 * 511, 0x3000 | 0x3);
    put64(0x3000, 0x83);
    /* HSAVE at 0x210000: L1 state, LA57 off */
    put64(0x2104d0, 0x1d01);
    put64(0x210548, 0x6f0);
    put64(0x210550, 0x1000);
    put64(0x210558, 0x80050033);
    put64(0x210578, 0xffffffffc0001234ULL);
    /* decoy VMCB at 0x230000: nCR3 points at random bytes */
    put32(0x230010, 1);
    put64(0x230090, 1);
    put64(0x2300b0, 0x700000);
    put64(0x2304d0, 0x1000);
    put64(0x230550, 0x300000);
    srand(1);
    for (uint64_t i = 0; i < 4096; i++)
        mem[0x700000 + i] = (uint8_t)rand();
    /* L1's KVM's copies of the vCPUs' general registers (kvm_vcpu_arch
     * regs[]: RAX RCX RDX RBX RSP RBP RSI RDI R8-R15 RIP): the second
     * VMCB's once, across a page boundary; the first VMCB's twice, with
     * values that disagree (neither may be taken). */
    put64(0x2005d8, 0xffffc90000001000ULL); /* the first VMCB's RSP */
    put64(0x2005f8, 0x55);                  /* and RAX */
    for (unsigned i = 0; i < 17; i++)
        put64(0x350fd8 + 8 * i, 0x1000 + i);
    put64(0x350fd8, 0x1234), put64(0x350fd8 + 32, 0x7ffc00001000ULL);
    put64(0x350fd8 + 128, 0x400010);
    for (uint64_t at = 0x360000; at <= 0x361000; at += 0x1000) {
        put64(at, 0x55), put64(at + 32, 0xffffc90000001000ULL), put64(at + 128, 0x400010);
        put64(at + 24, at); /* RBX: not the same in both */
    }
    /* vmcs12 at 0x220000 */
    put32(0x220000, 0x11e57ed0);
    put32(0x220008, 1);
    put64(0x220000 + 120, 0x600000 | 6 | (3 << 3) | 0x40); /* EPTP */
    put64(0x220000 + 200, 0x500);                          /* EFER LMA|LME */
    put64(0x220000 + 424, 0x80000031);
    put64(0x220000 + 432, 0x300000);
    put64(0x220000 + 440, 0x2020);
    put64(0x220000 + 544, 0x400010);
    put32(0x220000 + 804, 2); /* secondary: enable EPT */
    put32(0x220000 + 960, 3); /* VPID */

    char path[] = "/tmp/test_discover_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, mem, RAM_SIZE) == (ssize_t)RAM_SIZE, "write image");
    close(fd);
    struct ms_err err;
    struct ms_ram *ram = NULL;
    struct ms_layout layout = {.regions = {{0, RAM_SIZE, 0, 0}}, .count = 1};
    CHECK(ms_ram_open_file(&ram, path, &layout, NULL, 0, &err) == 0, "open: %s", err.msg);
    struct ms_candidate c[16];
    unsigned n = 0;
    struct seen_progress sp = {0};
    CHECK(ms_discover(ram, c, 16, &n, on_progress, &sp, &err) == 0, "discover: %s", err.msg);
    /* Progress over the RAM's bytes: from 0 to the end, never backwards,
     * a bounded number of calls however large the RAM. */
    CHECK(sp.calls >= 3 && sp.calls <= 258 && sp.first == 0 && sp.backwards == 0 &&
              sp.last == RAM_SIZE && sp.total == RAM_SIZE && !strcmp(sp.what, "discover"),
          "progress: %u calls, %llu..%llu of %llu, %u backwards, %s", sp.calls,
          (unsigned long long)sp.first, (unsigned long long)sp.last, (unsigned long long)sp.total,
          sp.backwards, sp.what);
    const struct ms_candidate *vmcb = NULL, *decoy = NULL, *hsave = NULL, *v12 = NULL, *ept = NULL;
    for (unsigned i = 0; i < n && i < 16; i++) {
        if (c[i].kind == MS_CAND_VMCB && c[i].gpa == 0x200000)
            vmcb = &c[i];
        if (c[i].kind == MS_CAND_VMCB && c[i].gpa == 0x230000)
            decoy = &c[i];
        if (c[i].kind == MS_CAND_HSAVE)
            hsave = &c[i];
        if (c[i].kind == MS_CAND_VMCS12)
            v12 = &c[i];
        if (c[i].kind == MS_CAND_EPT && c[i].gpa == 0x600000)
            ept = &c[i];
        CHECK(c[i].gpa != 0x700000 && c[i].gpa != 0x303000, "noise page 0x%llx taken as %s",
              (unsigned long long)c[i].gpa, ms_cand_kind_name(c[i].kind));
    }
    CHECK(vmcb != NULL, "the VMCB is found");
    CHECK(hsave != NULL, "the HSAVE page is found");
    CHECK(v12 != NULL, "the vmcs12 is found");
    CHECK(ept != NULL, "the EPT tree is found");
    if (vmcb) {
        CHECK(c[0].kind == MS_CAND_VMCB || c[0].kind == MS_CAND_VMCS12,
              "a verified root ranks first, not a %s", ms_cand_kind_name(c[0].kind));
        if (ept)
            CHECK(vmcb->score > ept->score, "VMCB above a bare EPT-shaped tree");
        CHECK_EQ_U64(vmcb->root, 0x100000, "nCR3");
        CHECK_EQ_U64(vmcb->root_levels, 4, "NPT depth from HSAVE");
        CHECK_EQ_U64(vmcb->cr3, 0x300000, "L2 CR3");
        CHECK_EQ_U64(vmcb->rip, 0x400010, "L2 RIP");
        CHECK_EQ_U64(vmcb->asid, 7, "ASID");
        CHECK(strstr(vmcb->evidence, "L2 RIP 0x400010 -> 0x500010") != NULL, "%s", vmcb->evidence);
    }
    if (vmcb && decoy)
        CHECK(decoy->score < vmcb->score, "the decoy ranks below (%d vs %d)", decoy->score,
              vmcb->score);
    for (unsigned i = 0; i < n && i < 16; i++)
        CHECK(c[i].vcpu == -1, "%s at 0x%llx: no vCPU told without a kernel (%d)",
              ms_cand_kind_name(c[i].kind), (unsigned long long)c[i].gpa, c[i].vcpu);
    /* bt --cpu's scan: the VMCBs of one nCR3, each with its saved state */
    struct ms_vcpu_state vs[4];
    unsigned nv = 0;
    CHECK(ms_discover_vcpu_states(ram, MS_CAND_VMCB, 0x100000, vs, 4, &nv, &err) == 0,
          "VMCB scan: %s", err.msg);
    CHECK_EQ_U64(nv, 2, "VMCBs of nCR3 0x100000 (not the decoy's)");
    if (nv == 2) {
        CHECK_EQ_U64(vs[0].cand.gpa, 0x200000, "the first");
        CHECK_EQ_U64(vs[1].cand.gpa, 0x240000, "the second");
        const struct ms_cpu_state *r = &vs[1].regs;
        CHECK(r->known == MS_CPU_SAVE_AREA && r->has_cr, "a save area's state");
        CHECK_EQ_U64(r->rip, 0x400010, "RIP");
        CHECK_EQ_U64(r->rsp, 0x7ffc00001000ULL, "RSP");
        CHECK_EQ_U64(r->rax, 0x1234, "RAX");
        CHECK_EQ_U64(r->rflags, 0x246, "RFLAGS");
        CHECK_EQ_U64(r->fs_base, 0x7f0000001000ULL, "FS base");
        CHECK_EQ_U64(r->gs_base, 0x7f0000002000ULL, "GS base");
        CHECK_EQ_U64(r->kernel_gs_base, 0xffff888007800000ULL, "KernelGSBase");
        CHECK_EQ_U64(r->cr2, 0x400000, "CR2");
        CHECK_EQ_U64(r->cr3, 0x300000, "CR3");
        CHECK_EQ_U64(r->rbx | r->rcx | r->rbp | r->r15, 0, "no other register (not in a VMCB)");
        CHECK_EQ_U64(vs[1].cand.kernel_gs_base, 0xffff888007800000ULL, "candidate's KGS");
        CHECK_EQ_U64(vs[1].cand.asid, 8, "its ASID");
    }
    if (nv == 2) {
        CHECK(ms_discover_saved_gprs(ram, vs, 2, &err) == 0, "saved registers: %s", err.msg);
        const struct ms_cpu_state *r = &vs[1].regs;
        CHECK(r->gprs, "the second vCPU's registers, from the array across pages");
        CHECK_EQ_U64(r->rax, 0x1234, "RAX kept");
        CHECK_EQ_U64(r->rcx, 0x1001, "RCX");
        CHECK_EQ_U64(r->rbx, 0x1003, "RBX");
        CHECK_EQ_U64(r->rbp, 0x1005, "RBP");
        CHECK_EQ_U64(r->r15, 0x100f, "R15");
        CHECK_EQ_U64(r->rsp, 0x7ffc00001000ULL, "RSP kept");
        CHECK_EQ_U64(r->rip, 0x400010, "RIP kept");
        CHECK(!vs[0].regs.gprs && vs[0].regs.rbx == 0,
              "two arrays that disagree: neither taken (rbx 0x%llx)",
              (unsigned long long)vs[0].regs.rbx);
    }
    CHECK(ms_discover_vcpu_states(ram, MS_CAND_VMCB, 0x100000, vs, 1, &nv, &err) == 0 && nv == 2,
          "count past max: %u", nv);
    CHECK(ms_discover_vcpu_states(ram, MS_CAND_VMCB, 0x555000, vs, 4, &nv, &err) == 0 && nv == 0,
          "no VMCB of another nCR3: %u", nv);
    /* the vmcs12s of one EPT: their guest state */
    CHECK(ms_discover_vcpu_states(ram, MS_CAND_VMCS12, 0x600000 | 0x5e, vs, 4, &nv, &err) == 0 &&
              nv == 1,
          "vmcs12s of EPT 0x600000: %u", nv);
    if (nv == 1) {
        CHECK_EQ_U64(vs[0].cand.gpa, 0x220000, "the vmcs12's page");
        CHECK(vs[0].regs.known == MS_CPU_VMCS12 && vs[0].regs.has_cr, "a vmcs12's state");
        CHECK_EQ_U64(vs[0].regs.rip, 0x400010, "its RIP");
        CHECK_EQ_U64(vs[0].regs.cr3, 0x300000, "its CR3");
        CHECK_EQ_U64(vs[0].cand.asid, 3, "its VPID");
    }
    CHECK(ms_discover_vcpu_states(ram, MS_CAND_VMCS12, 0x100000, vs, 4, &nv, &err) == 0 && nv == 0,
          "no vmcs12 of another EPT: %u", nv);
    CHECK(ms_discover_vcpu_states(ram, MS_CAND_HSAVE, 0x100000, vs, 4, &nv, &err) == MS_EINVAL,
          "an HSAVE holds no vCPU");
    if (v12) {
        CHECK_EQ_U64(v12->root_levels, 4, "EPT depth from EPTP");
        CHECK_EQ_U64(v12->asid, 3, "VPID");
        CHECK(strstr(v12->evidence, "maps L2 CR3 0x300000 -> 0x300000") != NULL, "%s",
              v12->evidence);
    }
    ms_ram_close(ram);
    if (!getenv("KEEP"))
        unlink(path);
    free(mem);
}

/* The VMCB save area (APM vol. 2 appendix B) at page p. */
static void save_area(struct img *im, uint64_t p, uint64_t efer, uint64_t cr0, uint64_t cr3,
                      uint64_t cr4, uint64_t rip)
{
    img_put64(im, p + 0x4d0, efer);
    img_put64(im, p + 0x548, cr4);
    img_put64(im, p + 0x550, cr3);
    img_put64(im, p + 0x558, cr0);
    img_put64(im, p + 0x578, rip);
}

static void vmcb(struct img *im, uint64_t p, uint64_t ncr3, const struct kimg *k)
{
    img_put64(im, p + 0x10, 1);    /* VMRUN intercepted */
    img_put64(im, p + 0x58, 1);    /* ASID */
    img_put64(im, p + 0x90, 1);    /* NP_ENABLE */
    img_put64(im, p + 0xb0, ncr3); /* nCR3 */
    save_area(im, p, 0x1d01, 0x80050033, k->root, 0x6f0, kimg_va(k, 0));
}

static const struct ms_candidate *find(const struct ms_candidate *c, unsigned n,
                                       enum ms_cand_kind kind, uint64_t gpa)
{
    for (unsigned i = 0; i < n; i++)
        if (c[i].kind == kind && c[i].gpa == gpa)
            return &c[i];
    return NULL;
}

static void nested_linux(void)
{
    struct img im;
    img_open(&im, 64 * MiB);
    /* L2's kernel: L2-physical [0, 0x210000) is L1-physical (identity NPT
     * of 4 KiB leaves, as KVM builds them: a walk at the wrong depth does
     * not alias onto the same pages). */
    struct kimg k;
    kimg_build(&k, &im, 0x4000000);
    const uint64_t l2_end = 0x210000;
    struct img_tree npt, ept4, ept5, l1pt;
    img_tree_init(&npt, &im, false, 4, NULL, 0);
    img_tree_init(&ept4, &im, true, 4, NULL, 0);
    img_tree_init(&ept5, &im, true, 5, NULL, 0);
    for (uint64_t a = 0; a < l2_end; a += 4096) {
        img_map(&npt, a, a, 1, PTE_P | PTE_RW | PTE_US);
        img_map(&ept4, a, a, 1, EPT_READ | EPT_WRITE | EPT_EXEC | (6 << 3));
        img_map(&ept5, a, a, 1, EPT_READ | EPT_WRITE | EPT_EXEC | (6 << 3));
    }
    /* L1's own kernel: 4-level paging mapping its RIP. */
    const uint64_t l1_rip = 0xffffffff81234567ULL;
    img_tree_init(&l1pt, &im, false, 4, NULL, 0);
    uint64_t l1_text = img_alloc_page(&im);
    img_map(&l1pt, l1_rip & ~0xfffULL, l1_text, 1, PTE_P | PTE_RW);
    uint64_t zero_table = img_alloc_page(&im);

    const uint64_t base = 0x1000000; /* the structures, away from the bump allocator */
    const uint64_t v_true = base, v_stale = base + 0x10000;
    const uint64_t h_true = base + 0x20000, h_kva = base + 0x30000, h_unproven = base + 0x40000;
    vmcb(&im, v_true, npt.root, &k);
    /* A stale copy whose nCR3 is a zeroed table. */
    vmcb(&im, v_stale, zero_table, &k);
    /* The true HSAVE: L1 at LA57 off. */
    save_area(&im, h_true, 0x1d01, 0x80050033, l1pt.root, 0x6f0, l1_rip);
    /* False: "CR3" is a kernel virtual address (seen on the real guest). */
    save_area(&im, h_kva, 0x1d01, 0x80050033, 0xffff888100055680ULL, 0x6f0 | (1 << 12), l1_rip);
    /* False: LA57, a CR3 in RAM whose tables do not map the RIP. */
    save_area(&im, h_unproven, 0x1d01, 0x80050033, zero_table, 0x6f0 | (1 << 12), l1_rip);

    struct ms_err err;
    struct ms_candidate c[64];
    unsigned n = 0;
    CHECK(ms_discover(im.ram, c, 64, &n, NULL, NULL, &err) == 0, "discover: %s", err.msg);
    if (n > 64)
        n = 64;
    const struct ms_candidate *vt = find(c, n, MS_CAND_VMCB, v_true);
    const struct ms_candidate *vs = find(c, n, MS_CAND_VMCB, v_stale);
    const struct ms_candidate *ht = find(c, n, MS_CAND_HSAVE, h_true);
    const struct ms_candidate *hu = find(c, n, MS_CAND_HSAVE, h_unproven);
    const struct ms_candidate *e4 = find(c, n, MS_CAND_EPT, ept4.root);
    const struct ms_candidate *e5 = find(c, n, MS_CAND_EPT, ept5.root);
    CHECK(vt && vs && ht && hu && e4 && e5, "all found (%p %p %p %p %p %p)", (void *)vt, (void *)vs,
          (void *)ht, (void *)hu, (void *)e4, (void *)e5);
    CHECK(!find(c, n, MS_CAND_HSAVE, h_kva), "a kernel-virtual CR3 is no HSAVE");
    CHECK(c[0].kind == MS_CAND_VMCB && c[0].gpa == v_true, "the true VMCB first, not %s at 0x%llx",
          ms_cand_kind_name(c[0].kind), (unsigned long long)c[0].gpa);
    if (vt) {
        CHECK_EQ_U64(vt->root_levels, 4, "NPT depth");
        CHECK(strstr(vt->evidence, "reads init_uts_ns's release back") != NULL, "%s", vt->evidence);
        CHECK(strstr(vt->evidence, "as L1's HSAVE says") != NULL, "%s", vt->evidence);
    }
    if (vt && vs)
        CHECK(vs->score < vt->score, "the stale copy below (%d vs %d)", vs->score, vt->score);
    if (ht && hu)
        CHECK(ht->score > hu->score, "the proven HSAVE above (%d vs %d): %s", ht->score, hu->score,
              ht->evidence);
    if (e4) {
        CHECK_EQ_U64(e4->root_levels, 4, "bare 4-level EPT depth");
        CHECK_EQ_U64(e4->root, img_eptp(&ept4) & ~EPTP_AD_ENABLE, "its EPTP");
    }
    if (e5) {
        CHECK_EQ_U64(e5->root_levels, 5, "bare 5-level EPT depth");
        CHECK_EQ_U64(e5->root, img_eptp(&ept5) & ~EPTP_AD_ENABLE, "its EPTP");
        CHECK(strstr(e5->evidence, "release back") != NULL, "%s", e5->evidence);
    }
    img_close(&im);
}

/* A VMCOREINFO whose own page tables do not read its release back in this
 * space is another space's kernel (a nested guest's, in L1's RAM): the
 * scan passes over it. */
static void foreign_vmcoreinfo(void)
{
    struct img im;
    img_open(&im, 64 * MiB);
    struct kimg k;
    kimg_build(&k, &im, 0x4000000);
    struct ms_space *phys = NULL;
    struct ms_vmcoreinfo *vi = NULL;
    struct ms_err err;
    CHECK(ms_space_phys(&phys, im.ram, &err) == 0, "phys: %s", err.msg);
    CHECK(ms_vmcoreinfo_scan(&vi, phys, true, &err) == 0, "its own kernel is found: %s", err.msg);
    ms_vmcoreinfo_free(vi);
    vi = NULL;
    /* the kernel half of its tables gone: they no longer map init_uts_ns */
    img_put64(&im, k.root + 8 * 511, 0);
    CHECK(ms_vmcoreinfo_scan(&vi, phys, true, &err) == MS_ENOTFOUND,
          "a VMCOREINFO its tables do not prove is passed over (%s)", vi ? "taken" : err.msg);
    ms_vmcoreinfo_free(vi);
    ms_space_free(phys);
    img_close(&im);
}

/* A bare EPT tree's depth without a kernel (issue 16, a real kvm_intel EPT
 * under Bochs): from its leaves, or an EPTP for its root in RAM. */
#define EPT_RWX (EPT_READ | EPT_WRITE | EPT_EXEC)
#define EPT_LEAF (EPT_RWX | (6 << 3) | EPT_IGNORE_PAT)
#define GiB (1024 * MiB)

/* Discovers the image and returns the candidate at root (a copy in *out);
 * false when it is not listed. */
static bool discover_root(struct img *im, uint64_t root, struct ms_candidate *out)
{
    struct ms_err err;
    struct ms_candidate c[32];
    unsigned n = 0;
    CHECK(ms_discover(im->ram, c, 32, &n, NULL, NULL, &err) == 0, "discover: %s", err.msg);
    const struct ms_candidate *k = find(c, n < 32 ? n : 32, MS_CAND_EPT, root);
    if (k)
        *out = *k;
    return k != NULL;
}

/* One tree per image: its depth as discover tells it (0: not known), and
 * the evidence must say why. */
static void expect_depth(struct img *im, uint64_t root, unsigned levels, const char *why,
                         const char *what)
{
    struct ms_candidate c;
    if (!discover_root(im, root, &c)) {
        CHECK(false, "%s: the tree at 0x%llx is found", what, (unsigned long long)root);
        return;
    }
    CHECK(c.root_levels == levels, "%s: depth %u, want %u: %s", what, c.root_levels, levels,
          c.evidence);
    CHECK(strstr(c.evidence, why) != NULL, "%s: evidence says \"%s\": %s", what, why, c.evidence);
    if (levels)
        CHECK_EQ_U64((c.root >> 3) & 7, levels - 1, "walk length in the EPTP");
    else
        CHECK(strstr(c.evidence, "depth not known") != NULL, "%s: %s", what, c.evidence);
}

/* 4 KiB leaves over a few spread GPAs (KVM's shape: all 4 KiB). */
static void map_4k(struct img_tree *t, uint64_t data)
{
    static const uint64_t gpas[] = {0, 0x1000, 0x200000, 0x40000000, 0x80201000};
    for (unsigned i = 0; i < sizeof(gpas) / sizeof(gpas[0]); i++)
        img_map(t, gpas[i], data + 0x1000 * i, 1, EPT_LEAF);
}

static void ept_depth_from_leaves(void)
{
    struct img im;
    struct img_tree t;
    for (unsigned levels = 4; levels <= 5; levels++) {
        img_open(&im, 16 * MiB);
        img_tree_init(&t, &im, true, levels, NULL, 0);
        map_4k(&t, 0x800000);
        expect_depth(&im, t.root, levels,
                     levels == 4 ? "its leaves say 4-level" : "its leaves say 5-level",
                     "4 KiB leaves");
        if (levels == 4) {
            /* its PDPT looks like a root too, but its leaves sit a level
             * too high: no depth, and it ranks below the true root */
            struct ms_candidate root, pdpt;
            uint64_t pdpt_gpa = img_get64(&im, t.root) & PTE_ADDR_MASK;
            CHECK(discover_root(&im, t.root, &root) && discover_root(&im, pdpt_gpa, &pdpt),
                  "root and PDPT found");
            CHECK(pdpt.root_levels == 0 && strstr(pdpt.evidence, "its leaves fit no depth"),
                  "the PDPT: %s", pdpt.evidence);
            CHECK(root.score > pdpt.score, "root above its PDPT (%d vs %d)", root.score,
                  pdpt.score);
        }
        img_close(&im);
    }

    /* 2 MiB leaves alone under a 4-level root could be 1 GiB ones under a
     * 5-level root: not known */
    img_open(&im, 16 * MiB);
    img_tree_init(&t, &im, true, 4, NULL, 0);
    for (uint64_t a = 0; a < 8 * MiB; a += 2 * MiB)
        img_map(&t, a, a, 2, EPT_LEAF);
    expect_depth(&im, t.root, 0, "only large leaves 2 levels down", "2 MiB leaves only");
    /* ... a 4 KiB leaf elsewhere tells */
    img_map(&t, 0x40000000, 0x800000, 1, EPT_LEAF);
    expect_depth(&im, t.root, 4, "its leaves say 4-level", "2 MiB and 4 KiB leaves");
    img_close(&im);

    /* 1 GiB leaves one level down: only a 4-level PDPT has them */
    img_open(&im, 16 * MiB);
    img_tree_init(&t, &im, true, 4, NULL, 0);
    img_map(&t, 0, 0, 3, EPT_LEAF);
    img_map(&t, GiB, 0, 3, EPT_LEAF);
    expect_depth(&im, t.root, 4, "its leaves say 4-level", "1 GiB leaves");
    img_close(&im);

    /* 2 MiB leaves three levels down: a 5-level PD; with 1 GiB ones two
     * down (ambiguous alone) */
    img_open(&im, 16 * MiB);
    img_tree_init(&t, &im, true, 5, NULL, 0);
    img_map(&t, 0, 0, 2, EPT_LEAF);
    img_map(&t, 4 * GiB, 0, 3, EPT_LEAF);
    expect_depth(&im, t.root, 5, "its leaves say 5-level", "5-level, 2 MiB and 1 GiB leaves");
    img_close(&im);
}

static void ept_depth_from_eptp(void)
{
    struct img im;
    struct img_tree t;
    /* leaves that do not tell: the EPTP in a VMCS page does (its A/D bit
     * kept in the root printed) */
    img_open(&im, 16 * MiB);
    img_tree_init(&t, &im, true, 4, NULL, 0);
    img_map(&t, 0, 0, 2, EPT_LEAF);
    /* a VMCS region: revision identifier, VMX-abort indicator 0 (Bochs's) */
    uint64_t vmcs = img_alloc_page(&im);
    img_put64(&im, vmcs, 0x2b);
    img_put64(&im, vmcs + 0x478, img_eptp(&t));
    expect_depth(&im, t.root, 4, "in RAM at", "EPTP only");
    struct ms_candidate c, plain;
    if (discover_root(&im, t.root, &c)) {
        CHECK_EQ_U64(c.root, img_eptp(&t), "the EPTP found, A/D bit and all");
        CHECK(strstr(c.evidence, "depth 4 from its EPTP") != NULL, "%s", c.evidence);
    }
    /* it ranks above the same tree without one */
    img_put64(&im, vmcs + 0x478, 0);
    if (discover_root(&im, t.root, &plain))
        CHECK(c.score > plain.score, "an EPTP in RAM adds to the score (%d vs %d)", c.score,
              plain.score);
    img_close(&im);

    /* leaves and EPTP agree: both said */
    img_open(&im, 16 * MiB);
    img_tree_init(&t, &im, true, 5, NULL, 0);
    map_4k(&t, 0x800000);
    vmcs = img_alloc_page(&im);
    img_put64(&im, vmcs, 0x80000001); /* a shadow VMCS's revision */
    img_put64(&im, vmcs + 0x10, img_eptp(&t) & ~EPTP_AD_ENABLE);
    expect_depth(&im, t.root, 5, "from its leaves and EPTP", "leaves and EPTP");
    img_close(&im);

    /* they contradict each other (a hostile or stale word): not known */
    img_open(&im, 16 * MiB);
    img_tree_init(&t, &im, true, 4, NULL, 0);
    map_4k(&t, 0x800000);
    vmcs = img_alloc_page(&im);
    img_put64(&im, vmcs, 0x2b);
    img_put64(&im, vmcs + 0x100, t.root | 6 | (4 << 3));
    expect_depth(&im, t.root, 0, "its leaves and its EPTP disagree", "EPTP against leaves");
    /* EPTPs of both depths for one root tell nothing: the leaves decide */
    img_put64(&im, vmcs + 0x108, t.root | 6 | (3 << 3));
    expect_depth(&im, t.root, 4, "EPTPs of both depths", "EPTPs of both depths");
    /* an EPTP outside a VMCS region (a VMX-abort indicator set) is not
     * looked at: the leaves alone decide */
    img_put64(&im, vmcs + 0x108, 0);
    img_put64(&im, vmcs + 4, 1);
    expect_depth(&im, t.root, 4, "depth 4 from its leaves", "an EPTP outside a VMCS");
    img_close(&im);
}

static void ept_depth_hostile(void)
{
    struct img im;
    struct img_tree t4, t5;
    /* paths that disagree: a 5-level root one of whose PML4 slots holds a
     * 4-level tree's PDPT */
    img_open(&im, 16 * MiB);
    img_tree_init(&t5, &im, true, 5, NULL, 0);
    img_tree_init(&t4, &im, true, 4, NULL, 0);
    map_4k(&t5, 0x800000);
    map_4k(&t4, 0x800000);
    img_put64(&im, t5.root + 8 * 7, img_get64(&im, t4.root));
    expect_depth(&im, t5.root, 0, "its leaves disagree on a depth (4: ", "disagreeing paths");
    img_close(&im);

    /* a loop: the root is its own child (every level of the walk) */
    img_open(&im, 16 * MiB);
    uint64_t loop = img_alloc_page(&im);
    img_put64(&im, loop, loop | EPT_RWX);
    img_put64(&im, loop + 8, loop | EPT_RWX);
    expect_depth(&im, loop, 0, "its leaves fit no depth", "a loop");
    img_close(&im);

    /* a table entry deeper down that points outside RAM */
    img_open(&im, 16 * MiB);
    img_tree_init(&t4, &im, true, 4, NULL, 0);
    map_4k(&t4, 0x800000);
    uint64_t pd = img_get64(&im, img_get64(&im, t4.root) & PTE_ADDR_MASK) & PTE_ADDR_MASK;
    img_put64(&im, pd + 8 * 300, (64 * GiB) | EPT_RWX);
    expect_depth(&im, t4.root, 0, "its leaves disagree on a depth", "a table outside RAM");
    img_close(&im);

    /* reserved memory types in the leaves: not EPT */
    img_open(&im, 16 * MiB);
    img_tree_init(&t4, &im, true, 4, NULL, 0);
    img_map(&t4, 0, 0x800000, 1, EPT_RWX | (2 << 3));
    expect_depth(&im, t4.root, 0, "its leaves fit no depth", "memory type 2");
    img_close(&im);
}

int main(void)
{
    classic();
    nested_linux();
    foreign_vmcoreinfo();
    ept_depth_from_leaves();
    ept_depth_from_eptp();
    ept_depth_hostile();
    return check_done("test_discover");
}
