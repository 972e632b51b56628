/* x86-64 disassembly for x/i, through capstone, in GDB's AT&T layout
 * ("mov    %rsp,%rbp", "lea    0x10(%rip),%rax        # 0x401017").
 * Capstone 4 and GDB 13 (binutils 2.40) differ in places; ms_disasm_one
 * smooths the common ones (operand-size suffixes GDB does not print) and
 * leaves the rest as capstone prints them. */
#ifndef MEMSRV_DISASM_H
#define MEMSRV_DISASM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "format.h"
#include "strbuf.h"

#define MS_DISASM_MAX_INSN 15 /* longest x86 instruction */

struct ms_disasm {
    size_t handle; /* capstone csh */
    void *insn;    /* cs_insn scratch from cs_malloc */
    bool open;
};

int ms_disasm_open(struct ms_disasm *d, struct ms_err *err);
void ms_disasm_close(struct ms_disasm *d);

/* Decodes the instruction at addr from code[0..len) and appends its text
 * (no address column, no newline) to out. *insn_len gets its length; 0 when
 * the bytes do not decode (nothing is appended). sym may be NULL; when given,
 * branch targets and rip-relative comments get " <sym+off>" as GDB does. */
int ms_disasm_one(struct ms_disasm *d, const uint8_t *code, size_t len, uint64_t addr,
                  ms_symbolize_fn sym, void *sym_arg, struct ms_strbuf *out, size_t *insn_len,
                  struct ms_err *err);

#endif
