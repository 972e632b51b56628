#include "number.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int ms_parse_u64(const char *text, const char **end, uint64_t *value, struct ms_err *err)
{
    const char *p = text;
    while (isspace((unsigned char)*p))
        p++;
    if (!isdigit((unsigned char)*p))
        return ms_err_set(err, MS_EINVAL, "expected a number at '%.40s'", text);
    int base = 10;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        base = 16;
        if (!isxdigit((unsigned char)p[2]))
            return ms_err_set(err, MS_EINVAL, "bad hexadecimal number '%.40s'", text);
    } else if (p[0] == '0' && isdigit((unsigned char)p[1])) {
        base = 8;
    }
    errno = 0;
    char *e;
    unsigned long long v = strtoull(p, &e, base);
    if (errno == ERANGE)
        return ms_err_set(err, MS_EINVAL, "number out of range: '%.40s'", text);
    *value = v;
    if (end)
        *end = e;
    return 0;
}

static int parse_term(const char **pp, ms_name_fn resolve, void *arg, uint64_t *value,
                      struct ms_err *err)
{
    const char *p = *pp;
    while (isspace((unsigned char)*p))
        p++;
    if (isdigit((unsigned char)*p)) {
        int rc = ms_parse_u64(p, pp, value, err);
        return rc;
    }
    const char *start = p;
    while (isalnum((unsigned char)*p) || *p == '_' || *p == '.' || *p == '$')
        p++;
    if (p == start)
        return ms_err_set(err, MS_EINVAL, "expected a number or a name at '%.40s'", start);
    char name[256];
    size_t len = (size_t)(p - start);
    if (len >= sizeof(name))
        return ms_err_set(err, MS_EINVAL, "name too long: '%.40s...'", start);
    memcpy(name, start, len);
    name[len] = '\0';
    if (!resolve) {
        int rc = ms_err_set(err, MS_EINVAL, "'%s' is not a number, and no symbols are known", name);
        ms_err_hint(err, MS_HINT_SYMBOLS);
        return rc;
    }
    if (resolve(arg, name, value) != 0)
        return ms_err_set(err, MS_ENOTFOUND, "no symbol \"%s\"", name);
    *pp = p;
    return 0;
}

int ms_parse_expr(const char *text, ms_name_fn resolve, void *arg, uint64_t *value,
                  struct ms_err *err)
{
    const char *p = text;
    uint64_t acc;
    int rc = parse_term(&p, resolve, arg, &acc, err);
    if (rc)
        return rc;
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            break;
        char op = *p;
        if (op != '+' && op != '-')
            return ms_err_set(err, MS_EINVAL, "unexpected '%.20s' in '%s'", p, text);
        p++;
        uint64_t term;
        rc = parse_term(&p, resolve, arg, &term, err);
        if (rc)
            return rc;
        acc = op == '+' ? acc + term : acc - term;
    }
    *value = acc;
    return 0;
}

int ms_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int ms_parse_size(const char *text, uint64_t *value, struct ms_err *err)
{
    const char *end;
    uint64_t v;
    int rc = ms_parse_u64(text, &end, &v, err);
    if (rc)
        return rc;
    unsigned shift = 0;
    switch (*end) {
    case 'k':
    case 'K':
        shift = 10;
        end++;
        break;
    case 'm':
    case 'M':
        shift = 20;
        end++;
        break;
    case 'g':
    case 'G':
        shift = 30;
        end++;
        break;
    case 't':
    case 'T':
        shift = 40;
        end++;
        break;
    }
    if (*end == 'i' || *end == 'B')
        end++;
    if (*end == 'B')
        end++;
    if (*end != '\0')
        return ms_err_set(err, MS_EINVAL, "bad size '%s'", text);
    if (shift && v > (UINT64_MAX >> shift))
        return ms_err_set(err, MS_EINVAL, "size out of range: '%s'", text);
    *value = v << shift;
    return 0;
}
