/* A C expression subset as GDB's `print` reads it, parsed into a tree: no
 * memory, no types looked up (a callback says which identifiers name
 * types, for casts and sizeof). Symbols, integer and character literals,
 * . -> [] unary * & - + ~ !, casts to (struct X *), (unsigned long),
 * (typedef_t) ..., sizeof(type) and sizeof expr, GDB's {type} addr and
 * GDB's artificial arrays (x@n), the binary operators of C with their
 * precedence and ?: (no assignment, no comma, no floating point). Bounded: the text's length, the
 * node count and the nesting depth; errors as GDB words them ("A syntax error in expression, near
 * `...'."). */
#ifndef MEMSRV_CEXPR_H
#define MEMSRV_CEXPR_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

#define MS_CEXPR_MAX_TEXT 1024 /* bytes of expression text */
#define MS_CEXPR_MAX_NODES 256
#define MS_CEXPR_MAX_DEPTH 64 /* nested parentheses, unary operators, postfixes */
#define MS_CEXPR_NAME_MAX 128 /* an identifier, or a type name's base */

enum ms_cexpr_op {
    MS_CX_NUM,         /* num, num_unsigned, num_long, num_decimal */
    MS_CX_CHAR,        /* a character literal: num */
    MS_CX_SYM,         /* name */
    MS_CX_MEMBER,      /* kid[0] . name */
    MS_CX_ARROW,       /* kid[0] -> name */
    MS_CX_INDEX,       /* kid[0] [ kid[1] ] */
    MS_CX_DEREF,       /* * kid[0] */
    MS_CX_ADDR,        /* & kid[0] */
    MS_CX_NEG,         /* - kid[0] */
    MS_CX_PLUS,        /* + kid[0] */
    MS_CX_NOT,         /* ! kid[0] */
    MS_CX_COMPL,       /* ~ kid[0] */
    MS_CX_CAST,        /* (type) kid[0] */
    MS_CX_BRACE,       /* {type} kid[0]: the type at the address kid[0] */
    MS_CX_SIZEOF_TYPE, /* sizeof (type) */
    MS_CX_SIZEOF_EXPR, /* sizeof kid[0] */
    MS_CX_BINARY,      /* kid[0] binop kid[1] */
    MS_CX_COND,        /* kid[0] ? kid[1] : kid[2] */
};

enum ms_cexpr_binop {
    MS_CX_MUL,
    MS_CX_DIV,
    MS_CX_MOD,
    MS_CX_ADD,
    MS_CX_SUB,
    MS_CX_SHL,
    MS_CX_SHR,
    MS_CX_LT,
    MS_CX_GT,
    MS_CX_LE,
    MS_CX_GE,
    MS_CX_EQ,
    MS_CX_NE,
    MS_CX_AND,
    MS_CX_XOR,
    MS_CX_OR,
    MS_CX_LAND,
    MS_CX_LOR,
    MS_CX_AT, /* GDB's x@n: n objects like x from x's address on */
};

/* A type as written: base is "struct task_struct", "union x", "enum y",
 * a base type as GDB spells it ("unsigned long", "char", "_Bool", "void")
 * or a typedef's name; then `stars` levels of pointer. Qualifiers are
 * read and dropped (they change no value). */
struct ms_cexpr_type {
    char base[MS_CEXPR_NAME_MAX + 8];
    unsigned stars;
};

struct ms_cexpr_node {
    enum ms_cexpr_op op;
    enum ms_cexpr_binop binop;
    int kid[3]; /* node indexes, -1: none */
    uint64_t num;
    bool num_unsigned; /* a u suffix */
    unsigned num_long; /* 0, 1 (l) or 2 (ll) */
    bool num_decimal;
    char name[MS_CEXPR_NAME_MAX];
    struct ms_cexpr_type type;
};

struct ms_cexpr {
    struct ms_cexpr_node nodes[MS_CEXPR_MAX_NODES];
    unsigned count;
    int root;
};

/* Says whether an identifier names a type (a typedef); NULL: none does. */
typedef bool (*ms_cexpr_is_type_fn)(void *arg, const char *name);

/* Parses text into *out (which may be large: keep it off small stacks). */
int ms_cexpr_parse(struct ms_cexpr *out, const char *text, ms_cexpr_is_type_fn is_type, void *arg,
                   struct ms_err *err);

#endif
