#include "discover.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "progress.h"
#include "pte.h"
#include "space.h"

/* AMD APM vol. 2, appendix B (VMCB layout); checked on a real KVM-on-TCG
 * VMCB (notes/qemu.md s.5): intercept word at 0x10 (bit 0 VMRUN), ASID at
 * 0x58, NP_ENABLE at 0x90 bit 0, nested_cr3 at 0xB0; the save area at 0x400
 * with EFER at +0xD0, CR4 +0x148, CR3 +0x150, CR0 +0x158, RIP +0x178,
 * RSP +0x1D8. */
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
#define EFER_SVME (1ULL << 12)
#define EFER_LMA (1ULL << 10)
#define CR0_PG (1ULL << 31)
#define CR4_LA57 (1ULL << 12)

/* Linux arch/x86/kvm/vmx/vmcs12.h (VMCS12_REVISION and its CHECK_OFFSETs). */
#define VMCS12_REVISION 0x11e57ed0u
#define V12_LAUNCH_STATE 8
#define V12_EPT_POINTER 120
#define V12_GUEST_EFER 200
#define V12_GUEST_CR0 424
#define V12_GUEST_CR3 432
#define V12_GUEST_CR4 440
#define V12_GUEST_RSP 536
#define V12_GUEST_RIP 544
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

struct found {
    struct ms_candidate *v;
    unsigned n, cap;
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
    if (f->n == f->cap) {
        unsigned cap = f->cap ? f->cap * 2 : 16;
        struct ms_candidate *v = realloc(f->v, cap * sizeof(*v));
        if (!v)
            return ms_err_set(err, MS_ENOMEM, "out of memory");
        f->v = v;
        f->cap = cap;
    }
    f->v[f->n++] = *c;
    return 0;
}

/* Does the second stage (NPT or EPT at root) translate the L2 CR3, and
 * (with paging on) the L2 RIP through paging over it? Returns points. */
static int try_root(struct ms_ram *ram, bool ept, uint64_t root, unsigned levels,
                    struct ms_candidate *c)
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
    struct ms_xlat x;
    if (ms_space_translate(second, c->cr3 & PTE_ADDR_MASK, &x, NULL, &err) == 0) {
        points += 10;
        ev_add(c, "; %u-level %s maps L2 CR3 0x%llx -> 0x%llx", second->levels, ept ? "EPT" : "NPT",
               (unsigned long long)(c->cr3 & PTE_ADDR_MASK), (unsigned long long)x.phys);
    } else {
        ev_add(c, "; L2 CR3 does not translate: %s", err.msg);
        goto out;
    }
    if ((c->cr0 & CR0_PG) && (c->efer & EFER_LMA)) {
        unsigned l2levels = (c->cr4 & CR4_LA57) ? 5 : 4;
        if (ms_space_paging(&pg, second, c->cr3, l2levels, &err) == 0 &&
            ms_space_translate(pg, c->rip, &x, NULL, &err) == 0) {
            points += 5;
            ev_add(c, "; L2 RIP 0x%llx -> 0x%llx", (unsigned long long)c->rip,
                   (unsigned long long)x.phys);
        } else {
            ev_add(c, "; L2 RIP does not translate");
        }
    }
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

static int check_vmcb(struct ms_ram *ram, uint64_t gpa, const uint8_t *p, struct found *f,
                      struct ms_err *err)
{
    uint64_t ncr3 = u64_at(p, VMCB_NCR3), efer = u64_at(p, SAVE_EFER);
    if (!(u32_at(p, VMCB_INTERCEPT_VMRUN) & 1) || !(u64_at(p, VMCB_NP_ENABLE) & 1) ||
        !(efer & EFER_SVME) || (ncr3 & 0xfff & ~0x18ULL) || (ncr3 & PTE_ADDR_MASK) == 0 ||
        !in_ram(ram, ncr3 & PTE_ADDR_MASK))
        return 0;
    struct ms_candidate c = candidate_at(MS_CAND_VMCB, gpa, p, &vmcb_save);
    c.root = ncr3;
    c.asid = u32_at(p, VMCB_ASID);
    c.score = 10;
    snprintf(c.evidence, sizeof(c.evidence),
             "VMRUN intercepted, NP_ENABLE, EFER.SVME, nCR3 0x%llx in RAM, ASID %u",
             (unsigned long long)ncr3, c.asid);
    return push(f, &c, err);
}

static int check_hsave(uint64_t gpa, const uint8_t *p, struct found *f, struct ms_err *err)
{
    /* QEMU's VMRUN saves the host into the save-area layout and leaves the
     * control area zero. */
    for (unsigned i = 0; i < 0x100; i += 8)
        if (u64_at(p, i))
            return 0;
    uint64_t efer = u64_at(p, SAVE_EFER), cr0 = u64_at(p, SAVE_CR0);
    uint64_t rip = u64_at(p, SAVE_RIP);
    if (!(efer & EFER_SVME) || !(efer & EFER_LMA) || !(cr0 & CR0_PG) || (rip >> 47) != 0x1ffff)
        return 0;
    struct ms_candidate c = candidate_at(MS_CAND_HSAVE, gpa, p, &vmcb_save);
    c.root_levels = (c.cr4 & CR4_LA57) ? 5 : 4;
    c.score = 8;
    snprintf(c.evidence, sizeof(c.evidence),
             "zero control area, EFER.SVME|LMA, paging on, kernel RIP 0x%llx: L1 state "
             "(CR3 0x%llx, CR4.LA57=%d -> NPT is %u-level)",
             (unsigned long long)rip, (unsigned long long)c.cr3, !!(c.cr4 & CR4_LA57),
             c.root_levels);
    return push(f, &c, err);
}

