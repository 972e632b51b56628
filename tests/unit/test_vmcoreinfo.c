/* VMCOREINFO parsing and lookups, the typedb it feeds, the scan over a
 * synthetic RAM image (also behind a hostile, aliasing EPT), and System.map
 * symbol tables. */
#include <stdlib.h>
#include <fcntl.h>
#include <unistd.h>

#include "../support/image.h"
#include "check.h"
#include "physscan.h"
#include "pte.h"
#include "ram.h"
#include "space.h"
#include "symbols.h"
#include "typedb.h"
#include "vmcoreinfo.h"

static const char good[] = "OSRELEASE=6.1.0-56-cloud-amd64\n"
                           "BUILD-ID=3b43fad5034874490492495d552c0af6a5fab235\n"
                           "PAGESIZE=4096\n"
                           "SYMBOL(prb)=ffffffff82a622c0\n"
                           "SIZE(printk_info)=88\n"
                           "OFFSET(printk_info.caller_id)=20\n"
                           "NUMBER(phys_base)=-2097152\n"
                           "NUMBER(pgtable_l5_enabled)=1\n"
                           "LENGTH(mem_section)=131072\n"
                           "KERNELOFFSET=11e00000\n";

static void test_parse(void)
{
    struct ms_vmcoreinfo *vi;
    struct ms_err err;
    CHECK(ms_vmcoreinfo_parse(&vi, good, sizeof(good) - 1, &err) == 0, "parse: %s", err.msg);
    if (!vi)
        return;
    uint64_t u;
    int64_t s;
    CHECK(!strcmp(ms_vmcoreinfo_get(vi, "OSRELEASE"), "6.1.0-56-cloud-amd64"), "osrelease");
    CHECK(ms_vmcoreinfo_symbol(vi, "prb", &u, &err) == 0 && u == 0xffffffff82a622c0ULL, "prb");
    CHECK(ms_vmcoreinfo_size(vi, "printk_info", &u, &err) == 0 && u == 88, "size");
    CHECK(ms_vmcoreinfo_offset(vi, "printk_info", "caller_id", &u, &err) == 0 && u == 20, "off");
    CHECK(ms_vmcoreinfo_number(vi, "phys_base", &s, &err) == 0 &&
              (uint64_t)s == 0xffffffffffe00000ULL,
          "phys_base %lld", (long long)s);
    CHECK(ms_vmcoreinfo_length(vi, "mem_section", &u, &err) == 0 && u == 131072, "length");
    CHECK(ms_vmcoreinfo_kerneloffset(vi, &u, &err) == 0 && u == 0x11e00000, "kerneloffset");
    CHECK(ms_vmcoreinfo_symbol(vi, "nope", &u, &err) == MS_ENOTFOUND, "missing symbol");
    CHECK(strstr(err.msg, "SYMBOL(nope)") != NULL, "message names the key: %s", err.msg);
    struct ms_typedb db;
    ms_typedb_init(&db);
    CHECK(ms_typedb_from_vmcoreinfo(&db, vi, &err) == 0, "typedb");
    CHECK(ms_typedb_offset(&db, "printk_info", "caller_id", &u, &err) == 0 && u == 20, "db off");
    CHECK(ms_typedb_size(&db, "printk_info", &u, &err) == 0 && u == 88, "db size");
    CHECK(ms_typedb_offset(&db, "task_struct", "pid", &u, &err) == MS_ENOTFOUND &&
              strstr(err.msg, "VMCOREINFO"),
          "missing member names its source: %s", err.msg);
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    ms_typedb_dump(&db, &sb);
    struct ms_typedb db2;
    ms_typedb_init(&db2);
    CHECK(ms_typedb_parse(&db2, ms_strbuf_str(&sb), sb.len, &err) == 0 && db2.count == db.count,
          "typedb round trip");
    CHECK(ms_typedb_parse(&db2, "x 1 2\n", 6, &err) == MS_EFORMAT, "typedb junk accepted");
    ms_strbuf_free(&sb);
    ms_typedb_free(&db);
    ms_typedb_free(&db2);
    ms_vmcoreinfo_free(vi);
}

