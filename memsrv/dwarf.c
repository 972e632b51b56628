#include "dwarf.h"

#include "file.h"
#include "progress.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libdwarf/dwarf.h>
#include <libdwarf/libdwarf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_WANT 32
#define MAX_DEPTH 8

struct want {
    const char *name;
    bool found;
};

struct ctx {
    Dwarf_Debug dbg;
    struct ms_progress progress; /* over .debug_info, in the full pass */
    struct ms_typedb *db;
    struct want w[MAX_WANT];
    unsigned nw, left;
    int oom;
};

/* Compile units whose names suggest they define the structs we ask for:
 * decoding only these first keeps a 590 MB vmlinux fast. */
static const char *const hint_cus[] = {
    "kernel/printk/printk_ringbuffer.c",
    "kernel/printk/printk.c",
    "kernel/fork.c",
    "init/init_task.c",
    "kernel/pid.c",
    NULL,
};

static int check_compression(const char *path, bool *zlib, struct ms_err *err)
{
    *zlib = false;
    elf_version(EV_CURRENT);
    int fd = ms_file_open(path, O_RDONLY, NULL, err);
    if (fd < 0)
        return fd;
    Elf *e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    int rc = 0;
    size_t shstr;
    bool any_info = false;
    if (!e || elf_getshdrstrndx(e, &shstr) < 0) {
        rc = ms_err_set(err, MS_EFORMAT, "%s is not an ELF file", path);
        goto out;
    }
    for (Elf_Scn *s = elf_nextscn(e, NULL); s; s = elf_nextscn(e, s)) {
        GElf_Shdr sh;
        if (!gelf_getshdr(s, &sh))
            continue;
        const char *name = elf_strptr(e, shstr, sh.sh_name);
        if (!name || strncmp(name, ".debug_", 7) != 0)
            continue;
        if (!strcmp(name, ".debug_info"))
            any_info = true;
        if (sh.sh_flags & SHF_COMPRESSED) {
            GElf_Chdr ch;
            if (gelf_getchdr(s, &ch) && ch.ch_type == ELFCOMPRESS_ZLIB)
                *zlib = true;
            if (gelf_getchdr(s, &ch) && ch.ch_type == 2) {
                rc = ms_err_set(err, MS_EFORMAT,
                                "%s: %s is zstd-compressed, which libdwarf cannot read "
                                "(decompress with objcopy --decompress-debug-sections)",
                                path, name);
                goto out;
            }
        }
    }
    if (!any_info)
        rc = ms_err_set(err, MS_ENOTFOUND, "%s has no .debug_info (not a -dbg vmlinux?)", path);
out:
    if (e)
        elf_end(e);
    close(fd);
    return rc;
}

/* ---- a zero-copy object reader ----
 * libdwarf's own reader copies every section it loads into malloc'd memory
 * (4 s on a 590 MB vmlinux); serving sections straight from an mmap of the
 * file, and hiding the .rela.debug_* sections (the vmlinux is ET_EXEC, its
 * debug sections already hold final values), makes opening instant. */
struct obj {
    uint8_t *map;
    size_t size;
    unsigned nsec;
    struct {
        Dwarf_Obj_Access_Section info;
        uint64_t offset;
        char name[64];
    } * sec;
};

static int obj_section_info(void *o, Dwarf_Half i, Dwarf_Obj_Access_Section *ret, int *error)
{
    struct obj *ob = o;
    (void)error;
    if (i >= ob->nsec)
        return DW_DLV_NO_ENTRY;
    *ret = ob->sec[i].info;
    return DW_DLV_OK;
}

static Dwarf_Endianness obj_order(void *o)
{
    (void)o;
    return DW_OBJECT_LSB;
}

static Dwarf_Small obj_eight(void *o)
{
    (void)o;
    return 8;
}

static Dwarf_Small obj_four(void *o)
{
    (void)o;
    return 4;
}

static Dwarf_Unsigned obj_count(void *o)
{
    return ((struct obj *)o)->nsec;
}