static bool eptp_valid(uint64_t eptp)
{
    unsigned walk = (unsigned)((eptp >> 3) & 7) + 1, mt = (unsigned)(eptp & 7);
    return (walk == 4 || walk == 5) && (mt == 0 || mt == 6) && !(eptp & 0xf00) && (eptp >> 52) == 0;
}

static int check_vmcs12(struct ms_ram *ram, uint64_t gpa, const uint8_t *p, struct found *f,
                        struct ms_err *err)
{
    if ((u32_at(p, 0) & 0x7fffffffu) != VMCS12_REVISION || u32_at(p, V12_LAUNCH_STATE) > 1)
        return 0;
    struct ms_candidate c = candidate_at(MS_CAND_VMCS12, gpa, p, &vmcs12_guest);
    c.root = u64_at(p, V12_EPT_POINTER);
    c.asid = (uint16_t)u32_at(p, V12_VPID);
    c.score = 10;
    snprintf(c.evidence, sizeof(c.evidence), "vmcs12 revision 0x%x, launch state %u",
             VMCS12_REVISION, u32_at(p, V12_LAUNCH_STATE));
    if (!(u32_at(p, V12_SECONDARY_CTLS) & SECONDARY_ENABLE_EPT)) {
        ev_add(&c, "; EPT not enabled in secondary controls");
    } else if (!eptp_valid(c.root) || !in_ram(ram, c.root & PTE_ADDR_MASK)) {
        ev_add(&c, "; EPTP 0x%llx is not a valid EPTP into RAM", (unsigned long long)c.root);
    } else {
        c.score += 5;
        c.root_levels = (unsigned)((c.root >> 3) & 7) + 1;
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
        int k = ept_entry_ok(ram, u64_at(p, 8 * i), allow_1g);
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
    c.kind = MS_CAND_EPT;
    c.gpa = gpa;
    c.root = gpa | 6 | (3 << 3);
    c.score = 3 + (int)good;
    snprintf(c.evidence, sizeof(c.evidence),
             "%d present entries all EPT-shaped (R/W/X, bits 7:3 clear), %u of %u children "
             "EPT-shaped; depth unknown (4 assumed in root)",
             present, good, tried);
    return push(f, &c, err);
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
                rc = check_hsave(a, page, &f, err);
            if (!rc)
                rc = check_vmcs12(ram, a, page, &f, err);
            if (!rc)
                rc = check_ept_tree(ram, a, page, &f, err);
        }
        done += reg->len;
    }
    ms_progress_end(&pr);
    if (rc) {
        free(f.v);
        return rc;
    }
    /* NPT depth: from the HSAVE CR4.LA57 when there is one (a 5-level NPT
     * walked as 4-level can give plausible wrong answers), else whichever
     * depth translates the L2 CR3, else unknown. */
    unsigned hsave_levels = 0;
    for (unsigned i = 0; i < f.n; i++)
        if (f.v[i].kind == MS_CAND_HSAVE)
            hsave_levels = f.v[i].root_levels;
    for (unsigned i = 0; i < f.n; i++) {
        struct ms_candidate *c = &f.v[i];
        if (c->kind == MS_CAND_VMCB) {
            if (hsave_levels) {
                c->root_levels = hsave_levels;
                c->score += 3;
                ev_add(c, "; depth %u from HSAVE", hsave_levels);
                c->score += try_root(ram, false, c->root, hsave_levels, c);
            } else {
                struct ms_candidate t4 = *c, t5 = *c;
                int p4 = try_root(ram, false, c->root, 4, &t4);
                int p5 = try_root(ram, false, c->root, 5, &t5);
                if (p4 > p5 || p5 > p4) {
                    *c = p4 > p5 ? t4 : t5;
                    c->root_levels = p4 > p5 ? 4 : 5;
                    c->score += p4 > p5 ? p4 : p5;
                } else {
                    c->score += p4;
                    ev_add(c, "; no HSAVE found and both NPT depths agree: depth unknown");
                }
            }
        } else if (c->kind == MS_CAND_VMCS12 && c->root_levels) {
            c->score += try_root(ram, true, c->root, c->root_levels, c);
        }
    }
    if (f.n)
        qsort(f.v, f.n, sizeof(*f.v), by_score);
    *count = f.n;
    if (out && f.n && max)
        memcpy(out, f.v, (f.n < max ? f.n : max) * sizeof(*out));
    free(f.v);
    return 0;
}
