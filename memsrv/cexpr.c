#include "cexpr.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

enum tok_kind { T_END, T_IDENT, T_NUM, T_CHAR, T_PUNCT };

struct tok {
    enum tok_kind kind;
    size_t start, len;
    char punct[3];
    uint64_t num;
    bool num_unsigned, num_decimal, overflow;
    unsigned num_long;
};

struct parser {
    const char *text;
    size_t pos;
    int depth;
    struct ms_cexpr *out;
    ms_cexpr_is_type_fn is_type;
    void *arg;
    struct ms_err *err;
};

static int syntax(struct parser *p, size_t at)
{
    return ms_err_set(p->err, MS_EINVAL, "A syntax error in expression, near `%s'.", p->text + at);
}

static const char *const puncts2[] = {"->", "<<", ">>", "<=", ">=", "==", "!=", "&&", "||"};

static int char_escape(struct parser *p, size_t *i, uint64_t *v)
{
    const char *s = p->text;
    if (s[*i] != '\\') {
        *v = (uint8_t)s[(*i)++];
        return 0;
    }
    (*i)++;
    char c = s[(*i)++];
    switch (c) {
    case 'n':
        *v = '\n';
        return 0;
    case 't':
        *v = '\t';
        return 0;
    case 'r':
        *v = '\r';
        return 0;
    case 'a':
        *v = '\a';
        return 0;
    case 'b':
        *v = '\b';
        return 0;
    case 'f':
        *v = '\f';
        return 0;
    case 'v':
        *v = '\v';
        return 0;
    case 'e':
        *v = 27;
        return 0;
    case '\\':
    case '\'':
    case '"':
        *v = (uint8_t)c;
        return 0;
    default:
        if (c >= '0' && c <= '7') {
            *v = (uint64_t)(c - '0');
            for (int n = 1; n < 3 && s[*i] >= '0' && s[*i] <= '7'; n++)
                *v = *v * 8 + (uint64_t)(s[(*i)++] - '0');
            *v &= 0xff;
            return 0;
        }
        return -1;
    }
}

