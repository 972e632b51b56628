/* Opening the files a user names: regular files only (file.h). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "file.h"

static const char *kind_name(mode_t mode)
{
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    return "not a file";
}

int ms_file_check(const char *path, const struct stat *st, struct ms_err *err)
{
    if (S_ISREG(st->st_mode))
        return 0;
    return ms_err_set(err, MS_EINVAL,
                      "%s is %s, not a regular file (memsrv maps its inputs: give a file)", path,
                      kind_name(st->st_mode));
}

int ms_file_open(const char *path, int flags, struct stat *st, struct ms_err *err)
{
    struct stat before, after;
    /* stat first: opening a FIFO blocks until a writer comes, opening a
     * socket fails with a misleading ENXIO, a device may act on open. */
    if (stat(path, &before) != 0)
        return ms_err_set(err, MS_EIO, "cannot open %s: %s", path, strerror(errno));
    int rc = ms_file_check(path, &before, err);
    if (rc)
        return rc;
    /* O_NONBLOCK: should the path have become a FIFO since, the open still
     * returns and the fstat below refuses it. */
    int fd = open(path, flags | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return ms_err_set(err, MS_EIO, "cannot open %s: %s%s", path, strerror(errno),
                          (flags & O_ACCMODE) != O_RDONLY && errno == EACCES
                              ? " (writable access was asked)"
                              : "");
    if (fstat(fd, &after) != 0) {
        rc = ms_err_set(err, MS_EIO, "cannot stat %s: %s", path, strerror(errno));
        close(fd);
        return rc;
    }
    rc = ms_file_check(path, &after, err);
    if (rc == 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0)
        rc = ms_err_set(err, MS_EIO, "cannot use %s: %s", path, strerror(errno));
    if (rc) {
        close(fd);
        return rc;
    }
    if (st)
        *st = after;
    return fd;
}
