/* The target, local and remote side by side: a server (in a thread of this
 * process) over a local target on the same image must answer every
 * operation with the same bytes, text and error messages as a local target
 * does; WRITE's byte count; a read-only server's refusal; a server that
 * goes away mid-session (the call fails, later calls fail at once); the
 * kernel operations on a synthetic kernel for RAM and behind EPT, the
 * kernel kept until a flush shows a reboot; a dump's VMCOREINFO note never
 * handed to a nested kernel. Run under ASan/UBSan by tests/run. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/image.h"
#include "../support/kimage.h"
#include "check.h"
#include "memsrv.h"
#include "pte.h"
#include "server.h"
#include "wire.h"

#define RAM_SIZE (4u << 20)
#define VA 0x7f0000400000ULL
#define CR3_LEVELS 4

struct served {
    struct ms_target *t;
    struct ms_server *srv;
    int stop[2];
    pthread_t th;
    char sock[64];
};

static void *serve(void *arg)
{
    struct served *s = arg;
    ms_server_run(s->srv, s->stop[0], NULL);
    return NULL;
}

static struct ms_target *open_local(const struct img *im, bool writable, const char *symbols)
{
    char map[64];
    snprintf(map, sizeof(map), "0:%llu@0", (unsigned long long)RAM_SIZE);
    struct ms_target_opts o = {
        .ram = im->path, .map = map, .writable = writable, .symbols = symbols};
    struct ms_target *t;
    struct ms_err err;
    if (ms_target_open(&t, &o, &err) != 0) {
        printf("local target: %s\n", err.msg);
        abort();
    }
    return t;
}

static int start(struct served *s, const struct img *im, bool writable, const char *tag,
                 const char *symbols)
{
    snprintf(s->sock, sizeof(s->sock), "/tmp/test_target.%d.%s.sock", (int)getpid(), tag);
    s->t = open_local(im, writable, symbols);
    struct ms_server_opts opts = {.socket_path = s->sock};
    struct ms_err err;
    if (ms_server_new(&s->srv, s->t, &opts, &err) != 0 || pipe(s->stop) != 0) {
        printf("server: %s\n", err.msg);
        return -1;
    }
    return pthread_create(&s->th, NULL, serve, s);
}

static void stop(struct served *s)
{
    if (write(s->stop[1], "x", 1) != 1)
        abort();
    pthread_join(s->th, NULL);
    ms_server_free(s->srv);
    ms_target_close(s->t);
    close(s->stop[0]);
    close(s->stop[1]);
}

static struct ms_target *connect_to(const struct served *s)
{
    struct ms_target_opts o = {.connect = s->sock};
    struct ms_target *t;
    struct ms_err err;
    CHECK(ms_target_open(&t, &o, &err) == 0, "connect: %s", err.msg);
    return t;
}

/* DMESG through the server equals the local target's text (and error) in
 * every style; both succeed, or both fail with the same message. */
static void check_dmesg(struct ms_target *rt, ms_handle rh, struct ms_target *lt, ms_handle lh,
                        bool want_ok, const char *what)
{
    for (int style = MS_DMESG_PLAIN; style <= MS_DMESG_CRASH; style++) {
        for (int level = -1; level <= 4; level += 5) {
            struct ms_dmesg_opts o = {(enum ms_dmesg_style)style, level};
            struct ms_strbuf got, want;
            struct ms_err err, lerr;
            struct ms_dmesg_info info;
            ms_strbuf_init(&got);
            ms_strbuf_init(&want);
            int rc = ms_target_dmesg(rt, rh, &o, &got, &info, &err);
            int lrc = ms_target_dmesg(lt, lh, &o, &want, NULL, &lerr);
            CHECK(rc == lrc && (rc == 0) == want_ok &&
                      !strcmp(ms_strbuf_str(&got), ms_strbuf_str(&want)),
                  "%s style %d level %d: %d/%d\n%s---\n%s", what, style, level, rc, lrc,
                  ms_strbuf_str(&got), ms_strbuf_str(&want));
            CHECK(rc == 0 || !strcmp(err.msg, lerr.msg), "%s: %s | %s", what, err.msg, lerr.msg);
            CHECK(rc != 0 || (strstr(ms_strbuf_str(&got), "] two\n") &&
                              (level == 4) == !strstr(ms_strbuf_str(&got), "tab")),
                  "%s: %s", what, ms_strbuf_str(&got));
            CHECK(rc != 0 || (info.bad == 0 && info.consistent && info.records >= 3 &&
                              strstr(info.how, "VMCOREINFO")),
                  "%s: %llu records, %llu bad, how %s", what, (unsigned long long)info.records,
                  (unsigned long long)info.bad, info.how);
            ms_strbuf_free(&got);
            ms_strbuf_free(&want);
        }
    }
}

