#include "layout.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <unistd.h>

#include "file.h"
#include "number.h"

#define GiB (1ULL << 30)
#define MiB (1ULL << 20)

static int add_region(struct ms_layout *out, uint64_t gpa, uint64_t len, uint64_t offset,
                      struct ms_err *err)
{
    if (out->count >= MS_LAYOUT_MAX)
        return ms_err_set(err, MS_ELIMIT, "more than %d RAM regions", MS_LAYOUT_MAX);
    out->regions[out->count++] = (struct ms_region){gpa, len, offset, 0};
    return 0;
}

int ms_layout_for_machine(struct ms_layout *out, const char *machine, uint64_t ram_size,
                          struct ms_err *err)
{
    memset(out, 0, sizeof(*out));
    if (ram_size == 0)
        return ms_err_set(err, MS_EINVAL, "RAM size is 0 (empty RAM file?)");
    uint64_t lowmem;
    if (!machine || strcmp(machine, "q35") == 0) {
        /* hw/i386/pc_q35.c: RAM of 2.75 GiB or more keeps 2 GiB below 4 GiB. */
        lowmem = ram_size >= 0xb0000000ULL ? 0x80000000ULL : ram_size;
    } else if (strcmp(machine, "pc") == 0 || strcmp(machine, "i440fx") == 0) {
        /* hw/i386/pc_piix.c: current machine types keep 3 GiB below 4 GiB
         * once RAM exceeds 3.5 GiB (gigabyte alignment). */
        lowmem = ram_size >= 0xe0000000ULL ? 0xc0000000ULL : ram_size;
    } else if (strcmp(machine, "pc-old") == 0) {
        lowmem = ram_size >= 0xe0000000ULL ? 0xe0000000ULL : ram_size;
    } else if (strcmp(machine, "flat") == 0) {
        lowmem = ram_size;
    } else {
        return ms_err_set(err, MS_EINVAL,
                          "unknown machine '%s' (use q35, pc, pc-old, flat, or --map)", machine);
    }
    int rc = add_region(out, 0, lowmem, 0, err);
    if (!rc && ram_size > lowmem)
        rc = add_region(out, 4 * GiB, ram_size - lowmem, lowmem, err);
    return rc;
}

int ms_layout_check(struct ms_layout *layout, struct ms_err *err)
{
    /* Insertion sort: layouts are tiny. */
    for (unsigned i = 1; i < layout->count; i++) {
        struct ms_region r = layout->regions[i];
        unsigned j = i;
        while (j > 0 && layout->regions[j - 1].gpa > r.gpa) {
            layout->regions[j] = layout->regions[j - 1];
            j--;
        }
        layout->regions[j] = r;
    }
    for (unsigned i = 0; i < layout->count; i++) {
        const struct ms_region *r = &layout->regions[i];
        if (r->len == 0)
            return ms_err_set(err, MS_EINVAL, "RAM region at GPA 0x%llx is empty",
                              (unsigned long long)r->gpa);
        if (r->gpa + r->len < r->gpa || r->offset + r->len < r->offset)
            return ms_err_set(err, MS_EINVAL, "RAM region at GPA 0x%llx wraps around",
                              (unsigned long long)r->gpa);
        if (i > 0) {
            const struct ms_region *p = &layout->regions[i - 1];
            if (p->gpa + p->len > r->gpa)
                return ms_err_set(err, MS_EINVAL,
                                  "RAM regions overlap: GPA 0x%llx+0x%llx and 0x%llx",
                                  (unsigned long long)p->gpa, (unsigned long long)p->len,
                                  (unsigned long long)r->gpa);
        }
    }
    return 0;
}

