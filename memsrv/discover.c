#include "discover.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "progress.h"
#include "pte.h"
#include "space.h"
#include "symbols.h"
#include "vmcoreinfo.h"

/* AMD APM vol. 2, appendix B (VMCB layout); checked on a real KVM-on-TCG
 * VMCB (notes/qemu.md s.5): intercept word at 0x10 (bit 0 VMRUN), ASID at
 * 0x58, NP_ENABLE at 0x90 bit 0, nested_cr3 at 0xB0; the save area at 0x400
 * with segments of 16 bytes (selector, attributes, limit, base at +8) from
 * ES at +0 (FS +0x40, GS +0x50), EFER at +0xD0, CR4 +0x148, CR3 +0x150,
 * CR0 +0x158, RFLAGS +0x170, RIP +0x178, RSP +0x1D8, RAX +0x1F8,
 * KernelGSBase +0x220, CR2 +0x240. The segment bases and KernelGSBase are
 * VMSAVE's part: KVM (6.1's __svm_vcpu_run) VMSAVEs into the guest's VMCB
 * after every #VMEXIT. */
#define VMCB_INTERCEPT_VMRUN 0x10
#define VMCB_ASID 0x58
#define VMCB_NP_ENABLE 0x90
#define VMCB_NCR3 0xb0
#define VMCB_SAVE 0x400
#define SAVE_EFER (VMCB_SAVE + 0xd0)
#define SAVE_CR4 (VMCB_SAVE + 0x148)
#define SAVE_CR3 (VMCB_SAVE + 0x150)
#define SAVE_CR0 (VMCB_SAVE + 0x158)
#define SAVE_RIP (VMCB_SAVE + 0x178)
#define SAVE_RSP (VMCB_SAVE + 0x1d8)
#define SAVE_FS_BASE (VMCB_SAVE + 0x48)
#define SAVE_GS_BASE (VMCB_SAVE + 0x58)
#define SAVE_RFLAGS (VMCB_SAVE + 0x170)
#define SAVE_RAX (VMCB_SAVE + 0x1f8)
#define SAVE_KERNEL_GS_BASE (VMCB_SAVE + 0x220)
#define SAVE_CR2 (VMCB_SAVE + 0x240)
#define EFER_SVME (1ULL << 12)
#define EFER_LMA (1ULL << 10)
#define CR0_PE 1ULL
#define CR0_PG (1ULL << 31)
#define CR4_PAE (1ULL << 5)
#define CR4_LA57 (1ULL << 12)
/* EFER bits an x86-64 CPU defines (SCE, LME, LMA, NXE, SVME, LMSLE, FFXSR,
 * TCE, AutoIBRS); others are reserved and must be zero. */
#define EFER_KNOWN 0x20fd01ULL
#define PHYS_LIMIT (1ULL << 52)
#define MAX_ASID 0xffffu

/* Linux arch/x86/kvm/vmx/vmcs12.h (VMCS12_REVISION and its CHECK_OFFSETs). */
#define VMCS12_REVISION 0x11e57ed0u
#define V12_LAUNCH_STATE 8
#define V12_EPT_POINTER 120
#define V12_GUEST_EFER 200
#define V12_GUEST_CR0 424
#define V12_GUEST_CR3 432
#define V12_GUEST_CR4 440
#define V12_GUEST_FS_BASE 480
#define V12_GUEST_GS_BASE 488
#define V12_GUEST_RSP 536
#define V12_GUEST_RIP 544
#define V12_GUEST_RFLAGS 552
#define V12_SECONDARY_CTLS 804
#define V12_VPID 960
#define SECONDARY_ENABLE_EPT (1u << 1)

const char *ms_cand_kind_name(enum ms_cand_kind kind)
{
    switch (kind) {
    case MS_CAND_VMCB:
        return "VMCB";
    case MS_CAND_HSAVE:
        return "HSAVE";
    case MS_CAND_VMCS12:
        return "vmcs12";
    case MS_CAND_EPT:
        return "EPT tree";
    }
    return "?";
}

/* What a candidate proves, in points (the score adds them to its
 * signature's): its second stage maps the L2 CR3, then the L2 RIP through
 * L2 paging, then reaches a Linux kernel (VMCOREINFO) whose own page tables
 * read its OSRELEASE back from init_uts_ns. */
enum {
    PROOF_CR3 = 10,
    PROOF_RIP = 5,
    PROOF_KERNEL = 15,
    HSAVE_AGREES = 2,
    HSAVE_SCORE = 8,
    /* EPT-shaped trees are common in RAM: only the best few are walked. */
    MAX_EPT_TRIED = 8,
    /* VMCOREINFO texts kept from the scan (L1's own, each L2's). */
    MAX_KERNELS = 8,
    /* A bare EPT tree's depth told by its own leaves, or by an EPTP for it
     * found in RAM (the VMCS that runs it): below a kernel proof. */
    SHAPE_DEPTH = 2,
    EPTP_IN_RAM = 8,
    /* leaves at no depth a root of 4 or 5 levels has: a table under the
     * root (a PDPT of KVM's, its only entry making it root-shaped) */
    NOT_A_ROOT = -5,
    /* EPTP-shaped words kept from the scan's VMCS-shaped pages (a 256 MiB
     * L1 under Bochs held 172 in all its pages, one of them true). */
    MAX_EPTP_WORDS = 4096,
};

/* A word of a VMCS region shaped like a WB EPTP of 4 or 5 levels into RAM. */
struct eptp_word {
    uint64_t value, where;
    uint32_t revision; /* of the VMCS region it is in */
};

/* A Linux kernel whose VMCOREINFO text lies somewhere in L1 RAM: where its
 * page tables and init_uts_ns are, in its own guest-physical space. */
struct kernel_hint {
    char release[65];
    uint64_t top_pa;   /* init_top_pgt */
    unsigned levels;   /* 4 or 5 */
    uint64_t uts_name; /* VA of init_uts_ns.name */
};

struct found {
    struct ms_candidate *v;
    unsigned n;
    size_t cap;
    struct kernel_hint kernels[MAX_KERNELS];
    unsigned nkernels;
    struct eptp_word *eptps;
    unsigned neptps;
    size_t eptps_cap;
};

