/* Human-readable reports shared by the CLI, the server and the GDB
 * extension: a translation with every table entry decoded (vtop), and a
 * page-table dump with contiguous ranges merged (ptdump). */
#ifndef MEMSRV_REPORT_H
#define MEMSRV_REPORT_H

#include <stdint.h>

#include "error.h"
#include "space.h"
#include "strbuf.h"

/* Describes the stack ("paging 5-level CR3 0x.. over EPT 4-level EPTP 0x.. over RAM"). */
void ms_report_stack(const struct ms_space *space, struct ms_strbuf *out);

/* Translates addr with a trace and writes every entry of every dimension,
 * then the chain of addresses. On a failed walk writes the entries read so
 * far and returns the error (whose message names the failing entry). */
int ms_report_vtop(struct ms_space *space, uint64_t addr, struct ms_strbuf *out,
                   struct ms_err *err);

/* Merged ranges of [start, end]: "start-end size -> lower perms (pages)".
 * Returns MS_ELIMIT (with what was found so far written) when the table
 * budget runs out. */
int ms_report_ptdump(struct ms_space *space, uint64_t start, uint64_t end, struct ms_strbuf *out,
                     struct ms_err *err);

/* "rwx u" style permission text for ms_perm bits. */
void ms_perm_text(const struct ms_space *space, unsigned perms, char out[8]);

#endif