static int obj_load(void *o, Dwarf_Half i, Dwarf_Small **data, int *error)
{
    struct obj *ob = o;
    (void)error;
    if (i >= ob->nsec)
        return DW_DLV_NO_ENTRY;
    *data = ob->map + ob->sec[i].offset;
    return DW_DLV_OK;
}

static const Dwarf_Obj_Access_Methods obj_methods = {
    obj_section_info, obj_order, obj_four, obj_eight, obj_count, obj_load, NULL,
};

static void obj_close(struct obj *ob)
{
    if (ob->map)
        munmap(ob->map, ob->size);
    free(ob->sec);
    memset(ob, 0, sizeof(*ob));
}

static int obj_open(struct obj *ob, const char *path, struct ms_err *err)
{
    memset(ob, 0, sizeof(*ob));
    int fd = ms_file_open(path, O_RDONLY, NULL, err);
    if (fd < 0)
        return fd;
    struct stat sb;
    if (fstat(fd, &sb) < 0 || sb.st_size < (off_t)sizeof(Elf64_Ehdr)) {
        close(fd);
        return ms_err_set(err, MS_EFORMAT, "%s: too small for ELF", path);
    }
    ob->size = (size_t)sb.st_size;
    void *m = mmap(NULL, ob->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return ms_err_set(err, MS_EIO, "cannot map %s: %s", path, strerror(errno));
    ob->map = m;
    Elf64_Ehdr eh;
    memcpy(&eh, ob->map, sizeof(eh));
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_shentsize != sizeof(Elf64_Shdr) ||
        eh.e_shnum == 0 || eh.e_shstrndx >= eh.e_shnum || eh.e_shoff > ob->size ||
        (uint64_t)eh.e_shnum * sizeof(Elf64_Shdr) > ob->size - eh.e_shoff) {
        obj_close(ob);
        return ms_err_set(err, MS_EFORMAT, "%s: not a little-endian ELF64 file", path);
    }
    ob->nsec = eh.e_shnum;
    ob->sec = calloc(ob->nsec, sizeof(*ob->sec));
    if (!ob->sec) {
        obj_close(ob);
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    }
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(ob->map + eh.e_shoff);
    const Elf64_Shdr *strs = &sh[eh.e_shstrndx];
    for (unsigned i = 0; i < ob->nsec; i++) {
        Elf64_Shdr h;
        memcpy(&h, &sh[i], sizeof(h));
        const char *name = "";
        if (strs->sh_offset < ob->size && h.sh_name < strs->sh_size &&
            strs->sh_offset + h.sh_name < ob->size) {
            name = (const char *)ob->map + strs->sh_offset + h.sh_name;
            if (!memchr(name, '\0', ob->size - (strs->sh_offset + h.sh_name)))
                name = "";
        }
        bool nobits = h.sh_type == SHT_NOBITS;
        if (!nobits && (h.sh_offset > ob->size || h.sh_size > ob->size - h.sh_offset)) {
            obj_close(ob);
            return ms_err_set(err, MS_EFORMAT, "%s: section %u outside the file", path, i);
        }
        snprintf(ob->sec[i].name, sizeof(ob->sec[i].name), "%s", name);
        if (h.sh_type == SHT_RELA || h.sh_type == SHT_REL)
            snprintf(ob->sec[i].name, sizeof(ob->sec[i].name), ".memsrv-hidden");
        ob->sec[i].info.addr = h.sh_addr;
        ob->sec[i].info.type =
            (h.sh_type == SHT_RELA || h.sh_type == SHT_REL) ? SHT_PROGBITS : h.sh_type;
        ob->sec[i].info.size = nobits ? 0 : h.sh_size;
        ob->sec[i].info.name = ob->sec[i].name;
        ob->sec[i].info.link = h.sh_link;
        ob->sec[i].info.info = h.sh_info;
        ob->sec[i].info.entrysize = h.sh_entsize;
        ob->sec[i].offset = nobits ? 0 : h.sh_offset;
    }
    return 0;
}

