/* GDB's ptype over BTF types: C declarations as GDB 13 prints them
 * ("struct list_head *next", "void (*func)(struct callback_head *)"), and
 * ptype/o's layout: every member's offset and size, struct and union
 * members expanded in place, holes and padding, total sizes (gdb/typeprint.c
 * print_offset_data, whose quirks it keeps so the text is GDB's). Bounded
 * by MS_BTF_MAX_DEPTH nesting and an output limit. */
#ifndef MEMSRV_PTYPE_H
#define MEMSRV_PTYPE_H

#include <stdbool.h>
#include <stdint.h>

#include "btf.h"
#include "strbuf.h"

/* The type a name means: "struct X", "union X", "enum X", a typedef or a
 * base type ("unsigned long" as GDB spells it). Pointer types are refused
 * (ptype the type pointed to). MS_ENOTFOUND says so as GDB would. */
int ms_ptype_lookup(const struct ms_btf *btf, const char *name, uint32_t *id, struct ms_err *err);

/* The C declaration of a thing of type id called name ("" for the type's
 * own name: "struct task_struct *"). */
int ms_ptype_decl(const struct ms_btf *btf, uint32_t id, const char *name, struct ms_strbuf *out,
                  struct ms_err *err);

/* "type = ..." for id: structs, unions and enums with their bodies (one
 * typedef at the top peeled, as GDB does). offsets: ptype/o. */
int ms_ptype_format(const struct ms_btf *btf, uint32_t id, bool offsets, struct ms_strbuf *out,
                    struct ms_err *err);

#endif
