/* Finds nested-virtualization roots in L1 RAM without being told: AMD VMCBs
 * (nCR3, L2 CR3/RIP, ASID) and the HSAVE pages of L1's own state, KVM
 * vmcs12 pages (EPTP, L2 CR3/RIP, VPID), and page-table trees shaped like
 * Intel EPT. Candidates with impossible fields (a CR3 that is not a
 * physical address, a non-canonical RIP, reserved control bits) are
 * dropped; the rest are scored by what they prove: the root maps the L2
 * CR3, then the L2 RIP, then reaches L2's kernel (VMCOREINFO, read back
 * through the kernel's own page tables). An NPT or bare EPT root whose
 * depth is not architectural is tried at 4 and 5 levels and keeps the depth
 * that proves more (on a tie, the NPT depth of L1's proven HSAVE pages). */
#ifndef MEMSRV_DISCOVER_H
#define MEMSRV_DISCOVER_H

#include <stdint.h>

#include "error.h"
#include "ram.h"

/* Scans every page of RAM; fills up to max candidates sorted by score,
 * best first; *count gets how many were found (may exceed max). */
int ms_discover(struct ms_ram *ram, struct ms_candidate *out, unsigned max, unsigned *count,
                ms_progress_fn progress, void *progress_arg, struct ms_err *err);

#endif