static bool udata_attr(Dwarf_Die die, Dwarf_Half at, Dwarf_Unsigned *v)
{
    Dwarf_Attribute a;
    Dwarf_Error de = NULL;
    if (dwarf_attr(die, at, &a, &de) != DW_DLV_OK)
        return false;
    bool ok = dwarf_formudata(a, v, &de) == DW_DLV_OK;
    if (!ok) {
        Dwarf_Signed s;
        ok = dwarf_formsdata(a, &s, &de) == DW_DLV_OK && s >= 0;
        if (ok)
            *v = (Dwarf_Unsigned)s;
    }
    dwarf_dealloc_attribute(a);
    return ok;
}

/* The DIE of die's type with typedefs and cv-qualifiers peeled (caller
 * deallocs), or NULL. */
static Dwarf_Die peeled_type(Dwarf_Debug dbg, Dwarf_Die die)
{
    Dwarf_Error de = NULL;
    Dwarf_Die cur = NULL;
    Dwarf_Die from = die;
    for (int i = 0; i < 16; i++) {
        Dwarf_Off off;
        if (dwarf_dietype_offset(from, &off, &de) != DW_DLV_OK)
            break;
        Dwarf_Die t;
        if (dwarf_offdie_b(dbg, off, 1, &t, &de) != DW_DLV_OK)
            break;
        if (cur)
            dwarf_dealloc_die(cur);
        cur = t;
        Dwarf_Half tag;
        if (dwarf_tag(t, &tag, &de) != DW_DLV_OK)
            break;
        if (tag != DW_TAG_typedef && tag != DW_TAG_const_type && tag != DW_TAG_volatile_type &&
            tag != DW_TAG_restrict_type && tag != DW_TAG_atomic_type)
            return cur;
        from = cur;
    }
    return cur;
}

static uint64_t type_size(Dwarf_Debug dbg, Dwarf_Die t)
{
    Dwarf_Unsigned sz;
    if (udata_attr(t, DW_AT_byte_size, &sz))
        return sz;
    Dwarf_Half tag;
    Dwarf_Error de = NULL;
    if (dwarf_tag(t, &tag, &de) == DW_DLV_OK && tag == DW_TAG_pointer_type)
        return 8;
    if (tag == DW_TAG_array_type) {
        Dwarf_Die el = peeled_type(dbg, t);
        uint64_t es = el ? type_size(dbg, el) : 0;
        if (el)
            dwarf_dealloc_die(el);
        Dwarf_Die sub;
        uint64_t n = 1;
        if (dwarf_child(t, &sub, &de) == DW_DLV_OK) {
            Dwarf_Unsigned c, ub;
            if (udata_attr(sub, DW_AT_count, &c))
                n = c;
            else if (udata_attr(sub, DW_AT_upper_bound, &ub))
                n = ub + 1;
            else
                n = 0; /* a flexible array member ("long x[];") has no bound and no size */
            dwarf_dealloc_die(sub);
        }
        return es * n;
    }
    return 0;
}

static void put(struct ctx *c, const char *key, uint64_t value, uint64_t msize, unsigned bo,
                unsigned bs)
{
    struct ms_typedb_entry e = {0};
    if (strlen(key) >= sizeof(e.key))
        return;
    strcpy(e.key, key);
    e.value = value;
    e.member_size = msize;
    e.bit_offset = (uint16_t)bo;
    e.bit_size = (uint16_t)bs;
    if (ms_typedb_put(c->db, &e, NULL) < 0)
        c->oom = 1;
}

