/* The module-list decoder and walker on synthetic kernel memory: struct
 * modules linked from a `modules` head the way the kernel links them, with
 * module_use entries on their source_lists, printed as /proc/modules; then
 * broken: loops that never return to the head, NULL, pointers into
 * nowhere, users lists that loop, more modules than the limit. */
#include <stdlib.h>

#include "check.h"
#include "../support/arena.h"
#include "modsyms.h"
#include "modules.h"
#include "strbuf.h"

#define BASE 0xffffffffc0000000ULL
#define ARENA 0x2000
#define STRIDE 0x100 /* one struct module */
#define USES 0x1000  /* module_use entries from here, 0x40 each */
#define HEAD 0x1f00  /* the `modules` list head */
#define NAME_LEN 56

static uint8_t mem[ARENA];
static struct test_arena arena = {BASE, mem, ARENA, 0, 0};

/* 6.1's shape: core_layout and init_layout sizes, unload support */
static const struct ms_module_layout layout = {
    .state = 0x00,
    .list = 0x08,
    .name = 0x18,
    .name_len = NAME_LEN,
    .base = 0x60,
    .nsizes = 2,
    .sizes = {0x68, 0x6c},
    .has_taints = true,
    .taints = 0x70,
    .has_unload = true,
    .refcnt = 0x78,
    .source_list = 0x80,
    .init = 0x90,
    .exit = 0x98,
    .use_source_list = 0x00,
    .use_source = 0x20,
};

static uint64_t mod(int i)
{
    return BASE + (uint64_t)i * STRIDE;
}

static uint64_t use(int j)
{
    return BASE + USES + (uint64_t)j * 0x40;
}

static void put64(uint64_t addr, uint64_t v)
{
    memcpy(mem + (addr - BASE), &v, 8);
}

static void put32(uint64_t addr, uint32_t v)
{
    memcpy(mem + (addr - BASE), &v, 4);
}

static void make_module(int i, const char *name, uint32_t core, uint32_t init, int32_t refcnt,
                        uint32_t state, bool has_exit)
{
    uint64_t a = mod(i);
    memset(mem + (a - BASE), 0, STRIDE);
    strcpy((char *)mem + (a - BASE) + layout.name, name);
    put32(a + layout.state, state);
    put64(a + layout.base, 0xffffffffc0800000ULL + (uint64_t)i * 0x10000);
    put32(a + layout.sizes[0], core);
    put32(a + layout.sizes[1], init);
    put32(a + layout.refcnt, (uint32_t)refcnt);
    put64(a + layout.init, 0xffffffffc0900000ULL);
    put64(a + layout.exit, has_exit ? 0xffffffffc0900100ULL : 0);
    put64(a + layout.source_list, a + layout.source_list); /* no users */
}

/* head -> mods[0] -> ... -> mods[n-1] -> head */
static void link_list(const int *mods, int n)
{
    uint64_t head = BASE + HEAD;
    uint64_t prev = head;
    for (int i = 0; i < n; i++) {
        uint64_t node = mod(mods[i]) + layout.list;
        put64(prev, node);
        prev = node;
    }
    put64(prev, head);
}

/* users of module `of`: the modules `by`, one module_use each (from use j on) */
static void add_users(int of, const int *by, int n, int j)
{
    uint64_t head = mod(of) + layout.source_list, prev = head;
    for (int i = 0; i < n; i++) {
        uint64_t u = use(j + i);
        put64(prev, u + layout.use_source_list);
        put64(u + layout.use_source, mod(by[i]));
        prev = u + layout.use_source_list;
    }
    put64(prev, head);
}

