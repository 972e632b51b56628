/* Fuzzes the module-symbol decoder: one module's Elf64_Sym table, type
 * letters and string table as the input gives them, then the name and
 * address lookups over what it kept.
 *
 * Input: u8 n (symbols: n % 64), u8 flags (bit 0: type letters present),
 *        n x 24 bytes of Elf64_Sym, n type letters when present, then the
 *        string table (the rest). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "modsyms.h"
#include "modules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t n = data[0] % 64, pos = 2;
    bool types = data[1] & 1;
    size_t need = n * MS_MODSYM_SIZE + (types ? n : 0);
    if (size - pos < need)
        return 0;
    /* copies, so ASan sees every read past an input's part */
    uint8_t *sym = malloc(n * MS_MODSYM_SIZE + 1), *type = NULL;
    memcpy(sym, data + pos, n * MS_MODSYM_SIZE);
    pos += n * MS_MODSYM_SIZE;
    if (types) {
        type = malloc(n + 1);
        memcpy(type, data + pos, n);
        pos += n;
    }
    size_t str_len = size - pos;
    uint8_t *str = malloc(str_len + 1);
    memcpy(str, data + pos, str_len);

    struct ms_modsyms ms;
    memset(&ms, 0, sizeof(ms));
    struct ms_module m = {.addr = 0xffffffffc0000000ULL,
                          .base = 0xffffffffc0001000ULL,
                          .size = 0x10000,
                          .name = "fuzz"};
    if (ms_module_list_push(&ms.mods, &m, NULL) < 0)
        abort();
    size_t skipped = 0;
    struct ms_err err;
    if (ms_modsyms_decode(sym, n, str, str_len, type, 0, &ms, &skipped, &err) == 0) {
        if (ms.count + skipped > n)
            abort();
        for (size_t i = 0; i < ms.count; i++) {
            const char *name = ms.names + ms.syms[i].name;
            size_t len = strlen(name);
            if (len == 0 || len >= MS_MODSYM_NAME_MAX || ms.syms[i].name + len >= ms.names_len)
                abort();
            uint64_t a;
            if (ms_modsyms_lookup(&ms, name, &a, &err) != 0)
                abort();
            const struct ms_modsym *s;
            uint64_t off;
            if (ms_modsyms_addr(&ms, ms.syms[i].addr, &s, &off, &err) == 0 &&
                s->addr + off != ms.syms[i].addr)
                abort();
        }
    }
    ms_modsyms_free(&ms);
    free(sym);
    free(type);
    free(str);
    return 0;
}