static void add_members(struct ctx *c, const char *sname, Dwarf_Die sdie, uint64_t base, int depth)
{
    Dwarf_Error de = NULL;
    Dwarf_Die m;
    if (depth > MAX_DEPTH || dwarf_child(sdie, &m, &de) != DW_DLV_OK)
        return;
    for (;;) {
        Dwarf_Half tag;
        if (dwarf_tag(m, &tag, &de) == DW_DLV_OK && tag == DW_TAG_member) {
            char *name = NULL;
            if (dwarf_diename(m, &name, &de) != DW_DLV_OK)
                name = NULL;
            Dwarf_Unsigned loc = 0, dbo, bsz = 0;
            udata_attr(m, DW_AT_data_member_location, &loc); /* absent: 0 (unions) */
            bool bitf = udata_attr(m, DW_AT_bit_size, &bsz);
            uint64_t bitpos = (base + loc) * 8;
            if (bitf && udata_attr(m, DW_AT_data_bit_offset, &dbo))
                bitpos = base * 8 + dbo;
            Dwarf_Die t = peeled_type(c->dbg, m);
            if (name) {
                char key[200];
                snprintf(key, sizeof(key), "%s.%s", sname, name);
                put(c, key, bitpos / 8, t ? type_size(c->dbg, t) : 0, bitf ? (unsigned)bitpos : 0,
                    bitf ? (unsigned)bsz : 0);
            } else if (t) {
                Dwarf_Half tt;
                if (dwarf_tag(t, &tt, &de) == DW_DLV_OK &&
                    (tt == DW_TAG_structure_type || tt == DW_TAG_union_type))
                    add_members(c, sname, t, base + loc, depth + 1);
            }
            if (t)
                dwarf_dealloc_die(t);
        }
        Dwarf_Die next;
        int rc = dwarf_siblingof_b(c->dbg, m, 1, &next, &de);
        dwarf_dealloc_die(m);
        if (rc != DW_DLV_OK)
            break;
        m = next;
    }
}

static int want_index(struct ctx *c, const char *name)
{
    for (unsigned i = 0; i < c->nw; i++)
        if (!c->w[i].found && strcmp(c->w[i].name, name) == 0)
            return (int)i;
    return -1;
}

static void scan_cu(struct ctx *c, Dwarf_Die cu)
{
    Dwarf_Error de = NULL;
    Dwarf_Die d;
    if (dwarf_child(cu, &d, &de) != DW_DLV_OK)
        return;
    for (;;) {
        Dwarf_Half tag;
        char *name = NULL;
        if (c->left && dwarf_tag(d, &tag, &de) == DW_DLV_OK &&
            (tag == DW_TAG_structure_type || tag == DW_TAG_typedef) &&
            dwarf_diename(d, &name, &de) == DW_DLV_OK) {
            int i = want_index(c, name);
            if (i >= 0) {
                Dwarf_Bool decl = 0;
                dwarf_hasattr(d, DW_AT_declaration, &decl, &de);
                Dwarf_Die s = NULL;
                if (tag == DW_TAG_typedef) {
                    s = peeled_type(c->dbg, d);
                    Dwarf_Half st;
                    if (s && (dwarf_tag(s, &st, &de) != DW_DLV_OK ||
                              (st != DW_TAG_structure_type && st != DW_TAG_union_type))) {
                        dwarf_dealloc_die(s);
                        s = NULL;
                    }
                    if (s)
                        dwarf_hasattr(s, DW_AT_declaration, &decl, &de);
                }
                Dwarf_Die sd = s ? s : d;
                Dwarf_Unsigned size;
                if (!decl && udata_attr(sd, DW_AT_byte_size, &size)) {
                    put(c, c->w[i].name, size, 0, 0, 0);
                    add_members(c, c->w[i].name, sd, 0, 0);
                    c->w[i].found = true;
                    c->left--;
                }
                if (s)
                    dwarf_dealloc_die(s);
            }
        }
        Dwarf_Die next;
        int rc = dwarf_siblingof_b(c->dbg, d, 1, &next, &de);
        dwarf_dealloc_die(d);
        if (rc != DW_DLV_OK)
            break;
        d = next;
    }
}

static bool is_hint(const char *cu_name)
{
    for (int i = 0; hint_cus[i]; i++) {
        size_t a = strlen(cu_name), b = strlen(hint_cus[i]);
        if (a >= b && strcmp(cu_name + a - b, hint_cus[i]) == 0)
            return true;
    }
    return false;
}

/* One pass over every CU header (the cursor must reach the end); decodes
 * the CUs hinted (hints_only) or all of them. */
