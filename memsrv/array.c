#include "array.h"

#include <stdint.h>
#include <stdlib.h>

bool ms_array_reserve(void **data, size_t *cap, size_t need, size_t elem_size, size_t min_cap)
{
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap : (min_cap ? min_cap : 1);
    while (n < need) {
        if (n > SIZE_MAX / 2)
            return false;
        n *= 2;
    }
    if (elem_size && n > SIZE_MAX / elem_size)
        return false;
    void *p = realloc(*data, n * elem_size);
    if (!p)
        return false;
    *data = p;
    *cap = n;
    return true;
}
