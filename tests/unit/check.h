/* A minimal TAP-style harness for the unit tests: each CHECK prints one line,
 * check_done() prints "N passed, N failed" and returns the exit status. */
#ifndef TESTS_CHECK_H
#define TESTS_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

struct check_counts {
    unsigned passed, failed;
};

static struct check_counts check_counts_;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            check_counts_.passed++;                                                                \
        } else {                                                                                   \
            check_counts_.failed++;                                                                \
            printf("not ok %s:%d: %s: ", __FILE__, __LINE__, #cond);                               \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_U64(a, b, what)                                                                   \
    do {                                                                                           \
        uint64_t a_ = (a), b_ = (b);                                                               \
        CHECK(a_ == b_, "%s: got 0x%" PRIx64 ", want 0x%" PRIx64, (what), a_, b_);                 \
    } while (0)

static inline int check_done(const char *name)
{
    printf("%s: %u passed, %u failed\n", name, check_counts_.passed, check_counts_.failed);
    return check_counts_.failed ? 1 : 0;
}

#endif
