/* Finds nested-virtualization roots in L1 RAM without being told: AMD VMCBs
 * (nCR3, L2 CR3/RIP, ASID) and the HSAVE pages of L1's own state, KVM
 * vmcs12 pages (EPTP, L2 CR3/RIP, VPID), and page-table trees shaped like
 * Intel EPT. Candidates with impossible fields (a CR3 that is not a
 * physical address, a non-canonical RIP, reserved control bits) are
 * dropped; the rest are scored by what they prove: the root maps the L2
 * CR3, then the L2 RIP, then reaches L2's kernel (VMCOREINFO, read back
 * through the kernel's own page tables). An NPT or bare EPT root whose
 * depth is not architectural is tried at 4 and 5 levels and keeps the depth
 * that proves more; on a tie, an NPT takes the depth of L1's proven HSAVE
 * pages, a bare EPT tree the depth its own leaves and an EPTP for its root
 * in a VMCS region tell, when they agree. */
#ifndef MEMSRV_DISCOVER_H
#define MEMSRV_DISCOVER_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "ram.h"

/* Scans every page of RAM; fills up to max candidates sorted by score,
 * best first; *count gets how many were found (may exceed max). */
int ms_discover(struct ms_ram *ram, struct ms_candidate *out, unsigned max, unsigned *count,
                ms_progress_fn progress, void *progress_arg, struct ms_err *err);

/* Whether the candidate's second stage was proven to reach a Linux kernel
 * (whose VMCOREINFO is in RAM). */
bool ms_cand_reaches_kernel(const struct ms_candidate *c);

/* A VMCB page (4096 bytes at gpa) decoded as a candidate, unproven (no
 * score, vcpu -1): 0, or -1 when its fields are impossible for one. */
int ms_vmcb_decode(const uint8_t *page, uint64_t gpa, struct ms_candidate *out);
/* The guest state its save area holds (known: MS_CPU_SAVE_AREA). */
void ms_vmcb_cpu_state(const uint8_t *page, struct ms_cpu_state *out);

/* A vmcs12 page's guest state (known: MS_CPU_VMCS12: rip, rsp, rflags, the
 * FS/GS bases and control registers; KVM writes it back to L1's memory when
 * L1 switches or clears it, so it is the state of that moment). */
void ms_vmcs12_cpu_state(const uint8_t *page, struct ms_cpu_state *out);

/* A VMCB or vmcs12 running a given nested guest, and the state it saved. */
struct ms_vcpu_state {
    struct ms_candidate cand; /* gpa: the VMCB's or vmcs12's page */
    struct ms_cpu_state regs;
};

/* Every VMCB (kind MS_CAND_VMCB) whose nCR3 is root, or every vmcs12
 * (MS_CAND_VMCS12) with EPT on whose EPTP points at root's table: the
 * nested guest's vCPUs, one each. Up to max in out, *count how many (may
 * exceed max). */
int ms_discover_vcpu_states(struct ms_ram *ram, enum ms_cand_kind kind, uint64_t root,
                            struct ms_vcpu_state *out, unsigned max, unsigned *count,
                            struct ms_err *err);

/* Completes each state (a VMCB's or vmcs12's, rip and rsp known) from the
 * copy of the vCPU's general registers L1's KVM keeps (struct
 * kvm_vcpu_arch regs[]) when one array in RAM matches it, and no other
 * disagrees: then gprs is set. A full pass over RAM for all of them. */
int ms_discover_saved_gprs(struct ms_ram *ram, struct ms_vcpu_state *v, unsigned n,
                           struct ms_err *err);

#endif