static uint64_t u64_at(const uint8_t *p, unsigned off)
{
    uint64_t v;
    memcpy(&v, p + off, 8);
    return v;
}

static uint32_t u32_at(const uint8_t *p, unsigned off)
{
    uint32_t v;
    memcpy(&v, p + off, 4);
    return v;
}

/* A virtual address valid for the paging depth (sign-extended from bit 47,
 * or 56 with LA57). */
static bool canonical(uint64_t va, bool la57)
{
    unsigned bits = la57 ? 57 : 48;
    uint64_t top = va >> (bits - 1);
    return top == 0 || top == (~0ULL >> (bits - 1));
}

/* The long-mode state a CPU would accept: control registers with no bits
 * above 31, PE and PAE with PG, known EFER bits, a CR3 that is a physical
 * address, a canonical RIP. */
static bool long_mode_state_ok(const struct ms_candidate *c)
{
    return (c->cr0 >> 32) == 0 && (c->cr4 >> 32) == 0 && (c->cr0 & CR0_PE) && (c->cr4 & CR4_PAE) &&
           !(c->efer & ~EFER_KNOWN) && c->cr3 < PHYS_LIMIT && canonical(c->rip, c->cr4 & CR4_LA57);
}

static void ev_add(struct ms_candidate *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void ev_add(struct ms_candidate *c, const char *fmt, ...)
{
    size_t len = strlen(c->evidence);
    if (len + 1 >= sizeof(c->evidence))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->evidence + len, sizeof(c->evidence) - len, fmt, ap);
    va_end(ap);
}

static int push(struct found *f, const struct ms_candidate *c, struct ms_err *err)
{
    if (!MS_ARRAY_RESERVE(&f->v, &f->cap, (size_t)f->n + 1, 16))
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    f->v[f->n++] = *c;
    return 0;
}

/* new_utsname: sysname[65], nodename[65], release[65]. */
#define UTS_RELEASE_OFF 130
#define UTS_LEN 65

/* VMCOREINFO at a page start or after its ELF note header (where the
 * kernel keeps it): keeps what the proof below needs, once per kernel. */
static void note_kernel(struct found *f, const uint8_t *p)
{
    static const char key[] = "OSRELEASE=";
    for (unsigned off = 0; off <= VMCOREINFO_NOTE_HDR && f->nkernels < MAX_KERNELS;
         off += VMCOREINFO_NOTE_HDR) {
        if (memcmp(p + off, key, sizeof(key) - 1) != 0)
            continue;
        struct ms_vmcoreinfo *vi = NULL;
        if (ms_vmcoreinfo_parse(&vi, (const char *)p + off, 4096 - off, NULL))
            continue;
        struct kernel_hint k = {0};
        const char *release = ms_vmcoreinfo_get(vi, "OSRELEASE");
        uint64_t top = 0, uts = 0, name = 0;
        int64_t phys_base = 0, l5 = 0;
        if (release && ms_vmcoreinfo_symbol(vi, "init_top_pgt", &top, NULL) == 0 &&
            ms_vmcoreinfo_number(vi, "phys_base", &phys_base, NULL) == 0 &&
            ms_vmcoreinfo_symbol(vi, "init_uts_ns", &uts, NULL) == 0 &&
            ms_vmcoreinfo_offset(vi, "uts_namespace", "name", &name, NULL) == 0) {
            ms_vmcoreinfo_number(vi, "pgtable_l5_enabled", &l5, NULL);
            snprintf(k.release, sizeof(k.release), "%s", release);
            k.top_pa = top - MS_KERNEL_MAP_START + (uint64_t)phys_base;
            k.levels = l5 ? 5 : 4;
            k.uts_name = uts + name;
            bool seen = false;
            for (unsigned i = 0; i < f->nkernels; i++)
                seen |= memcmp(&f->kernels[i], &k, sizeof(k)) == 0;
            if (!seen)
                f->kernels[f->nkernels++] = k;
        }
        ms_vmcoreinfo_free(vi);
    }
}

/* What the evidence says of a kernel proven (ms_cand_reaches_kernel). */
#define REACHES_LINUX "; reaches Linux "

bool ms_cand_reaches_kernel(const struct ms_candidate *c)
{
    return memchr(c->evidence, '\0', sizeof(c->evidence)) &&
           strstr(c->evidence, REACHES_LINUX) != NULL;
}

/* Does second (a guest-physical space) hold one of the kernels whose
 * VMCOREINFO is in RAM? Its page tables, read through second, must read
 * its release back from init_uts_ns. */
static int prove_kernel(const struct found *f, struct ms_space *second, struct ms_candidate *c)
{
    for (unsigned i = 0; i < f->nkernels; i++) {
        const struct kernel_hint *k = &f->kernels[i];
        struct ms_space *kspace = NULL;
        char got[UTS_LEN + 1] = {0};
        bool ok =
            ms_space_paging(&kspace, second, k->top_pa, k->levels, NULL) == 0 &&
            ms_space_read(kspace, k->uts_name + UTS_RELEASE_OFF, got, UTS_LEN, NULL, NULL) == 0 &&
            strcmp(got, k->release) == 0;
        ms_space_free(kspace);
        if (ok) {
            ev_add(c,
                   REACHES_LINUX "%s: its init_top_pgt (PA 0x%llx) reads init_uts_ns's "
                                 "release back",
                   k->release, (unsigned long long)k->top_pa);
            return PROOF_KERNEL;
        }
    }
    ev_add(c, "; reaches no kernel whose VMCOREINFO is in RAM");
    return 0;
}

/* Does the second stage (NPT or EPT at root) translate the L2 CR3, (with
 * paging on) the L2 RIP through paging over it, and reach L2's kernel?
 * Without an L2 CR3 (a bare EPT tree: cr3_known false), only the kernel. */
