/* BTF, the BPF Type Format: the kernel's own type information, as
 * CONFIG_DEBUG_INFO_BTF keeps it in .BTF (between __start_BTF and
 * __stop_BTF in kernel memory). A pure decoder over bytes, after
 * include/uapi/linux/btf.h. ms_btf_parse checks the whole blob once: the
 * header's sections inside it and apart, every type record inside the type
 * section, every name offset inside the NUL-terminated string section,
 * every type id it refers to below the type count. So the accessors never
 * read outside the blob; what parsing cannot rule out (reference cycles,
 * sizes that overflow) they bound with a depth limit and report as
 * MS_EFORMAT. Little-endian BTF only (x86-64 guests). */
#ifndef MEMSRV_BTF_H
#define MEMSRV_BTF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "typedb.h"

/* BTF_KIND_* (uapi/linux/btf.h). */
enum ms_btf_kind {
    MS_BTF_UNKN = 0, /* type id 0: void */
    MS_BTF_INT = 1,
    MS_BTF_PTR = 2,
    MS_BTF_ARRAY = 3,
    MS_BTF_STRUCT = 4,
    MS_BTF_UNION = 5,
    MS_BTF_ENUM = 6,
    MS_BTF_FWD = 7,
    MS_BTF_TYPEDEF = 8,
    MS_BTF_VOLATILE = 9,
    MS_BTF_CONST = 10,
    MS_BTF_RESTRICT = 11,
    MS_BTF_FUNC = 12,
    MS_BTF_FUNC_PROTO = 13,
    MS_BTF_VAR = 14,
    MS_BTF_DATASEC = 15,
    MS_BTF_FLOAT = 16,
    MS_BTF_DECL_TAG = 17,
    MS_BTF_TYPE_TAG = 18,
    MS_BTF_ENUM64 = 19,
};
#define MS_BTF_KIND_MAX MS_BTF_ENUM64

/* BTF_INT_ENCODING bits. */
#define MS_BTF_INT_SIGNED (1u << 0)
#define MS_BTF_INT_CHAR (1u << 1)
#define MS_BTF_INT_BOOL (1u << 2)

/* How deep typedef/qualifier chains, nested arrays and anonymous members
 * may go before the BTF is taken for cyclic. */
#define MS_BTF_MAX_DEPTH 32

struct ms_btf; /* a parsed blob (its own copy of the bytes) */

/* One type record, decoded. Strings point into the blob. */
struct ms_btf_type {
    uint32_t id;
    unsigned kind; /* enum ms_btf_kind */
    bool kflag;    /* struct/union: members carry bitfield sizes; fwd: a union */
    uint16_t vlen; /* members, enumerators, parameters, section entries */
    const char *name;
    uint32_t size; /* INT ENUM STRUCT UNION DATASEC FLOAT ENUM64 */
    uint32_t type; /* PTR TYPEDEF VOLATILE CONST RESTRICT FUNC VAR DECL_TAG
                      TYPE_TAG; FUNC_PROTO: the return type */
    unsigned int_encoding, int_offset, int_bits; /* INT */
    uint32_t elem_type, index_type, nelems;      /* ARRAY */
    uint32_t linkage;                            /* VAR (btf_var), FUNC (vlen) */
    int32_t component_idx;                       /* DECL_TAG */
};

/* A struct/union member with its bit offset and, for bitfields, width
 * (from the member's offset when kflag is set, else from its INT type). */
struct ms_btf_member {
    const char *name; /* "" when anonymous */
    uint32_t type;
    uint64_t bit_offset; /* from the start of the struct asked about */
    unsigned bitfield_size;
};

/* Parses a copy of len bytes. MS_EFORMAT says what is wrong and where. */
int ms_btf_parse(struct ms_btf **out, const void *data, size_t len, struct ms_err *err);
void ms_btf_free(struct ms_btf *btf);

/* Type ids run 1..ms_btf_count()-1; 0 is void. */
uint32_t ms_btf_count(const struct ms_btf *btf);
/* Bytes of the string section (for reports). */
size_t ms_btf_strings_len(const struct ms_btf *btf);

int ms_btf_type(const struct ms_btf *btf, uint32_t id, struct ms_btf_type *out, struct ms_err *err);

/* The i-th member of a STRUCT/UNION; bit_offset relative to that type. */
int ms_btf_member(const struct ms_btf *btf, uint32_t id, unsigned i, struct ms_btf_member *out,
                  struct ms_err *err);
/* The i-th enumerator of an ENUM/ENUM64 (value sign-extended when the enum is signed). */
int ms_btf_enumerator(const struct ms_btf *btf, uint32_t id, unsigned i, const char **name,
                      int64_t *value, struct ms_err *err);
/* The i-th parameter of a FUNC_PROTO. */
int ms_btf_param(const struct ms_btf *btf, uint32_t id, unsigned i, const char **name,
                 uint32_t *type, struct ms_err *err);

/* The first type of that kind and name, or 0. STRUCT/UNION lookups never
 * return a FWD declaration. */
uint32_t ms_btf_find(const struct ms_btf *btf, unsigned kind, const char *name);

/* id with TYPEDEF, VOLATILE, CONST, RESTRICT and TYPE_TAG peeled. */
int ms_btf_resolve(const struct ms_btf *btf, uint32_t id, uint32_t *out, struct ms_err *err);

/* sizeof: INT ENUM STRUCT UNION FLOAT ENUM64 their size, PTR 8, ARRAY
 * nelems * element, qualifiers and typedefs what they name. void, FUNC and
 * FWD have none (MS_EINVAL). */
int ms_btf_size(const struct ms_btf *btf, uint32_t id, uint64_t *size, struct ms_err *err);

/* A member by name in a STRUCT/UNION (qualifiers peeled), looking inside
 * anonymous struct/union members as C does; a dotted path ("thread.sp")
 * descends into named members. bit_offset is from the outer struct. */
int ms_btf_member_find(const struct ms_btf *btf, uint32_t id, const char *path,
                       struct ms_btf_member *out, struct ms_err *err);

/* The struct/union a name means: "struct X"/"union X", or a bare name that
 * is a struct, a union, or a typedef of one. 0 when none. */
uint32_t ms_btf_find_aggregate(const struct ms_btf *btf, const char *name);

/* Adds "S" (size) and "S.member" entries for each struct (or typedef of a
 * struct/union) named, like ms_dwarf_load_types: members of anonymous
 * struct/union members flattened in, member sizes of the peeled type,
 * bitfields with their bit offset and width. MS_ENOTFOUND names those the
 * BTF lacks. */
int ms_btf_load_types(struct ms_typedb *db, const struct ms_btf *btf, const char *const *structs,
                      struct ms_err *err);

#endif
