#include "disasm.h"

#include <capstone.h>
#include <inttypes.h>
#include <string.h>

int ms_disasm_open(struct ms_disasm *d, struct ms_err *err)
{
    memset(d, 0, sizeof(*d));
    csh h;
    cs_err ce = cs_open(CS_ARCH_X86, CS_MODE_64, &h);
    if (ce != CS_ERR_OK)
        return ms_err_set(err, MS_EINVAL, "capstone: cannot open x86-64 disassembler: %s",
                          cs_strerror(ce));
    /* Detail mode gives the operands, for GDB's "# 0x..." rip-relative comment
     * and branch-target symbols. */
    if (cs_option(h, CS_OPT_SYNTAX, CS_OPT_SYNTAX_ATT) != CS_ERR_OK ||
        cs_option(h, CS_OPT_DETAIL, CS_OPT_ON) != CS_ERR_OK) {
        cs_close(&h);
        return ms_err_set(err, MS_EINVAL, "capstone: cannot select AT&T syntax with details");
    }
    cs_insn *insn = cs_malloc(h);
    if (!insn) {
        cs_close(&h);
        return ms_err_set(err, MS_ENOMEM, "capstone: out of memory");
    }
    d->handle = h;
    d->insn = insn;
    d->open = true;
    return 0;
}

void ms_disasm_close(struct ms_disasm *d)
{
    if (!d->open)
        return;
    csh h = d->handle;
    cs_free(d->insn, 1);
    cs_close(&h);
    memset(d, 0, sizeof(*d));
}

/* Capstone 4 spells some mnemonics with an operand-size suffix that
 * binutils 2.40 (GDB 13) leaves out in 64-bit mode. */
static const char *gdb_mnemonic(const char *m)
{
    static const char *const map[][2] = {
        {"callq", "call"}, {"retq", "ret"},     {"pushq", "push"},   {"popq", "pop"},
        {"jmpq", "jmp"},   {"leaveq", "leave"}, {"pushfq", "pushf"}, {"popfq", "popf"},
        {"lretq", "lretq"}, {"ljmpq", "ljmp"},  {"lcallq", "lcall"}, {"movabsq", "movabs"},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(m, map[i][0]) == 0)
            return map[i][1];
    return m;
}

static void append_sym(ms_symbolize_fn sym, void *sym_arg, uint64_t addr, struct ms_strbuf *out)
{
    char name[256];
    if (sym && sym(sym_arg, addr, name, sizeof(name)) == 0)
        ms_strbuf_printf(out, " <%s>", name);
}

int ms_disasm_one(struct ms_disasm *d, const uint8_t *code, size_t len, uint64_t addr,
                  ms_symbolize_fn sym, void *sym_arg, struct ms_strbuf *out, size_t *insn_len,
                  struct ms_err *err)
{
    *insn_len = 0;
    if (!d->open)
        return ms_err_set(err, MS_EINVAL, "disassembler not open");
    csh h = d->handle;
    cs_insn *insn = d->insn;
    const uint8_t *p = code;
    size_t left = len;
    uint64_t pc = addr;
    if (!cs_disasm_iter(h, &p, &left, &pc, insn))
        return 0;
    *insn_len = insn->size;

    const char *mn = gdb_mnemonic(insn->mnemonic);
    if (insn->op_str[0] == '\0') {
        ms_strbuf_printf(out, "%s", mn);
        return 0;
    }
    /* objdump pads the mnemonic to 6 columns, then one space. */
    ms_strbuf_printf(out, "%-6s ", mn);
    /* Capstone separates operands with ", ", objdump with ",". */
    for (const char *s = insn->op_str; *s; s++) {
        if (s[0] == ',' && s[1] == ' ') {
            ms_strbuf_putc(out, ',');
            s++;
            continue;
        }
        ms_strbuf_putc(out, *s);
    }

    cs_x86 *x86 = &insn->detail->x86;
    bool branch = false;
    for (uint8_t g = 0; g < insn->detail->groups_count; g++) {
        uint8_t grp = insn->detail->groups[g];
        if (grp == CS_GRP_JUMP || grp == CS_GRP_CALL)
            branch = true;
    }
    for (uint8_t i = 0; i < x86->op_count; i++) {
        cs_x86_op *op = &x86->operands[i];
        if (branch && op->type == X86_OP_IMM) {
            append_sym(sym, sym_arg, (uint64_t)op->imm, out);
        } else if (op->type == X86_OP_MEM && op->mem.base == X86_REG_RIP) {
            uint64_t target = addr + insn->size + (uint64_t)op->mem.disp;
            ms_strbuf_printf(out, "        # 0x%" PRIx64, target);
            append_sym(sym, sym_arg, target, out);
        }
    }
    return 0;
}