/* BACKTRACE, TASK_REGS and UNWIND_STEP through the server give the local
 * target's answers: text, return code and message (this synthetic kernel
 * has no tasks or ORC tables, so the library's errors; the real answers
 * are compared on real guests by tests/integration/test_bt.py). */
static void check_bt(struct ms_target *rt, ms_handle rh, struct ms_target *lt, ms_handle lh,
                     uint64_t text_va, const char *what)
{
    struct ms_strbuf got, want;
    struct ms_err err, lerr;
    ms_strbuf_init(&got);
    ms_strbuf_init(&want);
    int32_t pids[2] = {1, 2};
    for (size_t n = 0; n <= 2; n += 2) {
        ms_strbuf_reset(&got);
        ms_strbuf_reset(&want);
        int rc = ms_target_backtrace(rt, rh, pids, n, &got, &err);
        int lrc = ms_target_backtrace(lt, lh, pids, n, &want, &lerr);
        CHECK(rc == lrc && !strcmp(ms_strbuf_str(&got), ms_strbuf_str(&want)) &&
                  (rc == 0 || !strcmp(err.msg, lerr.msg)),
              "%s bt (%zu pids): %d/%d %s | %s", what, n, rc, lrc, err.msg, lerr.msg);
    }
    struct ms_task_regs tr, ltr;
    int rc = ms_target_task_regs(rt, rh, text_va, &tr, &err);
    int lrc = ms_target_task_regs(lt, lh, text_va, &ltr, &lerr);
    CHECK(rc == lrc && (rc ? !strcmp(err.msg, lerr.msg) : !memcmp(&tr, &ltr, sizeof(tr))),
          "%s task_regs: %d/%d %s | %s", what, rc, lrc, err.msg, lerr.msg);
    struct ms_frame in = {.regs = {.valid = 1u << MS_REG_RIP | 1u << MS_REG_RSP}}, out, lout;
    in.regs.v[MS_REG_RIP] = text_va;
    in.regs.v[MS_REG_RSP] = text_va + 0x100;
    rc = ms_target_unwind_step(rt, rh, &in, &out, &err);
    lrc = ms_target_unwind_step(lt, lh, &in, &lout, &lerr);
    CHECK(rc == lrc && (rc < 0 ? !strcmp(err.msg, lerr.msg) : !memcmp(&out, &lout, sizeof(out))),
          "%s unwind_step: %d/%d %s | %s", what, rc, lrc, err.msg, lerr.msg);
    CHECK(!strstr(err.msg, "operation"), "%s: the server knows the ops: %s", what, err.msg);
    ms_strbuf_free(&got);
    ms_strbuf_free(&want);
}

/* Registers and frames cross the wire unchanged; a longer register list
 * (a newer peer) keeps the known ones and drops the valid bits past them. */
static void test_wire_regs(void)
{
    struct ms_frame f = {.exact = true, .user = true}, back;
    for (unsigned i = 0; i < MS_REG_COUNT; i++)
        f.regs.v[i] = 0x1000 + i;
    f.regs.valid = (1ull << MS_REG_COUNT) - 1;
    struct ms_wbuf b = {0};
    ms_wire_put_frame(&b, &f);
    struct ms_rbuf r = {b.data, b.len, 0, false};
    CHECK(ms_wire_get_frame(&r, &back) && r.pos == r.len && !memcmp(&f, &back, sizeof(f)),
          "frame round trip");
    b.len = 0;
    ms_wbuf_u64(&b, ~0ull);
    ms_wbuf_u8(&b, MS_REG_COUNT + 2);
    for (unsigned i = 0; i < MS_REG_COUNT + 2; i++)
        ms_wbuf_u64(&b, i);
    r = (struct ms_rbuf){b.data, b.len, 0, false};
    struct ms_regs regs;
    CHECK(ms_wire_get_regs(&r, &regs) && r.pos == r.len &&
              regs.valid == (1ull << MS_REG_COUNT) - 1 &&
              regs.v[MS_REG_COUNT - 1] == MS_REG_COUNT - 1,
          "longer register list");
    r = (struct ms_rbuf){b.data, b.len - 1, 0, false};
    CHECK(!ms_wire_get_regs(&r, &regs), "short register list refused");
    ms_wbuf_free(&b);
}

