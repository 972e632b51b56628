#include "vmcoreinfo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "physscan.h"
#include "space.h"
#include "symbols.h"
#include "number.h"

int ms_parse_hex_u64(const char *s, uint64_t *out)
{
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s += 2;
    if (!*s)
        return MS_EFORMAT;
    uint64_t v = 0;
    for (; *s; s++) {
        int d = ms_hex_digit(*s);
        if (d < 0 || v >> 60)
            return MS_EFORMAT;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 0;
}

int ms_parse_dec_u64(const char *s, uint64_t *out)
{
    if (!*s)
        return MS_EFORMAT;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return MS_EFORMAT;
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return MS_EFORMAT;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int ms_parse_dec_i64(const char *s, int64_t *out)
{
    int neg = *s == '-';
    uint64_t v;
    if (ms_parse_dec_u64(s + neg, &v) < 0)
        return MS_EFORMAT;
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1)
            return MS_EFORMAT;
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX)
            return MS_EFORMAT;
        *out = (int64_t)v;
    }
    return 0;
}

void ms_vmcoreinfo_free(struct ms_vmcoreinfo *vi)
{
    if (!vi)
        return;
    free(vi->text);
    free(vi->raw);
    free(vi->entries);
    free(vi);
}

int ms_vmcoreinfo_parse(struct ms_vmcoreinfo **out, const char *text, size_t len,
                        struct ms_err *err)
{
    *out = NULL;
    const char *nul = memchr(text, '\0', len);
    if (nul)
        len = (size_t)(nul - text);
    if (len == 0)
        return ms_err_set(err, MS_EFORMAT, "VMCOREINFO is empty");
    if (len > MS_VMCOREINFO_MAX)
        return ms_err_set(err, MS_EFORMAT, "VMCOREINFO too long (%zu bytes, limit %u)", len,
                          MS_VMCOREINFO_MAX);
    struct ms_vmcoreinfo *vi = calloc(1, sizeof(*vi));
    size_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    if (vi) {
        vi->text = malloc(len + 1);
        vi->raw = malloc(len + 1);
        vi->entries = calloc(lines, sizeof(*vi->entries));
    }
    if (!vi || !vi->text || !vi->raw || !vi->entries) {
        ms_vmcoreinfo_free(vi);
        return ms_err_set(err, MS_ENOMEM, "out of memory parsing VMCOREINFO");
    }
    memcpy(vi->text, text, len);
    vi->text[len] = '\0';
    memcpy(vi->raw, vi->text, len + 1);
    vi->len = len;
    vi->found_at = UINT64_MAX;
    char *p = vi->text, *end = vi->text + len;
    unsigned lineno = 0;
    while (p < end) {
        lineno++;
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        *le = '\0';
        if (le == p) { /* empty line: allowed only as the last */
            p = le + 1;
            continue;
        }
        char *eq = strchr(p, '=');
        if (!eq || eq == p) {
            ms_vmcoreinfo_free(vi);
            return ms_err_set(err, MS_EFORMAT, "VMCOREINFO line %u is not KEY=VALUE", lineno);
        }
        for (char *k = p; k < eq; k++) {
            if (*k <= ' ' || *k >= 0x7f) {
                unsigned char c = (unsigned char)*k;
                ms_vmcoreinfo_free(vi);
                return ms_err_set(err, MS_EFORMAT,
                                  "VMCOREINFO line %u: non-printable byte 0x%02x in key", lineno,
                                  c);
            }
        }
        for (char *v = eq + 1; v < le; v++) {
            if ((unsigned char)*v < ' ' || (unsigned char)*v == 0x7f) {
                unsigned char c = (unsigned char)*v;
                ms_vmcoreinfo_free(vi);
                return ms_err_set(err, MS_EFORMAT,
                                  "VMCOREINFO line %u: control byte 0x%02x in value", lineno, c);
            }
        }
        *eq = '\0';
        vi->entries[vi->count].key = p;
        vi->entries[vi->count].value = eq + 1;
        vi->count++;
        p = le + 1;
    }
    if (!ms_vmcoreinfo_get(vi, "OSRELEASE")) {
        ms_vmcoreinfo_free(vi);
        return ms_err_set(err, MS_EFORMAT, "VMCOREINFO has no OSRELEASE= line");
    }
    *out = vi;
    return 0;
}

const char *ms_vmcoreinfo_get(const struct ms_vmcoreinfo *vi, const char *key)
{
    if (!vi)
        return NULL;
    /* last wins, as in the kernel's append-only text */
    for (size_t i = vi->count; i-- > 0;)
        if (strcmp(vi->entries[i].key, key) == 0)
            return vi->entries[i].value;
    return NULL;
}

enum kind { HEX, DEC, SDEC };

