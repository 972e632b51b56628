/* Small BTF blobs built the way pahole lays them out (uapi/linux/btf.h),
 * for the unit tests and fuzz targets of the BTF decoder and of what reads
 * types through it: append types, members and enumerators, then take the
 * bytes (header, type section, string section). */
#ifndef TESTS_SUPPORT_BTFBLOB_H
#define TESTS_SUPPORT_BTFBLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct btf_blob {
    uint8_t types[4096];
    uint32_t tlen;
    char strs[1024];
    uint32_t slen;
    uint32_t ntypes;
};

static inline void btf_blob_init(struct btf_blob *b)
{
    memset(b, 0, sizeof(*b));
    b->slen = 1; /* "" at offset 0 */
}

/* A name's offset in the string section ("" is 0). */
static inline uint32_t btf_str(struct btf_blob *b, const char *s)
{
    if (!*s)
        return 0;
    uint32_t off = b->slen;
    size_t n = strlen(s) + 1;
    memcpy(b->strs + off, s, n);
    b->slen += (uint32_t)n;
    return off;
}

static inline void btf_u32(struct btf_blob *b, uint32_t v)
{
    memcpy(b->types + b->tlen, &v, 4);
    b->tlen += 4;
}

/* Appends a btf_type; returns its id. */
static inline uint32_t btf_type(struct btf_blob *b, const char *name, unsigned kind, unsigned vlen,
                                bool kflag, uint32_t size_or_type)
{
    btf_u32(b, btf_str(b, name));
    btf_u32(b, (uint32_t)kflag << 31 | kind << 24 | vlen);
    btf_u32(b, size_or_type);
    return ++b->ntypes;
}

/* A btf_member: bit offset (with kflag: bitfield size << 24 | offset). */
static inline void btf_member(struct btf_blob *b, const char *name, uint32_t type, uint32_t off)
{
    btf_u32(b, btf_str(b, name));
    btf_u32(b, type);
    btf_u32(b, off);
}

static inline void btf_enumerator(struct btf_blob *b, const char *name, uint32_t v)
{
    btf_u32(b, btf_str(b, name));
    btf_u32(b, v);
}

/* header + types + strings into out; returns the length. */
static inline size_t btf_blob_bytes(const struct btf_blob *b, uint8_t *out)
{
    uint32_t hdr[6] = {0x0001eB9F, 24, 0, b->tlen, b->tlen, b->slen};
    memcpy(out, hdr, 24);
    memcpy(out + 24, b->types, b->tlen);
    memcpy(out + 24 + b->tlen, b->strs, b->slen);
    return 24 + b->tlen + b->slen;
}

#endif