/* kvm_amd uses kvm, kvm uses irqbypass (the guests' own modules) */
static void make_kvm(void)
{
    memset(mem, 0, sizeof(mem));
    arena.hole_lo = arena.hole_hi = 0;
    make_module(0, "kvm_amd", 155648, 0, 1, MS_MODULE_LIVE, true);
    make_module(1, "kvm", 1114112, 0, 2, MS_MODULE_LIVE, true);
    make_module(2, "irqbypass", 16384, 0, 2, MS_MODULE_LIVE, true);
    make_module(3, "qemu_fw_cfg", 20480, 0, 1, MS_MODULE_LIVE, false); /* permanent */
    int order[] = {0, 1, 2, 3};
    link_list(order, 4);
    int kvm_users[] = {0}, irq_users[] = {1};
    add_users(1, kvm_users, 1, 0);
    add_users(2, irq_users, 1, 1);
}

static const char kvm_text[] = "kvm_amd 155648 0 - Live 0xffffffffc0800000\n"
                               "kvm 1114112 1 kvm_amd, Live 0xffffffffc0810000\n"
                               "irqbypass 16384 1 kvm, Live 0xffffffffc0820000\n"
                               "qemu_fw_cfg 20480 0 [permanent], Live 0xffffffffc0830000\n";

static void test_walk(void)
{
    struct ms_module_list ml;
    struct ms_err err;
    make_kvm();
    CHECK(ms_modules_walk(&layout, BASE + HEAD, test_arena_read, &arena, 0, &ml, &err) == 0,
          "walk: %s", err.msg);
    CHECK(ml.count == 4 && ml.bad == 0, "%zu modules, %llu bad", ml.count,
          (unsigned long long)ml.bad);
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    ms_modules_format(&ml, &sb);
    CHECK(strcmp(ms_strbuf_str(&sb), kvm_text) == 0, "got:\n%s", ms_strbuf_str(&sb));
    ms_module_list_free(&ml);

    /* two users, init size counted, states and taints as /proc/modules shows them */
    int two[] = {0, 2};
    add_users(1, two, 2, 2);
    put32(mod(0) + layout.sizes[1], 4096);
    put32(mod(0) + layout.state, MS_MODULE_COMING);
    put64(mod(0) + layout.taints, (1u << 12) | (1u << 13)); /* O E */
    put32(mod(2) + layout.state, MS_MODULE_GOING);
    put32(mod(3) + layout.state, MS_MODULE_UNFORMED);
    CHECK(ms_modules_walk(&layout, BASE + HEAD, test_arena_read, &arena, 0, &ml, &err) == 0,
          "walk: %s", err.msg);
    ms_strbuf_reset(&sb);
    ms_modules_format(&ml, &sb);
    CHECK(ml.count == 4, "unformed modules are listed (%zu)", ml.count);
    CHECK(strcmp(ms_strbuf_str(&sb), "kvm_amd 159744 0 - Loading 0xffffffffc0800000 (OE+)\n"
                                     "kvm 1114112 1 kvm_amd,irqbypass, Live 0xffffffffc0810000\n"
                                     "irqbypass 16384 1 kvm, Unloading 0xffffffffc0820000\n") == 0,
          "got:\n%s", ms_strbuf_str(&sb));
    ms_module_list_free(&ml);

    /* without CONFIG_MODULE_UNLOAD */
    struct ms_module_layout nounload = layout;
    nounload.has_unload = false;
    make_kvm();
    CHECK(ms_modules_walk(&nounload, BASE + HEAD, test_arena_read, &arena, 0, &ml, &err) == 0,
          "walk: %s", err.msg);
    ms_strbuf_reset(&sb);
    ms_modules_format(&ml, &sb);
    CHECK(strncmp(ms_strbuf_str(&sb), "kvm_amd 155648 - - Live 0xffffffffc0800000\n", 43) == 0,
          "got:\n%s", ms_strbuf_str(&sb));
    ms_module_list_free(&ml);

    /* the empty list */
    put64(BASE + HEAD, BASE + HEAD);
    CHECK(ms_modules_walk(&layout, BASE + HEAD, test_arena_read, &arena, 0, &ml, &err) == 0 &&
              ml.count == 0,
          "empty list");
    ms_module_list_free(&ml);

    /* the limit */
    make_kvm();
    CHECK(ms_modules_walk(&layout, BASE + HEAD, test_arena_read, &arena, 4, &ml, &err) == 0,
          "4 of 4");
    ms_module_list_free(&ml);
    CHECK(ms_modules_walk(&layout, BASE + HEAD, test_arena_read, &arena, 3, &ml, &err) ==
                  MS_ELIMIT &&
              ml.count == 3,
          "3 of 4: %s", err.msg);
    ms_module_list_free(&ml);
    CHECK(ms_modules_walk(&layout, BASE + HEAD, test_arena_read, &arena, MS_MODULES_MAX_LIMIT + 1,
                          &ml, &err) == MS_EINVAL,
          "limit too high");
    ms_module_list_free(&ml);
    ms_strbuf_free(&sb);
}

