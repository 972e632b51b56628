/* Finds nested-virtualization roots in L1 RAM without being told: AMD VMCBs
 * (nCR3, L2 CR3/RIP, ASID) and the HSAVE page that gives the NPT depth,
 * KVM vmcs12 pages (EPTP, L2 CR3/RIP, VPID), and page-table trees shaped
 * like Intel EPT. Each candidate carries its evidence and a score; the
 * strongest evidence is that the root translates the L2 CR3 it came with. */
#ifndef MEMSRV_DISCOVER_H
#define MEMSRV_DISCOVER_H

#include <stdint.h>

#include "error.h"
#include "ram.h"

enum ms_cand_kind {
    MS_CAND_VMCB = 1, /* AMD VMCB with nested paging enabled */
    MS_CAND_HSAVE,    /* AMD host-save area: L1's own state while L2 runs */
    MS_CAND_VMCS12,   /* KVM's software VMCS for an L2 (revision 0x11e57ed0) */
    MS_CAND_EPT,      /* a page that looks like an EPT PML4 (or PML5) table */
};

struct ms_candidate {
    enum ms_cand_kind kind;
    uint64_t gpa;         /* the page it was found in */
    uint64_t root;        /* nCR3, EPTP, or (MS_CAND_EPT) a WB 4-level EPTP for gpa */
    unsigned root_levels; /* NPT/EPT depth; 0 when it could not be told */
    uint64_t cr0, cr3, cr4, efer, rip, rsp; /* L2's (HSAVE: L1's) saved state */
    uint32_t asid;                          /* VMCB ASID or vmcs12 VPID */
    int score;                              /* higher is more believable */
    char evidence[400];
};

/* Scans every page of RAM; fills up to max candidates sorted by score,
 * best first; *count gets how many were found (may exceed max). */
int ms_discover(struct ms_ram *ram, struct ms_candidate *out, unsigned max, unsigned *count,
                struct ms_err *err);

const char *ms_cand_kind_name(enum ms_cand_kind kind);

#endif
