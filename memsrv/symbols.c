#include "symbols.h"

#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmcoreinfo.h"

struct image_section {
    uint64_t addr, size, offset;
};

struct ms_symtab {
    char *path;
    bool is_elf;
    char *strings; /* owned name storage */
    struct ms_symbol *syms;
    size_t count;
    uint32_t *hash; /* open addressing: index+1, 0 = empty */
    size_t hash_mask;
    uint32_t *by_addr; /* indexes of kernel-half symbols, sorted by address */
    size_t naddr;
    uint32_t *by_low; /* per-CPU offsets and absolute values, sorted by address */
    size_t nlow;
    uint64_t slide;
    char build_id[41];
    struct image_section *secs;
    size_t nsecs;
};

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

void ms_symtab_free(struct ms_symtab *st)
{
    if (!st)
        return;
    free(st->path);
    free(st->strings);
    free(st->syms);
    free(st->hash);
    free(st->by_addr);
    free(st->by_low);
    free(st->secs);
    free(st);
}

static int type_rank(const struct ms_symbol *s)
{
    int r = 0;
    if (s->type >= 'A' && s->type <= 'Z')
        r += 2;
    if (s->name[0] != '_' && s->name[0] != '.')
        r += 1;
    return r;
}

static int cmp_addr(const void *a, const void *b, void *base)
{
    const struct ms_symbol *x = (const struct ms_symbol *)base + *(const uint32_t *)a;
    const struct ms_symbol *y = (const struct ms_symbol *)base + *(const uint32_t *)b;
    if (x->addr != y->addr)
        return x->addr < y->addr ? -1 : 1;
    int rx = type_rank(x), ry = type_rank(y);
    if (rx != ry)
        return rx - ry; /* best last: the binary search lands on the last tie */
    int c = strcmp(x->name, y->name);
    if (c)
        return -c;
    return *(const uint32_t *)a < *(const uint32_t *)b ? 1 : -1;
}

/* Builds the hash table and the address index. */
static int index_symbols(struct ms_symtab *st, struct ms_err *err)
{
    size_t size = 16;
    while (size < st->count * 2)
        size <<= 1;
    st->hash = calloc(size, sizeof(*st->hash));
    st->by_addr = malloc((st->count ? st->count : 1) * sizeof(*st->by_addr));
    st->by_low = malloc((st->count ? st->count : 1) * sizeof(*st->by_low));
    if (!st->hash || !st->by_addr)
        return ms_err_set(err, MS_ENOMEM, "out of memory indexing %zu symbols", st->count);
    st->hash_mask = size - 1;
    for (size_t i = 0; i < st->count; i++) {
        size_t h = fnv(st->syms[i].name) & st->hash_mask;
        bool dup = false;
        while (st->hash[h]) {
            if (strcmp(st->syms[st->hash[h] - 1].name, st->syms[i].name) == 0) {
                /* first global wins; a local does not shadow a global */
                const struct ms_symbol *old = &st->syms[st->hash[h] - 1];
                if (!(old->type >= 'a' && st->syms[i].type < 'a'))
                    dup = true;
                else
                    st->hash[h] = (uint32_t)i + 1, dup = true;
                break;
            }
            h = (h + 1) & st->hash_mask;
        }
        if (!dup)
            st->hash[h] = (uint32_t)i + 1;
        if (st->syms[i].addr >= 0xffff800000000000ULL && st->syms[i].type != 'A' &&
            st->syms[i].type != 'a')
            st->by_addr[st->naddr++] = (uint32_t)i;
        else if (st->syms[i].addr < 0xffff800000000000ULL) /* kallsyms: 'A' on x86-64 */
            st->by_low[st->nlow++] = (uint32_t)i;
    }
    qsort_r(st->by_addr, st->naddr, sizeof(*st->by_addr), cmp_addr, st->syms);
    qsort_r(st->by_low, st->nlow, sizeof(*st->by_low), cmp_addr, st->syms);
    return 0;
}

static struct ms_symtab *new_symtab(const char *path)
{
    struct ms_symtab *st = calloc(1, sizeof(*st));
    if (st) {
        st->path = strdup(path ? path : "(memory)");
        if (!st->path) {
            free(st);
            st = NULL;
        }
    }
    return st;
}