static void test_hostile(void)
{
    struct ms_vmcoreinfo *vi;
    struct ms_err err;
    static const char *bad[] = {
        "PAGESIZE=4096\n",                       /* no OSRELEASE */
        "OSRELEASE=6.1\nnot a key value line\n", /* no '=' */
        "OSRELEASE=6.1\n=value\n",               /* empty key */
        "OSRELEASE=6.1\nKEY\x01=1\n",            /* control byte in key */
        "OSRELEASE=6.1\nKEY=a\x02"
        "b\n", /* control byte in value */
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        vi = NULL;
        CHECK(ms_vmcoreinfo_parse(&vi, bad[i], strlen(bad[i]), &err) == MS_EFORMAT && !vi,
              "hostile %zu accepted", i);
    }
    /* numbers: overflow, junk, wrong base */
    const char *t = "OSRELEASE=x\nSYMBOL(a)=1ffffffffffffffff\nSYMBOL(b)=xyz\n"
                    "SIZE(c)=18446744073709551616\nNUMBER(d)=-9223372036854775809\n"
                    "OFFSET(e.f)=12a\nKERNELOFFSET=\n";
    CHECK(ms_vmcoreinfo_parse(&vi, t, strlen(t), &err) == 0, "parse numbers: %s", err.msg);
    uint64_t u;
    int64_t s;
    CHECK(ms_vmcoreinfo_symbol(vi, "a", &u, &err) == MS_EFORMAT, "hex overflow");
    CHECK(ms_vmcoreinfo_symbol(vi, "b", &u, &err) == MS_EFORMAT, "hex junk");
    CHECK(ms_vmcoreinfo_size(vi, "c", &u, &err) == MS_EFORMAT, "dec overflow");
    CHECK(ms_vmcoreinfo_number(vi, "d", &s, &err) == MS_EFORMAT, "signed overflow");
    CHECK(ms_vmcoreinfo_offset(vi, "e", "f", &u, &err) == MS_EFORMAT, "dec junk");
    CHECK(ms_vmcoreinfo_kerneloffset(vi, &u, &err) == MS_EFORMAT, "empty value");
    ms_vmcoreinfo_free(vi);
    /* a NUL ends the text; an over-long block is refused */
    CHECK(ms_vmcoreinfo_parse(&vi, "OSRELEASE=1\n\0garbage\x01", 21, &err) == 0 && vi->count == 1,
          "NUL ends");
    ms_vmcoreinfo_free(vi);
    size_t n = MS_VMCOREINFO_MAX + 100;
    char *big = malloc(n);
    memset(big, 'A', n);
    memcpy(big, "OSRELEASE=", 10);
    vi = NULL;
    CHECK(ms_vmcoreinfo_parse(&vi, big, n, &err) == MS_EFORMAT && !vi, "over-long accepted");
    free(big);
}

/* A 1 MiB RAM file holding a note-style block near its end, a decoy with
 * format strings, and a page-start block. */