int ms_layout_parse_map(struct ms_layout *out, const char *spec, struct ms_err *err)
{
    memset(out, 0, sizeof(*out));
    const char *p = spec;
    while (*p) {
        uint64_t gpa, len, off;
        const char *end;
        char buf[64];
        int rc = ms_parse_u64(p, &end, &gpa, err);
        if (rc)
            return ms_err_prefix(err, "--map '%s': ", spec);
        if (*end != ':')
            return ms_err_set(err, MS_EINVAL, "--map '%s': expected GPA:LEN@OFFSET", spec);
        p = end + 1;
        size_t n = strcspn(p, "@");
        if (p[n] != '@' || n == 0 || n >= sizeof(buf))
            return ms_err_set(err, MS_EINVAL, "--map '%s': expected GPA:LEN@OFFSET", spec);
        memcpy(buf, p, n);
        buf[n] = '\0';
        rc = ms_parse_size(buf, &len, err);
        if (rc)
            return ms_err_prefix(err, "--map '%s': ", spec);
        p += n + 1;
        n = strcspn(p, ",");
        if (n == 0 || n >= sizeof(buf))
            return ms_err_set(err, MS_EINVAL, "--map '%s': expected an offset after '@'", spec);
        memcpy(buf, p, n);
        buf[n] = '\0';
        rc = ms_parse_size(buf, &off, err);
        if (rc)
            return ms_err_prefix(err, "--map '%s': ", spec);
        p += n;
        if (*p == ',')
            p++;
        rc = add_region(out, gpa, len, off, err);
        if (rc)
            return rc;
    }
    if (out->count == 0)
        return ms_err_set(err, MS_EINVAL, "--map is empty");
    return ms_layout_check(out, err);
}

int ms_layout_load(struct ms_layout *out, const char *path, struct ms_err *err)
{
    memset(out, 0, sizeof(*out));
    int fd = ms_file_open(path, O_RDONLY, NULL, err);
    if (fd < 0)
        return ms_err_prefix(err, "layout file: ");
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return ms_err_set(err, MS_EIO, "cannot read layout file %s: %s", path, strerror(errno));
    }
    char line[512];
    unsigned lineno = 0;
    int rc = 0;
    while (!rc && fgets(line, sizeof(line), f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\n' || *p == '\0')
            continue;
        uint64_t v[3];
        const char *q = p;
        for (int i = 0; i < 3 && !rc; i++)
            rc = ms_parse_u64(q, &q, &v[i], err);
        while (!rc && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
            q++;
        if (!rc && *q != '\0')
            rc = ms_err_set(err, MS_EFORMAT, "trailing text");
        if (!rc)
            rc = add_region(out, v[0], v[1], v[2], err);
        if (rc)
            ms_err_prefix(err, "%s:%u: expected 'gpa len offset': ", path, lineno);
    }
    fclose(f);
    if (rc)
        return rc;
    if (out->count == 0)
        return ms_err_set(err, MS_EFORMAT, "layout file %s has no regions", path);
    rc = ms_layout_check(out, err);
    return rc ? ms_err_prefix(err, "%s: ", path) : 0;
}

int ms_layout_save(const struct ms_layout *layout, const char *path, struct ms_err *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return ms_err_set(err, MS_EIO, "cannot write layout file %s: %s", path, strerror(errno));
    fprintf(f, "# memsrv RAM layout: guest-physical address, length, file offset\n");
    for (unsigned i = 0; i < layout->count; i++) {
        const struct ms_region *r = &layout->regions[i];
        fprintf(f, "0x%llx 0x%llx 0x%llx\n", (unsigned long long)r->gpa, (unsigned long long)r->len,
                (unsigned long long)r->offset);
    }
    if (fclose(f) != 0)
        return ms_err_set(err, MS_EIO, "cannot write layout file %s: %s", path, strerror(errno));
    return 0;
}

int ms_layout_path_for(const char *ram_path, char *out, unsigned out_size, struct ms_err *err)
{
    int n = snprintf(out, out_size, "%s.layout", ram_path);
    if (n < 0 || (unsigned)n >= out_size)
        return ms_err_set(err, MS_EINVAL, "path too long: %s", ram_path);
    return 0;
}
