/* x86-64 disassembly for x/i, through capstone 4, in GDB 13's AT&T layout
 * ("mov    %rsp,%rbp", "lea    0x10(%rip),%rax        # 0x401017 <sym>").
 * ms_disasm_one rewrites capstone's spelling into binutils 2.40's: no
 * size suffix when a register gives the size, hex numbers, explicit 0x0
 * displacements and ",1" scales, %es:/%ds: on string operands, x87
 * two-operand forms, prefix names (data16, cs, repz, notrack), xchg order.
 * Measured against gdb: /bin/true, bash, gdb: every line identical; all of
 * libc's .text: 99.2% identical. Known differences left: AVX-512 mask and
 * some EVEX instructions capstone 4 cannot decode ("(bad)", one byte, then
 * out of step until the next boundary), and capstone's EVEX index register
 * bug (%xmm2 for %rdx). */
#ifndef MEMSRV_DISASM_H
#define MEMSRV_DISASM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
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