static void test_scan(void)
{
    char path[] = "/tmp/test_vmcoreinfo_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd < 0)
        return;
    size_t size = 1 << 20;
    uint8_t *img = calloc(1, size);
    memcpy(img + 0x3000 + 0x123, "OSRELEASE=%s\nPAGESIZE=%ld\n", 26); /* kernel's .rodata */
    uint8_t *note = img + 0xf0000;
    uint32_t namesz = 11, descsz = (uint32_t)(sizeof(good) - 1), type = 0;
    memcpy(note, &namesz, 4);
    memcpy(note + 4, &descsz, 4);
    memcpy(note + 8, &type, 4);
    memcpy(note + 12, "VMCOREINFO", 11);
    memcpy(note + 0x18, good, sizeof(good) - 1);
    CHECK(write(fd, img, size) == (ssize_t)size, "write");
    close(fd);
    struct ms_layout l = {.count = 1};
    l.regions[0].gpa = 0;
    l.regions[0].len = size;
    struct ms_ram *ram;
    struct ms_space *phys;
    struct ms_err err;
    CHECK(ms_ram_open_file(&ram, path, &l, NULL, 0, &err) == 0, "open: %s", err.msg);
    CHECK(ms_space_phys(&phys, ram, &err) == 0, "phys");
    struct ms_vmcoreinfo *vi = NULL;
    CHECK(ms_vmcoreinfo_scan(&vi, phys, false, &err) == 0, "scan: %s", err.msg);
    CHECK(vi && vi->found_at == 0xf0018, "found at %llx",
          vi ? (unsigned long long)vi->found_at : 0ULL);
    CHECK(vi && vi->count == 10, "all lines %zu", vi ? vi->count : 0);
    ms_vmcoreinfo_free(vi);
    /* page-unaligned only: the fast probe misses it, the full scan finds it */
    memset(img, 0, size);
    memcpy(img + 0x5555, good, sizeof(good) - 1);
    fd = open(path, O_WRONLY);
    CHECK(pwrite(fd, img, size, 0) == (ssize_t)size, "rewrite");
    close(fd);
    vi = NULL;
    CHECK(ms_vmcoreinfo_scan(&vi, phys, false, &err) == MS_ENOTFOUND, "fast probe found it");
    CHECK(ms_vmcoreinfo_scan(&vi, phys, true, &err) == 0 && vi && vi->found_at == 0x5555,
          "full scan: %s", err.msg);
    ms_vmcoreinfo_free(vi);
    ms_space_free(phys);
    ms_ram_close(ram);
    unlink(path);
    free(img);
}

/* An EPT mapping 2^48 bytes, every 1 GiB page onto RAM's first byte: the
 * scan sees RAM's size once (not 256 TiB of aliases) and still finds the
 * block. */
static void test_scan_aliasing_ept(void)
{
    struct img im;
    img_open(&im, 1 << 20);
    uint64_t pml4 = img_alloc_page(&im), pdpt = img_alloc_page(&im);
    uint64_t rwx = EPT_READ | EPT_WRITE | EPT_EXEC;
    for (unsigned i = 0; i < 512; i++) {
        img_put64(&im, pml4 + 8 * i, pdpt | rwx);
        img_put64(&im, pdpt + 8 * i, 0 | rwx | EPT_LARGE | 6 << EPT_MEMTYPE_SHIFT);
    }
    ms_ram_write(im.ram, 0x40000, good, sizeof(good) - 1, NULL, NULL);
    struct ms_space *phys, *ept;
    struct ms_err err;
    ms_space_phys(&phys, im.ram, NULL);
    CHECK(ms_space_ept(&ept, phys, pml4 | 6 | 3 << 3, &err) == 0, "%s", err.msg);
    struct ms_phys_range *r = NULL;
    size_t n = 0;
    uint64_t total = 0;
    CHECK(ms_phys_ranges(ept, &r, &n, &err) == 0, "%s", err.msg);
    for (size_t i = 0; i < n; i++)
        total += r[i].len;
    CHECK(n == 1 && r[0].start == 0 && total == 1 << 20, "%zu ranges, %llu bytes", n,
          (unsigned long long)total);
    free(r);
    struct ms_vmcoreinfo *vi = NULL;
    CHECK(ms_vmcoreinfo_scan(&vi, ept, true, &err) == 0 && vi && vi->found_at == 0x40000, "%s",
          err.msg);
    ms_vmcoreinfo_free(vi);
    ms_space_free(ept);
    ms_space_free(phys);
    img_close(&im);
}