static bool map_type_ok(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* Takes ownership of text (len bytes + NUL, writable). */
static int parse_map_owned(struct ms_symtab *st, char *text, size_t len, struct ms_err *err)
{
    st->strings = text;
    size_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    if (lines > UINT32_MAX - 1)
        return ms_err_set(err, MS_ELIMIT, "System.map has too many lines");
    st->syms = malloc(lines * sizeof(*st->syms));
    if (!st->syms)
        return ms_err_set(err, MS_ENOMEM, "out of memory for %zu symbols", lines);
    char *p = text, *end = text + len;
    unsigned lineno = 0;
    while (p < end) {
        lineno++;
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        *le = '\0';
        if (le > p && le[-1] == '\r')
            le[-1] = '\0';
        if (*p == '\0') {
            p = le + 1;
            continue;
        }
        /* "ffffffff81000000 T _text" */
        char *sp1 = strchr(p, ' ');
        if (!sp1 || !map_type_ok(sp1[1]) || sp1[2] != ' ' || !sp1[3])
            return ms_err_set(err, MS_EFORMAT, "%s line %u: not \"ADDR TYPE NAME\"", st->path,
                              lineno);
        *sp1 = '\0';
        uint64_t addr;
        if (sp1 - p > 16 || ms_parse_hex_u64(p, &addr) < 0)
            return ms_err_set(err, MS_EFORMAT, "%s line %u: bad address", st->path, lineno);
        char *name = sp1 + 3;
        char *tab = strpbrk(name, " \t"); /* module maps: "name\t[mod]" */
        if (tab)
            *tab = '\0';
        st->syms[st->count].name = name;
        st->syms[st->count].addr = addr;
        st->syms[st->count].size = 0;
        st->syms[st->count].type = sp1[1];
        st->count++;
        p = le + 1;
    }
    if (st->count == 0)
        return ms_err_set(err, MS_EFORMAT, "%s holds no symbols", st->path);
    return index_symbols(st, err);
}

int ms_symtab_parse_map(struct ms_symtab **out, const char *text, size_t len, struct ms_err *err)
{
    *out = NULL;
    struct ms_symtab *st = new_symtab(NULL);
    char *copy = malloc(len + 1);
    if (!st || !copy) {
        free(copy);
        ms_symtab_free(st);
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    int rc = parse_map_owned(st, copy, len, err);
    if (rc < 0) {
        ms_symtab_free(st);
        return rc;
    }
    *out = st;
    return 0;
}

int ms_symtab_adopt(struct ms_symtab **out, const char *what, struct ms_symbol *syms, size_t count,
                    char *strings, struct ms_err *err)
{
    *out = NULL;
    struct ms_symtab *st = new_symtab(what);
    if (!st) {
        free(syms);
        free(strings);
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    }
    st->syms = syms;
    st->count = count;
    st->strings = strings;
    int rc = count > UINT32_MAX - 1
                 ? ms_err_set(err, MS_ELIMIT, "%s: too many symbols (%zu)", st->path, count)
                 : index_symbols(st, err);
    if (rc < 0) {
        ms_symtab_free(st);
        return rc;
    }
    *out = st;
    return 0;
}

static int read_whole(const char *path, char **out, size_t *len, struct ms_err *err)
{
    struct stat sb;
    int fd = ms_file_open(path, O_RDONLY, &sb, err);
    if (fd < 0)
        return fd;
    if (sb.st_size < 0 || (uint64_t)sb.st_size > (1ULL << 30)) {
        close(fd);
        return ms_err_set(err, MS_EIO, "%s: cannot stat or too large", path);
    }
    size_t n = (size_t)sb.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        close(fd);
        return ms_err_set(err, MS_ENOMEM, "out of memory reading %s", path);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return 0;
}

int ms_symtab_load_map(struct ms_symtab **out, const char *path, struct ms_err *err)
{
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = read_whole(path, &text, &len, err);
    if (rc < 0)
        return rc;
    struct ms_symtab *st = new_symtab(path);
    if (!st) {
        free(text);
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    }
    rc = parse_map_owned(st, text, len, err);
    if (rc < 0) {
        ms_symtab_free(st);
        return rc;
    }
    *out = st;
    return 0;
}

static char elf_type_letter(const GElf_Sym *s, const GElf_Shdr *sec)
{
    char c;
    if (s->st_shndx == SHN_ABS)
        c = 'a';
    else if (!sec)
        c = '?';
    else if (sec->sh_type == SHT_NOBITS)
        c = 'b';
    else if (sec->sh_flags & SHF_EXECINSTR)
        c = 't';
    else if (sec->sh_flags & SHF_WRITE)
        c = 'd';
    else
        c = 'r';
    if (GELF_ST_BIND(s->st_info) != STB_LOCAL)
        c = (char)(c - 'a' + 'A');
    if (GELF_ST_BIND(s->st_info) == STB_WEAK)
        c = 'W';
    return c;
}

static int load_elf(struct ms_symtab *st, int fd, struct ms_err *err)
{
    Elf *e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    if (!e)
        return ms_err_set(err, MS_EFORMAT, "%s: not an ELF file: %s", st->path, elf_errmsg(-1));
    int rc = 0;
    size_t nsec = 0;
    if (elf_getshdrnum(e, &nsec) < 0 || nsec == 0) {
        rc = ms_err_set(err, MS_EFORMAT, "%s: no section headers", st->path);
        goto out;
    }
    GElf_Shdr *shdrs = calloc(nsec, sizeof(*shdrs));
    st->secs = calloc(nsec, sizeof(*st->secs));
    if (!shdrs || !st->secs) {
        free(shdrs);
        rc = ms_err_set(err, MS_ENOMEM, "out of memory");
        goto out;
    }
    Elf_Scn *symscn = NULL;
    for (size_t i = 0; i < nsec; i++) {
        Elf_Scn *scn = elf_getscn(e, i);
        if (!scn || !gelf_getshdr(scn, &shdrs[i]))
            continue;
        GElf_Shdr *sh = &shdrs[i];
        if (sh->sh_type == SHT_SYMTAB)
            symscn = scn;
        if ((sh->sh_flags & SHF_ALLOC) && sh->sh_type != SHT_NOBITS && sh->sh_addr) {
            st->secs[st->nsecs].addr = sh->sh_addr;
            st->secs[st->nsecs].size = sh->sh_size;
            st->secs[st->nsecs].offset = sh->sh_offset;
            st->nsecs++;
        }
        if (sh->sh_type == SHT_NOTE && !st->build_id[0]) {
            Elf_Data *d = elf_getdata(scn, NULL);
            size_t off = 0, next, noff, doff;
            GElf_Nhdr nh;
            while (d && (next = gelf_getnote(d, off, &nh, &noff, &doff)) > 0) {
                if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
                    memcmp((char *)d->d_buf + noff, "GNU", 4) == 0 && nh.n_descsz <= 20) {
                    const uint8_t *id = (const uint8_t *)d->d_buf + doff;
                    for (unsigned k = 0; k < nh.n_descsz; k++)
                        snprintf(st->build_id + 2 * k, 3, "%02x", id[k]);
                    break;
                }
                off = next;
            }
        }
    }
    if (!symscn) {
        free(shdrs);
        rc = ms_err_set(err, MS_ENOTFOUND, "%s has no .symtab (stripped?)", st->path);
        goto out;
    }
    GElf_Shdr symsh;
    gelf_getshdr(symscn, &symsh);
    Elf_Data *sd = elf_getdata(symscn, NULL);
    Elf_Scn *strscn = elf_getscn(e, symsh.sh_link);
    Elf_Data *strd = strscn ? elf_getdata(strscn, NULL) : NULL;
    if (!sd || !strd || symsh.sh_entsize == 0 || !strd->d_size) {
        free(shdrs);
        rc = ms_err_set(err, MS_EFORMAT, "%s: unreadable symbol table", st->path);
        goto out;
    }
    size_t n = symsh.sh_size / symsh.sh_entsize;
    /* One copy of the string table: names point into it after elf_end. */
    st->strings = malloc(strd->d_size + 1);
    st->syms = malloc((n ? n : 1) * sizeof(*st->syms));
    if (!st->strings || !st->syms || n > UINT32_MAX - 1) {
        free(shdrs);
        rc = ms_err_set(err, MS_ENOMEM, "out of memory for %zu symbols", n);
        goto out;
    }
    memcpy(st->strings, strd->d_buf, strd->d_size);
    st->strings[strd->d_size] = '\0';
    for (size_t i = 1; i < n; i++) {
        GElf_Sym s;
        if (!gelf_getsym(sd, (int)i, &s))
            continue;
        int t = GELF_ST_TYPE(s.st_info);
        if (t == STT_SECTION || t == STT_FILE || s.st_shndx == SHN_UNDEF)
            continue;
        if (s.st_name == 0 || s.st_name >= strd->d_size)
            continue;
        const GElf_Shdr *sec = s.st_shndx < nsec ? &shdrs[s.st_shndx] : NULL;
        struct ms_symbol *y = &st->syms[st->count++];
        y->name = st->strings + s.st_name;
        y->addr = s.st_value;
        y->size = s.st_size;
        y->type = elf_type_letter(&s, sec);
    }
    free(shdrs);
    rc = index_symbols(st, err);
out:
    elf_end(e);
    return rc;
}

int ms_symtab_load_elf(struct ms_symtab **out, const char *path, struct ms_err *err)
{
    *out = NULL;
    elf_version(EV_CURRENT);
    int fd = ms_file_open(path, O_RDONLY, NULL, err);
    if (fd < 0)
        return fd;
    struct ms_symtab *st = new_symtab(path);
    if (!st) {
        close(fd);
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    }
    st->is_elf = true;
    int rc = load_elf(st, fd, err);
    close(fd);
    if (rc < 0) {
        ms_symtab_free(st);
        return rc;
    }
    *out = st;
    return 0;
}

int ms_symtab_load(struct ms_symtab **out, const char *path, struct ms_err *err)
{
    *out = NULL;
    int fd = ms_file_open(path, O_RDONLY, NULL, err);
    if (fd < 0)
        return fd;
    char magic[4] = {0};
    ssize_t r = read(fd, magic, 4);
    close(fd);
    if (r == 4 && memcmp(magic, "\177ELF", 4) == 0)
        return ms_symtab_load_elf(out, path, err);
    return ms_symtab_load_map(out, path, err);
}

void ms_symtab_set_slide(struct ms_symtab *st, uint64_t slide)
{
    st->slide = slide;
}

uint64_t ms_symtab_slide(const struct ms_symtab *st)
{
    return st->slide;
}

size_t ms_symtab_count(const struct ms_symtab *st)
{
    return st->count;
}

const char *ms_symtab_path(const struct ms_symtab *st)
{
    return st->path;
}

bool ms_symtab_is_elf(const struct ms_symtab *st)
{
    return st->is_elf;
}

const char *ms_symtab_build_id(const struct ms_symtab *st)
{
    return st->build_id;
}

uint64_t ms_symtab_runtime(const struct ms_symtab *st, uint64_t linked)
{
    return linked >= MS_KERNEL_MAP_START ? linked + st->slide : linked;
}

const struct ms_symbol *ms_symtab_find(const struct ms_symtab *st, const char *name)
{
    size_t h = fnv(name) & st->hash_mask;
    while (st->hash[h]) {
        const struct ms_symbol *s = &st->syms[st->hash[h] - 1];
        if (strcmp(s->name, name) == 0)
            return s;
        h = (h + 1) & st->hash_mask;
    }
    return NULL;
}

int ms_symtab_lookup(const struct ms_symtab *st, const char *name, uint64_t *addr,
                     struct ms_err *err)
{
    const struct ms_symbol *s = ms_symtab_find(st, name);
    if (!s)
        return ms_err_set(err, MS_ENOTFOUND, "no symbol \"%s\" in %s", name, st->path);
    *addr = ms_symtab_runtime(st, s->addr);
    return 0;
}

int ms_symtab_addr(const struct ms_symtab *st, uint64_t addr, const struct ms_symbol **sym,
                   uint64_t *offset, struct ms_err *err)
{
    size_t lo = 0, hi = st->naddr; /* first index with runtime addr > addr */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ms_symtab_runtime(st, st->syms[st->by_addr[mid]].addr) <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return ms_err_set(err, MS_ENOTFOUND, "no symbol at or below 0x%llx",
                          (unsigned long long)addr);
    const struct ms_symbol *s = &st->syms[st->by_addr[lo - 1]];
    uint64_t off = addr - ms_symtab_runtime(st, s->addr);
    if (lo == st->naddr && off > (1u << 20))
        return ms_err_set(err, MS_ENOTFOUND, "0x%llx is past the last symbol",
                          (unsigned long long)addr);
    *sym = s;
    *offset = off;
    return 0;
}

/* scripts/kallsyms.c's may_be_linker_script_provide_symbol (6.1). */
static bool linker_provided(const char *name)
{
    size_t len = strlen(name);
    if (len < 8 || name[0] != '_' || name[1] != '_')
        return false;
    return !strncmp(name + 2, "start_", 6) || !strncmp(name + 2, "stop_", 5) ||
           !strncmp(name + 2, "end_", 4) || !strcmp(name + len - 6, "_start") ||
           !strcmp(name + len - 4, "_end");
}

/* kallsyms' order among symbols at one address (scripts/kallsyms.c
 * compare_symbols): strong before weak, then not linker-provided, then
 * fewer leading underscores, then nm's order (by name). Its lookups name
 * the first. */
static bool kallsyms_before(const struct ms_symbol *a, const struct ms_symbol *b)
{
    bool wa = a->type == 'W' || a->type == 'w', wb = b->type == 'W' || b->type == 'w';
    if (wa != wb)
        return wb;
    bool la = linker_provided(a->name), lb = linker_provided(b->name);
    if (la != lb)
        return lb;
    size_t ua = strspn(a->name, "_"), ub = strspn(b->name, "_");
    if (ua != ub)
        return ua < ub;
    return strcmp(a->name, b->name) < 0;
}

/* The first index of by_addr whose runtime address is above addr. */
static size_t first_above(const struct ms_symtab *st, uint64_t addr)
{
    size_t lo = 0, hi = st->naddr;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ms_symtab_runtime(st, st->syms[st->by_addr[mid]].addr) <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int ms_symtab_addr_extent(const struct ms_symtab *st, uint64_t addr, const struct ms_symbol **sym,
                          uint64_t *offset, uint64_t *size, struct ms_err *err)
{
    int rc = ms_symtab_addr(st, addr, sym, offset, err);
    if (rc < 0)
        return rc;
    uint64_t start = addr - *offset;
    size_t next = first_above(st, start);
    for (size_t i = next; i-- > 0;) {
        const struct ms_symbol *s = &st->syms[st->by_addr[i]];
        if (ms_symtab_runtime(st, s->addr) != start)
            break;
        if (kallsyms_before(s, *sym))
            *sym = s;
    }
    if (next < st->naddr)
        *size = ms_symtab_runtime(st, st->syms[st->by_addr[next]].addr) - start;
    else
        *size = (*sym)->size > *offset ? (*sym)->size : *offset + 1;
    return 0;
}

int ms_symtab_addr_percpu(const struct ms_symtab *st, uint64_t addr, const struct ms_symbol **sym,
                          uint64_t *offset, uint64_t *size)
{
    size_t lo = 0, hi = st->nlow; /* first index with addr > addr */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (st->syms[st->by_low[mid]].addr <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || lo == st->nlow)
        return MS_ENOTFOUND; /* past the last one: no extent known */
    *sym = &st->syms[st->by_low[lo - 1]];
    *offset = addr - (*sym)->addr;
    *size = st->syms[st->by_low[lo]].addr - (*sym)->addr;
    return 0;
}

int ms_symtab_read_image(const struct ms_symtab *st, uint64_t vaddr, void *buf, size_t len,
                         struct ms_err *err)
{
    if (!st->is_elf)
        return ms_err_set(err, MS_EINVAL, "%s is not an ELF file: no section contents", st->path);
    for (size_t i = 0; i < st->nsecs; i++) {
        const struct image_section *s = &st->secs[i];
        if (vaddr >= s->addr && vaddr - s->addr <= s->size && len <= s->size - (vaddr - s->addr)) {
            int fd = open(st->path, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                return ms_err_set(err, MS_EIO, "cannot open %s: %s", st->path, strerror(errno));
            ssize_t r = pread(fd, buf, len, (off_t)(s->offset + (vaddr - s->addr)));
            close(fd);
            if (r < 0 || (size_t)r != len)
                return ms_err_set(err, MS_EIO, "short read from %s", st->path);
            return 0;
        }
    }
    return ms_err_set(err, MS_ENOTFOUND, "0x%llx is not in an initialized section of %s",
                      (unsigned long long)vaddr, st->path);
}