/* The token at p->pos (not consumed). */
static int lex(struct parser *p, struct tok *t)
{
    const char *s = p->text;
    size_t i = p->pos;
    while (s[i] == ' ' || s[i] == '\t' || s[i] == '\n')
        i++;
    memset(t, 0, sizeof(*t));
    t->start = i;
    if (!s[i]) {
        t->kind = T_END;
        return 0;
    }
    if (isalpha((unsigned char)s[i]) || s[i] == '_') {
        while (isalnum((unsigned char)s[i]) || s[i] == '_')
            i++;
        t->kind = T_IDENT;
        t->len = i - t->start;
        return 0;
    }
    if (isdigit((unsigned char)s[i])) {
        unsigned base = 10;
        if (s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X') &&
            isxdigit((unsigned char)s[i + 2]))
            base = 16, i += 2;
        else if (s[i] == '0')
            base = 8;
        for (;; i++) {
            unsigned d;
            char c = s[i];
            if (c >= '0' && c <= '9')
                d = (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f')
                d = (unsigned)(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F')
                d = (unsigned)(c - 'A' + 10);
            else
                break;
            if (d >= base)
                return syntax(p, t->start); /* "08", "1f" */
            if (t->num > (UINT64_MAX - d) / base)
                t->overflow = true;
            t->num = t->num * base + d;
        }
        for (;; i++) {
            if ((s[i] == 'u' || s[i] == 'U') && !t->num_unsigned)
                t->num_unsigned = true;
            else if ((s[i] == 'l' || s[i] == 'L') && t->num_long < 2)
                t->num_long++;
            else
                break;
        }
        if (isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '.')
            return ms_err_set(p->err, MS_EINVAL, "Invalid number \"%.*s\".",
                              (int)(strcspn(s + t->start, " +-*/%()[]<>=!&|^~")), s + t->start);
        t->num_decimal = base == 10;
        t->kind = T_NUM;
        t->len = i - t->start;
        return 0;
    }
    if (s[i] == '\'') {
        i++;
        if (s[i] == '\'' || !s[i] || char_escape(p, &i, &t->num) < 0 || s[i] != '\'')
            return ms_err_set(p->err, MS_EINVAL, "Unmatched single quote.");
        t->kind = T_CHAR;
        t->len = i + 1 - t->start;
        return 0;
    }
    t->kind = T_PUNCT;
    for (size_t k = 0; k < sizeof(puncts2) / sizeof(puncts2[0]); k++)
        if (s[i] == puncts2[k][0] && s[i + 1] == puncts2[k][1]) {
            memcpy(t->punct, puncts2[k], 3);
            t->len = 2;
            return 0;
        }
    if (!strchr("+-*/%()[]<>&|^~!.{}?:@", s[i]))
        return ms_err_set(p->err, MS_EINVAL, "Invalid character '%c' in expression.",
                          isprint((unsigned char)s[i]) ? s[i] : '?');
    t->punct[0] = s[i];
    t->len = 1;
    return 0;
}

static void take(struct parser *p, const struct tok *t)
{
    p->pos = t->start + t->len;
}

static bool is_punct(const struct tok *t, const char *s)
{
    return t->kind == T_PUNCT && !strcmp(t->punct, s);
}

static bool ident_is(const struct parser *p, const struct tok *t, const char *word)
{
    return t->kind == T_IDENT && t->len == strlen(word) &&
           !memcmp(p->text + t->start, word, t->len);
}

static int new_node(struct parser *p, enum ms_cexpr_op op, int k0, int k1)
{
    if (p->out->count >= MS_CEXPR_MAX_NODES)
        return ms_err_set(p->err, MS_ELIMIT, "expression has over %d parts", MS_CEXPR_MAX_NODES);
    int i = (int)p->out->count++;
    struct ms_cexpr_node *n = &p->out->nodes[i];
    memset(n, 0, sizeof(*n));
    n->op = op;
    n->kid[0] = k0;
    n->kid[1] = k1;
    n->kid[2] = -1;
    return i;
}

static int copy_name(struct parser *p, const struct tok *t, char *out)
{
    if (t->len >= MS_CEXPR_NAME_MAX)
        return ms_err_set(p->err, MS_ELIMIT, "a name of %zu characters (at most %d)", t->len,
                          MS_CEXPR_NAME_MAX - 1);
    memcpy(out, p->text + t->start, t->len);
    out[t->len] = '\0';
    return 0;
}

static const char *const base_words[] = {"unsigned", "signed", "char", "short", "int",
                                         "long",     "_Bool",  "void", "const", "volatile"};

static bool is_base_word(const struct parser *p, const struct tok *t)
{
    for (size_t i = 0; i < sizeof(base_words) / sizeof(base_words[0]); i++)
        if (ident_is(p, t, base_words[i]))
            return true;
    return false;
}

/* Does a type name start here? */
static bool type_starts(struct parser *p, const struct tok *t)
{
    if (t->kind != T_IDENT)
        return false;
    if (is_base_word(p, t) || ident_is(p, t, "struct") || ident_is(p, t, "union") ||
        ident_is(p, t, "enum"))
        return true;
    char name[MS_CEXPR_NAME_MAX];
    if (!p->is_type || t->len >= sizeof(name))
        return false;
    memcpy(name, p->text + t->start, t->len);
    name[t->len] = '\0';
    return p->is_type(p->arg, name);
}

/* A type name: qualifiers, base words or struct/union/enum TAG or a
 * typedef, then stars (with qualifiers between them). */
static int type_name(struct parser *p, struct ms_cexpr_type *ty)
{
    memset(ty, 0, sizeof(*ty));
    unsigned n_unsigned = 0, n_signed = 0, n_char = 0, n_short = 0, n_int = 0, n_long = 0,
             n_bool = 0, n_void = 0;
    bool named = false;
    struct tok t;
    for (int words = 0;; words++) {
        int rc = lex(p, &t);
        if (rc < 0)
            return rc;
        if (words > 16)
            return syntax(p, t.start);
        if (ident_is(p, &t, "const") || ident_is(p, &t, "volatile")) {
            take(p, &t);
            continue;
        }
        if (named || t.kind != T_IDENT)
            break;
        unsigned *count = ident_is(p, &t, "unsigned") ? &n_unsigned
                          : ident_is(p, &t, "signed") ? &n_signed
                          : ident_is(p, &t, "char")   ? &n_char
                          : ident_is(p, &t, "short")  ? &n_short
                          : ident_is(p, &t, "int")    ? &n_int
                          : ident_is(p, &t, "long")   ? &n_long
                          : ident_is(p, &t, "_Bool")  ? &n_bool
                          : ident_is(p, &t, "void")   ? &n_void
                                                      : NULL;
        if (count) {
            (*count)++;
            take(p, &t);
            continue;
        }
        bool basic =
            n_unsigned || n_signed || n_char || n_short || n_int || n_long || n_bool || n_void;
        if (basic)
            break;
        const char *tag = ident_is(p, &t, "struct")  ? "struct "
                          : ident_is(p, &t, "union") ? "union "
                          : ident_is(p, &t, "enum")  ? "enum "
                                                     : "";
        if (tag[0]) {
            take(p, &t);
            rc = lex(p, &t);
            if (rc < 0)
                return rc;
            if (t.kind != T_IDENT)
                return syntax(p, t.start);
        }
        char name[MS_CEXPR_NAME_MAX];
        rc = copy_name(p, &t, name);
        if (rc < 0)
            return rc;
        if (!tag[0] && !type_starts(p, &t))
            return syntax(p, t.start);
        snprintf(ty->base, sizeof(ty->base), "%s%s", tag, name);
        take(p, &t);
        named = true;
    }
    if (!named) {
        const char *b = NULL;
        bool u = n_unsigned > 0;
        if (n_unsigned + n_signed > 1 || n_short > 1 || n_long > 2 || n_char > 1 || n_int > 1 ||
            (n_short && n_long) || (n_char && (n_short || n_long || n_int)) ||
            ((n_bool || n_void) &&
             (n_unsigned + n_signed + n_char + n_short + n_int + n_long + n_bool + n_void > 1)))
            return syntax(p, t.start);
        if (n_void)
            b = "void";
        else if (n_bool)
            b = "_Bool";
        else if (n_char)
            b = u ? "unsigned char" : n_signed ? "signed char" : "char";
        else if (n_short)
            b = u ? "unsigned short" : "short";
        else if (n_long == 2)
            b = u ? "unsigned long long" : "long long";
        else if (n_long == 1)
            b = u ? "unsigned long" : "long";
        else if (n_int || n_unsigned || n_signed)
            b = u ? "unsigned int" : "int";
        else
            return syntax(p, t.start);
        snprintf(ty->base, sizeof(ty->base), "%s", b);
    }
    for (;;) {
        int rc = lex(p, &t);
        if (rc < 0)
            return rc;
        if (is_punct(&t, "*")) {
            if (++ty->stars > 16)
                return ms_err_set(p->err, MS_ELIMIT, "more than 16 levels of pointer");
            take(p, &t);
        } else if (ident_is(p, &t, "const") || ident_is(p, &t, "volatile")) {
            take(p, &t);
        } else {
            return 0;
        }
    }
}

static int expr(struct parser *p, int min_prec);
static int unary(struct parser *p);
static int conditional(struct parser *p);

static int expect(struct parser *p, const char *punct)
{
    struct tok t;
    int rc = lex(p, &t);
    if (rc < 0)
        return rc;
    if (!is_punct(&t, punct))
        return syntax(p, t.start);
    take(p, &t);
    return 0;
}

static int deeper(struct parser *p)
{
    if (++p->depth > MS_CEXPR_MAX_DEPTH)
        return ms_err_set(p->err, MS_ELIMIT, "expression nests deeper than %d", MS_CEXPR_MAX_DEPTH);
    return 0;
}

static int primary(struct parser *p)
{
    struct tok t;
    int rc = lex(p, &t);
    if (rc < 0)
        return rc;
    if (t.kind == T_NUM || t.kind == T_CHAR) {
        if (t.overflow)
            return ms_err_set(p->err, MS_EINVAL, "Numeric constant too large.");
        int n = new_node(p, t.kind == T_NUM ? MS_CX_NUM : MS_CX_CHAR, -1, -1);
        if (n < 0)
            return n;
        struct ms_cexpr_node *nd = &p->out->nodes[n];
        nd->num = t.num;
        nd->num_unsigned = t.num_unsigned;
        nd->num_long = t.num_long;
        nd->num_decimal = t.num_decimal;
        take(p, &t);
        return n;
    }
    if (t.kind == T_IDENT && !type_starts(p, &t) && !ident_is(p, &t, "sizeof")) {
        int n = new_node(p, MS_CX_SYM, -1, -1);
        if (n < 0)
            return n;
        rc = copy_name(p, &t, p->out->nodes[n].name);
        if (rc < 0)
            return rc;
        take(p, &t);
        return n;
    }
    if (is_punct(&t, "(")) {
        take(p, &t);
        int n = conditional(p);
        if (n < 0)
            return n;
        rc = expect(p, ")");
        return rc < 0 ? rc : n;
    }
    return syntax(p, t.start);
}

static int postfix(struct parser *p)
{
    int n = primary(p);
    for (int steps = 0; n >= 0; steps++) {
        if (steps > MS_CEXPR_MAX_DEPTH)
            return ms_err_set(p->err, MS_ELIMIT, "expression nests deeper than %d",
                              MS_CEXPR_MAX_DEPTH);
        struct tok t;
        int rc = lex(p, &t);
        if (rc < 0)
            return rc;
        if (is_punct(&t, ".") || is_punct(&t, "->")) {
            take(p, &t);
            struct tok m;
            rc = lex(p, &m);
            if (rc < 0)
                return rc;
            if (m.kind != T_IDENT)
                return syntax(p, m.start);
            int k = new_node(p, t.punct[0] == '.' ? MS_CX_MEMBER : MS_CX_ARROW, n, -1);
            if (k < 0)
                return k;
            rc = copy_name(p, &m, p->out->nodes[k].name);
            if (rc < 0)
                return rc;
            take(p, &m);
            n = k;
        } else if (is_punct(&t, "[")) {
            take(p, &t);
            int i = conditional(p);
            if (i < 0)
                return i;
            rc = expect(p, "]");
            if (rc < 0)
                return rc;
            n = new_node(p, MS_CX_INDEX, n, i);
        } else {
            break;
        }
    }
    return n;
}

/* After '(': a type name and ')' when one starts here (a cast or sizeof's
 * operand); 0 with the position unchanged when not, 1 when read. */
static int paren_type(struct parser *p, struct ms_cexpr_type *ty)
{
    size_t save = p->pos;
    struct tok t, u;
    int rc = lex(p, &t);
    if (rc < 0 || !is_punct(&t, "("))
        return rc;
    take(p, &t);
    rc = lex(p, &u);
    if (rc < 0)
        return rc;
    if (!type_starts(p, &u)) {
        p->pos = save;
        return 0;
    }
    rc = type_name(p, ty);
    if (rc == 0)
        rc = expect(p, ")");
    return rc < 0 ? rc : 1;
}

static int unary(struct parser *p)
{
    int rc = deeper(p);
    if (rc < 0)
        return rc;
    struct tok t;
    rc = lex(p, &t);
    if (rc < 0)
        return rc;
    int n;
    enum ms_cexpr_op op = MS_CX_NUM;
    if (is_punct(&t, "-"))
        op = MS_CX_NEG;
    else if (is_punct(&t, "+"))
        op = MS_CX_PLUS;
    else if (is_punct(&t, "!"))
        op = MS_CX_NOT;
    else if (is_punct(&t, "~"))
        op = MS_CX_COMPL;
    else if (is_punct(&t, "*"))
        op = MS_CX_DEREF;
    else if (is_punct(&t, "&"))
        op = MS_CX_ADDR;
    if (op != MS_CX_NUM) {
        take(p, &t);
        int k = unary(p);
        n = k < 0 ? k : new_node(p, op, k, -1);
    } else if (ident_is(p, &t, "sizeof")) {
        take(p, &t);
        struct ms_cexpr_type ty;
        rc = paren_type(p, &ty);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            n = new_node(p, MS_CX_SIZEOF_TYPE, -1, -1);
            if (n >= 0)
                p->out->nodes[n].type = ty;
        } else {
            int k = unary(p);
            n = k < 0 ? k : new_node(p, MS_CX_SIZEOF_EXPR, k, -1);
        }
    } else if (is_punct(&t, "{")) {
        take(p, &t);
        struct ms_cexpr_type ty;
        rc = type_name(p, &ty);
        if (rc == 0)
            rc = expect(p, "}");
        if (rc < 0)
            return rc;
        int k = unary(p);
        n = k < 0 ? k : new_node(p, MS_CX_BRACE, k, -1);
        if (n >= 0)
            p->out->nodes[n].type = ty;
    } else {
        struct ms_cexpr_type ty;
        rc = paren_type(p, &ty);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            int k = unary(p);
            n = k < 0 ? k : new_node(p, MS_CX_CAST, k, -1);
            if (n >= 0)
                p->out->nodes[n].type = ty;
        } else {
            n = postfix(p);
        }
    }
    p->depth--;
    return n;
}

