/* A Linux kernel's CPUs seen from outside it: which CPU a saved GS base
 * names, and the task running on a CPU. x86-64 Linux keeps per-CPU data
 * zero-based: in the kernel GS base is the CPU's __per_cpu_offset[cpu]; in
 * user mode (after swapgs) KERNEL_GS_BASE holds it. So the VMCBs of a
 * nested guest (one per vCPU) say which of its CPUs each one is with no
 * symbol or type of the hypervisor's kernel: KVM's struct kvm_vcpu holds
 * vcpu_id too, but its layout is L1's build's, while L2's kallsyms memsrv
 * reads through the nested paging anyway. A per-CPU area's own cpu_number
 * confirms the match. */
#ifndef MEMSRV_VCPUS_H
#define MEMSRV_VCPUS_H

#include <stdint.h>

#include "discover.h"
#include "error.h"
#include "kernel.h"

#define MS_PERCPU_MAX 8192 /* NR_CPUS of distribution kernels */

/* The CPU whose per-CPU area is at base: 0 and *cpu, or MS_ENOTFOUND when
 * no CPU's is (or its cpu_number disagrees). */
int ms_kernel_percpu_cpu(struct ms_kernel *k, uint64_t base, uint32_t *cpu, struct ms_err *err);

/* The CPU a VMCB's or vmcs12's saved state ran on: its GS base, else (user
 * mode) its KERNEL_GS_BASE (a VMCB's only), as a per-CPU area of k. how
 * gets "GS base 0x.. is __per_cpu_offset[1]" or why not. */
int ms_kernel_saved_cpu(struct ms_kernel *k, const struct ms_candidate *saved, uint32_t *cpu,
                        char *how, size_t how_size, struct ms_err *err);

/* The task running on cpu: its per-CPU current_task. */
int ms_kernel_current_task(struct ms_kernel *k, uint32_t cpu, uint64_t *task, struct ms_err *err);

#endif
