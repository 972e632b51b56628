#include "physscan.h"

#include <stdlib.h>
#include <string.h>

#include "array.h"

struct range_acc {
    struct ms_phys_range *v;
    size_t n, cap;
    int oom;
    const struct ms_layout *ram; /* second stage: what its mappings may land in */
    uint64_t bytes_left;         /* backed bytes still wanted */
    uint64_t leaves_left;        /* leaf mappings still visited */
};

static int add_range(struct range_acc *acc, uint64_t start, uint64_t len)
{
    if (acc->n && acc->v[acc->n - 1].start + acc->v[acc->n - 1].len == start) {
        acc->v[acc->n - 1].len += len;
        return 0;
    }
    if (!MS_ARRAY_RESERVE(&acc->v, &acc->cap, acc->n + 1, 64)) {
        acc->oom = 1;
        return 1;
    }
    acc->v[acc->n].start = start;
    acc->v[acc->n].len = len;
    acc->n++;
    return 0;
}

/* Keeps the parts of a second-stage mapping that land in RAM (the rest
 * cannot be read), up to RAM's size in all: a nested guest's memory lives
 * in its host's RAM, so more is aliasing, and hostile tables mapping the
 * same pages across 2^48 bytes must not make a scan endless. */
static int on_mapping(void *arg, const struct ms_mapping *m)
{
    struct range_acc *acc = arg;
    if (acc->leaves_left == 0)
        return 1;
    acc->leaves_left--;
    for (unsigned i = 0; i < acc->ram->count && acc->bytes_left; i++) {
        const struct ms_region *r = &acc->ram->regions[i];
        uint64_t lo = m->lower > r->gpa ? m->lower : r->gpa;
        uint64_t hi = m->lower + m->size < r->gpa + r->len ? m->lower + m->size : r->gpa + r->len;
        if (lo >= hi)
            continue;
        uint64_t len = hi - lo < acc->bytes_left ? hi - lo : acc->bytes_left;
        if (add_range(acc, m->addr + (lo - m->lower), len))
            return 1;
        acc->bytes_left -= len;
    }
    return acc->bytes_left ? 0 : 1;
}

int ms_phys_ranges(struct ms_space *phys, struct ms_phys_range **out, size_t *count,
                   struct ms_err *err)
{
    struct range_acc acc = {0};
    *out = NULL;
    *count = 0;
    if (phys->kind == MS_SPACE_PHYS) {
        const struct ms_layout *l = &phys->ram->layout;
        for (unsigned i = 0; i < l->count; i++)
            if (add_range(&acc, l->regions[i].gpa, l->regions[i].len))
                break;
    } else if (phys->kind == MS_SPACE_EPT || phys->kind == MS_SPACE_NPT) {
        uint64_t bad = 0;
        acc.ram = &phys->ram->layout;
        acc.bytes_left = ms_ram_size(phys->ram);
        /* every leaf in RAM adds 4 KiB at least; leave room for MMIO ones */
        acc.leaves_left = acc.bytes_left / 4096 + 65536;
        int rc = ms_space_enumerate(phys, 0, (1ULL << 52) - 1, on_mapping, &acc, 0, &bad, err);
        if (rc < 0 && !acc.oom) {
            free(acc.v);
            return ms_err_prefix(err, "enumerating the nested guest's physical memory: ");
        }
    } else {
        return ms_err_set(err, MS_EINVAL,
                          "a guest-physical space is needed here (physical, EPT or NPT), not %s",
                          ms_space_kind_name(phys->kind));
    }
    if (acc.oom) {
        free(acc.v);
        return ms_err_set(err, MS_ENOMEM, "out of memory listing physical ranges");
    }
    *out = acc.v;
    *count = acc.n;
    return 0;
}

#define CHUNK (4u << 20)

int ms_phys_search(struct ms_space *phys, const void *needle, size_t needle_len, ms_phys_hit_fn fn,
                   void *arg, struct ms_err *err)
{
    if (needle_len == 0 || needle_len > 4096)
        return ms_err_set(err, MS_EINVAL, "search string length %zu out of range", needle_len);
    struct ms_phys_range *r;
    size_t n;
    int rc = ms_phys_ranges(phys, &r, &n, err);
    if (rc < 0)
        return rc;
    uint8_t *buf = malloc(CHUNK + needle_len);
    if (!buf) {
        free(r);
        return ms_err_set(err, MS_ENOMEM, "out of memory for a scan buffer");
    }
    int ret = 0;
    for (size_t i = 0; i < n && !ret; i++) {
        uint64_t end = r[i].start + r[i].len;
        for (uint64_t a = r[i].start; a < end && !ret; a += CHUNK) {
            uint64_t want = end - a < CHUNK + needle_len - 1 ? end - a : CHUNK + needle_len - 1;
            size_t done = 0;
            struct ms_err e2;
            ms_space_read(phys, a, buf, (size_t)want, &done, &e2);
            if (done < needle_len)
                continue; /* unreadable chunk: skip it, a scan is best effort */
            const uint8_t *p = buf, *lim = buf + done;
            while ((size_t)(lim - p) >= needle_len) {
                const uint8_t *h = memmem(p, (size_t)(lim - p), needle, needle_len);
                if (!h)
                    break;
                uint64_t hit = a + (uint64_t)(h - buf);
                /* hits in the overlap tail belong to the next chunk */
                if (hit - a >= CHUNK)
                    break;
                ret = fn(arg, hit);
                if (ret)
                    break;
                p = h + 1;
            }
        }
    }
    free(buf);
    free(r);
    return ret;
}