static uint64_t symbol(struct ms_target *t, ms_handle h, const char *name)
{
    uint64_t v = 0;
    struct ms_err err;
    if (ms_target_symbol(t, h, name, &v, &err) != 0)
        printf("# %s: %s\n", name, err.msg);
    return v;
}

static ms_handle ept_handle(struct ms_target *t, uint64_t eptp, enum ms_first first)
{
    struct ms_stack st = {.second = MS_SECOND_EPT, .second_root = eptp, .first = first};
    ms_handle h = 0;
    struct ms_err err;
    CHECK(ms_target_space(t, &st, &h, &err) == 0 && h, "%s", err.msg);
    return h;
}

static void test_kernel(void)
{
    struct img im;
    img_open(&im, RAM_SIZE);
    struct kimg k;
    uint64_t slide = 0x2000000;
    kimg_build(&k, &im, slide);
    kimg_printk(&k, "Linux version 6.1.0-memsrv-test", 5, 0);
    kimg_printk(&k, "second\twith a tab", 6, 1234567000ULL);
    kimg_printk(&k, "two\nlines", 4, 2000000000ULL);
    char map[] = "/tmp/test_target_map_XXXXXX";
    int fd = mkstemp(map);
    CHECK(fd >= 0 && write(fd, k.map, strlen(k.map)) == (ssize_t)strlen(k.map), "System.map");
    close(fd);

    struct served srv;
    if (start(&srv, &im, false, "kernel", map) != 0)
        abort();
    struct ms_target *lt = open_local(&im, false, map);
    struct ms_target *c = connect_to(&srv);
    struct ms_err err;
    check_dmesg(c, 0, lt, 0, true, "RAM");
    CHECK(symbol(c, 0, "linux_banner") == kimg_va(&k, 0), "banner slid");
    struct ms_strbuf name;
    ms_strbuf_init(&name);
    uint64_t off = 0;
    CHECK(ms_target_addrsym(c, 0, kimg_va(&k, 0x805), &name, &off, &err) == 0 &&
              !strcmp(ms_strbuf_str(&name), "prb") && off == 5,
          "addr -> %s+%llu (%s)", ms_strbuf_str(&name), (unsigned long long)off, err.msg);
    uint64_t v;
    CHECK(ms_target_symbol(c, 0, "nope", &v, &err) == MS_ENOTFOUND && strstr(err.msg, map), "%s",
          err.msg);
    CHECK(ms_target_symbol(c, 0, "", &v, &err) == MS_EINVAL, "%s", err.msg);
    CHECK(ms_target_eval(c, 0, "linux_banner+0x10", &v, &err) == 0 && v == kimg_va(&k, 0x10),
          "eval: %s", err.msg);
    CHECK(ms_target_dmesg(c, 0, &(struct ms_dmesg_opts){3, -1}, &name, NULL, &err) == MS_EINVAL &&
              ms_target_dmesg(c, 0, &(struct ms_dmesg_opts){MS_DMESG_RAW, 8}, &name, NULL, &err) ==
                  MS_EINVAL,
          "style and level checked");

    /* Symbols name kernel addresses: through the kernel's own page tables,
     * here and over the wire, with the root the kernel's. */
    struct ms_stack ks = {.first = MS_FIRST_KERNEL};
    ms_handle lkh = 0, rkh = 0;
    CHECK(ms_target_space(lt, &ks, &lkh, &err) == 0 && ms_target_space(c, &ks, &rkh, &err) == 0,
          "%s", err.msg);
    struct ms_strbuf lx, rx;
    ms_strbuf_init(&lx);
    ms_strbuf_init(&rx);
    int rc = ms_target_x(lt, lkh, "s", kimg_va(&k, 0), NULL, &lx, &err);
    int rrc = ms_target_x(c, rkh, "s", kimg_va(&k, 0), NULL, &rx, &err);
    CHECK(rc == 0 && rrc == 0 && strstr(ms_strbuf_str(&lx), "<linux_banner>") &&
              strstr(ms_strbuf_str(&lx), "Linux version") &&
              !strcmp(ms_strbuf_str(&lx), ms_strbuf_str(&rx)),
          "x/s linux_banner: %s | %s", ms_strbuf_str(&lx), ms_strbuf_str(&rx));
    struct ms_stack lst, rst;
    CHECK(ms_target_stack(lt, lkh, &lst, &err) == 0 && ms_target_stack(c, rkh, &rst, &err) == 0 &&
              lst.cr3 == rst.cr3 && lst.cr3 != 0 && lst.levels == rst.levels,
          "kernel root %llx/%llx", (unsigned long long)lst.cr3, (unsigned long long)rst.cr3);
    ms_strbuf_free(&lx);
    ms_strbuf_free(&rx);

    /* The same kernel as a nested guest: behind an identity EPT. */
    struct img_tree ept;
    img_tree_init(&ept, &im, true, 4, NULL, 0);
    for (uint64_t a = 0; a < RAM_SIZE; a += 2 << 20)
        img_map(&ept, a, a, 2, EPT_READ | EPT_WRITE | EPT_EXEC | 6 << EPT_MEMTYPE_SHIFT);
    ms_handle h = ept_handle(c, img_eptp(&ept), MS_FIRST_NONE);
    ms_handle lh = ept_handle(lt, img_eptp(&ept), MS_FIRST_NONE);
    check_dmesg(c, h, lt, lh, true, "EPT");
    check_bt(c, 0, lt, 0, kimg_va(&k, 0), "RAM");
    check_bt(c, h, lt, lh, kimg_va(&k, 0), "EPT");

    /* The ring is read anew by every request; the kernel is kept until a
     * flush finds its VMCOREINFO changed (a reboot with another slide). */
    kimg_printk(&k, "late record", 6, 3000000000ULL);
    check_dmesg(c, 0, lt, 0, true, "after a printk");
    kimg_write_vmcoreinfo(&k, slide + (2 << 20));
    CHECK(symbol(c, 0, "linux_banner") == kimg_va(&k, 0), "kept without a flush");
    CHECK(ms_target_flush(c, &err) == 0, "%s", err.msg);
    CHECK(symbol(c, 0, "linux_banner") == kimg_va(&k, 0) + (2 << 20), "reopened");
    kimg_write_vmcoreinfo(&k, slide);
    ms_target_flush(c, &err);
    CHECK(symbol(c, h, "linux_banner") == kimg_va(&k, 0), "nested kernel checked, kept");

    /* No VMCOREINFO: the slide from linux_banner and the page tables; the
     * kernel goes when the banner does. */
    static const uint8_t zero[4096];
    ms_ram_write(im.ram, k.vmcoreinfo, zero, sizeof(zero), NULL, NULL);
    ms_target_flush(c, &err);
    ms_target_flush(lt, &err);
    CHECK(symbol(c, 0, "linux_banner") == kimg_va(&k, 0), "found by the banner");
    check_dmesg(c, 0, lt, 0, false, "no VMCOREINFO"); /* both fail alike: no DWARF */
    ms_ram_write(im.ram, KIMG_TEXT_PA, "Linux VERSION", 13, NULL, NULL);
    ms_target_flush(c, &err);
    CHECK(ms_target_symbol(c, 0, "linux_banner", &v, &err) == MS_ENOTFOUND &&
              strstr(err.msg, "kernel not found"),
          "%s", err.msg);
    ms_target_close(c);
    ms_target_close(lt);
    stop(&srv);

    /* Neither a symbol file nor VMCOREINFO: the library's message and hint,
     * carried over the wire. */
    if (start(&srv, &im, false, "nosyms", NULL) != 0)
        abort();
    c = connect_to(&srv);
    lt = open_local(&im, false, NULL);
    struct ms_err lerr;
    struct ms_dmesg_opts o = {MS_DMESG_PLAIN, -1};
    rc = ms_target_dmesg(c, 0, &o, &name, NULL, &err);
    int lrc = ms_target_dmesg(lt, 0, &o, &name, NULL, &lerr);
    CHECK(rc == MS_ENOTFOUND && rc == lrc && !strcmp(err.msg, lerr.msg) &&
              strstr(err.msg, "no VMCOREINFO") && err.hint == MS_HINT_SYMBOLS &&
              lerr.hint == MS_HINT_SYMBOLS,
          "%d %s | %s (hint %d)", rc, err.msg, lerr.msg, err.hint);
    rc = ms_target_eval(c, 0, "linux_banner", &v, &err);
    CHECK(rc == MS_ENOTFOUND && strstr(err.msg, "linux_banner") && strstr(err.msg, "no VMCOREINFO"),
          "eval says why: %s", err.msg);
    ms_target_close(c);
    ms_target_close(lt);
    stop(&srv);

    ms_strbuf_free(&name);
    unlink(map);
    img_close(&im);
}