static int pass(struct ctx *c, bool hints_only, struct ms_err *err)
{
    for (;;) {
        Dwarf_Unsigned hlen, abbr, next_off, typeoff;
        Dwarf_Half ver, asz, lsz, esz, cu_type;
        Dwarf_Sig8 sig;
        Dwarf_Error de = NULL;
        int rc = dwarf_next_cu_header_d(c->dbg, 1, &hlen, &ver, &abbr, &asz, &lsz, &esz, &sig,
                                        &typeoff, &next_off, &cu_type, &de);
        if (rc == DW_DLV_NO_ENTRY)
            return 0;
        /* The hinted pass is quick; the full pass is the long one. */
        if (!hints_only)
            ms_progress_update(&c->progress, next_off);
        if (rc != DW_DLV_OK)
            return ms_err_set(err, MS_EFORMAT, "reading DWARF CU headers: %s",
                              de ? dwarf_errmsg(de) : "error");
        if (!c->left)
            continue;
        Dwarf_Die cu;
        if (dwarf_siblingof_b(c->dbg, NULL, 1, &cu, &de) != DW_DLV_OK)
            continue;
        char *name = NULL;
        bool go = !hints_only;
        if (hints_only && dwarf_diename(cu, &name, &de) == DW_DLV_OK && name)
            go = is_hint(name);
        if (go)
            scan_cu(c, cu);
        dwarf_dealloc_die(cu);
    }
}

int ms_dwarf_scan_types(struct ms_typedb *db, const char *vmlinux, const char *const *structs,
                        ms_progress_fn progress, void *progress_arg, struct ms_err *err)
{
    bool zlib;
    int rc = check_compression(vmlinux, &zlib, err);
    if (rc < 0)
        return rc;
    struct ctx c = {0};
    c.db = db;
    for (unsigned i = 0; structs[i]; i++) {
        if (c.nw == MAX_WANT)
            return ms_err_set(err, MS_ELIMIT, "too many structs asked for at once");
        if (ms_typedb_get(db, structs[i]) && strcmp(db->source, "VMCOREINFO") != 0)
            continue;
        c.w[c.nw].name = structs[i];
        c.nw++;
    }
    c.left = c.nw;
    if (!c.left)
        return 0;
    Dwarf_Error de = NULL;
    struct obj ob = {0};
    if (zlib) {
        /* compressed sections need libdwarf's own reader, which inflates them */
        if (dwarf_init_path(vmlinux, NULL, 0, DW_DLC_READ, DW_GROUPNUMBER_ANY, NULL, NULL, &c.dbg,
                            NULL, 0, NULL, &de) != DW_DLV_OK)
            return ms_err_set(err, MS_EFORMAT, "libdwarf cannot open %s: %s", vmlinux,
                              de ? dwarf_errmsg(de) : "no DWARF");
    } else {
        rc = obj_open(&ob, vmlinux, err);
        if (rc < 0)
            return rc;
        Dwarf_Obj_Access_Interface iface = {&ob, &obj_methods};
        if (dwarf_object_init_b(&iface, NULL, NULL, DW_GROUPNUMBER_ANY, &c.dbg, &de) != DW_DLV_OK) {
            obj_close(&ob);
            return ms_err_set(err, MS_EFORMAT, "libdwarf cannot open %s: %s", vmlinux,
                              de ? dwarf_errmsg(de) : "no DWARF");
        }
    }
    Dwarf_Unsigned info_size = 0, unused;
    dwarf_get_section_max_offsets(c.dbg, &info_size, &unused, &unused, &unused, &unused, &unused,
                                  &unused, &unused, &unused, &unused, &unused);
    rc = pass(&c, true, err);
    if (rc == 0 && c.left) {
        /* the cursor restarts after reaching the end: a full pass for the rest */
        ms_progress_start(&c.progress, progress, progress_arg, "DWARF types", info_size);
        rc = pass(&c, false, err);
        ms_progress_end(&c.progress);
    }
    dwarf_finish(c.dbg, &de);
    obj_close(&ob);
    if (rc < 0)
        return rc;
    if (c.oom)
        return ms_err_set(err, MS_ENOMEM, "out of memory storing struct layouts");
    if (c.left) {
        char missing[256] = "";
        for (unsigned i = 0; i < c.nw; i++)
            if (!c.w[i].found && strlen(missing) + strlen(c.w[i].name) + 2 < sizeof(missing)) {
                strcat(missing, " ");
                strcat(missing, c.w[i].name);
            }
        return ms_err_set(err, MS_ENOTFOUND, "struct definitions not in %s's DWARF:%s", vmlinux,
                          missing);
    }
    snprintf(db->source, sizeof(db->source), "DWARF");
    return 0;
}