struct binop_info {
    const char *text;
    enum ms_cexpr_binop op;
    int prec;
};

static const struct binop_info binops[] = {
    {"||", MS_CX_LOR, 1}, {"&&", MS_CX_LAND, 2}, {"|", MS_CX_OR, 3},   {"^", MS_CX_XOR, 4},
    {"&", MS_CX_AND, 5},  {"==", MS_CX_EQ, 6},   {"!=", MS_CX_NE, 6},  {"<", MS_CX_LT, 7},
    {">", MS_CX_GT, 7},   {"<=", MS_CX_LE, 7},   {">=", MS_CX_GE, 7},  {"<<", MS_CX_SHL, 8},
    {">>", MS_CX_SHR, 8}, {"@", MS_CX_AT, 9},    {"+", MS_CX_ADD, 10}, {"-", MS_CX_SUB, 10},
    {"*", MS_CX_MUL, 11}, {"/", MS_CX_DIV, 11},  {"%", MS_CX_MOD, 11},
};

/* Precedence climbing: left-associative binary operators. */
static int expr(struct parser *p, int min_prec)
{
    int rc = deeper(p);
    if (rc < 0)
        return rc;
    int lhs = unary(p);
    while (lhs >= 0) {
        struct tok t;
        rc = lex(p, &t);
        if (rc < 0)
            return rc;
        const struct binop_info *b = NULL;
        for (size_t i = 0; t.kind == T_PUNCT && i < sizeof(binops) / sizeof(binops[0]); i++)
            if (!strcmp(t.punct, binops[i].text))
                b = &binops[i];
        if (!b || b->prec < min_prec)
            break;
        take(p, &t);
        int rhs = expr(p, b->prec + 1);
        if (rhs < 0)
            return rhs;
        int n = new_node(p, MS_CX_BINARY, lhs, rhs);
        if (n < 0)
            return n;
        p->out->nodes[n].binop = b->op;
        lhs = n;
    }
    p->depth--;
    return lhs;
}