static int lookup(const struct ms_vmcoreinfo *vi, const char *key, enum kind kind, uint64_t *u,
                  int64_t *s, struct ms_err *err)
{
    const char *v = ms_vmcoreinfo_get(vi, key);
    if (!v)
        return ms_err_set(err, MS_ENOTFOUND, "VMCOREINFO has no %s", key);
    int rc = kind == HEX   ? ms_parse_hex_u64(v, u)
             : kind == DEC ? ms_parse_dec_u64(v, u)
                           : ms_parse_dec_i64(v, s);
    if (rc < 0)
        return ms_err_set(err, MS_EFORMAT, "VMCOREINFO %s=%.40s is not a valid number", key, v);
    return 0;
}

static int mkkey(char *buf, size_t size, const char *fmt, const char *a, const char *b,
                 struct ms_err *err)
{
    int n = b ? snprintf(buf, size, fmt, a, b) : snprintf(buf, size, fmt, a);
    if (n < 0 || (size_t)n >= size)
        return ms_err_set(err, MS_EINVAL, "VMCOREINFO key too long");
    return 0;
}

int ms_vmcoreinfo_symbol(const struct ms_vmcoreinfo *vi, const char *name, uint64_t *addr,
                         struct ms_err *err)
{
    char k[160];
    if (mkkey(k, sizeof(k), "SYMBOL(%s)", name, NULL, err) < 0)
        return MS_EINVAL;
    return lookup(vi, k, HEX, addr, NULL, err);
}

int ms_vmcoreinfo_offset(const struct ms_vmcoreinfo *vi, const char *type, const char *member,
                         uint64_t *off, struct ms_err *err)
{
    char k[160];
    if (mkkey(k, sizeof(k), "OFFSET(%s.%s)", type, member, err) < 0)
        return MS_EINVAL;
    return lookup(vi, k, DEC, off, NULL, err);
}

int ms_vmcoreinfo_size(const struct ms_vmcoreinfo *vi, const char *type, uint64_t *size,
                       struct ms_err *err)
{
    char k[160];
    if (mkkey(k, sizeof(k), "SIZE(%s)", type, NULL, err) < 0)
        return MS_EINVAL;
    return lookup(vi, k, DEC, size, NULL, err);
}

int ms_vmcoreinfo_number(const struct ms_vmcoreinfo *vi, const char *name, int64_t *value,
                         struct ms_err *err)
{
    char k[160];
    if (mkkey(k, sizeof(k), "NUMBER(%s)", name, NULL, err) < 0)
        return MS_EINVAL;
    return lookup(vi, k, SDEC, NULL, value, err);
}

int ms_vmcoreinfo_length(const struct ms_vmcoreinfo *vi, const char *name, uint64_t *value,
                         struct ms_err *err)
{
    char k[160];
    if (mkkey(k, sizeof(k), "LENGTH(%s)", name, NULL, err) < 0)
        return MS_EINVAL;
    return lookup(vi, k, DEC, value, NULL, err);
}

int ms_vmcoreinfo_kerneloffset(const struct ms_vmcoreinfo *vi, uint64_t *slide, struct ms_err *err)
{
    return lookup(vi, "KERNELOFFSET", HEX, slide, NULL, err);
}

/* ---- scanning ---- */

/* new_utsname: sysname[65], nodename[65], release[65]. */
#define UTS_RELEASE_OFF 130
#define UTS_LEN 65

/* Is the kernel of vi the one of this space? Another's VMCOREINFO can lie in
 * it: a nested guest's, in L1's RAM (notes/qemu.md s.7). Its own page
 * tables, read in this space, must read its release back from
 * init_uts_ns. A block without what that needs is taken as it is. */
static bool of_this_space(struct ms_space *phys, const struct ms_vmcoreinfo *vi)
{
    uint64_t top, uts, name;
    int64_t phys_base, l5 = 0;
    const char *release = ms_vmcoreinfo_get(vi, "OSRELEASE");
    if (!release || ms_vmcoreinfo_symbol(vi, "init_top_pgt", &top, NULL) ||
        ms_vmcoreinfo_number(vi, "phys_base", &phys_base, NULL) ||
        ms_vmcoreinfo_symbol(vi, "init_uts_ns", &uts, NULL) ||
        ms_vmcoreinfo_offset(vi, "uts_namespace", "name", &name, NULL) || top < MS_KERNEL_MAP_START)
        return true;
    ms_vmcoreinfo_number(vi, "pgtable_l5_enabled", &l5, NULL);
    struct ms_space *k = NULL;
    char got[UTS_LEN + 1] = {0};
    bool ok = ms_space_paging(&k, phys, top - MS_KERNEL_MAP_START + (uint64_t)phys_base, l5 ? 5 : 4,
                              NULL) == 0 &&
              ms_space_read(k, uts + name + UTS_RELEASE_OFF, got, UTS_LEN, NULL, NULL) == 0 &&
              strcmp(got, release) == 0;
    ms_space_free(k);
    return ok;
}

/* Reads the candidate block at addr: after a note header (descsz bounds it)
 * or at a page start (a NUL ends it). Returns 0 and a parsed block, or < 0. */
