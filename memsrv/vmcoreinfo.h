/* VMCOREINFO: the kernel's KEY=VALUE text block describing itself (release,
 * build id, KASLR offset, symbol addresses, structure offsets). Comes from a
 * dump's ELF note or is found by scanning guest-physical memory. The text is
 * guest data: parsing is strict and bounded. */
#ifndef MEMSRV_VMCOREINFO_H
#define MEMSRV_VMCOREINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "space.h"

/* The kernel keeps it in one page; anything larger is not VMCOREINFO. */
#define MS_VMCOREINFO_MAX 65536

struct ms_vmcoreinfo_entry {
    const char *key;   /* "SYMBOL(prb)", "OSRELEASE", ... (points into text) */
    const char *value; /* the text after '=' */
};

struct ms_vmcoreinfo {
    char *text; /* private copy, lines NUL-split */
    size_t len;
    char *raw; /* the text as the kernel wrote it (len bytes + NUL): a vmcore's note */
    struct ms_vmcoreinfo_entry *entries;
    size_t count;
    /* Where it was found (scan): guest-physical address of the text, or ~0. */
    uint64_t found_at;
};

/* Parses text[0..len) (a NUL ends it early). Every line must be KEY=VALUE
 * with a printable key; OSRELEASE= must be present. */
int ms_vmcoreinfo_parse(struct ms_vmcoreinfo **out, const char *text, size_t len,
                        struct ms_err *err);
void ms_vmcoreinfo_free(struct ms_vmcoreinfo *vi);

/* The raw value of KEY, or NULL. */
const char *ms_vmcoreinfo_get(const struct ms_vmcoreinfo *vi, const char *key);

/* Typed lookups; MS_ENOTFOUND when absent, MS_EFORMAT when malformed. */
int ms_vmcoreinfo_symbol(const struct ms_vmcoreinfo *vi, const char *name, uint64_t *addr,
                         struct ms_err *err); /* SYMBOL(name)=hex */
int ms_vmcoreinfo_offset(const struct ms_vmcoreinfo *vi, const char *type, const char *member,
                         uint64_t *off, struct ms_err *err); /* OFFSET(type.member)=dec */
int ms_vmcoreinfo_size(const struct ms_vmcoreinfo *vi, const char *type, uint64_t *size,
                       struct ms_err *err); /* SIZE(type)=dec */
int ms_vmcoreinfo_number(const struct ms_vmcoreinfo *vi, const char *name, int64_t *value,
                         struct ms_err *err); /* NUMBER(name)=signed dec */
int ms_vmcoreinfo_length(const struct ms_vmcoreinfo *vi, const char *name, uint64_t *value,
                         struct ms_err *err); /* LENGTH(name)=dec */
/* KERNELOFFSET=hex (the KASLR slide). */
int ms_vmcoreinfo_kerneloffset(const struct ms_vmcoreinfo *vi, uint64_t *slide, struct ms_err *err);

/* Where the text starts in the kernel's note buffer: Elf64_Nhdr (12) +
 * "VMCOREINFO\0" padded to 4. */
#define VMCOREINFO_NOTE_HDR 0x18

/* Finds VMCOREINFO in guest-physical memory: space is physical, or an
 * EPT/NPT space for a nested guest (its mapped pages are enumerated). First
 * probes page offsets 0 and 0x18 (the kernel's page-allocated data and note
 * buffers), then, if full_scan, every byte. MS_ENOTFOUND when absent. */
int ms_vmcoreinfo_scan(struct ms_vmcoreinfo **out, struct ms_space *phys, bool full_scan,
                       struct ms_err *err);

/* Strict number parsers shared with the other kernel modules: the whole
 * string must be consumed, no overflow. Return 0 or MS_EFORMAT. */
int ms_parse_hex_u64(const char *s, uint64_t *out);
int ms_parse_dec_u64(const char *s, uint64_t *out);
int ms_parse_dec_i64(const char *s, int64_t *out);

#endif
