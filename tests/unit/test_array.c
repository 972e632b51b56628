/* ms_array_reserve: growth from the minimum by doubling, no change when
 * there is room, and refusals (nothing changed) when a size overflows. */
#include <stdint.h>
#include <stdlib.h>

#include "array.h"
#include "check.h"

int main(void)
{
    uint64_t *v = NULL;
    size_t cap = 0;
    CHECK(MS_ARRAY_RESERVE(&v, &cap, 1, 16) && v && cap == 16, "first: cap %zu", cap);
    uint64_t *before = v;
    CHECK(MS_ARRAY_RESERVE(&v, &cap, 16, 16) && v == before && cap == 16, "room: no change");
    CHECK(MS_ARRAY_RESERVE(&v, &cap, 17, 16) && cap == 32, "doubled: cap %zu", cap);
    CHECK(MS_ARRAY_RESERVE(&v, &cap, 1000, 16) && cap == 1024, "to fit: cap %zu", cap);
    v[999] = 7;
    before = v;
    CHECK(!MS_ARRAY_RESERVE(&v, &cap, SIZE_MAX / 4, 16) && v == before && cap == 1024,
          "elements x size overflow refused, array kept");
    CHECK(!MS_ARRAY_RESERVE(&v, &cap, SIZE_MAX, 16) && v == before && cap == 1024,
          "count overflow refused");
    CHECK(v[999] == 7, "contents kept");
    free(v);
    char *s = NULL;
    size_t scap = 0;
    CHECK(MS_ARRAY_RESERVE(&s, &scap, 3, 0) && scap >= 3, "no minimum: cap %zu", scap);
    free(s);
    return check_done("test_array");
}
