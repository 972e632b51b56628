#include "fields.h"

int ms_fields_span(const uint64_t *off, const uint64_t *size, size_t n, uint64_t max,
                   const char *what, uint64_t *lo, uint64_t *hi, struct ms_err *err)
{
    *lo = UINT64_MAX;
    *hi = 0;
    for (size_t i = 0; i < n; i++) {
        if (off[i] > max || size[i] > max)
            return ms_err_set(err, MS_EFORMAT,
                              "%s field at offset %#llx (%llu bytes): past %#llx, not a %s", what,
                              (unsigned long long)off[i], (unsigned long long)size[i],
                              (unsigned long long)max, what);
        if (off[i] < *lo)
            *lo = off[i];
        if (off[i] + size[i] > *hi)
            *hi = off[i] + size[i];
    }
    if (n == 0)
        *lo = 0;
    return 0;
}
