/* Structure layouts the kernel modules need (member offsets, struct sizes),
 * keyed "type.member" and "type": filled from VMCOREINFO's OFFSET()/SIZE()
 * lines or from DWARF (dwarf.h), looked up by dmesg and ps. */
#ifndef MEMSRV_TYPEDB_H
#define MEMSRV_TYPEDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "strbuf.h"
#include "vmcoreinfo.h"

struct ms_typedb_entry {
    char key[96];         /* "printk_info.seq" (member) or "printk_info" (size) */
    uint64_t value;       /* byte offset, or size in bytes */
    uint64_t member_size; /* member entries: its size (0 when unknown) */
    uint16_t bit_offset;  /* bitfields: bit offset from the struct start */
    uint16_t bit_size;    /* bitfields: width; 0 for ordinary members */
};

struct ms_typedb {
    struct ms_typedb_entry *entries;
    size_t count, cap;
    char source[64]; /* "VMCOREINFO", "DWARF <path>", "cache <path>" */
};

void ms_typedb_init(struct ms_typedb *db);
void ms_typedb_free(struct ms_typedb *db);
int ms_typedb_put(struct ms_typedb *db, const struct ms_typedb_entry *e, struct ms_err *err);
const struct ms_typedb_entry *ms_typedb_get(const struct ms_typedb *db, const char *key);

/* Member offset / struct size; MS_ENOTFOUND names the missing key and the
 * source, so a user knows whether DWARF or VMCOREINFO lacked it. */
int ms_typedb_offset(const struct ms_typedb *db, const char *type, const char *member,
                     uint64_t *off, struct ms_err *err);
int ms_typedb_size(const struct ms_typedb *db, const char *type, uint64_t *size,
                   struct ms_err *err);
bool ms_typedb_has(const struct ms_typedb *db, const char *type, const char *member);

/* Copies every OFFSET(t.m)= and SIZE(t)= line. */
int ms_typedb_from_vmcoreinfo(struct ms_typedb *db, const struct ms_vmcoreinfo *vi,
                              struct ms_err *err);

/* Text form (the DWARF cache file): "key value member_size bit_offset bit_size" lines. */
void ms_typedb_dump(const struct ms_typedb *db, struct ms_strbuf *sb);
int ms_typedb_parse(struct ms_typedb *db, const char *text, size_t len, struct ms_err *err);

#endif
