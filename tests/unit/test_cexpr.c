/* memsrv p's parser and printer (cexpr.h, valprint.h) over a small BTF
 * blob and a fake memory (tests/fuzz/cexpr_sample.h): C's precedence and
 * promotions, GDB's printing rules (strings with repeats and embedded NULs,
 * the 200-element limit, structs, anonymous unions, bitfields, enums and
 * flag enums, pointers with <sym+off>, function values, formats), GDB's
 * error texts, and hostile input: nesting, length, unreadable memory. The
 * texts were checked against GDB 13 where GDB can print them (test_print.py
 * compares a real kernel's). */
#include <stdio.h>
#include <stdlib.h>

#include "../fuzz/cexpr_sample.h"
#include "cexpr.h"
#include "check.h"
#include "strbuf.h"
#include "valprint.h"

static struct ms_btf *btf;
static uint8_t mem[0x400];
static struct sample_mem smem = {mem, sizeof(mem)};

static int print(const char *fmt, const char *expr, struct ms_strbuf *out, struct ms_err *err)
{
    struct ms_print_env env = {btf, sample_read, &smem, sample_symbol, sample_addrsym, NULL};
    ms_strbuf_reset(out);
    return ms_print_expr(&env, fmt, expr, out, err);
}

static void expect(const char *fmt, const char *expr, const char *want)
{
    struct ms_strbuf out;
    ms_strbuf_init(&out);
    struct ms_err err = {0};
    int rc = print(fmt, expr, &out, &err);
    char full[4096];
    snprintf(full, sizeof(full), "$1 = %s\n", want);
    CHECK(rc == 0 && !strcmp(ms_strbuf_str(&out), full), "p/%s %s: got %s%s, want %s", fmt, expr,
          rc ? err.msg : "", ms_strbuf_str(&out), full);
    ms_strbuf_free(&out);
}

static void expect_error(const char *expr, const char *want)
{
    struct ms_strbuf out;
    ms_strbuf_init(&out);
    struct ms_err err = {0};
    int rc = print("", expr, &out, &err);
    CHECK(rc < 0 && !strcmp(err.msg, want) && out.len == 0, "p %s: got rc %d '%s' '%s', want '%s'",
          expr, rc, err.msg, ms_strbuf_str(&out), want);
    ms_strbuf_free(&out);
}

static void put64(size_t off, uint64_t v)
{
    memcpy(mem + off, &v, 8);
}

static void fill(void)
{
    memset(mem, 0, sizeof(mem));
    int32_t pid = 42;
    memcpy(mem, &pid, 4);
    uint32_t state = 1;
    memcpy(mem + 4, &state, 4);
    memcpy(mem + 8, "swapper/0", 9); /* comm: 7 NULs follow */
    put64(80, SAMPLE_BASE + 80);     /* tasks.next: itself */
    put64(88, SAMPLE_BASE + 0x200);  /* tasks.prev */
    put64(96, SAMPLE_BASE + 0x100);  /* name */
    put64(104, SAMPLE_TEXT + 0x10);  /* fn */
    uint32_t flags = 5;              /* F_A | F_C */
    memcpy(mem + 112, &flags, 4);
    mem[116] = 0x5 | 0x1b << 3;    /* bf1 = 5, bf2 = 0x1b = -5 */
    mem[120] = 1;                  /* ok */
    for (int i = 0; i < 12; i++) { /* nums: 7 then eleven 3s */
        int32_t v = i == 0 ? 7 : 3;
        memcpy(mem + 128 + 4 * i, &v, 4);
    }
    put64(176, 0xffffffffffffffffULL);               /* the union */
    memcpy(mem + 0x100, "it's \"q\"\n\001\377", 12); /* name's string */
    put64(0x200, SAMPLE_BASE + 80);                  /* cur */
}

