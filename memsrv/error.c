#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int ms_err_set(struct ms_err *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    err->hint = MS_HINT_NONE;
    err->has_fault = false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

int ms_err_prefix(struct ms_err *err, const char *fmt, ...)
{
    if (!err)
        return MS_EINVAL;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    if (n < 0)
        return err->code;
    size_t plen = strnlen(prefix, sizeof(prefix) - 1);
    size_t mlen = strnlen(err->msg, sizeof(err->msg) - 1);
    if (plen + mlen >= sizeof(err->msg))
        mlen = sizeof(err->msg) - 1 - plen;
    memmove(err->msg + plen, err->msg, mlen);
    memcpy(err->msg, prefix, plen);
    err->msg[plen + mlen] = '\0';
    return err->code;
}

void ms_err_hint(struct ms_err *err, enum ms_hint hint)
{
    if (err)
        err->hint = hint;
}

void ms_err_fault(struct ms_err *err, uint64_t addr)
{
    if (err) {
        err->has_fault = true;
        err->fault_addr = addr;
    }
}

void ms_err_clear(struct ms_err *err)
{
    if (err) {
        err->code = MS_OK;
        err->hint = MS_HINT_NONE;
        err->has_fault = false;
        err->msg[0] = '\0';
    }
}

const char *ms_code_name(int code)
{
    switch (code) {
    case MS_OK:
        return "ok";
    case MS_EINVAL:
        return "invalid argument";
    case MS_ENOMEM:
        return "out of memory";
    case MS_EIO:
        return "I/O error";
    case MS_EFORMAT:
        return "malformed input";
    case MS_EUNMAPPED:
        return "unmapped";
    case MS_EOUTSIDE:
        return "outside RAM";
    case MS_ERESERVED:
        return "reserved bits";
    case MS_ENOTFOUND:
        return "not found";
    case MS_EBUS:
        return "RAM file shrank";
    case MS_EPERM:
        return "permission denied";
    case MS_ELIMIT:
        return "limit reached";
    case MS_EPROTO:
        return "protocol error";
    }
    return "unknown error";
}
