/* GDB-style numbers: 0x hex, 0 octal, decimal, k/M/G/T suffixes (sizes),
 * and +/- chains, with an optional resolver for names (symbols). */
#ifndef MEMSRV_NUMBER_H
#define MEMSRV_NUMBER_H

#include <stdint.h>

#include "error.h"

/* Parses one number (no arithmetic); *end gets the first unparsed char. */
int ms_parse_u64(const char *text, const char **end, uint64_t *value, struct ms_err *err);

/* The value of a hex digit (either case), or -1. */
int ms_hex_digit(int c);

/* A size with optional k/M/G/T suffix (powers of 1024). */
int ms_parse_size(const char *text, uint64_t *value, struct ms_err *err);

#endif
