#include "disasm.h"

#include <capstone.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
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

static bool is_string_op(const cs_x86 *x86)
{
    uint8_t op = x86->opcode[0];
    return (op >= 0xa4 && op <= 0xa7) || (op >= 0xaa && op <= 0xaf) || (op >= 0x6c && op <= 0x6f);
}

static bool has_reg_of_size(const cs_x86 *x86, unsigned size)
{
    for (uint8_t i = 0; i < x86->op_count; i++)
        if (x86->operands[i].type == X86_OP_REG && (size == 0 || x86->operands[i].size == size))
            return true;
    return false;
}

/* The mnemonic as binutils 2.40 (GDB 13) spells it in 64-bit mode, with its
 * prefixes ("lock ", "rep ", "cs "), into buf. Capstone 4 adds operand-size
 * suffixes that objdump leaves out when a register gives the size. */
static void gdb_mnemonic(csh h, const cs_insn *insn, char *buf, size_t size)
{
    static const char *const map[][2] = {
        {"callq", "call"}, {"retq", "ret"},     {"pushq", "push"},     {"popq", "pop"},
        {"jmpq", "jmp"},   {"leaveq", "leave"}, {"pushfq", "pushf"},   {"popfq", "popf"},
        {"ljmpq", "ljmp"}, {"lcallq", "lcall"}, {"movabsq", "movabs"}, {"lretl", "lret"},
        {"iretl", "iret"}, {"lcalll", "lcall"}, {"ljmpl", "ljmp"},
    };
    const cs_x86 *x86 = &insn->detail->x86;
    const char *m = insn->mnemonic;
    const char *sp = strrchr(m, ' ');
    size_t plen = sp ? (size_t)(sp + 1 - m) : 0; /* "lock " / "rep " */
    const char *core = m + plen;
    char cbuf[32];
    snprintf(cbuf, sizeof(cbuf), "%s", core);
    size_t len = strlen(cbuf);
    bool mapped = false;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(cbuf, map[i][0]) == 0) {
            snprintf(cbuf, sizeof(cbuf), "%s", map[i][1]);
            mapped = true;
            break;
        }
    }
    if (!mapped && len >= 2 && strchr("bwlq", cbuf[len - 1])) {
        unsigned opsize = cbuf[len - 1] == 'b'   ? 1
                          : cbuf[len - 1] == 'w' ? 2
                          : cbuf[len - 1] == 'l' ? 4
                                                 : 8;
        const char *base = cs_insn_name(h, insn->id);
        bool same_base = base && strlen(base) == len - 1 && strncmp(base, cbuf, len - 1) == 0;
        /* capstone lists no operand for stos/lods/scas's accumulator */
        bool string_reg = is_string_op(x86) && x86->opcode[0] >= 0xaa &&
                          (strstr(insn->op_str, "%al") || strstr(insn->op_str, "%ax") ||
                           strstr(insn->op_str, "%eax") || strstr(insn->op_str, "%rax"));
        if ((same_base && has_reg_of_size(x86, opsize)) || string_reg)
            cbuf[len - 1] = '\0';
    }
    /* 66 REX.W 0f 6e/7e: objdump says movq */
    if (strcmp(cbuf, "movd") == 0 && has_reg_of_size(x86, 8))
        snprintf(cbuf, sizeof(cbuf), "movq");
    char pre[32] = "";
    if (insn->id == X86_INS_NOP) {
        /* multi-byte nops: objdump names the prefixes the operand does not use */
        unsigned n66 = 0;
        bool cs = false;
        for (uint16_t i = 0; i < insn->size; i++) {
            if (insn->bytes[i] == 0x66)
                n66++;
            else if (insn->bytes[i] == 0x2e)
                cs = true;
            else
                break;
        }
        size_t o = 0;
        for (unsigned i = 1; i < n66 && o + 8 < sizeof(pre); i++)
            o += (size_t)snprintf(pre + o, sizeof(pre) - o, "data16 ");
        if (cs && o + 4 < sizeof(pre))
            snprintf(pre + o, sizeof(pre) - o, "cs ");
    }
    if (insn->id == X86_INS_WAIT)
        snprintf(cbuf, sizeof(cbuf), "fwait");
    /* objdump says shl where capstone says sal (both encodings) */
    if (strncmp(cbuf, "sal", 3) == 0)
        cbuf[1] = 'h';
    /* prefixes capstone drops: f3 before ret, 3e (CET) before indirect branches */
    if (plen == 0 && insn->id == X86_INS_RET && insn->bytes[0] == 0xf3)
        snprintf(pre, sizeof(pre), "repz ");
    /* 66 before a REX.W one-byte-opcode instruction does nothing: objdump
     * names each one (TLS sequences pad with them) */
    if (insn->id != X86_INS_NOP && (x86->rex & 8) && x86->opcode[0] != 0x0f) {
        size_t o = 0;
        for (uint16_t i = 0; i < insn->size && insn->bytes[i] == 0x66 && o + 8 < sizeof(pre); i++)
            o += (size_t)snprintf(pre + o, sizeof(pre) - o, "data16 ");
    }
    if ((insn->id == X86_INS_JMP || insn->id == X86_INS_CALL) && x86->prefix[1] == X86_PREFIX_DS &&
        x86->op_count == 1 && x86->operands[0].type != X86_OP_IMM)
        snprintf(pre, sizeof(pre), "notrack ");
    snprintf(buf, size, "%.*s%s%s", (int)plen, m, pre, cbuf);
}