static void test_parse(void)
{
    static struct ms_cexpr ex;
    struct ms_err err = {0};
    CHECK(ms_cexpr_parse(&ex, "a + b * c", NULL, NULL, &err) == 0, "%s", err.msg);
    const struct ms_cexpr_node *r = &ex.nodes[ex.root];
    CHECK(r->op == MS_CX_BINARY && r->binop == MS_CX_ADD, "+ at the root");
    CHECK(ms_cexpr_parse(&ex, "(struct task *)x->y[2].z", NULL, NULL, &err) == 0, "%s", err.msg);
    r = &ex.nodes[ex.root];
    CHECK(r->op == MS_CX_CAST && !strcmp(r->type.base, "struct task") && r->type.stars == 1,
          "cast binds looser than postfix");
    CHECK(ms_cexpr_parse(&ex, "sizeof (unsigned long int)", NULL, NULL, &err) == 0 &&
              !strcmp(ex.nodes[ex.root].type.base, "unsigned long"),
          "base type spelled as GDB");
    CHECK(ms_cexpr_parse(&ex, "(x) - 1", NULL, NULL, &err) == 0 &&
              ex.nodes[ex.root].op == MS_CX_BINARY,
          "(x) - 1 is a subtraction when x is no type");
    CHECK(ms_cexpr_parse(&ex, "1 +", NULL, NULL, &err) == MS_EINVAL &&
              !strcmp(err.msg, "A syntax error in expression, near `'."),
          "%s", err.msg);
    CHECK(ms_cexpr_parse(&ex, "", NULL, NULL, &err) == MS_EINVAL, "empty");
    CHECK(ms_cexpr_parse(&ex, "99999999999999999999", NULL, NULL, &err) == MS_EINVAL &&
              !strcmp(err.msg, "Numeric constant too large."),
          "%s", err.msg);
    char deep[600];
    memset(deep, '(', 300);
    memcpy(deep + 300, "1", 2);
    CHECK(ms_cexpr_parse(&ex, deep, NULL, NULL, &err) == MS_ELIMIT, "nesting bounded: %s", err.msg);
    memset(deep, '-', 500);
    memcpy(deep + 500, "1", 2);
    CHECK(ms_cexpr_parse(&ex, deep, NULL, NULL, &err) == MS_ELIMIT, "unary chains bounded");
    char *longtext = malloc(2000);
    memset(longtext, '1', 1999);
    longtext[1999] = '\0';
    CHECK(ms_cexpr_parse(&ex, longtext, NULL, NULL, &err) == MS_ELIMIT, "length bounded");
    free(longtext);
    char many[1000] = "1";
    for (int i = 0; i < 300; i++)
        strcat(many, "+1");
    CHECK(ms_cexpr_parse(&ex, many, NULL, NULL, &err) == MS_ELIMIT, "node count bounded");
}

