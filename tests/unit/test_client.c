/* The C client against a real server (in a thread of this process): answers
 * and error messages equal to the library's, WRITE's byte count, a read-only
 * server's refusal, and a server that goes away mid-session: the call fails,
 * the connection is closed, later calls fail at once (no blocking, no reads
 * of a stale stream). The kernel operations on a synthetic kernel: DMESG and
 * symbols equal to the library's in-process answers, for RAM and behind EPT,
 * the kernel kept until a FLUSH shows a reboot, and the errors without
 * VMCOREINFO. Run under ASan/UBSan by tests/run. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/image.h"
#include "../support/kimage.h"
#include "check.h"
#include "client.h"
#include "kernel.h"
#include "pte.h"
#include "server.h"

#define RAM_SIZE (4u << 20)
#define VA 0x7f0000400000ULL
#define CR3_LEVELS 4

struct served {
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

static int start(struct served *s, struct ms_ram *ram, bool writable, const char *tag,
                 const char *symbols)
{
    snprintf(s->sock, sizeof(s->sock), "/tmp/test_client.%d.%s.sock", (int)getpid(), tag);
    struct ms_server_opts opts = {s->sock, NULL, NULL, writable, 0, symbols};
    struct ms_err err;
    if (ms_server_new(&s->srv, ram, &opts, &err) != 0 || pipe(s->stop) != 0) {
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
    close(s->stop[0]);
    close(s->stop[1]);
}

/* In-process: the kernel in phys, its log as ms_dmesg_format writes it. */
static int local_dmesg(struct ms_space *phys, const char *symbols, const struct ms_dmesg_opts *o,
                       struct ms_strbuf *sb, struct ms_err *err)
{
    struct ms_kernel_opts ko = {.symbols = symbols};
    struct ms_kernel *k;
    int rc = ms_kernel_open(&k, phys, &ko, err);
    if (rc)
        return rc;
    struct ms_printk_log log;
    ms_printk_log_init(&log);
    rc = ms_kernel_dmesg(k, &log, err);
    if (rc == 0)
        ms_dmesg_format(&log, o, sb);
    ms_printk_log_free(&log);
    ms_kernel_close(k);
    return rc;
}

/* DMESG through c equals local_dmesg's text (and error) in every style;
 * both succeed, or both fail with the same message (want_ok false). */
