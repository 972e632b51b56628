/* Fuzzes the module-list walker on a small synthetic kernel built from the
 * input: up to 16 struct modules and one module_use each in an 8 KiB
 * arena, every list pointer chosen by a selector byte, then formats what
 * it listed.
 *
 * Input: u8 flags (bit 0: no CONFIG_MODULE_UNLOAD; bit 1: 6.4+'s seven
 *        mem[] sizes), u8 nmodules (1 + n % 16), u8 max_modules
 *        (1 + n % 32), u8 hole (the module whose state is unreadable,
 *        when < nmodules), then per module 8 bytes: list.next,
 *        source_list.next, its use's next, its use's source (selectors),
 *        state, a name byte, a size byte, taint bits.
 * A selector s picks, with n entries and k = s % (n + 4): k < n entry k
 * (a module's list node, a use's node, a module), n the list's head, n + 1
 * an address outside the arena, n + 2 NULL, n + 3 a misaligned address in
 * the arena. Missing bytes read as 0. The walk must end, list each module
 * once and no more than allowed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "modules.h"
#include "strbuf.h"
#include "../support/arena.h"

#define BASE 0xffffffffc0000000ULL
#define STRIDE 0x100
#define MAX_MODULES 16
#define USES (MAX_MODULES * STRIDE)
#define HEAD (USES + MAX_MODULES * 0x40)
#define ARENA (HEAD + 0x10)
#define PER_MODULE 8

static uint8_t mem[ARENA];
static struct test_arena arena = {BASE, mem, ARENA, 0, 0};

static const struct ms_module_layout layout61 = {
    .state = 0x00,
    .list = 0x08,
    .name = 0x18,
    .name_len = 56,
    .base = 0x50,
    .nsizes = 2,
    .sizes = {0x58, 0x5c},
    .has_taints = true,
    .taints = 0x60,
    .has_unload = true,
    .refcnt = 0x68,
    .source_list = 0x70,
    .init = 0x80,
    .exit = 0x88,
    .use_source_list = 0x00,
    .use_source = 0x20,
};

static uint64_t module(unsigned i)
{
    return BASE + (uint64_t)i * STRIDE;
}

static uint64_t use(unsigned i)
{
    return BASE + USES + (uint64_t)i * 0x40;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t in[4 + MAX_MODULES * PER_MODULE] = {0};
    memcpy(in, data, size < sizeof(in) ? size : sizeof(in));
    struct ms_module_layout l = layout61;
    if (in[0] & 1)
        l.has_unload = false;
    if (in[0] & 2) { /* mem[]: seven module_memory of 0x10 bytes from 0x90 */
        l.base = 0x90;
        l.nsizes = 7;
        for (unsigned i = 0; i < 7; i++)
            l.sizes[i] = 0x98 + i * 0x10;
    }
    unsigned n = 1 + in[1] % MAX_MODULES;
    size_t max = 1 + in[2] % 32;
    memset(mem, 0, sizeof(mem));
    arena.hole_lo = in[3] < n ? module(in[3]) + l.state : 0;
    arena.hole_hi = arena.hole_lo ? arena.hole_lo + 4 : 0;
    uint64_t head = BASE + HEAD;
    test_arena_put64(&arena, head, module(0) + l.list);
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *b = in + 4 + i * PER_MODULE;
        uint64_t m = module(i), own = m + l.source_list;
        test_arena_put64(&arena, m + l.list,
                         test_arena_pick(&arena, b[0], n, module, l.list, head));
        test_arena_put64(&arena, own,
                         test_arena_pick(&arena, b[1], n, use, l.use_source_list, own));
        test_arena_put64(&arena, use(i) + l.use_source_list,
                         test_arena_pick(&arena, b[2], n, use, l.use_source_list, own));
        test_arena_put64(&arena, use(i) + l.use_source,
                         test_arena_pick(&arena, b[3], n, module, 0, m));
        uint32_t state = b[4] % 5;
        memcpy(mem + (m - BASE) + l.state, &state, 4);
        memset(mem + (m - BASE) + l.name, b[5], l.name_len); /* no NUL */
        for (unsigned j = 0; j < l.nsizes; j++)
            mem[(m - BASE) + l.sizes[j] + 1] = b[6];
        uint64_t taints = (uint64_t)b[7] << 10;
        memcpy(mem + (m - BASE) + l.taints, &taints, 8);
    }
    struct ms_module_list ml;
    struct ms_err err;
    ms_modules_walk(&l, head, test_arena_read, &arena, max, &ml, &err);
    if (ml.count > max || (ml.count && !ml.modules))
        abort();
    size_t names = 0;
    for (size_t i = 0; i < ml.count; i++) {
        const struct ms_module *m = &ml.modules[i];
        if (strlen(m->name) > l.name_len || m->users_off + (uint64_t)m->users_len > ml.users_len)
            abort();
        names += m->users_len;
        for (size_t j = 0; j < i; j++)
            if (m->addr == ml.modules[j].addr)
                abort(); /* listed twice */
    }
    if (names != ml.users_len)
        abort();
    struct ms_strbuf sb;
    ms_strbuf_init(&sb);
    ms_modules_format(&ml, &sb);
    ms_strbuf_free(&sb);
    ms_module_list_free(&ml);
    return 0;
}
