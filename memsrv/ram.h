/* Guest RAM sources: a raw memory-backend-file (mmap, MAP_SHARED so a live
 * guest's writes show) or a QEMU dump-guest-memory ELF file, addressed by
 * guest-physical address through a region table. Reads are guarded against
 * SIGBUS so a file that shrinks under the mapping gives MS_EBUS, not death. */
#ifndef MEMSRV_RAM_H
#define MEMSRV_RAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "layout.h"

struct ms_ram_source {
    char *path;
    int fd;
    uint8_t *map;      /* whole file, PROT_READ (| PROT_WRITE when writable) */
    uint64_t size;     /* bytes the regions may use (shrinks with the file) */
    uint64_t map_size; /* bytes mapped at open time */
};

enum ms_ram_flags {
    MS_RAM_WRITABLE = 1 << 0, /* map read-write; default is read-only */
};

struct ms_ram {
    struct ms_ram_source *sources;
    unsigned nsources;
    struct ms_layout layout; /* regions sorted by gpa */
    bool writable;
    /* Bumped by ms_ram_flush(); every translation cache entry older than
     * this is stale. One counter for the whole stack keeps flushing simple
     * and never wrong. */
    uint64_t generation;
    /* From an ELF dump, else empty. */
    struct ms_cpu_state *cpus;
    unsigned ncpus;
    char *vmcoreinfo; /* NUL-terminated text, or NULL */
    size_t vmcoreinfo_len;
};

/* A raw RAM file. layout may be NULL: then "<path>.layout" is used when it
 * exists, else the rule for `machine` (NULL means "q35") and the file size. */
int ms_ram_open_file(struct ms_ram **out, const char *path, const struct ms_layout *layout,
                     const char *machine, unsigned flags, struct ms_err *err);

/* A QEMU dump-guest-memory ELF file (PT_LOAD by p_paddr; notes for CPUs and
 * VMCOREINFO). */
int ms_ram_open_dump(struct ms_ram **out, const char *path, unsigned flags, struct ms_err *err);

void ms_ram_close(struct ms_ram *ram);

/* Copies len bytes at gpa. Crosses regions; on a gap fails with MS_EOUTSIDE
 * naming the first unbacked address. *done (may be NULL) gets the bytes copied. */
int ms_ram_read(struct ms_ram *ram, uint64_t gpa, void *buf, size_t len, size_t *done,
                struct ms_err *err);
int ms_ram_write(struct ms_ram *ram, uint64_t gpa, const void *buf, size_t len, size_t *done,
                 struct ms_err *err);

/* 0, or MS_EPERM with a message when the RAM was opened read-only. */
int ms_ram_check_writable(const struct ms_ram *ram, struct ms_err *err);

/* The region holding gpa, or NULL. Inline: every page-table entry a walk
 * reads comes through here. Layouts are short and sorted; the first region
 * (low RAM) answers most lookups. */
static inline const struct ms_region *ms_ram_region(const struct ms_ram *ram, uint64_t gpa)
{
    const struct ms_region *low = &ram->layout.regions[0];
    if (ram->layout.count && gpa - low->gpa < low->len) /* wraps when gpa < low->gpa */
        return low;
    unsigned lo = 1, hi = ram->layout.count;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        const struct ms_region *r = &ram->layout.regions[mid];
        if (gpa < r->gpa)
            hi = mid;
        else if (gpa - r->gpa >= r->len)
            lo = mid + 1;
        else
            return r;
    }
    return NULL;
}

/* Hot paths (page walks): a pointer to len bytes at gpa when one region
 * backs them all, else NULL. Dereference it only inside ms_ram_guarded(). */
static inline const uint8_t *ms_ram_ptr(const struct ms_ram *ram, uint64_t gpa, size_t len)
{
    const struct ms_region *r = ms_ram_region(ram, gpa);
    if (!r || r->len - (gpa - r->gpa) < len)
        return NULL;
    return ram->sources[r->source].map + r->offset + (gpa - r->gpa);
}

/* Runs fn(arg) with SIGBUS from a shrunk RAM file turned into MS_EBUS (err
 * filled) instead of death. fn must not allocate: it may be cut short. */
int ms_ram_guarded(struct ms_ram *ram, int (*fn)(void *arg), void *arg, struct ms_err *err);

/* True when [gpa, gpa+len) is entirely backed. */
bool ms_ram_contains(const struct ms_ram *ram, uint64_t gpa, uint64_t len);

/* Total backed bytes and the highest backed address + 1. */
uint64_t ms_ram_size(const struct ms_ram *ram);
uint64_t ms_ram_end(const struct ms_ram *ram);

/* Invalidates every cached translation over this RAM (the target resumed, or
 * the user asked). */
void ms_ram_flush(struct ms_ram *ram);

/* Re-reads the files' sizes and drops regions a shrunk file no longer backs. */
int ms_ram_refresh(struct ms_ram *ram, struct ms_err *err);

#endif
