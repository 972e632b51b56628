#include "image.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pte.h"

void img_open(struct img *im, uint64_t size)
{
    strcpy(im->path, "/tmp/memsrv-img.XXXXXX");
    int fd = mkstemp(im->path);
    if (fd < 0 || ftruncate(fd, (off_t)size) != 0)
        abort();
    close(fd);
    struct ms_layout l = {.count = 1, .regions = {{0, size, 0, 0}}};
    if (ms_ram_open_file(&im->ram, im->path, &l, NULL, MS_RAM_WRITABLE, NULL) != 0)
        abort();
    im->next_free = 0x10000;
}

void img_close(struct img *im)
{
    ms_ram_close(im->ram);
    unlink(im->path);
}

uint64_t img_alloc_page(struct img *im)
{
    static const uint8_t zero[4096];
    uint64_t p = im->next_free;
    im->next_free += 4096;
    ms_ram_write(im->ram, p, zero, sizeof(zero), NULL, NULL);
    return p;
}

void img_put64(struct img *im, uint64_t gpa, uint64_t v)
{
    ms_ram_write(im->ram, gpa, &v, 8, NULL, NULL);
}

uint64_t img_get64(struct img *im, uint64_t gpa)
{
    uint64_t v = 0;
    ms_ram_read(im->ram, gpa, &v, 8, NULL, NULL);
    return v;
}

static uint64_t table_phys(struct img_tree *t, uint64_t addr)
{
    if (!t->via)
        return addr;
    struct ms_xlat x;
    if (ms_space_translate(t->via, addr, &x, NULL, NULL) != 0)
        abort(); /* the test placed its tables in unmapped memory */
    return x.phys;
}

static uint64_t new_table(struct img_tree *t)
{
    if (!t->via)
        return img_alloc_page(t->im);
    static const uint8_t zero[4096];
    uint64_t a = t->next_table;
    t->next_table += 4096;
    if (ms_space_write(t->via, a, zero, sizeof(zero), NULL, NULL) != 0)
        abort();
    return a;
}

void img_tree_init(struct img_tree *t, struct img *im, bool ept, unsigned levels,
                   struct ms_space *via, uint64_t first_table)
{
    *t = (struct img_tree){im, ept, levels, 0, via, first_table};
    t->root = new_table(t);
}

static uint64_t entry_addr(uint64_t table, uint64_t va, unsigned level)
{
    return table + 8 * ((va >> (12 + 9 * (level - 1))) & 511);
}

void img_map(struct img_tree *t, uint64_t va, uint64_t pa, unsigned leaf_level, uint64_t flags)
{
    uint64_t table = t->root;
    uint64_t table_flags = t->ept ? (EPT_READ | EPT_WRITE | EPT_EXEC) : (PTE_P | PTE_RW | PTE_US);
    for (unsigned level = t->levels; level > leaf_level; level--) {
        uint64_t ea = table_phys(t, entry_addr(table, va, level));
        uint64_t e = img_get64(t->im, ea);
        if (!(e & 7)) {
            e = new_table(t) | table_flags;
            img_put64(t->im, ea, e);
        }
        table = e & PTE_ADDR_MASK;
    }
    uint64_t large = leaf_level > 1 ? (t->ept ? EPT_LARGE : PTE_PS) : 0;
    img_put64(t->im, table_phys(t, entry_addr(table, va, leaf_level)), pa | flags | large);
}

uint64_t img_entry_phys(struct img_tree *t, uint64_t va, unsigned level)
{
    uint64_t table = t->root;
    for (unsigned l = t->levels; l > level; l--)
        table = img_get64(t->im, table_phys(t, entry_addr(table, va, l))) & PTE_ADDR_MASK;
    return table_phys(t, entry_addr(table, va, level));
}

uint64_t img_eptp(const struct img_tree *t)
{
    return t->root | 6 | ((uint64_t)(t->levels - 1) << EPTP_WALK_LENGTH_SHIFT) | EPTP_AD_ENABLE;
}
