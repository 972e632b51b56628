/* Fuzzes VMCOREINFO parsing and every typed lookup, the typedb built from
 * it (and its text form), and System.map parsing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "symbols.h"
#include "typedb.h"
#include "vmcoreinfo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ms_err err;
    struct ms_vmcoreinfo *vi = NULL;
    if (ms_vmcoreinfo_parse(&vi, (const char *)data, size, &err) == 0) {
        uint64_t u;
        int64_t s;
        ms_vmcoreinfo_symbol(vi, "prb", &u, &err);
        ms_vmcoreinfo_size(vi, "printk_info", &u, &err);
        ms_vmcoreinfo_offset(vi, "printk_info", "seq", &u, &err);
        ms_vmcoreinfo_number(vi, "phys_base", &s, &err);
        ms_vmcoreinfo_length(vi, "mem_section", &u, &err);
        ms_vmcoreinfo_kerneloffset(vi, &u, &err);
        struct ms_typedb db;
        ms_typedb_init(&db);
        ms_typedb_from_vmcoreinfo(&db, vi, &err);
        struct ms_strbuf sb;
        ms_strbuf_init(&sb);
        ms_typedb_dump(&db, &sb);
        struct ms_typedb db2;
        ms_typedb_init(&db2);
        if (ms_typedb_parse(&db2, ms_strbuf_str(&sb), sb.len, &err) != 0 || db2.count != db.count)
            abort(); /* our own text form must round-trip */
        ms_typedb_free(&db2);
        ms_strbuf_free(&sb);
        ms_typedb_free(&db);
        ms_vmcoreinfo_free(vi);
    }
    struct ms_typedb db3;
    ms_typedb_init(&db3);
    ms_typedb_parse(&db3, (const char *)data, size, &err);
    ms_typedb_free(&db3);
    struct ms_symtab *st = NULL;
    if (ms_symtab_parse_map(&st, (const char *)data, size, &err) == 0) {
        const struct ms_symbol *sym;
        uint64_t a, off;
        ms_symtab_set_slide(st, 0x200000);
        ms_symtab_lookup(st, "linux_banner", &a, &err);
        ms_symtab_addr(st, 0xffffffff81000000ULL, &sym, &off, &err);
        ms_symtab_free(st);
    }
    return 0;
}