static void test_print(void)
{
    fill();
    expect("", "task0.comm", "\"swapper/0\\000\\000\\000\\000\\000\\000\"");
    expect("", "task0.pid", "42");
    expect("", "task0.state", "S_SLEEP");
    expect("", "task0.flags", "(F_A | F_C)");
    expect("", "(enum flags)8", "(unknown: 0x8)");
    expect("", "(enum flags)0", "0");
    expect("", "(enum state)3", "3");
    expect("", "task0.bf1", "-3"); /* 5 in a signed 3-bit field */
    expect("", "task0.bf2", "-5");
    expect("x", "task0.bf2", "0xfffffffb");
    expect("", "task0.ok", "true");
    expect("", "task0.nums", "{7, 3 <repeats 11 times>}");
    expect("", "task0.a", "18446744073709551615");
    expect("", "task0.b", "-1");
    expect("", "&task0", "(struct task *) 0xffff888000001000 <task0>");
    expect("", "&task0.tasks", "(struct list_head *) 0xffff888000001050 <task0+80>");
    expect("", "task0.tasks", "{next = 0xffff888000001050 <task0+80>, prev = 0xffff888000001200}");
    expect("", "*cur", "{next = 0xffff888000001050 <task0+80>, prev = 0xffff888000001200}");
    expect("", "cur->next->next->prev", "(struct list_head *) 0xffff888000001200");
    expect("", "task0.name", "0xffff888000001100 \"it's \\\"q\\\"\\n\\001\\377\"");
    expect("", "task0.fn", "(void (*)(struct list_head *)) 0xffffffff81000010 <do_thing+16>");
    expect("", "do_thing", "{void (struct list_head *)} 0xffffffff81000000 <do_thing>");
    expect("", "*do_thing", "{void (struct list_head *)} 0xffffffff81000000 <do_thing>");
    expect("", "other_func", "{<text variable, no debug info>} 0xffffffff81000100");
    expect("", "&nodebug_data", "(<data variable, no debug info> *) 0xffff888000001300");
    expect("", "(int)nodebug_data", "0");
    expect("", "task0.comm[1]", "119 'w'");
    expect("", "&task0.comm", "(char (*)[16]) 0xffff888000001008 <task0+8>");
    expect("", "task0.comm + 1", "0xffff888000001009 <task0+9> \"wapper/0\"");
    expect("", "*task0.comm", "115 's'");
    expect("", "sizeof(struct task)", "184");
    expect("", "sizeof task0.comm", "16");
    expect("", "sizeof(pid_t)", "4");
    expect("", "(pid_t)-1", "-1");
    expect("", "S_DEAD", "S_DEAD");
    expect("", "S_DEAD + 1", "6");
    expect("", "&task0 + 1", "(struct task *) 0xffff8880000010b8");
    expect("", "&task0.tasks - &task0.tasks", "0");
    expect("", "(char *)&task0.name - (char *)&task0", "96");
    expect("", "&((struct task *)0)->tasks", "(struct list_head *) 0x50");
    expect("", "task0.tasks.next == &task0.tasks", "1");
    expect("", "task0",
           "{pid = 42, state = S_SLEEP, comm = \"swapper/0\\000\\000\\000\\000\\000\\000\", "
           "tasks = {next = 0xffff888000001050 <task0+80>, prev = 0xffff888000001200}, "
           "name = 0xffff888000001100 \"it's \\\"q\\\"\\n\\001\\377\", "
           "fn = 0xffffffff81000010 <do_thing+16>, flags = (F_A | F_C), bf1 = -3, "
           "bf2 = -5, ok = true, nums = {7, 3 <repeats 11 times>}, {a = "
           "18446744073709551615, b = -1}}");
    expect("x", "task0.tasks", "{next = 0xffff888000001050, prev = 0xffff888000001200}");
    expect("x", "task0.comm",
           "{0x73, 0x77, 0x61, 0x70, 0x70, 0x65, 0x72, 0x2f, 0x30, 0x0, 0x0, "
           "0x0, 0x0, 0x0, 0x0, 0x0}");
    expect("a", "task0.tasks.next", "0xffff888000001050 <task0+80>");
    expect("d", "task0.comm[0]", "115");
    expect("c", "65", "65 'A'");
    expect("c", "321", "65 'A'");
    expect("c", "(unsigned char)200", "200 '\\310'");
    expect("", "(char)200", "-56 '\\310'");
    expect("o", "8", "010");
    expect("o", "0", "0");
    expect("t", "5", "101");
    expect("z", "5", "0x00000005");
    expect("u", "-1", "4294967295");
    expect("x", "-1", "0xffffffff");
    expect("x", "-1L", "0xffffffffffffffff");
    expect("d", "0xffffffffU", "-1");
    expect("x", "(short)-1", "0xffff");
    expect("s", "task0.comm", "\"swapper/0\\000\\000\\000\\000\\000\\000\"");
    expect("", "'A'", "65 'A'");
    expect("", "'\\n'", "10 '\\n'");
    /* C's (GDB 13's) integer constants and promotions */
    expect("", "2147483648", "2147483648");
    expect("", "0xffffffff", "4294967295");
    expect("", "0x7fffffff + 1", "-2147483648");
    expect("", "-1 < 0U", "0");
    expect("", "-1L < 0U", "1");
    expect("", "5 - 10U", "4294967291");
    expect("", "1 << 40", "0");
    expect("", "1L << 40", "1099511627776");
    expect("", "-5 >> 1", "-3");
    expect("", "-7 / 2", "-3");
    expect("", "-7 % 3", "-1");
    expect("", "1 + 2 * 3 - 4 / 2", "5");
    expect("", "(1 + 2) * 3", "9");
    expect("", "1 | 2 ^ 3 & 4", "3");
    expect("", "!0 && 3 > 2 || 0", "1");
    expect("", "0 && *(int *)0", "0");
    expect("", "~0", "-1");
    expect("", "-(unsigned char)1", "-1");
    expect("", "(unsigned short)65535 + 1", "65536");
    expect("", "18446744073709551615", "18446744073709551615");
    expect("", "(long)&task0", "-131391639515136");
    expect("", "{int} 0xffff888000001000", "42");
    expect("", "*(int *)0xffff888000001000", "42");
    expect("", "*0xffff888000001000", "42");
    expect("", "(_Bool)7", "true");
    expect("", "(void)0", "void");
    expect("", "task0.pid ? 1 : 2", "1");
    expect("", "0 ? 1 : 2 ? 3 : 4", "3");
    expect("", "task0.nums[1]@3", "{3, 3, 3}");
    expect("", "task0.comm[0]@4", "\"swap\"");
    expect("", "task0.tasks@2",
           "{{next = 0xffff888000001050 <task0+80>, prev = 0xffff888000001200}, "
           "{next = 0xffff888000001100, prev = 0xffffffff81000010 <do_thing+16>}}");
    expect("", "&(task0.pid@2)", "(pid_t (*)[2]) 0xffff888000001000 <task0>");
}

static void test_strings(void)
{
    /* GDB's generic_printstr over char[16]: runs over 10 fold, the run
     * that crosses 200 printed whole, a trailing NUL dropped once */
    fill();
    memset(mem + 8, 'a', 11);
    memcpy(mem + 19, "bc", 2);
    expect("", "task0.comm", "'a' <repeats 11 times>, \"bc\\000\\000\"");
    memset(mem + 8, 'x', 16);
    expect("", "task0.comm", "'x' <repeats 16 times>");
    memset(mem + 8, 0, 16);
    expect("", "task0.comm", "'\\000' <repeats 15 times>");
    memset(mem + 8, 'y', 10);
    expect("", "task0.comm", "\"yyyyyyyyyy\\000\\000\\000\\000\\000\"");
    /* a char * with no NUL within 200 bytes: "..." */
    fill();
    memset(mem + 0x100, 'z', 0x100);
    expect("", "task0.name", "0xffff888000001100 'z' <repeats 200 times>...");
    /* a string running into unreadable memory */
    put64(96, SAMPLE_BASE + sizeof(mem) - 3);
    memset(mem + sizeof(mem) - 3, 'k', 3);
    expect("", "task0.name",
           "0xffff8880000013fd \"kkk\"<error: Cannot access memory at address 0xffff888000001400>");
    put64(96, 0x10);
    expect("", "task0.name", "0x10 <error: Cannot access memory at address 0x10>");
    put64(96, 0);
    expect("", "task0.name", "0x0");
}

