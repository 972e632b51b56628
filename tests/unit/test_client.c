/* The C client against a real server (in a thread of this process): answers
 * and error messages equal to the library's, WRITE's byte count, a read-only
 * server's refusal, and a server that goes away mid-session: the call fails,
 * the connection is closed, later calls fail at once (no blocking, no reads
 * of a stale stream). Run under ASan/UBSan by tests/run. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/image.h"
#include "check.h"
#include "client.h"
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

static int start(struct served *s, struct ms_ram *ram, bool writable, const char *tag)
{
    snprintf(s->sock, sizeof(s->sock), "/tmp/test_client.%d.%s.sock", (int)getpid(), tag);
    struct ms_server_opts opts = {s->sock, NULL, NULL, writable, 0};
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
    if (start(&ro, im.ram, false, "ro") != 0)
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
    if (start(&rw, im.ram, true, "rw") != 0)
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
    return check_done("test_client");
}