/* ---- cache ---- */

static bool cache_read(const char *path, const char *header, struct ms_typedb *tmp)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[256];
    bool ok = fgets(line, sizeof(line), f) && strcmp(line, header) == 0;
    if (ok) {
        struct ms_strbuf sb;
        ms_strbuf_init(&sb);
        size_t n;
        char buf[4096];
        while ((n = fread(buf, 1, sizeof(buf), f)) > 0 && sb.len < (4u << 20))
            ms_strbuf_append(&sb, buf, n);
        ok = !sb.failed && ms_typedb_parse(tmp, ms_strbuf_str(&sb), sb.len, NULL) == 0;
        ms_strbuf_free(&sb);
    }
    fclose(f);
    return ok;
}

static bool cache_write(const char *path, const char *header, const struct ms_typedb *db)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return false;
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    ms_typedb_dump(db, &sb);
    bool ok = fputs(header, f) >= 0 && fwrite(ms_strbuf_str(&sb), 1, sb.len, f) == sb.len;
    ms_strbuf_free(&sb);
    ok = fclose(f) == 0 && ok;
    if (ok)
        ok = rename(tmp, path) == 0;
    if (!ok)
        unlink(tmp);
    return ok;
}

static int merge(struct ms_typedb *dst, const struct ms_typedb *src, struct ms_err *err)
{
    for (size_t i = 0; i < src->count; i++) {
        int rc = ms_typedb_put(dst, &src->entries[i], err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int ms_dwarf_load_types(struct ms_typedb *db, const char *vmlinux, const char *const *structs,
                        const char *cache_dir, ms_progress_fn progress, void *progress_arg,
                        struct ms_err *err)
{
    struct stat sb;
    if (stat(vmlinux, &sb) < 0)
        return ms_err_set(err, MS_EIO, "cannot stat %s: %s", vmlinux, strerror(errno));
    char header[160], path[4096];
    snprintf(header, sizeof(header), "# memsrv-types 2 size=%lld mtime=%lld\n",
             (long long)sb.st_size, (long long)sb.st_mtime);
    const char *base = strrchr(vmlinux, '/');
    base = base ? base + 1 : vmlinux;
    /* Keyed by name, size and mtime: a rebuilt vmlinux misses the cache. */
    snprintf(path, sizeof(path), "%s/memsrv-types-%s-%lld-%lld", cache_dir ? cache_dir : "", base,
             (long long)sb.st_size, (long long)sb.st_mtime);
    struct ms_typedb cache;
    ms_typedb_init(&cache);
    bool used = cache_dir && cache_read(path, header, &cache);
    bool complete = used;
    for (unsigned i = 0; structs[i] && complete; i++)
        complete = ms_typedb_get(&cache, structs[i]) != NULL;
    int rc = 0;
    if (!complete) {
        /* decode what is missing, then rewrite the cache with everything */
        rc = ms_dwarf_scan_types(&cache, vmlinux, structs, progress, progress_arg, err);
        if (rc == 0 && cache_dir)
            cache_write(path, header, &cache); /* a cache that cannot be written is no error */
    }
    if (rc == 0)
        rc = merge(db, &cache, err);
    if (rc == 0)
        snprintf(db->source, sizeof(db->source), "%s",
                 used && complete ? "DWARF (cached)" : "DWARF");
    ms_typedb_free(&cache);
    return rc;
}
