/* Where each guest-physical range lives inside the RAM file(s): QEMU's
 * machine rules (the PCI hole split), an explicit --map, or a layout file
 * saved beside the RAM file by scripts/qemu-launch. */
#ifndef MEMSRV_LAYOUT_H
#define MEMSRV_LAYOUT_H

#include <stdint.h>

#include "error.h"

struct ms_region {
    uint64_t gpa;    /* first guest-physical address */
    uint64_t len;    /* bytes */
    uint64_t offset; /* offset in the source file */
    unsigned source; /* index of the source file (0 for a single RAM file) */
};

#define MS_LAYOUT_MAX 256

struct ms_layout {
    struct ms_region regions[MS_LAYOUT_MAX];
    unsigned count;
};

/* QEMU's rule for `machine` ("q35" or "pc") and a RAM of ram_size bytes. */
int ms_layout_for_machine(struct ms_layout *out, const char *machine, uint64_t ram_size,
                          struct ms_err *err);

/* "GPA:LEN@OFFSET[,GPA:LEN@OFFSET...]" with GDB-style numbers (0x.., k/M/G suffixes). */
int ms_layout_parse_map(struct ms_layout *out, const char *spec, struct ms_err *err);

/* The text layout file: '#' comments, one "gpa len offset" line (hex) per region. */
int ms_layout_load(struct ms_layout *out, const char *path, struct ms_err *err);
int ms_layout_save(const struct ms_layout *layout, const char *path, struct ms_err *err);

/* The layout file's conventional path beside a RAM file: "<ram>.layout". */
int ms_layout_path_for(const char *ram_path, char *out, unsigned out_size, struct ms_err *err);

/* Sorts by gpa and rejects overlapping or empty regions. */
int ms_layout_check(struct ms_layout *layout, struct ms_err *err);

#endif
