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


/* Scans every page of RAM; fills up to max candidates sorted by score,
 * best first; *count gets how many were found (may exceed max). */
int ms_discover(struct ms_ram *ram, struct ms_candidate *out, unsigned max, unsigned *count,
                ms_progress_fn progress, void *progress_arg, struct ms_err *err);


#endif