static int try_root(struct ms_ram *ram, const struct found *f, bool ept, uint64_t root,
                    unsigned levels, bool cr3_known, struct ms_candidate *c)
{
    struct ms_err err;
    struct ms_space *phys = NULL, *second = NULL, *pg = NULL;
    int points = 0;
    if (ms_space_phys(&phys, ram, &err))
        return 0;
    int rc = ept ? ms_space_ept(&second, phys, root, &err)
                 : ms_space_npt(&second, phys, root, levels, &err);
    if (rc) {
        ev_add(c, "; root unusable: %s", err.msg);
        goto out;
    }
    if (cr3_known) {
        struct ms_xlat x;
        if (ms_space_translate(second, c->cr3 & PTE_ADDR_MASK, &x, NULL, &err) == 0) {
            points += PROOF_CR3;
            ev_add(c, "; %u-level %s maps L2 CR3 0x%llx -> 0x%llx", second->levels,
                   ept ? "EPT" : "NPT", (unsigned long long)(c->cr3 & PTE_ADDR_MASK),
                   (unsigned long long)x.phys);
        } else {
            ev_add(c, "; %u-level: L2 CR3 does not translate: %s", second->levels, err.msg);
            goto out;
        }
        if ((c->cr0 & CR0_PG) && (c->efer & EFER_LMA)) {
            unsigned l2levels = (c->cr4 & CR4_LA57) ? 5 : 4;
            if (ms_space_paging(&pg, second, c->cr3, l2levels, &err) == 0 &&
                ms_space_translate(pg, c->rip, &x, NULL, &err) == 0) {
                points += PROOF_RIP;
                ev_add(c, "; L2 RIP 0x%llx -> 0x%llx", (unsigned long long)c->rip,
                       (unsigned long long)x.phys);
            } else {
                ev_add(c, "; L2 RIP does not translate");
            }
        }
    } else {
        ev_add(c, "; %u-level:", second->levels);
    }
    points += prove_kernel(f, second, c);
out:
    ms_space_free(pg);
    ms_space_free(second);
    ms_space_free(phys);
    return points;
}

static bool in_ram(struct ms_ram *ram, uint64_t a)
{
    return ms_ram_contains(ram, a, 4096);
}

/* Where a structure keeps the guest registers a candidate reports. */
struct reg_offsets {
    unsigned cr0, cr3, cr4, efer, rip, rsp;
};

static const struct reg_offsets vmcb_save = {SAVE_CR0,  SAVE_CR3, SAVE_CR4,
                                             SAVE_EFER, SAVE_RIP, SAVE_RSP};
static const struct reg_offsets vmcs12_guest = {V12_GUEST_CR0,  V12_GUEST_CR3, V12_GUEST_CR4,
                                                V12_GUEST_EFER, V12_GUEST_RIP, V12_GUEST_RSP};

static struct ms_candidate candidate_at(enum ms_cand_kind kind, uint64_t gpa, const uint8_t *p,
                                        const struct reg_offsets *o)
{
    struct ms_candidate c = {0};
    c.vcpu = -1;
    c.kind = kind;
    c.gpa = gpa;
    c.cr0 = u64_at(p, o->cr0);
    c.cr3 = u64_at(p, o->cr3);
    c.cr4 = u64_at(p, o->cr4);
    c.efer = u64_at(p, o->efer);
    c.rip = u64_at(p, o->rip);
    c.rsp = u64_at(p, o->rsp);
    return c;
}

/* Control-area bits at 0x90: NP_ENABLE and the SEV/GMET/... flags in 7:0;
 * bits 63:8 are reserved. A VMRUN needs a non-zero ASID and EFER.SVME; L2
 * in long mode must hold a state VMRUN would have accepted. */
int ms_vmcb_decode(const uint8_t *p, uint64_t gpa, struct ms_candidate *out)
{
    uint64_t ncr3 = u64_at(p, VMCB_NCR3), efer = u64_at(p, SAVE_EFER);
    uint64_t np = u64_at(p, VMCB_NP_ENABLE);
    uint32_t asid = u32_at(p, VMCB_ASID);
    if (!(u32_at(p, VMCB_INTERCEPT_VMRUN) & 1) || !(np & 1) || (np >> 8) || asid == 0 ||
        asid > MAX_ASID || !(efer & EFER_SVME) || (efer & ~EFER_KNOWN) ||
        (ncr3 & 0xfff & ~0x18ULL) || (ncr3 & PTE_ADDR_MASK) == 0 || ncr3 >= PHYS_LIMIT)
        return -1;
    struct ms_candidate c = candidate_at(MS_CAND_VMCB, gpa, p, &vmcb_save);
    if ((c.efer & EFER_LMA) && (c.cr0 & CR0_PG) && !long_mode_state_ok(&c))
        return -1;
    c.root = ncr3;
    c.asid = asid;
    c.gs_base = u64_at(p, SAVE_GS_BASE);
    c.kernel_gs_base = u64_at(p, SAVE_KERNEL_GS_BASE);
    *out = c;
    return 0;
}

/* Where a saved guest state keeps what ms_cpu_state reports; 0: not kept
 * (no field of either layout is at offset 0). */
struct state_offsets {
    enum ms_cpu_known known;
    unsigned rax, rsp, rip, rflags, fs_base, gs_base, kernel_gs_base, cr0, cr2, cr3, cr4;
};

static const struct state_offsets vmcb_state = {
    .known = MS_CPU_SAVE_AREA,
    .rax = SAVE_RAX,
    .rsp = SAVE_RSP,
    .rip = SAVE_RIP,
    .rflags = SAVE_RFLAGS,
    .fs_base = SAVE_FS_BASE,
    .gs_base = SAVE_GS_BASE,
    .kernel_gs_base = SAVE_KERNEL_GS_BASE,
    .cr0 = SAVE_CR0,
    .cr2 = SAVE_CR2,
    .cr3 = SAVE_CR3,
    .cr4 = SAVE_CR4,
};
static const struct state_offsets vmcs12_state = {
    .known = MS_CPU_VMCS12,
    .rsp = V12_GUEST_RSP,
    .rip = V12_GUEST_RIP,
    .rflags = V12_GUEST_RFLAGS,
    .fs_base = V12_GUEST_FS_BASE,
    .gs_base = V12_GUEST_GS_BASE,
    .cr0 = V12_GUEST_CR0,
    .cr3 = V12_GUEST_CR3,
    .cr4 = V12_GUEST_CR4,
};