/* Copies capstone's AT&T operands in objdump's spelling: "," without a
 * space; numbers outside parentheses in hex (capstone prints values below
 * 10 in decimal: "$2", "8(%rbx)"); negative immediates as the unsigned
 * value of the operand size; an explicit zero displacement "0x0(%rax)"
 * when the encoding has one; the scale ",1" of an index. */
static void put_operands(struct ms_strbuf *out, const cs_insn *insn, const char *s)
{
    const cs_x86 *x86 = &insn->detail->x86;
    const cs_x86_op *mem = NULL;
    unsigned nimm = 0;
    for (uint8_t i = 0; i < x86->op_count; i++) {
        if (x86->operands[i].type == X86_OP_MEM && !mem)
            mem = &x86->operands[i];
    }
    unsigned mod = x86->modrm >> 6;
    bool zero_disp = mem && mem->mem.disp == 0 && mem->mem.base != X86_REG_RIP &&
                     (mod == 1 || mod == 2 || mem->mem.base == X86_REG_INVALID);
    bool string_op = is_string_op(x86);
    if (insn->id == X86_INS_NOP && strncmp(s, "%cs:", 4) == 0)
        s += 4;
    /* d0/d1/d2/d3: shifts by 1 or %cl; objdump omits the implicit $1 */
    if ((x86->opcode[0] == 0xd0 || x86->opcode[0] == 0xd1) && strncmp(s, "$1, ", 4) == 0)
        s += 4;
    /* in/out/ins/outs through %dx: objdump writes the port as (%dx) */
    uint8_t opc = x86->opcode[0];
    bool dx_port = (opc >= 0xec && opc <= 0xef) || (opc >= 0x6c && opc <= 0x6f);
    int depth = 0, commas = 0;
    bool reg_group = false;
    char prev = '\0';
    while (*s) {
        char c = *s;
        if (c == ',' && s[1] == ' ') {
            ms_strbuf_putc(out, ',');
            if (depth > 0)
                commas++;
            prev = ',';
            s += 2;
            continue;
        }
        if (c == ' ' && s[1] == '{') { /* AVX-512 masks: "%ymm17{%k5}" */
            s++;
            continue;
        }
        if (dx_port && depth == 0 && strncmp(s, "%dx", 3) == 0 && (s[3] == ',' || !s[3])) {
            ms_strbuf_append(out, "(%dx)", 5);
            s += 3;
            prev = ')';
            continue;
        }
        bool at_start = prev == '\0' || prev == ',' || prev == ':' || prev == '*' || prev == ' ';
        if (c == '(' && depth == 0) {
            if (string_op && at_start && strncmp(s, "(%rdi)", 6) == 0)
                ms_strbuf_append(out, "%es:", 4);
            else if (string_op && at_start && strncmp(s, "(%rsi)", 6) == 0)
                ms_strbuf_append(out, "%ds:", 4);
            if (zero_disp && at_start)
                ms_strbuf_append(out, "0x0", 3);
            depth++;
            commas = 0;
            reg_group = s[1] == '%' || s[1] == ',';
        } else if (c == ',' && depth > 0) {
            commas++;
        } else if (c == ')' && depth > 0) {
            depth--;
            if (reg_group && commas == 1)
                ms_strbuf_append(out, ",1", 2);
        }
        if (c == '$') {
            nimm++;
            if (s[1] == '-') {
                /* the k-th '$' is the k-th immediate operand: its size masks */
                const cs_x86_op *op = NULL;
                unsigned k = 0;
                for (uint8_t i = 0; i < x86->op_count && !op; i++)
                    if (x86->operands[i].type == X86_OP_IMM && ++k == nimm)
                        op = &x86->operands[i];
                unsigned isz = op ? op->size : 8;
                if (insn->id == X86_INS_XABORT)
                    isz = 1;
                else if (insn->id == X86_INS_ENTER)
                    isz = nimm == 1 ? 2 : 1;
                char *end;
                uint64_t v = 0 - (uint64_t)strtoull(s + 2, &end, 0);
                if (isz > 0 && isz < 8)
                    v &= (UINT64_C(1) << (8 * isz)) - 1;
                ms_strbuf_printf(out, "$0x%" PRIx64, v);
                s = end;
                prev = '0';
                continue;
            }
        }
        bool starts_number =
            c >= '0' && c <= '9' && depth == 0 && (at_start || prev == '$' || prev == '-');
        if (starts_number && !(c == '0' && s[1] == 'x')) {
            unsigned long long v = 0;
            while (*s >= '0' && *s <= '9')
                v = v * 10 + (unsigned long long)(*s++ - '0');
            ms_strbuf_printf(out, "0x%llx", v);
            prev = '0';
            continue;
        }
        ms_strbuf_putc(out, c);
        prev = c;
        s++;
    }
}

