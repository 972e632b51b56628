#include "vcpus.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

/* __per_cpu_offset[] of the CPUs the kernel set up (nr_cpu_ids of them). */
static int percpu_offsets(struct ms_kernel *k, uint64_t **out, uint32_t *n, struct ms_err *err)
{
    uint64_t table, ids_at;
    uint32_t ids = 0;
    int rc = ms_kernel_symbol(k, "__per_cpu_offset", &table, err);
    if (rc == 0)
        rc = ms_kernel_symbol(k, "nr_cpu_ids", &ids_at, err);
    if (rc == 0)
        rc = ms_space_read(k->space, ids_at, &ids, sizeof(ids), NULL, err);
    if (rc < 0)
        return ms_err_prefix(err, "the kernel's per-CPU offsets: ");
    if (ids == 0 || ids > MS_PERCPU_MAX)
        return ms_err_set(err, MS_EFORMAT, "nr_cpu_ids is %" PRIu32 " (1 to %u expected)", ids,
                          MS_PERCPU_MAX);
    uint64_t *v = malloc(ids * sizeof(*v));
    if (!v)
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    rc = ms_space_read(k->space, table, v, ids * sizeof(*v), NULL, err);
    if (rc < 0) {
        free(v);
        return ms_err_prefix(err, "reading __per_cpu_offset[%" PRIu32 "]: ", ids);
    }
    *out = v;
    *n = ids;
    return 0;
}

int ms_kernel_percpu_cpu(struct ms_kernel *k, uint64_t base, uint32_t *cpu, struct ms_err *err)
{
    uint64_t *off;
    uint32_t n;
    int rc = percpu_offsets(k, &off, &n, err);
    if (rc < 0)
        return rc;
    uint32_t i = 0;
    while (i < n && off[i] != base)
        i++;
    free(off);
    if (i == n)
        return ms_err_set(err, MS_ENOTFOUND,
                          "0x%" PRIx64 " is none of the %" PRIu32 " CPUs' __per_cpu_offset", base,
                          n);
    uint64_t at;
    uint32_t number;
    if ((rc = ms_kernel_symbol(k, "cpu_number", &at, err)) < 0 ||
        (rc = ms_space_read(k->space, base + at, &number, sizeof(number), NULL, err)) < 0)
        return ms_err_prefix(err, "CPU %" PRIu32 "'s cpu_number: ", i);
    if (number != i)
        return ms_err_set(err, MS_ENOTFOUND,
                          "0x%" PRIx64 " is __per_cpu_offset[%" PRIu32
                          "], but the cpu_number there is %" PRIu32,
                          base, i, number);
    *cpu = i;
    return 0;
}

int ms_kernel_saved_cpu(struct ms_kernel *k, const struct ms_candidate *saved, uint32_t *cpu,
                        char *how, size_t how_size, struct ms_err *err)
{
    const struct {
        const char *name;
        uint64_t base;
    } bases[2] = {{"GS base", saved->gs_base}, {"KERNEL_GS_BASE", saved->kernel_gs_base}};
    int rc = MS_ENOTFOUND;
    for (unsigned i = 0; i < 2; i++) {
        if (!bases[i].base)
            continue;
        rc = ms_kernel_percpu_cpu(k, bases[i].base, cpu, err);
        if (rc == 0) {
            snprintf(how, how_size, "%s 0x%" PRIx64 " is __per_cpu_offset[%" PRIu32 "]",
                     bases[i].name, bases[i].base, *cpu);
            return 0;
        }
        if (rc != MS_ENOTFOUND)
            break;
    }
    if (rc == MS_ENOTFOUND)
        ms_err_set(err, MS_ENOTFOUND,
                   "neither GS base 0x%" PRIx64 " nor KERNEL_GS_BASE 0x%" PRIx64
                   " is a CPU's per-CPU offset",
                   saved->gs_base, saved->kernel_gs_base);
    snprintf(how, how_size, "%s", err->msg);
    return err->code;
}

int ms_kernel_current_task(struct ms_kernel *k, uint32_t cpu, uint64_t *task, struct ms_err *err)
{
    uint64_t *off, at;
    uint32_t n;
    int rc = percpu_offsets(k, &off, &n, err);
    if (rc < 0)
        return rc;
    if (cpu >= n) {
        free(off);
        return ms_err_set(err, MS_ENOTFOUND, "no CPU %" PRIu32 ": the kernel has %" PRIu32, cpu, n);
    }
    uint64_t base = off[cpu];
    free(off);
    /* 6.1's per-CPU current_task; pcpu_hot.current_task from 6.2 on */
    if ((rc = ms_kernel_symbol(k, "current_task", &at, err)) < 0 &&
        (rc = ms_kernel_symbol(k, "pcpu_hot", &at, err)) < 0)
        return ms_err_prefix(err, "the task on CPU %" PRIu32 ": ", cpu);
    if ((rc = ms_space_read(k->space, base + at, task, sizeof(*task), NULL, err)) < 0)
        return ms_err_prefix(err, "CPU %" PRIu32 "'s current_task: ", cpu);
    return 0;
}
