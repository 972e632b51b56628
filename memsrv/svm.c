#include "svm.h"

#include <string.h>

static uint64_t u64_at(const uint8_t *p, unsigned off)
{
    uint64_t v;
    memcpy(&v, p + off, sizeof(v));
    return v;
}

static uint32_t u32_at(const uint8_t *p, unsigned off)
{
    uint32_t v;
    memcpy(&v, p + off, sizeof(v));
    return v;
}

/* Classifies one page; returns true when it is a VMCB or host-save area. */
static bool classify(struct ms_ram *ram, uint64_t gpa, const uint8_t *p, struct ms_svm_page *out)
{
    uint64_t efer = u64_at(p, VMCB_SAVE_EFER);
    if (!(efer & EFER_SVME) || efer >> 16)
        return false;
    memset(out, 0, sizeof(*out));
    out->gpa = gpa;
    out->efer = efer;
    out->cr0 = u64_at(p, VMCB_SAVE_CR0);
    out->cr3 = u64_at(p, VMCB_SAVE_CR3);
    out->cr4 = u64_at(p, VMCB_SAVE_CR4);
    out->rip = u64_at(p, VMCB_SAVE_RIP);
    out->rsp = u64_at(p, VMCB_SAVE_RSP);
    bool zero = true;
    for (unsigned i = 0; i < VMCB_CONTROL_SIZE && zero; i += 8)
        zero = u64_at(p, i) == 0;
    if (zero) {
        out->hsave = true;
        return (out->cr0 & (1ULL << 31)) && (efer & EFER_LMA);
    }
    uint64_t ncr3 = u64_at(p, VMCB_NCR3);
    if (!(u32_at(p, VMCB_INTERCEPT_MISC2) & 1) || !(u64_at(p, VMCB_NP_ENABLE) & 1) || !ncr3 ||
        (ncr3 & 0xfff) || !ms_ram_contains(ram, ncr3, 4096))
        return false;
    out->ncr3 = ncr3;
    out->asid = u32_at(p, VMCB_GUEST_ASID);
    out->exitcode = u64_at(p, VMCB_EXITCODE);
    return true;
}

int ms_svm_scan(struct ms_ram *ram, struct ms_svm_page *pages, unsigned max, unsigned *count,
                struct ms_err *err)
{
    uint8_t page[VMCB_SAVE_RSP + 8];
    unsigned n = 0;
    for (unsigned r = 0; r < ram->layout.count; r++) {
        const struct ms_region *reg = &ram->layout.regions[r];
        uint64_t first = (reg->gpa + 4095) & ~4095ULL;
        for (uint64_t gpa = first; gpa - reg->gpa + 4096 <= reg->len && gpa >= first; gpa += 4096) {
            /* The EFER test rejects nearly every page after one 8-byte read. */
            uint64_t efer;
            int rc = ms_ram_read_u64(ram, gpa + VMCB_SAVE_EFER, &efer, err);
            if (rc)
                return rc;
            if (!(efer & EFER_SVME) || efer >> 16)
                continue;
            rc = ms_ram_read(ram, gpa, page, sizeof(page), NULL, err);
            if (rc)
                return rc;
            struct ms_svm_page found;
            if (!classify(ram, gpa, page, &found))
                continue;
            if (n < max)
                pages[n] = found;
            n++;
        }
    }
    *count = n;
    return 0;
}
