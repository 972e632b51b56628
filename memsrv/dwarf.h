/* Struct layouts from a vmlinux's DWARF (libdwarf 20210528): member offsets
 * (through typedefs and anonymous struct/union members), member sizes,
 * bitfields and struct sizes, for a few named structs. Only the compile
 * units likely to define them are decoded first (by CU name), and results
 * can be cached in a directory the caller chooses (never beside the
 * vmlinux: the library writes nowhere it was not told to). */
#ifndef MEMSRV_DWARF_H
#define MEMSRV_DWARF_H

#include "error.h"
#include "typedb.h"

/* cache_dir: where to keep decoded layouts, or NULL for no cache.
 * progress (may be NULL) follows the decoding, over .debug_info's bytes.
 * Adds "S" (size) and "S.member" entries to db for each struct (or typedef
 * of a struct) named in the NULL-terminated list. MS_ENOTFOUND names the
 * structs no CU defines; MS_EFORMAT for zstd-compressed debug sections,
 * which libdwarf would silently read as empty. */
int ms_dwarf_load_types(struct ms_typedb *db, const char *vmlinux, const char *const *structs,
                        const char *cache_dir, ms_progress_fn progress, void *progress_arg,
                        struct ms_err *err);

/* Same, without the cache (tests and measurements). */
int ms_dwarf_scan_types(struct ms_typedb *db, const char *vmlinux, const char *const *structs,
                        ms_progress_fn progress, void *progress_arg, struct ms_err *err);

#endif