static void expect_fail(int code, const char *want, size_t kept)
{
    struct ms_module_list ml;
    struct ms_err err = {0};
    int rc = ms_modules_walk(&layout, BASE + HEAD, test_arena_read, &arena, 0, &ml, &err);
    CHECK(rc == code && strstr(err.msg, want), "want %d \"%s\": rc %d %s", code, want, rc, err.msg);
    CHECK(ml.count == kept, "\"%s\": kept %zu modules, want %zu", want, ml.count, kept);
    ms_module_list_free(&ml);
}

static void test_broken(void)
{
    make_kvm();
    put64(mod(2) + layout.list, mod(0) + layout.list); /* back to the first, never the head */
    expect_fail(MS_EFORMAT, "loops at", 3);
    make_kvm();
    put64(mod(1) + layout.list, mod(1) + layout.list); /* to itself */
    expect_fail(MS_EFORMAT, "loops at", 2);
    make_kvm();
    put64(mod(1) + layout.list, 0);
    expect_fail(MS_EFORMAT, "NULL in the module list after 2", 2);
    make_kvm();
    put64(mod(1) + layout.list, 0xdead000000000100ULL); /* into nowhere */
    expect_fail(MS_EUNMAPPED, "the module at 0xdead0000000000f8", 2);
    make_kvm();
    put64(mod(0) + layout.list, layout.list); /* the module at 0 */
    expect_fail(MS_EFORMAT, "leads to address 0 after 1", 1);
    make_kvm();
    arena.hole_lo = mod(2) + layout.state;
    arena.hole_hi = arena.hole_lo + 4;
    expect_fail(MS_EUNMAPPED, "the module at", 2);
    make_kvm();
    arena.hole_lo = BASE + HEAD;
    arena.hole_hi = arena.hole_lo + 8;
    expect_fail(MS_EUNMAPPED, "module list head", 0);

    /* users that cannot be read: the module is listed, its users "?" */
    struct ms_module_list ml;
    struct ms_err err;
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    const uint64_t bad_users[] = {
        use(0) + layout.use_source_list, /* loops on itself */
        0,                               /* NULL */
        0xdead000000000000ULL,           /* into nowhere */
    };
    for (size_t i = 0; i < sizeof(bad_users) / sizeof(bad_users[0]); i++) {
        make_kvm();
        put64(use(0) + layout.use_source_list, bad_users[i]);
        CHECK(ms_modules_walk(&layout, BASE + HEAD, test_arena_read, &arena, 0, &ml, &err) == 0,
              "walk: %s", err.msg);
        CHECK(ml.count == 4 && ml.bad == 1 && !ml.modules[1].users_known &&
                  ml.modules[2].users_known && ml.users_len == strlen("kvm") + 1,
              "bad users %zu: %zu modules, %llu bad, %zu bytes of names", i, ml.count,
              (unsigned long long)ml.bad, ml.users_len);
        ms_strbuf_reset(&sb);
        ms_modules_format(&ml, &sb);
        CHECK(strstr(ms_strbuf_str(&sb), "\nkvm 1114112 1 ? Live") != NULL, "got:\n%s",
              ms_strbuf_str(&sb));
        ms_module_list_free(&ml);
    }
    /* a user whose name cannot be read */
    make_kvm();
    put64(use(0) + layout.use_source, 0xdead000000000000ULL);
    CHECK(ms_modules_walk(&layout, BASE + HEAD, test_arena_read, &arena, 0, &ml, &err) == 0 &&
              ml.bad == 1,
          "unreadable user");
    ms_module_list_free(&ml);

    /* names as the kernel wrote them, anything else escaped */
    make_kvm();
    memcpy(mem + (mod(0) - BASE) + layout.name, "a,b\n", 5);
    memset(mem + (mod(2) - BASE) + layout.name, 'x', NAME_LEN); /* no NUL */
    CHECK(ms_modules_walk(&layout, BASE + HEAD, test_arena_read, &arena, 0, &ml, &err) == 0,
          "walk: %s", err.msg);
    ms_strbuf_reset(&sb);
    ms_modules_format(&ml, &sb);
    CHECK(strncmp(ms_strbuf_str(&sb), "a\\x2cb\\x0a 155648", 17) == 0, "got:\n%s",
          ms_strbuf_str(&sb));
    CHECK(strlen(ml.modules[2].name) == NAME_LEN, "unterminated name cut at %d", NAME_LEN);
    CHECK(strstr(ms_strbuf_str(&sb), "kvm 1114112 1 a\\x2cb\\x0a, Live") != NULL, "got:\n%s",
          ms_strbuf_str(&sb));
    ms_module_list_free(&ml);
    ms_strbuf_free(&sb);
}

