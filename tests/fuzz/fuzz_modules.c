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

#define BASE 0xffffffffc0000000ULL
#define STRIDE 0x100
#define MAX_MODULES 16
#define USES (MAX_MODULES * STRIDE)
#define HEAD (USES + MAX_MODULES * 0x40)
#define ARENA (HEAD + 0x10)
#define PER_MODULE 8

struct kernel {
    uint8_t mem[ARENA];
    uint64_t hole; /* reads touching [hole, hole + 4) fail; 0: none */
};

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

static int read_kernel(void *arg, uint64_t addr, void *buf, size_t len, size_t *done,
                       struct ms_err *err)
{
    const struct kernel *k = arg;
    if (done)
        *done = 0;
    if (addr < BASE || addr - BASE > ARENA || len > ARENA - (addr - BASE) ||
        (k->hole && addr < k->hole + 4 && addr + len > k->hole))
        return ms_err_set(err, MS_EUNMAPPED, "0x%llx not mapped", (unsigned long long)addr);
    memcpy(buf, k->mem + (addr - BASE), len);
    if (done)
        *done = len;
    return 0;
}

static void put64(struct kernel *k, uint64_t addr, uint64_t v)
{
    memcpy(k->mem + (addr - BASE), &v, 8);
}

static uint64_t module(unsigned i)
{
    return BASE + (uint64_t)i * STRIDE;
}

static uint64_t use(unsigned i)
{
    return BASE + USES + (uint64_t)i * 0x40;
}

static uint64_t pick(uint8_t s, unsigned n, uint64_t (*base)(unsigned), uint64_t off, uint64_t head)
{
    unsigned k = s % (n + 4);
    if (k < n)
        return base(k) + off;
    if (k == n)
        return head;
    if (k == n + 1)
        return 0xdead000000000000ULL + s;
    if (k == n + 2)
        return 0;
    return BASE + (uint64_t)s * 7;
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
    static struct kernel k;
    memset(&k, 0, sizeof(k));
    k.hole = in[3] < n ? module(in[3]) + l.state : 0;
    uint64_t head = BASE + HEAD;
    put64(&k, head, module(0) + l.list);
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *b = in + 4 + i * PER_MODULE;
        uint64_t m = module(i), own = m + l.source_list;
        put64(&k, m + l.list, pick(b[0], n, module, l.list, head));
        put64(&k, own, pick(b[1], n, use, l.use_source_list, own));
        put64(&k, use(i) + l.use_source_list, pick(b[2], n, use, l.use_source_list, own));
        put64(&k, use(i) + l.use_source, pick(b[3], n, module, 0, m));
        uint32_t state = b[4] % 5;
        memcpy(k.mem + (m - BASE) + l.state, &state, 4);
        memset(k.mem + (m - BASE) + l.name, b[5], l.name_len); /* no NUL */
        for (unsigned j = 0; j < l.nsizes; j++)
            k.mem[(m - BASE) + l.sizes[j] + 1] = b[6];
        uint64_t taints = (uint64_t)b[7] << 10;
        memcpy(k.mem + (m - BASE) + l.taints, &taints, 8);
    }
    struct ms_module_list ml;
    struct ms_err err;
    ms_modules_walk(&l, head, read_kernel, &k, max, &ml, &err);
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
