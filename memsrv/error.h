/* Errors as values: every library call returns 0 or a negative MS_E* code and,
 * on failure, fills a message a user can act on. Library code never prints. */
#ifndef MEMSRV_ERROR_H
#define MEMSRV_ERROR_H

#include <stddef.h>

enum ms_code {
    MS_OK = 0,
    MS_EINVAL = -1,    /* bad argument or option */
    MS_ENOMEM = -2,    /* allocation failed */
    MS_EIO = -3,       /* open/read/mmap of a file failed */
    MS_EFORMAT = -4,   /* a file or guest structure is malformed */
    MS_EUNMAPPED = -5, /* a page-table entry is not present */
    MS_EOUTSIDE = -6,  /* a physical address is not backed by RAM */
    MS_ERESERVED = -7, /* reserved bits / EPT misconfiguration */
    MS_ENOTFOUND = -8, /* symbol, structure or note not found */
    MS_EBUS = -9,      /* the RAM file shrank under the mapping */
    MS_EPERM = -10,    /* write to a read-only source, auth refused */
    MS_ELIMIT = -11,   /* a work or size limit was reached */
    MS_EPROTO = -12,   /* protocol violation (server/client) */
};

struct ms_err {
    int code;
    char msg[512];
};

/* Sets *err (which may be NULL) and returns code, so callers can write
 * `return ms_err_set(err, MS_EINVAL, "...")`. */
int ms_err_set(struct ms_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends context ("reading PML4E: ") to an existing message; returns err->code. */
int ms_err_prefix(struct ms_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void ms_err_clear(struct ms_err *err);

/* A short name for a code ("unmapped", "outside RAM", ...). */
const char *ms_code_name(int code);

#endif
