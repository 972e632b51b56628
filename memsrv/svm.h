/* Finding AMD SVM state in guest RAM: the VMCB a hypervisor (L1) uses to run
 * its nested guest (L2), and the host-save area where VMRUN stored L1's own
 * state. While the vCPU runs L2, QEMU shows L2's registers only; these pages
 * give the NPT root (nCR3), L1's CR3 and CR4 (whose LA57 sets the NPT
 * depth), and L2's CR3 at the last #VMEXIT. APM vol. 2, appendix B. */
#ifndef MEMSRV_SVM_H
#define MEMSRV_SVM_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "ram.h"

/* Offsets in the VMCB (control area, then the state-save area at 0x400). */
#define VMCB_INTERCEPT_MISC2 0x010 /* bit 0: VMRUN intercept (always set) */
#define VMCB_GUEST_ASID 0x058
#define VMCB_EXITCODE 0x070
#define VMCB_NP_ENABLE 0x090 /* bit 0: nested paging */
#define VMCB_NCR3 0x0b0
#define VMCB_CONTROL_SIZE 0x400
#define VMCB_SAVE_EFER 0x4d0
#define VMCB_SAVE_CR4 0x548
#define VMCB_SAVE_CR3 0x550
#define VMCB_SAVE_CR0 0x558
#define VMCB_SAVE_RIP 0x578
#define VMCB_SAVE_RSP 0x5d8

#define EFER_SVME (1ULL << 12)
#define EFER_LMA (1ULL << 10)

struct ms_svm_page {
    uint64_t gpa;
    bool hsave; /* host-save area (control area all zero), else a VMCB */
    /* VMCB only */
    uint64_t ncr3;
    uint32_t asid;
    uint64_t exitcode;
    /* the state-save area: L2's state at the last #VMEXIT (VMCB) or L1's
     * state at VMRUN (host-save area) */
    uint64_t efer, cr0, cr3, cr4, rip, rsp;
};

/* Scans every 4 KiB page of RAM. A VMCB: VMRUN intercepted, nested paging
 * on, nCR3 page-aligned and inside RAM, saved EFER with SVME and no
 * reserved bits. A host-save area: control area all zero, saved EFER with
 * SVME and LMA, CR0.PG set. Fills up to max pages (in address order) and
 * sets *count to the number found (which may exceed max). */
int ms_svm_scan(struct ms_ram *ram, struct ms_svm_page *pages, unsigned max, unsigned *count,
                struct ms_err *err);

#endif