int main(void)
{
    struct img im;
    img_open(&im, RAM_SIZE);
    struct img_tree t;
    img_tree_init(&t, &im, false, CR3_LEVELS, NULL, 0);
    uint64_t page = img_alloc_page(&im);
    for (unsigned i = 0; i < 512; i++)
        img_put64(&im, page + 8 * i, 0x1111111111111111ULL * (i & 15) + i);
    img_map(&t, VA, page, 1, PTE_P | PTE_RW);

    struct served ro;
    if (start(&ro, &im, false, "ro", NULL) != 0)
        return 1;
    struct ms_target *lt = open_local(&im, false, NULL);
    struct ms_target *c = connect_to(&ro);
    struct ms_err err, lerr;
    const struct ms_target_info *info;
    ms_target_info(c, &info, &err);
    CHECK(info->remote && info->ram_size == RAM_SIZE && !info->writable && info->nregions == 1 &&
              info->nsources == 1 && !strcmp(info->sources[0], im.path),
          "INFO");
    struct ms_stack st = {.first = MS_FIRST_CR3, .cr3 = t.root, .levels = CR3_LEVELS};
    ms_handle h = 0, lh = 0;
    CHECK(ms_target_space(c, &st, &h, &err) == 0 && h != 0, "%s", err.msg);
    CHECK(ms_target_space(lt, &st, &lh, &err) == 0 && lh != 0, "%s", err.msg);
    struct ms_stack bad = st;
    bad.levels = 3;
    CHECK(ms_target_space(c, &bad, &h, &err) == MS_EINVAL && strstr(err.msg, "4 or 5"), "%s",
          err.msg);

    /* A read that runs off the mapped page: same bytes, same message, the
     * faulting address as data. */
    uint8_t got[32], want[32];
    size_t done = 99, ldone = 99;
    int rc = ms_target_read(c, h, VA + 4096 - 16, got, sizeof(got), &done, &err);
    int lrc = ms_target_read(lt, lh, VA + 4096 - 16, want, sizeof(want), &ldone, &lerr);
    CHECK(rc == lrc && rc == MS_EUNMAPPED && done == 16 && ldone == 16, "rc %d/%d done %zu", rc,
          lrc, done);
    CHECK(!memcmp(got, want, 16) && !strcmp(err.msg, lerr.msg), "%s | %s", err.msg, lerr.msg);
    CHECK(err.has_fault && err.fault_addr == VA + 4096 && lerr.has_fault &&
              lerr.fault_addr == VA + 4096,
          "fault at %llx", (unsigned long long)err.fault_addr);

    /* Reports, translations and descriptions agree. */
    struct ms_strbuf out, lout;
    ms_strbuf_init(&out);
    ms_strbuf_init(&lout);
    rc = ms_target_vtop(c, h, VA + 4096, &out, &err);
    CHECK(rc == MS_EUNMAPPED && strstr(ms_strbuf_str(&out), "PML4E"), "%d %s", rc,
          ms_strbuf_str(&out));
    ms_strbuf_reset(&out);
    struct ms_x_state xs = {0}, lxs = {0};
    rc = ms_target_x(c, h, "4gx", VA, &xs, &out, &err);
    lrc = ms_target_x(lt, lh, "4gx", VA, &lxs, &lout, &lerr);
    CHECK(rc == 0 && lrc == 0 && !strcmp(ms_strbuf_str(&out), ms_strbuf_str(&lout)) &&
              xs.next == VA + 32 && lxs.next == VA + 32 && xs.format == 'x' && xs.size == 'g',
          "x: %s | %s", ms_strbuf_str(&out), ms_strbuf_str(&lout));
    ms_strbuf_reset(&out);
    ms_strbuf_reset(&lout);
    CHECK(ms_target_describe(c, h, &out, &err) == 0 &&
              ms_target_describe(lt, lh, &lout, &lerr) == 0 &&
              !strcmp(ms_strbuf_str(&out), ms_strbuf_str(&lout)) &&
              strstr(ms_strbuf_str(&out), "4-level paging"),
          "describe: %s", ms_strbuf_str(&out));
    struct ms_xlat x, lx;
    int status = 0, lstatus = 0;
    CHECK(ms_target_translate(c, h, 1, &(uint64_t){VA + 8}, &x, &status, NULL, &err) == 0 &&
              ms_target_translate(lt, lh, 1, &(uint64_t){VA + 8}, &lx, &lstatus, NULL, &lerr) ==
                  0 &&
              status == 0 && lstatus == 0 && x.phys == page + 8 && lx.phys == page + 8,
          "translate");
    ms_strbuf_free(&out);
    ms_strbuf_free(&lout);

    /* Read-only: refused with the server's message, nothing written. */
    done = 99;
    rc = ms_target_write(c, 0, page, "abcd", 4, &done, &err);
    CHECK(rc == MS_EPERM && done == 0 && err.hint == MS_HINT_WRITABLE, "%d %zu %s", rc, done,
          err.msg);
    CHECK(img_get64(&im, page) == 0x0, "file unchanged");

    /* The server goes away: the call fails, then every call at once. */
    stop(&ro);
    uint64_t v;
    rc = ms_target_read(c, 0, 0, &v, 8, NULL, &err);
    CHECK(rc == MS_EPROTO || rc == MS_EIO, "%d %s", rc, err.msg);
    rc = ms_target_translate(c, h, 1, &(uint64_t){VA}, &(struct ms_xlat){0}, &(int){0}, NULL, &err);
    CHECK(rc == MS_EIO && strstr(err.msg, "not connected"), "%d %s", rc, err.msg);
    ms_target_close(c);
    ms_target_close(lt);

    /* Writable: WRITE says how much it wrote, also when it stops early;
     * large writes go in several requests. */
    struct served rw;
    if (start(&rw, &im, true, "rw", NULL) != 0)
        return 1;
    struct ms_target_opts wo = {.connect = rw.sock, .writable = true};
    CHECK(ms_target_open(&c, &wo, &err) == 0, "%s", err.msg);
    CHECK(ms_target_space(c, &st, &h, &err) == 0, "%s", err.msg);
    rc = ms_target_write(c, h, VA + 4096 - 3, "WXYZ", 4, &done, &err);
    CHECK(rc == MS_EUNMAPPED && done == 3, "%d %zu %s", rc, done, err.msg);
    rc = ms_target_write(c, 0, RAM_SIZE - 2, "ABCD", 4, &done, &err);
    CHECK(rc == MS_EOUTSIDE && done == 2, "%d %zu %s", rc, done, err.msg);
    char back[4] = {0};
    ms_ram_read(im.ram, page + 4093, back, 3, NULL, NULL);
    CHECK(!memcmp(back, "WXY", 3), "written through paging");
    size_t big = 3u << 20;
    uint8_t *buf = malloc(big), *again = malloc(big);
    memset(buf, 0x5a, big);
    CHECK(ms_target_write(c, 0, 0x100000, buf, big, &done, &err) == 0 && done == big, "%s",
          err.msg);
    CHECK(ms_target_read(c, 0, 0x100000, again, big, &done, &err) == 0 && done == big &&
              !memcmp(buf, again, big),
          "3 MiB round trip: %s", err.msg);
    free(buf);
    free(again);
    ms_target_close(c);
    stop(&rw);

    img_close(&im);
    test_wire_regs();
    test_kernel();
    return check_done("test_target");
}
