/* Fuzzes memsrv p: the input is an expression (up to the first newline,
 * byte 0 choosing the format letter) and the guest memory after it, mapped
 * at SAMPLE_BASE, over the sample BTF of tests/fuzz/cexpr_sample.h (structs,
 * unions, bitfields, enums, arrays, pointers, a function). With bit 7 of
 * byte 0 set, the memory starts with a u16 length and that many bytes of a
 * BTF blob of the input's own (hostile types: cycles, huge bitfields,
 * bad sizes), used in place of the sample's. Parsing, evaluation and
 * printing must end with text or an error, within the output bound, never
 * outside the memory given. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cexpr.h"
#include "cexpr_sample.h"
#include "strbuf.h"
#include "valprint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ms_btf *btf;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!btf) {
        static uint8_t blob[4096];
        size_t n = sample_btf(blob);
        if (ms_btf_parse(&btf, blob, n, NULL) < 0)
            abort();
    }
    if (size < 1)
        return 0;
    static const char fmts[] = "\0xduotcasz";
    char fmt[2] = {fmts[(data[0] & 0x7f) % (sizeof(fmts) - 1)], 0};
    bool own_btf = data[0] & 0x80;
    data++, size--;
    const uint8_t *nl = memchr(data, '\n', size);
    size_t elen = nl ? (size_t)(nl - data) : size;
    if (elen > MS_CEXPR_MAX_TEXT + 8)
        elen = MS_CEXPR_MAX_TEXT + 8;
    char *expr = malloc(elen + 1);
    if (!expr)
        return 0;
    memcpy(expr, data, elen);
    expr[elen] = '\0';
    struct sample_mem mem = {nl ? nl + 1 : data + size, nl ? (size_t)(data + size - nl - 1) : 0};
    struct ms_btf *use = btf, *mine = NULL;
    if (own_btf) {
        size_t blen = mem.len >= 2 ? (size_t)(mem.bytes[0] | mem.bytes[1] << 8) : 0;
        if (blen > mem.len - 2 || ms_btf_parse(&mine, mem.bytes + 2, blen, NULL) < 0) {
            free(expr);
            return 0;
        }
        use = mine;
        mem.bytes += 2 + blen;
        mem.len -= 2 + blen;
    }
    struct ms_print_env env = {use, sample_read, &mem, sample_symbol, sample_addrsym, NULL};
    struct ms_strbuf out;
    ms_strbuf_init(&out);
    struct ms_err err;
    int rc = ms_print_expr(&env, fmt, expr, &out, &err);
    if (rc == 0 && (out.len < 6 || memcmp(out.data, "$1 = ", 5) || out.data[out.len - 1] != '\n'))
        abort();
    if (rc < 0 && out.len)
        abort(); /* an error leaves no half-printed value */
    if (out.len > MS_PRINT_OUTPUT_MAX + 4096)
        abort();
    ms_strbuf_free(&out);
    ms_btf_free(mine);
    free(expr);
    return 0;
}