static int try_at(struct ms_space *phys, uint64_t addr, struct ms_vmcoreinfo **out)
{
    char *buf = malloc(4096 + 1);
    if (!buf)
        return MS_ENOMEM;
    size_t limit = 4096;
    if (addr >= VMCOREINFO_NOTE_HDR) {
        uint8_t hdr[VMCOREINFO_NOTE_HDR];
        if (ms_space_read(phys, addr - VMCOREINFO_NOTE_HDR, hdr, sizeof(hdr), NULL, NULL) == 0) {
            uint32_t namesz, descsz;
            memcpy(&namesz, hdr, 4);
            memcpy(&descsz, hdr + 4, 4);
            if (namesz == 11 && memcmp(hdr + 12, "VMCOREINFO", 11) == 0 && descsz > 0 &&
                descsz <= 4096)
                limit = descsz;
        }
    }
    size_t done = 0;
    ms_space_read(phys, addr, buf, limit, &done, NULL);
    buf[done] = '\0';
    int rc = done ? ms_vmcoreinfo_parse(out, buf, done, NULL) : MS_ENOTFOUND;
    /* A kernel block also has PAGESIZE; the source text (format strings
     * such as "OSRELEASE=%s") does not parse as numbers. */
    if (rc == 0) {
        uint64_t ps;
        if (lookup(*out, "PAGESIZE", DEC, &ps, NULL, NULL) < 0 ||
            strchr(ms_vmcoreinfo_get(*out, "OSRELEASE"), '%') || !of_this_space(phys, *out)) {
            ms_vmcoreinfo_free(*out);
            *out = NULL;
            rc = MS_EFORMAT;
        } else {
            (*out)->found_at = addr;
        }
    }
    free(buf);
    return rc;
}

struct scan_ctx {
    struct ms_space *phys;
    struct ms_vmcoreinfo *found;
};

static int on_hit(void *arg, uint64_t addr)
{
    struct scan_ctx *c = arg;
    return try_at(c->phys, addr, &c->found) == 0;
}

int ms_vmcoreinfo_scan(struct ms_vmcoreinfo **out, struct ms_space *phys, bool full_scan,
                       struct ms_err *err)
{
    *out = NULL;
    struct ms_phys_range *r;
    size_t n;
    int rc = ms_phys_ranges(phys, &r, &n, err);
    if (rc < 0)
        return rc;
    static const char key[] = "OSRELEASE=";
    /* Fast pass: two probes per page, 1 MiB read at a time. The block is a
     * page the kernel allocated early: seen near the top of RAM in some
     * boots and near the bottom in others, so chunks are visited from both
     * ends alternately. */
    enum { CH = 1 << 20 };
    size_t nch = 0;
    for (size_t i = 0; i < n; i++)
        nch += (size_t)((r[i].len + CH - 1) / CH);
    uint64_t *starts = malloc((nch ? nch : 1) * sizeof(*starts));
    uint64_t *ends = malloc((nch ? nch : 1) * sizeof(*ends));
    uint8_t *chunk = malloc(CH);
    if (!chunk || !starts || !ends) {
        free(chunk);
        free(starts);
        free(ends);
        free(r);
        return ms_err_set(err, MS_ENOMEM, "out of memory for a scan buffer");
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t a = (r[i].start + 0xfff) & ~0xfffULL, e = (r[i].start + r[i].len) & ~0xfffULL;
        for (; a < e; a += CH) {
            starts[m] = a;
            ends[m] = e - a > CH ? a + CH : e;
            m++;
        }
    }
    for (size_t v = 0; v < m && !*out; v++) {
        size_t c = (v & 1) ? v / 2 : m - 1 - v / 2;
        size_t done = 0;
        ms_space_read(phys, starts[c], chunk, (size_t)(ends[c] - starts[c]), &done, NULL);
        for (size_t pg = 0; pg < done / 4096; pg++) {
            const uint8_t *b = chunk + pg * 4096;
            uint64_t at = UINT64_MAX;
            if (memcmp(b + VMCOREINFO_NOTE_HDR, key, sizeof(key) - 1) == 0)
                at = starts[c] + pg * 4096 + VMCOREINFO_NOTE_HDR;
            else if (memcmp(b, key, sizeof(key) - 1) == 0)
                at = starts[c] + pg * 4096;
            if (at != UINT64_MAX && try_at(phys, at, out) == 0)
                break;
        }
    }
    free(starts);
    free(ends);
    free(chunk);
    free(r);
    if (*out)
        return 0;
    if (full_scan) {
        struct scan_ctx c = {phys, NULL};
        rc = ms_phys_search(phys, key, sizeof(key) - 1, on_hit, &c, err);
        if (rc < 0)
            return rc;
        if (c.found) {
            *out = c.found;
            return 0;
        }
    }
    return ms_err_set(err, MS_ENOTFOUND, "no VMCOREINFO found in guest-physical memory%s",
                      full_scan ? "" : " (page-aligned probe only)");
}
