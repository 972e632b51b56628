/* Writing a kdump-style ELF vmcore of one guest-physical space (RAM, or a
 * nested guest's memory through its second stage) that crash and drgn open
 * as they open the kernel's own /proc/vmcore: one PT_NOTE first (an
 * NT_PRSTATUS per CPU with the pid of the task running there, and the
 * guest's VMCOREINFO text), a PT_LOAD for the kernel image at its virtual
 * address, and one PT_LOAD per backed range at page_offset_base + start
 * (p_align 0: crash's kdump path). Pages of zeros are not written (the
 * file is sparse); pages that cannot be read stay holes, as zeros. */
#ifndef MEMSRV_VMCORE_H
#define MEMSRV_VMCORE_H

#include <stddef.h>
#include <stdint.h>

#include "kernel.h"
#include "memsrv.h"
#include "physscan.h"

/* crash and drgn read every PT_LOAD; e_phnum is 16 bits. Ranges beyond this
 * are merged across their smallest gaps (the gap stays a hole). */
#define MS_VMCORE_MAX_LOADS 16384

struct ms_vmcore_cpu {
    int32_t pid;                     /* the task running there (0: idle or unknown) */
    const struct ms_cpu_state *regs; /* NULL: zeros */
};

/* Everything the file holds, gathered; ms_vmcore_write() only reads memory
 * and writes. */
struct ms_vmcore_spec {
    struct ms_space *phys; /* guest-physical: every PT_LOAD's bytes come from here */
    const struct ms_phys_range *ranges;
    size_t nranges;                         /* sorted, not overlapping, page-aligned */
    uint64_t page_offset;                   /* the direct map's base (page_offset_base) */
    uint64_t image_va, image_pa, image_len; /* the kernel image (_text.._end); len 0: none */
    const char *vmcoreinfo;
    size_t vmcoreinfo_len;
    const struct ms_vmcore_cpu *cpus;
    unsigned ncpus;
};

/* Merges ranges[] in place across the smallest gaps until at most max
 * remain; returns the new count. */
size_t ms_vmcore_merge_ranges(struct ms_phys_range *ranges, size_t n, size_t max);

int ms_vmcore_write(const struct ms_vmcore_spec *spec, const char *path, ms_progress_fn progress,
                    void *progress_arg, struct ms_vmcore_info *info, struct ms_err *err);

/* The whole export from a kernel found in phys (k->phys): its VMCOREINFO,
 * symbols (a symbol file or its kallsyms, already loaded), the running
 * task per CPU (pids need task_struct's layout: DWARF, else the
 * kernel's BTF; else 0),
 * registers from regs[0..nregs) when given (a dump's CPU notes). */
int ms_vmcore_export(struct ms_kernel *k, const struct ms_cpu_state *regs, unsigned nregs,
                     const char *path, ms_progress_fn progress, void *progress_arg,
                     struct ms_vmcore_info *info, struct ms_err *err);

#endif
