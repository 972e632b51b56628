/* Inputs that are not regular files (FIFO, directory, socket, character
 * device) are refused at once, by the library, with a message naming the
 * path and what it is: as RAM file, dump, layout file and symbol file. A
 * FIFO with no writer must not block (an alarm fails the test if it does). */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "check.h"
#include "file.h"
#include "layout.h"
#include "memsrv.h"
#include "symbols.h"

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "not ok: an open blocked (alarm)\ntest_file: 0 passed, 1 failed\n";
    if (write(1, msg, sizeof(msg) - 1) < 0) {
        /* nothing more to do */
    }
    _exit(1);
}

static void refused(const char *path, const char *kind)
{
    struct ms_err err;
    char want[256];
    snprintf(want, sizeof(want), "%s is %s, not a regular file", path, kind);

    struct ms_target *t = NULL;
    struct ms_target_opts o = {0};
    o.ram = path;
    o.map = "0:0x1000@0";
    int rc = ms_target_open(&t, &o, &err);
    CHECK(rc == MS_EINVAL && strstr(err.msg, want), "ram %s: %d %s", path, rc, err.msg);
    ms_target_close(t);

    memset(&o, 0, sizeof(o));
    o.dump = path;
    rc = ms_target_open(&t, &o, &err);
    CHECK(rc == MS_EINVAL && strstr(err.msg, want), "dump %s: %d %s", path, rc, err.msg);
    ms_target_close(t);

    struct ms_symtab *st = NULL;
    rc = ms_symtab_load(&st, path, &err);
    CHECK(rc == MS_EINVAL && strstr(err.msg, want), "symbols %s: %d %s", path, rc, err.msg);
    ms_symtab_free(st);
    rc = ms_symtab_load_map(&st, path, &err);
    CHECK(rc == MS_EINVAL && strstr(err.msg, want), "System.map %s: %d %s", path, rc, err.msg);
    rc = ms_symtab_load_elf(&st, path, &err);
    CHECK(rc == MS_EINVAL && strstr(err.msg, want), "vmlinux %s: %d %s", path, rc, err.msg);

    struct ms_layout l;
    rc = ms_layout_load(&l, path, &err);
    CHECK(rc == MS_EINVAL && strstr(err.msg, want), "layout %s: %d %s", path, rc, err.msg);
}

int main(void)
{
    signal(SIGALRM, on_alarm);
    alarm(20);
    char dir[] = "/tmp/test_file.XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char fifo[64], sock[64], reg[64];
    snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
    snprintf(sock, sizeof(sock), "%s/sock", dir);
    snprintf(reg, sizeof(reg), "%s/ram", dir);
    CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
    CHECK(s >= 0 && bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind");

    refused(fifo, "a FIFO");
    refused(dir, "a directory");
    refused(sock, "a socket");
    refused("/dev/null", "a character device");

    /* A regular file opens, with its size; a missing one says so. */
    int fd = open(reg, O_CREAT | O_WRONLY, 0600);
    CHECK(fd >= 0 && write(fd, "RAMFILE!", 8) == 8, "write");
    close(fd);
    struct stat st;
    struct ms_err err;
    fd = ms_file_open(reg, O_RDONLY, &st, &err);
    CHECK(fd >= 0 && st.st_size == 8, "regular file: %d %s", fd, fd < 0 ? err.msg : "");
    CHECK(fd < 0 || (fcntl(fd, F_GETFL) & O_NONBLOCK) == 0, "O_NONBLOCK cleared");
    CHECK(fd < 0 || (fcntl(fd, F_GETFD) & FD_CLOEXEC), "O_CLOEXEC set");
    if (fd >= 0)
        close(fd);
    fd = ms_file_open("/nonexistent/ram", O_RDONLY, NULL, &err);
    CHECK(fd == MS_EIO && strstr(err.msg, "/nonexistent/ram") && strstr(err.msg, "No such"),
          "missing: %d %s", fd, err.msg);

    close(s);
    unlink(sock);
    unlink(fifo);
    unlink(reg);
    rmdir(dir);
    return check_done("test_file");
}
