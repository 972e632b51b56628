/* Opening the files a user names (RAM files, dumps, vmlinux, System.map):
 * regular files only, refused at once otherwise. memsrv maps and seeks its
 * inputs; a FIFO would block the open (or the first read) forever, a
 * device or socket has no size to map. */
#ifndef MEMSRV_FILE_H
#define MEMSRV_FILE_H

#include <sys/stat.h>

#include "memsrv.h"

/* 0 when st is a regular file, else MS_EINVAL with a message naming path
 * and what it is ("/tmp/x is a FIFO, not a regular file"). */
int ms_file_check(const char *path, const struct stat *st, struct ms_err *err);

/* open(2) of a regular file with O_CLOEXEC added: returns the descriptor
 * (>= 0), or a negative MS_E* code with *err filled. Never blocks on a
 * FIFO; *st (may be NULL) gets the file's fstat. */
int ms_file_open(const char *path, int flags, struct stat *st, struct ms_err *err);

#endif