static void check_dmesg(struct ms_client *c, uint32_t handle, struct ms_space *phys,
                        const char *symbols, bool want_ok, const char *what)
{
    for (int style = MS_DMESG_PLAIN; style <= MS_DMESG_CRASH; style++) {
        for (int level = -1; level <= 4; level += 5) {
            struct ms_dmesg_opts o = {(enum ms_dmesg_style)style, level};
            struct ms_strbuf got, want;
            struct ms_err err, lerr;
            struct ms_client_dmesg info;
            ms_strbuf_init(&got);
            ms_strbuf_init(&want);
            int rc = ms_client_dmesg(c, handle, &o, &got, &info, &err);
            int lrc = local_dmesg(phys, symbols, &o, &want, &lerr);
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

static uint64_t remote_symbol(struct ms_client *c, uint32_t handle, const char *name)
{
    uint64_t v = 0;
    struct ms_err err;
    if (ms_client_symbol(c, handle, name, &v, &err) != 0)
        printf("# %s: %s\n", name, err.msg);
    return v;
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
    char map[] = "/tmp/test_client_map_XXXXXX";
    int fd = mkstemp(map);
    CHECK(fd >= 0 && write(fd, k.map, strlen(k.map)) == (ssize_t)strlen(k.map), "System.map");
    close(fd);
    struct ms_space *phys;
    ms_space_phys(&phys, im.ram, NULL);

    struct served srv;
    if (start(&srv, im.ram, false, "kernel", map) != 0)
        abort();
    struct ms_client c;
    struct ms_err err, lerr;
    CHECK(ms_client_connect(&c, srv.sock, NULL, &err) == 0, "%s", err.msg);
    check_dmesg(&c, 0, phys, map, true, "RAM");
    CHECK(remote_symbol(&c, 0, "linux_banner") == kimg_va(&k, 0), "banner slid");
    struct ms_strbuf name;
    ms_strbuf_init(&name);
    uint64_t off = 0;
    CHECK(ms_client_addr_symbol(&c, 0, kimg_va(&k, 0x805), &name, &off, &err) == 0 &&
              !strcmp(ms_strbuf_str(&name), "prb") && off == 5,
          "addr -> %s+%llu (%s)", ms_strbuf_str(&name), (unsigned long long)off, err.msg);
    uint64_t v;
    CHECK(ms_client_symbol(&c, 0, "nope", &v, &err) == MS_ENOTFOUND && strstr(err.msg, map), "%s",
          err.msg);
    CHECK(ms_client_symbol(&c, 0, "", &v, &err) == MS_EINVAL && c.fd >= 0, "%s", err.msg);
    CHECK(ms_client_dmesg(&c, 0, &(struct ms_dmesg_opts){3, -1}, &name,
                          &(struct ms_client_dmesg){0}, &err) == MS_EINVAL &&
              ms_client_dmesg(&c, 0, &(struct ms_dmesg_opts){MS_DMESG_RAW, 8}, &name,
                              &(struct ms_client_dmesg){0}, &err) == MS_EINVAL,
          "style and level checked");

    /* The same kernel as a nested guest: behind an identity EPT. */
    struct img_tree ept;
    img_tree_init(&ept, &im, true, 4, NULL, 0);
    for (uint64_t a = 0; a < RAM_SIZE; a += 2 << 20)
        img_map(&ept, a, a, 2, EPT_READ | EPT_WRITE | EPT_EXEC | 6 << EPT_MEMTYPE_SHIFT);
    struct ms_space *nested;
    ms_space_ept(&nested, phys, img_eptp(&ept), NULL);
    struct ms_wire_stack st = {1, 0, 0, 0, img_eptp(&ept), 0};
    uint32_t h = 0;
    CHECK(ms_client_space(&c, &st, &h, &err) == 0 && h, "%s", err.msg);
    check_dmesg(&c, h, nested, map, true, "EPT");

    /* The ring is read anew by every request; the kernel is kept until a
     * FLUSH finds its VMCOREINFO changed (a reboot with another slide). */
    kimg_printk(&k, "late record", 6, 3000000000ULL);
    check_dmesg(&c, 0, phys, map, true, "after a printk");
    kimg_write_vmcoreinfo(&k, slide + (2 << 20));
    CHECK(remote_symbol(&c, 0, "linux_banner") == kimg_va(&k, 0), "kept without a FLUSH");
    CHECK(ms_client_flush(&c, &err) == 0, "%s", err.msg);
    CHECK(remote_symbol(&c, 0, "linux_banner") == kimg_va(&k, 0) + (2 << 20), "reopened");
    kimg_write_vmcoreinfo(&k, slide);
    ms_client_flush(&c, &err);
    CHECK(remote_symbol(&c, h, "linux_banner") == kimg_va(&k, 0), "nested kernel checked, kept");

    /* No VMCOREINFO: the slide from linux_banner and the page tables; the
     * kernel goes when the banner does. */
    static const uint8_t zero[4096];
    ms_ram_write(im.ram, k.vmcoreinfo, zero, sizeof(zero), NULL, NULL);
    ms_client_flush(&c, &err);
    CHECK(remote_symbol(&c, 0, "linux_banner") == kimg_va(&k, 0), "found by the banner");
    check_dmesg(&c, 0, phys, map, false, "no VMCOREINFO"); /* both fail alike: no DWARF */
    ms_ram_write(im.ram, KIMG_TEXT_PA, "Linux VERSION", 13, NULL, NULL);
    ms_client_flush(&c, &err);
    CHECK(ms_client_symbol(&c, 0, "linux_banner", &v, &err) == MS_ENOTFOUND &&
              strstr(err.msg, "kernel not found"),
          "%s", err.msg);
    ms_client_close(&c);
    stop(&srv);

    /* Neither a symbol file nor VMCOREINFO: the library's message. */
    if (start(&srv, im.ram, false, "nosyms", NULL) != 0)
        abort();
    CHECK(ms_client_connect(&c, srv.sock, NULL, &err) == 0, "%s", err.msg);
    struct ms_dmesg_opts o = {MS_DMESG_PLAIN, -1};
    int rc = ms_client_dmesg(&c, 0, &o, &name, &(struct ms_client_dmesg){0}, &err);
    int lrc = local_dmesg(phys, NULL, &o, &name, &lerr);
    CHECK(rc == MS_ENOTFOUND && rc == lrc && !strcmp(err.msg, lerr.msg) &&
              strstr(err.msg, "no VMCOREINFO"),
          "%d %s | %s", rc, err.msg, lerr.msg);
    ms_client_close(&c);
    stop(&srv);

    ms_strbuf_free(&name);
    ms_space_free(nested);
    ms_space_free(phys);
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
    struct ms_space *phys, *paging;
    ms_space_phys(&phys, im.ram, NULL);
    ms_space_paging(&paging, phys, t.root, CR3_LEVELS, NULL);

    struct served ro;
    if (start(&ro, im.ram, false, "ro", NULL) != 0)
        return 1;
    struct ms_client c;
    struct ms_err err, lerr;
    CHECK(ms_client_connect(&c, ro.sock, NULL, &err) == 0, "%s", err.msg);
    CHECK(c.ram_size == RAM_SIZE && (c.server_flags & 1) == 0, "HELLO");
    uint32_t h = 0;
    struct ms_wire_stack st = {0, 0, 1, CR3_LEVELS, 0, t.root};
    CHECK(ms_client_space(&c, &st, &h, &err) == 0 && h != 0, "%s", err.msg);

    /* A read that runs off the mapped page: same bytes, same message. */
    uint8_t got[32], want[32];
    size_t done = 99, ldone = 99;
    int rc = ms_client_read(&c, h, VA + 4096 - 16, got, sizeof(got), &done, &err);
    int lrc = ms_space_read(paging, VA + 4096 - 16, want, sizeof(want), &ldone, &lerr);
    CHECK(rc == lrc && rc == MS_EUNMAPPED && done == 16 && ldone == 16, "rc %d/%d done %zu", rc,
          lrc, done);
    CHECK(!memcmp(got, want, 16) && !strcmp(err.msg, lerr.msg), "%s | %s", err.msg, lerr.msg);

    /* A failed report still carries the text before the error. */
    struct ms_strbuf out;
    ms_strbuf_init(&out);
    rc = ms_client_vtop(&c, h, VA + 4096, &out, &err);
    CHECK(rc == MS_EUNMAPPED && strstr(ms_strbuf_str(&out), "PML4E"), "%d %s", rc,
          ms_strbuf_str(&out));
    ms_strbuf_free(&out);

    /* Read-only: refused with the server's message, nothing written. */
    done = 99;
    rc = ms_client_write(&c, 0, page, "abcd", 4, &done, &err);
    CHECK(rc == MS_EPERM && done == 0 && strstr(err.msg, "--writable"), "%d %zu %s", rc, done,
          err.msg);
    CHECK(img_get64(&im, page) == 0, "file unchanged");
    rc = ms_client_write(&c, 0, 0, "", MS_WIRE_MAX_WRITE + 1, &done, &err);
    CHECK(rc == MS_EINVAL && c.fd >= 0, "oversized write refused here, connection kept");

    /* The server goes away: the call fails, then every call at once. */
    stop(&ro);
    uint64_t v;
    rc = ms_client_read(&c, 0, 0, &v, 8, NULL, &err);
    CHECK(rc == MS_EPROTO || rc == MS_EIO, "%d %s", rc, err.msg);
    CHECK(c.fd == -1, "connection closed after a transport error");
    rc =
        ms_client_translate(&c, h, 1, &(uint64_t){VA}, &(struct ms_xlat){0}, &(int){0}, NULL, &err);
    CHECK(rc == MS_EIO && strstr(err.msg, "not connected"), "%d %s", rc, err.msg);
    ms_client_close(&c);

    /* Writable: WRITE says how much it wrote, also when it stops early. */
    struct served rw;
    if (start(&rw, im.ram, true, "rw", NULL) != 0)
        return 1;
    CHECK(ms_client_connect(&c, rw.sock, NULL, &err) == 0 && (c.server_flags & 1), "%s", err.msg);
    CHECK(ms_client_space(&c, &st, &h, &err) == 0, "%s", err.msg);
    rc = ms_client_write(&c, h, VA + 4096 - 3, "WXYZ", 4, &done, &err);
    CHECK(rc == MS_EUNMAPPED && done == 3, "%d %zu %s", rc, done, err.msg);
    rc = ms_client_write(&c, 0, RAM_SIZE - 2, "ABCD", 4, &done, &err);
    CHECK(rc == MS_EOUTSIDE && done == 2, "%d %zu %s", rc, done, err.msg);
    char back[4] = {0};
    ms_ram_read(im.ram, page + 4093, back, 3, NULL, NULL);
    CHECK(!memcmp(back, "WXY", 3), "written through paging");
    ms_client_close(&c);
    stop(&rw);

    ms_space_free(paging);
    ms_space_free(phys);
    img_close(&im);
    test_kernel();
    return check_done("test_client");
}