static void test_decode(void)
{
    struct ms_err err;
    uint64_t lo, hi;
    CHECK(ms_module_layout_span(&layout, &lo, &hi, &err) == 0 && lo == 0 && hi == 0xa0,
          "span [%#llx, %#llx)", (unsigned long long)lo, (unsigned long long)hi);
    make_kvm();
    struct ms_module m;
    struct ms_module_links k;
    const uint8_t *b = mem + (mod(1) - BASE);
    CHECK(ms_module_decode(&layout, mod(1), b, hi - lo, &m, &k, &err) == 0, "decode: %s", err.msg);
    CHECK(strcmp(m.name, "kvm") == 0 && m.size == 1114112 && m.refcount == 1 && m.has_unload &&
              !m.permanent && m.addr == mod(1) && k.list_next == mod(2) + layout.list &&
              k.source_next == use(0),
          "decoded %s %llu %lld", m.name, (unsigned long long)m.size, (long long)m.refcount);
    CHECK(ms_module_decode(&layout, mod(1), b, hi - lo - 1, &m, &k, &err) == MS_EINVAL,
          "short bytes");

    struct ms_module_layout bad = layout;
    bad.sizes[1] = 0x20000;
    CHECK(ms_module_layout_span(&bad, &lo, &hi, &err) == MS_EFORMAT, "far field");
    struct ms_module_list ml;
    CHECK(ms_modules_walk(&bad, BASE + HEAD, test_arena_read, &arena, 0, &ml, &err) == MS_EFORMAT &&
              ml.count == 0,
          "walk with a far field");
    bad = layout;
    bad.name_len = 0;
    CHECK(ms_module_layout_span(&bad, &lo, &hi, &err) == MS_EFORMAT, "no name");
    bad.name_len = MS_MODULE_NAME_MAX + 1;
    CHECK(ms_module_layout_span(&bad, &lo, &hi, &err) == MS_EFORMAT, "name too long");
    bad = layout;
    bad.nsizes = MS_MODULE_SIZES_MAX + 1;
    CHECK(ms_module_layout_span(&bad, &lo, &hi, &err) == MS_EINVAL, "too many sizes");

    /* 6.4+: mem[] of module_memory, every size added, the text's base */
    struct ms_module_layout mem64 = layout;
    mem64.nsizes = 7;
    for (unsigned i = 0; i < 7; i++)
        mem64.sizes[i] = 0xa0 + i * 0x10 + 8;
    mem64.base = 0xa0;
    uint8_t buf[0x200] = {0};
    for (unsigned i = 0; i < 7; i++) {
        uint32_t s = 0x1000 * (i + 1);
        memcpy(buf + mem64.sizes[i], &s, 4);
    }
    uint64_t text = 0xffffffffc1000000ULL;
    memcpy(buf + mem64.base, &text, 8);
    CHECK(ms_module_layout_span(&mem64, &lo, &hi, &err) == 0 && lo == 0 && hi <= sizeof(buf),
          "mem[] span");
    CHECK(ms_module_decode(&mem64, 0x1000, buf, hi - lo, &m, &k, &err) == 0 &&
              m.size == 0x1000 * 28 && m.base == text,
          "mem[] sizes: %llu", (unsigned long long)m.size);
}