static void test_limits(void)
{
    /* a struct read elsewhere through a cast: its comm is the bytes there */
    fill();
    for (int i = 0; i < 0x100; i++)
        mem[0x100 + i] = (uint8_t)i;
    struct ms_strbuf out;
    ms_strbuf_init(&out);
    struct ms_err err = {0};
    CHECK(print("x", "*(struct task *)0xffff888000001100", &out, &err) == 0, "%s", err.msg);
    CHECK(strstr(ms_strbuf_str(&out), "comm = {0x8, 0x9, 0xa,") != NULL, "%s", ms_strbuf_str(&out));
    /* the 200-element limit: elements, then characters */
    char want[4096] = "{";
    for (int i = 0; i < 200; i++)
        snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s0x%x", i ? ", " : "", i);
    strcat(want, "...}");
    expect("x", "bigc", want);
    memset(mem + 0x100, 'q', 300);
    expect("", "bigc", "'q' <repeats 300 times>");
    for (int i = 0; i < 300; i++)
        mem[0x100 + i] = (uint8_t)('a' + i % 2);
    strcpy(want, "\"");
    for (int i = 0; i < 200; i++)
        strcat(want, i % 2 ? "b" : "a");
    strcat(want, "\"...");
    expect("", "bigc", want);
    ms_strbuf_free(&out);
    expect_error("nosuch", "No symbol \"nosuch\" in current context.");
    expect_error("task0.nosuch", "There is no member named nosuch.");
    expect_error("task0.pid.x",
                 "Attempt to extract a component of a value that is not a structure.");
    expect_error("task0.pid->x",
                 "Attempt to extract a component of a value that is not a structure pointer.");
    expect_error("*task0.pid", "Cannot access memory at address 0x2a");
    expect_error("*(struct task *)0x10", "Cannot access memory at address 0x10");
    expect("", "*(void **)0xffff888000001000 + 1", "(void *) 0x10000002b");
    expect_error("1/0", "Division by zero");
    expect_error("nodebug_data", "'nodebug_data' has unknown type; cast it to its declared type");
    expect_error("nodebug_data + 1",
                 "'nodebug_data' has unknown type; cast it to its declared type");
    expect_error("(struct nope *)0", "No struct type named nope.");
    expect_error("(no_type)0", "A syntax error in expression, near `0'.");
    expect_error("sizeof(struct nope)", "No struct type named nope.");
    expect_error("task0[1]", "cannot subscript something of type `struct task'");
    expect_error("*task0", "Attempt to take contents of a non-pointer value.");
    expect_error("&1", "Attempt to take address of value not located in memory.");
    expect_error("&task0.bf1", "Attempt to take address of value not located in memory.");
    expect_error("(struct task)1", "Invalid cast.");
    expect_error("task0 + 1", "Structure has no component named operator+.");
    expect_error("-task0", "Argument to arithmetic operation not a number or boolean.");
    expect_error("task0.pid@2@0", "Invalid number 0 of repetitions.");
    expect_error("1@2", "Only values in memory can be extended with '@'.");
    /* formats GDB refuses */
    CHECK(print("2x", "1", &out, &err) < 0 &&
              !strcmp(err.msg, "Item count other than 1 is meaningless in \"print\" command."),
          "%s", err.msg);
    CHECK(print("xg", "1", &out, &err) < 0 &&
              !strcmp(err.msg, "Size letters are meaningless in \"print\" command."),
          "%s", err.msg);
    CHECK(print("q", "1", &out, &err) < 0 && !strcmp(err.msg, "Undefined output format \"q\"."),
          "%s", err.msg);
    ms_strbuf_free(&out);
}

int main(void)
{
    uint8_t blob[4096];
    size_t n = sample_btf(blob);
    struct ms_err err = {0};
    CHECK(ms_btf_parse(&btf, blob, n, &err) == 0, "sample BTF: %s", err.msg);
    if (!btf)
        return check_done("test_cexpr");
    test_parse();
    test_print();
    test_strings();
    test_limits();
    ms_btf_free(btf);
    return check_done("test_cexpr");
}