/* cond ? a : b, right-associative, below every binary operator. */
static int conditional(struct parser *p)
{
    int rc = deeper(p);
    if (rc < 0)
        return rc;
    int n = expr(p, 0);
    struct tok t;
    if (n >= 0 && (rc = lex(p, &t)) < 0)
        return rc;
    if (n >= 0 && is_punct(&t, "?")) {
        take(p, &t);
        int a = conditional(p);
        if (a < 0)
            return a;
        rc = expect(p, ":");
        if (rc < 0)
            return rc;
        int b = conditional(p);
        if (b < 0)
            return b;
        int k = new_node(p, MS_CX_COND, n, a);
        if (k < 0)
            return k;
        p->out->nodes[k].kid[2] = b;
        n = k;
    }
    p->depth--;
    return n;
}

int ms_cexpr_parse(struct ms_cexpr *out, const char *text, ms_cexpr_is_type_fn is_type, void *arg,
                   struct ms_err *err)
{
    out->count = 0;
    out->root = -1;
    size_t len = strnlen(text, MS_CEXPR_MAX_TEXT + 1);
    if (len > MS_CEXPR_MAX_TEXT)
        return ms_err_set(err, MS_ELIMIT, "expression longer than %d characters",
                          MS_CEXPR_MAX_TEXT);
    struct parser p = {text, 0, 0, out, is_type, arg, err};
    struct tok t;
    int rc = lex(&p, &t);
    if (rc < 0)
        return rc;
    if (t.kind == T_END)
        return ms_err_set(err, MS_EINVAL, "An expression is needed.");
    int root = conditional(&p);
    if (root < 0)
        return root;
    rc = lex(&p, &t);
    if (rc < 0)
        return rc;
    if (t.kind != T_END)
        return syntax(&p, t.start);
    out->root = root;
    return 0;
}