static void put_sym(uint8_t *tab, int i, uint32_t name, uint16_t shndx, uint64_t value,
                    uint64_t size)
{
    uint8_t *e = tab + i * MS_MODSYM_SIZE;
    memset(e, 0, MS_MODSYM_SIZE);
    memcpy(e, &name, 4);
    e[4] = 0x12; /* STB_GLOBAL, STT_FUNC */
    memcpy(e + 6, &shndx, 2);
    memcpy(e + 8, &value, 8);
    memcpy(e + 16, &size, 8);
}

/* One module's kallsyms tables: decoded, looked up by name and address,
 * and read through a struct module's kallsyms pointer. */
static void test_modsyms(void)
{
    static const char strtab[] = "\0msr_interception\0kvm_init\0svm_exit\0";
    const uint64_t text = 0xffffffffc0800000ULL;
    uint8_t tab[6 * MS_MODSYM_SIZE] = {0};
    put_sym(tab, 1, 1, 1, text, 0x40);
    put_sym(tab, 2, 18, 2, text + 0x100, 0x10);
    put_sym(tab, 3, 27, 1, text + 0x40, 0x20);
    put_sym(tab, 4, 1, 0, 0, 0);           /* undefined */
    put_sym(tab, 5, 4000, 1, text + 8, 8); /* name outside the table */
    const uint8_t types[6] = {'?', 't', 'T', 't', 'U', 't'};
    struct ms_modsyms ms;
    memset(&ms, 0, sizeof(ms));
    struct ms_module m = {.addr = mod(0), .base = text, .size = 0x2000, .name = "kvm_amd"};
    struct ms_err err;
    CHECK(ms_module_list_push(&ms.mods, &m, &err) == 0, "push");
    size_t skipped = 0;
    CHECK(ms_modsyms_decode(tab, 6, (const uint8_t *)strtab, sizeof(strtab), types, 0, &ms,
                            &skipped, &err) == 0,
          "decode: %s", err.msg);
    CHECK(ms.count == 3 && skipped == 1, "%zu symbols, %zu skipped", ms.count, skipped);
    uint64_t a, off;
    CHECK(ms_modsyms_lookup(&ms, "kvm_init", &a, &err) == 0 && a == text + 0x100, "kvm_init");
    CHECK(ms_modsyms_lookup(&ms, "nothing", &a, &err) == MS_ENOTFOUND, "unknown name");
    const struct ms_modsym *sym;
    CHECK(ms_modsyms_addr(&ms, text + 0x50, &sym, &off, &err) == 0 &&
              strcmp(ms.names + sym->name, "svm_exit") == 0 && off == 0x10 && sym->type == 't',
          "text+0x50");
    CHECK(ms_modsyms_addr(&ms, text + 0x2000, &sym, &off, &err) == MS_ENOTFOUND, "past the module");
    CHECK(ms_modsyms_addr(&ms, text - 1, &sym, &off, &err) == MS_ENOTFOUND, "before it");
    /* a name running to the table's end without its NUL */
    size_t before = ms.count;
    skipped = 0;
    CHECK(ms_modsyms_decode(tab, 4, (const uint8_t *)strtab, sizeof(strtab) - 2, NULL, 0, &ms,
                            &skipped, &err) == 0 &&
              ms.count == before + 2 && skipped == 1,
          "unterminated: %zu symbols, %zu skipped", ms.count - before, skipped);
    CHECK(ms_modsyms_decode(tab, MS_MODSYMS_MAX + 1, NULL, 0, NULL, 0, &ms, &skipped, &err) ==
              MS_EFORMAT,
          "too many symbols");
    /* KSYM_NAME_LEN (512) counts the NUL: 511 bytes of name are kept, 512 skipped */
    static char longtab[1 + 511 + 1 + 512 + 1];
    memset(longtab, 'a', sizeof(longtab));
    longtab[0] = longtab[512] = longtab[1025] = '\0';
    uint8_t ltab[3 * MS_MODSYM_SIZE] = {0};
    put_sym(ltab, 1, 1, 1, text, 8);
    put_sym(ltab, 2, 513, 1, text + 8, 8);
    before = ms.count;
    skipped = 0;
    CHECK(ms_modsyms_decode(ltab, 3, (const uint8_t *)longtab, sizeof(longtab), NULL, 0, &ms,
                            &skipped, &err) == 0 &&
              ms.count == before + 1 && skipped == 1 &&
              strlen(ms.names + ms.syms[before].name) == 511,
          "names of 511 and 512 bytes: %zu kept, %zu skipped", ms.count - before, skipped);
    ms_modsyms_free(&ms);

    /* through memory: module -> kallsyms -> tables; a pointer into nowhere */
    memset(mem, 0, sizeof(mem));
    arena.hole_lo = arena.hole_hi = 0;
    const struct ms_modsym_layout sl = {.kallsyms = 0xa0,
                                        .symtab = 0,
                                        .num_symtab = 8,
                                        .strtab = 16,
                                        .typetab = 24,
                                        .has_typetab = true};
    uint64_t ks = BASE + 0x1800, symtab = BASE + 0x1000, str = BASE + 0x1400;
    put64(mod(0) + sl.kallsyms, ks);
    put64(ks + sl.symtab, symtab);
    put32(ks + sl.num_symtab, 4);
    put64(ks + sl.strtab, str);
    put64(ks + sl.typetab, BASE + 0x1900);
    memcpy(mem + (symtab - BASE), tab, 4 * MS_MODSYM_SIZE);
    memcpy(mem + (str - BASE), strtab, sizeof(strtab));
    memcpy(mem + 0x1900, types, 4);
    put64(mod(1) + sl.kallsyms, 0xdead000000000000ULL);
    memset(&ms, 0, sizeof(ms));
    ms_module_list_push(&ms.mods, &m, &err);
    m.addr = mod(1);
    ms_module_list_push(&ms.mods, &m, &err);
    CHECK(ms_modsyms_read(&sl, test_arena_read, &arena, &ms, &err) == 0 && ms.count == 3 &&
              ms.bad == 1,
          "read: %zu symbols, %llu bad modules", ms.count, (unsigned long long)ms.bad);
    CHECK(ms_modsyms_lookup(&ms, "msr_interception", &a, &err) == 0 && a == text, "through memory");
    /* a count past the limit is refused, not allocated */
    put32(ks + sl.num_symtab, MS_MODSYMS_MAX + 1);
    ms_modsyms_free(&ms);
    ms_module_list_push(&ms.mods, &m, &err);
    ms.mods.modules[0].addr = mod(0);
    CHECK(ms_modsyms_read(&sl, test_arena_read, &arena, &ms, &err) == 0 && ms.count == 0 &&
              ms.bad == 1,
          "huge count");
    ms_modsyms_free(&ms);
}

int main(void)
{
    test_modsyms();
    test_walk();
    test_broken();
    test_decode();
    return check_done("test_modules");
}
