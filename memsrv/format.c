/* Placeholder until the format branch lands (x/FMT is being written there). */
#include "format.h"

int ms_xfmt_parse(const char *text, struct ms_xfmt *fmt, struct ms_err *err)
{
    (void)text;
    (void)fmt;
    return ms_err_set(err, MS_EINVAL, "x/FMT is not built yet");
}

int ms_format_x(const struct ms_xfmt *fmt, uint64_t addr, ms_read_fn read, void *read_arg,
                ms_symbolize_fn sym, void *sym_arg, struct ms_strbuf *out, uint64_t *next,
                struct ms_err *err)
{
    (void)fmt, (void)addr, (void)read, (void)read_arg, (void)sym, (void)sym_arg, (void)out,
        (void)next;
    return ms_err_set(err, MS_EINVAL, "x/FMT is not built yet");
}