static void cpu_state_at(const uint8_t *p, const struct state_offsets *o, struct ms_cpu_state *out)
{
    memset(out, 0, sizeof(*out));
    out->known = o->known;
    const struct {
        unsigned off;
        uint64_t *to;
    } fields[] = {{o->rax, &out->rax},
                  {o->rsp, &out->rsp},
                  {o->rip, &out->rip},
                  {o->rflags, &out->rflags},
                  {o->fs_base, &out->fs_base},
                  {o->gs_base, &out->gs_base},
                  {o->kernel_gs_base, &out->kernel_gs_base},
                  {o->cr0, &out->cr0},
                  {o->cr2, &out->cr2},
                  {o->cr3, &out->cr3},
                  {o->cr4, &out->cr4}};
    for (unsigned i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (fields[i].off)
            *fields[i].to = u64_at(p, fields[i].off);
    out->has_cr = true;
}

void ms_vmcb_cpu_state(const uint8_t *p, struct ms_cpu_state *out)
{
    cpu_state_at(p, &vmcb_state, out);
}

static int check_vmcb(struct ms_ram *ram, uint64_t gpa, const uint8_t *p, struct found *f,
                      struct ms_err *err)
{
    struct ms_candidate c;
    if (ms_vmcb_decode(p, gpa, &c) || !in_ram(ram, c.root & PTE_ADDR_MASK))
        return 0;
    c.score = 10;
    snprintf(c.evidence, sizeof(c.evidence),
             "VMRUN intercepted, NP_ENABLE, EFER.SVME, nCR3 0x%llx in RAM, ASID %u",
             (unsigned long long)c.root, c.asid);
    return push(f, &c, err);
}

/* L1's paging (its CR3, its depth) translates its own RIP: the HSAVE page
 * is L1's state indeed, and its CR4.LA57 gives the NPT depth. */
static int prove_hsave(struct ms_ram *ram, struct ms_candidate *c)
{
    struct ms_err err;
    struct ms_space *phys = NULL, *pg = NULL;
    struct ms_xlat x;
    int ok = ms_space_phys(&phys, ram, &err) == 0 &&
             ms_space_paging(&pg, phys, c->cr3, c->root_levels, &err) == 0 &&
             ms_space_translate(pg, c->rip, &x, NULL, &err) == 0;
    if (ok)
        ev_add(c, "; its %u-level paging maps its RIP -> 0x%llx", c->root_levels,
               (unsigned long long)x.phys);
    else
        ev_add(c, "; its paging does not map its RIP");
    ms_space_free(pg);
    ms_space_free(phys);
    return ok ? PROOF_RIP : 0;
}

static int check_hsave(struct ms_ram *ram, uint64_t gpa, const uint8_t *p, struct found *f,
                       struct ms_err *err)
{
    /* QEMU's VMRUN saves the host into the save-area layout and leaves the
     * control area zero. */
    for (unsigned i = 0; i < 0x100; i += 8)
        if (u64_at(p, i))
            return 0;
    struct ms_candidate c = candidate_at(MS_CAND_HSAVE, gpa, p, &vmcb_save);
    /* L1's own state: a kernel RIP, a CR3 into RAM (L1-physical). */
    if (!(c.efer & EFER_SVME) || !(c.efer & EFER_LMA) || !(c.cr0 & CR0_PG) ||
        !long_mode_state_ok(&c) || !(c.rip >> 63) || !in_ram(ram, c.cr3 & PTE_ADDR_MASK))
        return 0;
    c.root_levels = (c.cr4 & CR4_LA57) ? 5 : 4;
    c.score = HSAVE_SCORE;
    snprintf(c.evidence, sizeof(c.evidence),
             "zero control area, EFER.SVME|LMA, paging on, kernel RIP 0x%llx: L1 state "
             "(CR3 0x%llx, CR4.LA57=%d -> NPT is %u-level)",
             (unsigned long long)c.rip, (unsigned long long)c.cr3, !!(c.cr4 & CR4_LA57),
             c.root_levels);
    c.score += prove_hsave(ram, &c);
    return push(f, &c, err);
}

static unsigned eptp_levels(uint64_t eptp)
{
    return (unsigned)((eptp & EPTP_WALK_LENGTH_MASK) >> EPTP_WALK_LENGTH_SHIFT) + 1;
}

static bool eptp_valid(uint64_t eptp)
{
    unsigned walk = eptp_levels(eptp), mt = (unsigned)(eptp & 7);
    return (walk == 4 || walk == 5) && (mt == 0 || mt == 6) && !(eptp & 0xf00) && (eptp >> 52) == 0;
}

/* A KVM vmcs12 page decoded as a candidate, unproven: false when it is
 * not one (revision, launch state). */
static bool vmcs12_decode(const uint8_t *p, uint64_t gpa, struct ms_candidate *c)
{
    if ((u32_at(p, 0) & 0x7fffffffu) != VMCS12_REVISION || u32_at(p, V12_LAUNCH_STATE) > 1)
        return false;
    *c = candidate_at(MS_CAND_VMCS12, gpa, p, &vmcs12_guest);
    c->root = u64_at(p, V12_EPT_POINTER);
    c->asid = (uint16_t)u32_at(p, V12_VPID);
    c->gs_base = u64_at(p, V12_GUEST_GS_BASE); /* no KERNEL_GS_BASE: an MSR, not a field */
    return true;
}

static int check_vmcs12(struct ms_ram *ram, uint64_t gpa, const uint8_t *p, struct found *f,
                        struct ms_err *err)
{
    struct ms_candidate c;
    if (!vmcs12_decode(p, gpa, &c))
        return 0;
    c.score = 10;
    snprintf(c.evidence, sizeof(c.evidence), "vmcs12 revision 0x%x, launch state %u",
             VMCS12_REVISION, u32_at(p, V12_LAUNCH_STATE));
    if (!(u32_at(p, V12_SECONDARY_CTLS) & SECONDARY_ENABLE_EPT)) {
        ev_add(&c, "; EPT not enabled in secondary controls");
    } else if (!eptp_valid(c.root) || !in_ram(ram, c.root & PTE_ADDR_MASK)) {
        ev_add(&c, "; EPTP 0x%llx is not a valid EPTP into RAM", (unsigned long long)c.root);
    } else {
        c.score += 5;
        c.root_levels = eptp_levels(c.root);
        ev_add(&c, "; EPTP 0x%llx (%u-level)", (unsigned long long)c.root, c.root_levels);
    }
    return push(f, &c, err);
}

/* An EPT non-leaf entry as KVM writes it: R (and maybe W, X), bits 7:3
 * zero, no write-without-read, a table in RAM. 0 is "not present". */
static int ept_entry_ok(struct ms_ram *ram, uint64_t e, bool allow_1g)
{
    if (!(e & 7))
        return e == 0 ? 0 : -1;
    if ((e & 2) && !(e & 1))
        return -1;
    if (allow_1g && (e & EPT_LARGE)) {
        unsigned mt = (unsigned)((e >> 3) & 7);
        if (mt == 2 || mt == 3 || mt == 7 || (e & 0x3ffff000ULL))
            return -1;
        return 1;
    }
    if (e & 0xf8)
        return -1;
    return in_ram(ram, e & PTE_ADDR_MASK) ? 1 : -1;
}

static int table_shape(struct ms_ram *ram, const uint8_t *p, bool allow_1g)
{
    int present = 0;
    for (unsigned i = 0; i < 512; i++) {
        uint64_t e = u64_at(p, 8 * i);
        if (!e)
            continue; /* most entries: not present, nothing to check */
        int k = ept_entry_ok(ram, e, allow_1g);
        if (k < 0)
            return -1;
        present += k;
    }
    return present;
}

static int check_ept_tree(struct ms_ram *ram, uint64_t gpa, const uint8_t *p, struct found *f,
                          struct ms_err *err)
{
    int present = table_shape(ram, p, false);
    if (present <= 0)
        return 0;
    /* Its children must look like EPT tables too (PDPTs, or PML4s under a
     * PML5): a page of small numbers alone is not enough. */
    unsigned good = 0, tried = 0;
    uint8_t child[4096];
    for (unsigned i = 0; i < 512 && tried < 8; i++) {
        uint64_t e = u64_at(p, 8 * i);
        if (!e)
            continue;
        tried++;
        if (ms_ram_read(ram, e & PTE_ADDR_MASK, child, sizeof(child), NULL, NULL) == 0 &&
            table_shape(ram, child, true) > 0)
            good++;
    }
    if (good == 0 || good < tried)
        return 0;
    struct ms_candidate c = {0};
    c.vcpu = -1;
    c.kind = MS_CAND_EPT;
    c.gpa = gpa;
    c.root = gpa | 6 | (3 << 3);
    c.score = 3 + (int)good;
    snprintf(c.evidence, sizeof(c.evidence),
             "%d present entries all EPT-shaped (R/W/X, bits 7:3 clear), %u of %u children "
             "EPT-shaped",
             present, good, tried);
    return push(f, &c, err);
}

/* EPTP as KVM writes it (construct_eptp): the root page, memory type WB
 * (6) in bits 2:0, walk length minus one in bits 5:3, maybe A/D (bit 6). */
#define EPTP_WB 6ULL
#define EPTP_4LEVEL (EPTP_WB | 3ULL << EPTP_WALK_LENGTH_SHIFT)
#define EPTP_5LEVEL (EPTP_WB | 4ULL << EPTP_WALK_LENGTH_SHIFT)

/* Keeps the EPTP-shaped words of a VMCS region (up to MAX_EPTP_WORDS in
 * all): the VMCS that runs a bare EPT tree holds its EPTP, with its depth.
 * A VMCS region starts with a revision identifier (bits 30:0; bit 31 marks
 * a shadow VMCS) and a VMX-abort indicator, 0 while it is in use (SDM
 * vol. 3C 25.2); Bochs keeps its fields there in plain words (seen: the
 * EPTP at offset 0x478 of a region of revision 0x2b). */
static int note_eptps(struct ms_ram *ram, uint64_t gpa, const uint8_t *p, struct found *f,
                      struct ms_err *err)
{
    uint32_t revision = u32_at(p, 0) & 0x7fffffffu;
    if (!revision || u32_at(p, 4))
        return 0;
    for (unsigned off = 8; off < 4096; off += 8) {
        uint64_t w = u64_at(p, off);
        uint64_t low = w & 0xfff & ~EPTP_AD_ENABLE;
        if ((low != EPTP_4LEVEL && low != EPTP_5LEVEL) || (w >> 52) || !(w & PTE_ADDR_MASK) ||
            !in_ram(ram, w & PTE_ADDR_MASK))
            continue;
        if (f->neptps == MAX_EPTP_WORDS)
            return 0;
        if (!MS_ARRAY_RESERVE(&f->eptps, &f->eptps_cap, (size_t)f->neptps + 1, 64))
            return ms_err_set(err, MS_ENOMEM, "out of memory");
        f->eptps[f->neptps++] = (struct eptp_word){w, gpa + off, revision};
    }
    return 0;
}

/* The depth the EPTPs in RAM give the tree at root: 0 when none points
 * there or they disagree; *found the first. */
static unsigned eptp_depth(const struct found *f, uint64_t root, const struct eptp_word **found)
{
    unsigned levels = 0;
    *found = NULL;
    for (unsigned i = 0; i < f->neptps; i++) {
        const struct eptp_word *w = &f->eptps[i];
        if ((w->value & PTE_ADDR_MASK) != root)
            continue;
        if (!*found)
            *found = w;
        if (levels && levels != eptp_levels(w->value))
            return 0;
        levels = eptp_levels(w->value);
    }
    return levels;
}

/* What a bare EPT tree's own entries say of its depth (SDM vol. 3C
 * 29.3.2): an entry that references a table has bits 7:3 zero; a leaf
 * holds a memory type in bits 5:3 (KVM maps RAM WB, often with IPAT, bit
 * 6), a large leaf bit 7 too. Sampled paths from the root down: 4 KiB
 * leaves 3 levels below it say 4 levels, 4 below say 5; 1 GiB leaves 1
 * below say 4, 2 MiB leaves 3 below say 5; large leaves 2 below are
 * either (2 MiB under a PML4, 1 GiB under a PML5). */
enum {
    SHAPE_MAX_TABLES = 16, /* tables read per tree */
    SHAPE_FANOUT = 4,      /* entries followed per table, spread over it */
};

struct ept_shape {
    unsigned says[2]; /* leaf tables or large leaves that say 4, 5 levels */
    unsigned large2;  /* large leaves 2 levels below the root: either */
    unsigned wrong;   /* tables no EPT of 4 or 5 levels has there */
    unsigned tables;
};

enum ept_entry_kind { EPT_E_NONE, EPT_E_TABLE, EPT_E_LEAF, EPT_E_LARGE, EPT_E_BAD };

static enum ept_entry_kind ept_entry_kind(struct ms_ram *ram, uint64_t e)
{
    /* not present, or KVM's MMIO marker (write without read: a misconfig) */
    if (!(e & 7) || ((e & EPT_WRITE) && !(e & EPT_READ)))
        return EPT_E_NONE;
    if (!(e & 0xf8))
        return in_ram(ram, e & PTE_ADDR_MASK) ? EPT_E_TABLE : EPT_E_BAD;
    unsigned mt = (unsigned)((e & EPT_MEMTYPE_MASK) >> EPT_MEMTYPE_SHIFT);
    if (mt == 2 || mt == 3 || mt == 7)
        return EPT_E_BAD; /* reserved memory types */
    return (e & EPT_LARGE) ? EPT_E_LARGE : EPT_E_LEAF;
}

/* The table at gpa, below levels under the root: its leaves counted in s,
 * then (bounded: SHAPE_MAX_TABLES in all, no sixth level) its tables. */
static void ept_shape_walk(struct ms_ram *ram, uint64_t gpa, unsigned below, struct ept_shape *s)
{
    if (below >= 5) {
        s->wrong++; /* a sixth level: data read as a table, or a loop */
        return;
    }
    if (s->tables >= SHAPE_MAX_TABLES)
        return;
    s->tables++;
    uint8_t p[4096];
    if (ms_ram_read(ram, gpa, p, sizeof(p), NULL, NULL)) {
        s->wrong++;
        return;
    }
    unsigned n[EPT_E_BAD] = {0}, ntables = 0;
    uint16_t tables[512];
    for (unsigned i = 0; i < 512; i++) {
        uint64_t e = u64_at(p, 8 * i);
        if (!e)
            continue;
        enum ept_entry_kind k = ept_entry_kind(ram, e);
        if (k == EPT_E_BAD) {
            s->wrong++;
            return;
        }
        n[k]++;
        if (k == EPT_E_TABLE)
            tables[ntables++] = (uint16_t)i;
    }
    if (n[EPT_E_LEAF]) {
        /* 4 KiB leaves (their memory-type-0 fellows look like tables):
         * the last level */
        if (below == 3 || below == 4)
            s->says[below - 3]++;
        else
            s->wrong++;
        return;
    }
    if (n[EPT_E_LARGE]) {
        if (below == 1 || below == 3)
            s->says[below == 3]++;
        else if (below == 2)
            s->large2++;
        else
            s->wrong++; /* in the root */
    }
    unsigned follow = ntables < SHAPE_FANOUT ? ntables : SHAPE_FANOUT;
    for (unsigned j = 0; j < follow; j++) {
        uint64_t e = u64_at(p, 8 * tables[j * ntables / follow]);
        ept_shape_walk(ram, e & PTE_ADDR_MASK, below + 1, s);
    }
}

/* The depth the tree's leaves agree on (0: none, or they disagree), and
 * why in c's evidence; *not_root when no leaf sits where 4 or 5 levels
 * have them. */
static unsigned ept_shape_depth(struct ms_ram *ram, uint64_t root, struct ms_candidate *c,
                                bool *not_root)
{
    struct ept_shape s = {0};
    ept_shape_walk(ram, root, 0, &s);
    unsigned agree = s.says[0] + s.says[1];
    if (!s.wrong && agree && !(s.says[0] && s.says[1])) {
        unsigned levels = s.says[0] ? 4 : 5;
        ev_add(c, "; its leaves say %u-level (%u leaf table%s sampled)", levels, agree,
               agree == 1 ? "" : "s");
        return levels;
    }
    if (s.says[0] || s.says[1])
        ev_add(c, "; its leaves disagree on a depth (4: %u tables, 5: %u, neither: %u)", s.says[0],
               s.says[1], s.wrong);
    else if ((*not_root = s.wrong > 0))
        ev_add(c,
               "; its leaves fit no depth (%u of %u sampled tables where 4 and 5 levels have none)",
               s.wrong, s.tables);
    else
        ev_add(c, "; its leaves do not tell the depth (%s)",
               s.large2 ? "only large leaves 2 levels down: 2 MiB or 1 GiB" : "none reached");
    return 0;
}

/* The NPT depth L1's CR4.LA57 gives, from the HSAVE pages whose paging
 * maps their own RIP, when they all agree; else 0. */
static unsigned hsave_depth(const struct found *f)
{
    unsigned levels = 0;
    for (unsigned i = 0; i < f->n; i++) {
        const struct ms_candidate *c = &f->v[i];
        if (c->kind != MS_CAND_HSAVE || c->score < HSAVE_SCORE + PROOF_RIP)
            continue;
        if (levels && levels != c->root_levels)
            return 0;
        levels = c->root_levels;
    }
    return levels;
}

/* Tries a VMCB's NPT root at 4 and 5 levels and keeps the depth that
 * proves more; on a tie, L1's HSAVE depth (hint) when known, else none
 * (root_levels 0). */
static void decide_npt_depth(struct ms_ram *ram, const struct found *f, struct ms_candidate *c,
                             unsigned hint)
{
    struct ms_candidate t[2] = {*c, *c};
    int p[2];
    for (unsigned i = 0; i < 2; i++)
        p[i] = try_root(ram, f, false, t[i].root, 4 + i, true, &t[i]);
    int best = p[0] != p[1] ? p[1] > p[0] : hint ? hint == 5 : -1;
    if (best < 0) {
        *c = t[0]; /* the 4-level reading, as the CLI's default depth */
        c->score += p[0];
        ev_add(c, "; depth not known: 4 and 5 levels prove as much (%d points)", p[0]);
        return;
    }
    *c = t[best];
    c->root_levels = 4 + (unsigned)best;
    c->score += p[best];
    if (p[0] != p[1])
        ev_add(c, "; depth %u: it proves more than %u (%d vs %d points)", c->root_levels,
               9 - c->root_levels, p[best], p[!best]);
    else
        ev_add(c, "; depth %u from L1's HSAVE (4 and 5 prove as much)", c->root_levels);
    if (hint == c->root_levels) {
        c->score += HSAVE_AGREES;
        if (p[0] != p[1])
            ev_add(c, ", as L1's HSAVE says");
    }
}

/* A bare EPT tree (no VMCS known, so no L2 CR3): a kernel proof at one
 * depth decides; else its leaves (ept_shape_depth) and an EPTP for it in
 * RAM (eptp_depth), when they do not contradict each other. */
static void decide_ept_depth(struct ms_ram *ram, const struct found *f, struct ms_candidate *c)
{
    struct ms_candidate t[2] = {*c, *c};
    int p[2];
    for (unsigned i = 0; i < 2; i++) {
        t[i].root = c->gpa | (i ? EPTP_5LEVEL : EPTP_4LEVEL);
        p[i] = try_root(ram, f, true, t[i].root, 4 + i, false, &t[i]);
    }
    unsigned by_kernel = p[0] != p[1] ? (p[1] > p[0] ? 5 : 4) : 0;
    /* the shape and the EPTP are told once, in the reading kept */
    struct ms_candidate why = {0};
    bool not_root = false;
    unsigned by_shape = ept_shape_depth(ram, c->gpa, &why, &not_root);
    const struct eptp_word *w;
    unsigned by_eptp = eptp_depth(f, c->gpa, &w);
    if (w && by_eptp)
        ev_add(&why, "; EPTP 0x%llx (%u-level) in RAM at 0x%llx (a VMCS, revision 0x%x)",
               (unsigned long long)w->value, by_eptp, (unsigned long long)w->where, w->revision);
    else if (w)
        ev_add(&why, "; EPTPs of both depths in RAM (one at 0x%llx)", (unsigned long long)w->where);
    unsigned told = by_shape && by_eptp && by_shape != by_eptp ? 0 : by_eptp ? by_eptp : by_shape;
    unsigned levels = by_kernel ? by_kernel : told;
    *c = t[levels == 5];
    ev_add(c, "%s", why.evidence);
    if (!levels) {
        c->score += p[0] + (not_root ? NOT_A_ROOT : 0);
        ev_add(c, "; depth not known: %s",
               by_shape && by_eptp ? "its leaves and its EPTP disagree"
                                   : "4 and 5 levels prove as much");
        return;
    }
    c->root_levels = levels;
    c->score += p[levels == 5];
    if (by_eptp == levels) {
        c->root = w->value;
        c->score += EPTP_IN_RAM;
    }
    if (by_shape == levels)
        c->score += SHAPE_DEPTH;
    if (by_kernel)
        ev_add(c, "; depth %u: it proves more than %u (%d vs %d points)", levels, 9 - levels,
               p[levels == 5], p[levels != 5]);
    else
        ev_add(c, "; depth %u from its %s", levels,
               by_shape == levels && by_eptp == levels ? "leaves and EPTP"
               : by_eptp == levels                     ? "EPTP"
                                                       : "leaves");
}

static int by_score(const void *a, const void *b)
{
    const struct ms_candidate *x = a, *y = b;
    if (x->score != y->score)
        return y->score - x->score;
    return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

int ms_discover(struct ms_ram *ram, struct ms_candidate *out, unsigned max, unsigned *count,
                ms_progress_fn progress, void *progress_arg, struct ms_err *err)
{
    struct found f = {0};
    uint8_t page[4096];
    int rc = 0;
    *count = 0;
    uint64_t total = 0, done = 0;
    for (unsigned r = 0; r < ram->layout.count; r++)
        total += ram->layout.regions[r].len;
    struct ms_progress pr;
    ms_progress_start(&pr, progress, progress_arg, "discover", total);
    for (unsigned r = 0; r < ram->layout.count && !rc; r++) {
        const struct ms_region *reg = &ram->layout.regions[r];
        uint64_t first = (reg->gpa + 4095) & ~4095ULL;
        for (uint64_t a = first; a + 4096 <= reg->gpa + reg->len && !rc; a += 4096) {
            ms_progress_update(&pr, done + (a - reg->gpa));
            if (ms_ram_read(ram, a, page, sizeof(page), NULL, err))
                break; /* a file that shrank: keep what was found */
            rc = check_vmcb(ram, a, page, &f, err);
            if (!rc)
                rc = check_hsave(ram, a, page, &f, err);
            if (!rc)
                rc = check_vmcs12(ram, a, page, &f, err);
            if (!rc)
                rc = check_ept_tree(ram, a, page, &f, err);
            if (!rc)
                rc = note_eptps(ram, a, page, &f, err);
            note_kernel(&f, page);
        }
        done += reg->len;
    }
    ms_progress_end(&pr);
    if (rc) {
        free(f.v);
        free(f.eptps);
        return rc;
    }
    /* Ranked by what each proves: a second stage that maps the L2 CR3 and
     * reaches L2's kernel, at the depth that does (signatures alone are
     * found in stale and unrelated pages too). */
    if (f.n)
        qsort(f.v, f.n, sizeof(*f.v), by_score);
    unsigned hint = hsave_depth(&f), ept_tried = 0;
    for (unsigned i = 0; i < f.n; i++) {
        struct ms_candidate *c = &f.v[i];
        if (c->kind == MS_CAND_VMCB) {
            decide_npt_depth(ram, &f, c, hint);
        } else if (c->kind == MS_CAND_VMCS12 && c->root_levels) {
            c->score += try_root(ram, &f, true, c->root, c->root_levels, true, c);
        } else if (c->kind == MS_CAND_EPT && ept_tried < MAX_EPT_TRIED) {
            ept_tried++;
            decide_ept_depth(ram, &f, c);
        }
    }
    if (f.n)
        qsort(f.v, f.n, sizeof(*f.v), by_score);
    *count = f.n;
    if (out && f.n && max)
        memcpy(out, f.v, (f.n < max ? f.n : max) * sizeof(*out));
    free(f.v);
    free(f.eptps);
    return 0;
}

void ms_vmcs12_cpu_state(const uint8_t *p, struct ms_cpu_state *out)
{
    cpu_state_at(p, &vmcs12_state, out);
}

/* A vmcs12 whose EPT is enabled and whose EPTP points at root's table. */
static bool vmcs12_runs(const uint8_t *p, uint64_t gpa, uint64_t root, struct ms_candidate *c)
{
    return vmcs12_decode(p, gpa, c) && (u32_at(p, V12_SECONDARY_CTLS) & SECONDARY_ENABLE_EPT) &&
           eptp_valid(c->root) && !((c->root ^ root) & PTE_ADDR_MASK);
}

int ms_discover_vcpu_states(struct ms_ram *ram, enum ms_cand_kind kind, uint64_t root,
                            struct ms_vcpu_state *out, unsigned max, unsigned *count,
                            struct ms_err *err)
{
    uint8_t page[4096];
    *count = 0;
    if (kind != MS_CAND_VMCB && kind != MS_CAND_VMCS12)
        return ms_err_set(err, MS_EINVAL, "a %s holds no vCPU state", ms_cand_kind_name(kind));
    for (unsigned r = 0; r < ram->layout.count; r++) {
        const struct ms_region *reg = &ram->layout.regions[r];
        uint64_t first = (reg->gpa + 4095) & ~4095ULL;
        for (uint64_t a = first; a + 4096 <= reg->gpa + reg->len; a += 4096) {
            /* a word or two first: a page read costs more than this test */
            size_t head = kind == MS_CAND_VMCB ? 8 + VMCB_INTERCEPT_VMRUN : 4;
            if (ms_ram_read(ram, a, page, head, NULL, err))
                return 0; /* a file that shrank: keep what was found */
            struct ms_candidate c;
            if (kind == MS_CAND_VMCB ? !(u32_at(page, VMCB_INTERCEPT_VMRUN) & 1)
                                     : (u32_at(page, 0) & 0x7fffffffu) != VMCS12_REVISION)
                continue;
            if (ms_ram_read(ram, a, page, sizeof(page), NULL, err))
                return 0;
            bool runs = kind == MS_CAND_VMCB
                            ? ms_vmcb_decode(page, a, &c) == 0 &&
                                  (c.root & PTE_ADDR_MASK) == (root & PTE_ADDR_MASK)
                            : vmcs12_runs(page, a, root, &c);
            if (!runs)
                continue;
            if (*count < max) {
                out[*count].cand = c;
                if (kind == MS_CAND_VMCB)
                    ms_vmcb_cpu_state(page, &out[*count].regs);
                else
                    ms_vmcs12_cpu_state(page, &out[*count].regs);
            }
            ++*count;
        }
    }
    return 0;
}

/* L1's KVM keeps a vCPU's general registers in struct kvm_vcpu_arch's
 * regs[NR_VCPU_REGS] (enum kvm_reg): RAX RCX RDX RBX RSP RBP RSI RDI R8-R15
 * RIP. SVM stores them all there at a #VMEXIT, RAX, RSP and RIP copied
 * from the VMCB, and loads the VMCB from them at VMRUN: an array whose
 * RSP and RIP (and RAX) are a VMCB's saved ones holds the registers the
 * VMCB lacks. (VMX reads RSP and RIP back lazily: a vmcs12's often match
 * no such array, and are then left as they are.) */
#define KVM_REGS 17
#define KVM_REG_RSP 4
#define KVM_REG_RIP 16
#define KVM_REGS_SPAN (KVM_REGS * 8)
#define KVM_RIP_AT (KVM_REG_RIP * 8) /* from the array's start */

struct gpr_match {
    uint64_t v[KVM_REGS];
    unsigned found; /* 0, 1, or 2: another array with other values */
};

static void match_gprs(const uint8_t *win, unsigned at, const struct ms_vcpu_state *v, unsigned n,
                       struct gpr_match *m)
{
    uint64_t word = u64_at(win, at);
    for (unsigned i = 0; i < n; i++) {
        const struct ms_cpu_state *r = &v[i].regs;
        if (word != r->rip || !word || !r->rsp || m[i].found > 1 ||
            u64_at(win, at - KVM_RIP_AT + 8 * KVM_REG_RSP) != r->rsp)
            continue;
        if (r->known == MS_CPU_SAVE_AREA && u64_at(win, at - KVM_RIP_AT) != r->rax)
            continue;
        uint64_t got[KVM_REGS];
        memcpy(got, win + at - KVM_RIP_AT, sizeof(got));
        if (m[i].found && memcmp(got, m[i].v, sizeof(got)))
            m[i].found = 2; /* two arrays disagree: neither is taken */
        else if (!m[i].found)
            memcpy(m[i].v, got, sizeof(got)), m[i].found = 1;
    }
}

int ms_discover_saved_gprs(struct ms_ram *ram, struct ms_vcpu_state *v, unsigned n,
                           struct ms_err *err)
{
    if (!n)
        return 0;
    struct gpr_match *m = calloc(n, sizeof(*m));
    if (!m)
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    /* the last span of the page before, then the page: an array may
     * straddle two pages */
    uint8_t win[KVM_REGS_SPAN + 4096];
    for (unsigned r = 0; r < ram->layout.count; r++) {
        const struct ms_region *reg = &ram->layout.regions[r];
        uint64_t first = (reg->gpa + 4095) & ~4095ULL;
        bool carried = false;
        for (uint64_t a = first; a + 4096 <= reg->gpa + reg->len; a += 4096) {
            if (carried)
                memcpy(win, win + 4096, KVM_REGS_SPAN);
            if (ms_ram_read(ram, a, win + KVM_REGS_SPAN, 4096, NULL, err))
                break; /* a file that shrank: keep what was found */
            unsigned from = carried ? KVM_REGS_SPAN : KVM_REGS_SPAN + KVM_RIP_AT;
            for (unsigned at = from; at + 8 <= sizeof(win); at += 8)
                match_gprs(win, at, v, n, m);
            carried = true;
        }
    }
    for (unsigned i = 0; i < n; i++) {
        struct ms_cpu_state *c = &v[i].regs;
        if (m[i].found != 1)
            continue;
        const uint64_t *g = m[i].v;
        c->rax = g[0], c->rcx = g[1], c->rdx = g[2], c->rbx = g[3], c->rbp = g[5];
        c->rsi = g[6], c->rdi = g[7], c->r8 = g[8], c->r9 = g[9], c->r10 = g[10];
        c->r11 = g[11], c->r12 = g[12], c->r13 = g[13], c->r14 = g[14], c->r15 = g[15];
        c->gprs = true;
    }
    free(m);
    return 0;
}