/* Register forms of two-operand x87 arithmetic: capstone names only
 * %st(i), objdump both. */
static bool x87_st_first(const cs_x86 *x86, bool *st_first)
{
    if (x86->op_count != 1 || x86->operands[0].type != X86_OP_REG || (x86->modrm >> 6) != 3)
        return false;
    x86_reg r = x86->operands[0].reg;
    if (r < X86_REG_ST0 || r > X86_REG_ST7)
        return false;
    unsigned op = x86->opcode[0], reg = (x86->modrm >> 3) & 7;
    if (op == 0xd8 && reg != 2 && reg != 3) {
        *st_first = false;
        return true;
    }
    if ((op == 0xdc || op == 0xde) && reg != 2 && reg != 3) {
        *st_first = true;
        return true;
    }
    if ((op == 0xdb || op == 0xdf) && (reg == 5 || reg == 6)) {
        *st_first = false;
        return true;
    }
    return false;
}

static void append_sym(ms_symbolize_fn sym, void *sym_arg, uint64_t addr, struct ms_strbuf *out)
{
    char name[256];
    if (sym && sym(sym_arg, addr, name, sizeof(name)) == 0) {
        name[sizeof(name) - 1] = '\0';
        ms_strbuf_printf(out, " <%s>", name);
    }
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

    if (insn->size == 2 && insn->bytes[0] == 0x66 && insn->bytes[1] == 0x90) {
        ms_strbuf_printf(out, "xchg   %%ax,%%ax");
        return 0;
    }
    if (insn->id == X86_INS_XLATB) {
        ms_strbuf_printf(out, "xlat   %%ds:(%%rbx)");
        return 0;
    }
    char mn[64];
    gdb_mnemonic(h, insn, mn, sizeof(mn));
    if (insn->op_str[0] == '\0') {
        ms_strbuf_printf(out, "%s", mn);
        return 0;
    }
    /* objdump pads the mnemonic to 6 columns, then one space. */
    ms_strbuf_printf(out, "%-6s ", mn);
    const cs_x86 *dx = &insn->detail->x86;

    const char *comma = strstr(insn->op_str, ", ");
    if (insn->id == X86_INS_XCHG && dx->opcode[0] >= 0x91 && dx->opcode[0] <= 0x97 && comma) {
        ms_strbuf_printf(out, "%s,%.*s", comma + 2, (int)(comma - insn->op_str), insn->op_str);
        return 0;
    }
    bool st_first;
    if (x87_st_first(&insn->detail->x86, &st_first)) {
        if (st_first)
            ms_strbuf_append(out, "%st,", 4);
        put_operands(out, insn, insn->op_str);
        if (!st_first)
            ms_strbuf_append(out, ",%st", 4);
    } else {
        put_operands(out, insn, insn->op_str);
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