static void test_symbols(void)
{
    const char map[] = "0000000000000000 A __per_cpu_start\n"
                       "0000000000012340 D runqueues\n"
                       "ffffffff81000000 T _text\n"
                       "ffffffff81000000 T startup_64\n"
                       "ffffffff81000100 t local_fn\n"
                       "ffffffff8211ffe0 D linux_banner\n"
                       "ffffffff82a10000 D init_top_pgt\n";
    struct ms_symtab *st;
    struct ms_err err;
    CHECK(ms_symtab_parse_map(&st, map, sizeof(map) - 1, &err) == 0, "map: %s", err.msg);
    if (!st)
        return;
    CHECK(ms_symtab_count(st) == 7, "count %zu", ms_symtab_count(st));
    ms_symtab_set_slide(st, 0x11e00000);
    uint64_t a;
    CHECK(ms_symtab_lookup(st, "linux_banner", &a, &err) == 0 && a == 0xffffffff93f1ffe0ULL,
          "slid banner %llx", (unsigned long long)a);
    CHECK(ms_symtab_lookup(st, "runqueues", &a, &err) == 0 && a == 0x12340, "per-cpu not slid");
    const struct ms_symbol *s;
    uint64_t off;
    CHECK(ms_symtab_addr(st, 0xffffffff93f1ffe5ULL, &s, &off, &err) == 0 &&
              !strcmp(s->name, "linux_banner") && off == 5,
          "addr->sym");
    CHECK(ms_symtab_addr(st, 0xffffffff92e00010ULL, &s, &off, &err) == 0 &&
              !strcmp(s->name, "startup_64") && off == 0x10,
          "tie prefers a plain global name: %s", s ? s->name : "?");
    CHECK(ms_symtab_addr(st, 0xffffffff80000000ULL, &s, &off, &err) == MS_ENOTFOUND, "below");
    CHECK(ms_symtab_addr(st, 0xffffffff94a10000ULL + (2 << 20), &s, &off, &err) == MS_ENOTFOUND,
          "far past the last");
    CHECK(ms_symtab_lookup(st, "nope", &a, &err) == MS_ENOTFOUND, "unknown name");
    ms_symtab_free(st);
    static const char *bad[] = {"zzzz T x\n", "ffffffff81000000 T\n", "ffffffff81000000 TT x\n",
                                "11111111111111111 T x\n", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        st = NULL;
        CHECK(ms_symtab_parse_map(&st, bad[i], strlen(bad[i]), &err) == MS_EFORMAT && !st,
              "bad map %zu accepted", i);
    }
}

/* Names and sizes the way the kernel's %pS prints them. */
static void test_kallsyms_extent(void)
{
    static const char map[] = "ffffffff810ad400 T __x64_sys_getpid\n"
                              "ffffffff810ad410 t __do_sys_pause\n"
                              "ffffffff810ad410 T __ia32_sys_pause\n"
                              "ffffffff810ad410 T __x64_sys_pause\n"
                              "ffffffff810ad460 W weak_fn\n"
                              "ffffffff810ad460 T strong_fn\n"
                              "ffffffff810ad470 T __start_things\n"
                              "ffffffff810ad470 T ___plain\n"
                              "ffffffff810ad480 T last\n";
    struct ms_symtab *st = NULL;
    struct ms_err err;
    CHECK(ms_symtab_parse_map(&st, map, strlen(map), &err) == 0, "map: %s", err.msg);
    if (!st)
        return;
    const struct ms_symbol *s;
    uint64_t off, size;
    CHECK(ms_symtab_addr_extent(st, 0xffffffff810ad434ULL, &s, &off, &size, &err) == 0 &&
              !strcmp(s->name, "__do_sys_pause") && off == 0x24 && size == 0x50,
          "aliases: kallsyms names the first by name: %s+%#llx/%#llx", s->name,
          (unsigned long long)off, (unsigned long long)size);
    CHECK(ms_symtab_addr_extent(st, 0xffffffff810ad460ULL, &s, &off, &size, &err) == 0 &&
              !strcmp(s->name, "strong_fn") && size == 0x10,
          "strong before weak: %s", s->name);
    CHECK(ms_symtab_addr_extent(st, 0xffffffff810ad471ULL, &s, &off, &size, &err) == 0 &&
              !strcmp(s->name, "___plain"),
          "not linker-provided before fewer underscores: %s", s->name);
    ms_symtab_free(st);
}

int main(void)
{
    test_kallsyms_extent();
    test_parse();
    test_hostile();
    test_scan();
    test_scan_aliasing_ept();
    test_symbols();
    return check_done("test_vmcoreinfo");
}
