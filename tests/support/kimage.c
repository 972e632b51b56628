#include "kimage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pte.h"
#include "symbols.h"

/* Offsets in the image (runtime VA = KIMG_LINK_TEXT + slide + offset). */
#define OFF_BANNER 0x0000
#define OFF_PRB 0x0800 /* `prb`: a pointer to the ring below */
#define OFF_RING 0x1000
#define OFF_DESCS 0x2000
#define OFF_INFOS 0x3000
#define OFF_DATA 0x4000
#define OFF_UTS 0x5000 /* init_uts_ns: name.release at +130 */
#define IMAGE_PAGES 8
#define CBITS 4
#define SBITS 8
#define DESC_SZ 24
#define INFO_SZ 88

static const char banner[] = "Linux version 6.1.0-memsrv-test (test@memsrv) #1 SMP\n";
static const char release[] = "6.1.0-memsrv-test";

uint64_t kimg_va(const struct kimg *k, uint64_t off)
{
    return KIMG_LINK_TEXT + k->slide + off;
}

static void put(struct kimg *k, uint64_t off, const void *p, size_t n)
{
    ms_ram_write(k->im->ram, KIMG_TEXT_PA + off, p, n, NULL, NULL);
}

static void put64(struct kimg *k, uint64_t off, uint64_t v)
{
    put(k, off, &v, 8);
}

/* PA = VA - __START_KERNEL_map + phys_base */
static int64_t phys_base(const struct kimg *k)
{
    return (int64_t)(KIMG_TEXT_PA - (kimg_va(k, 0) - MS_KERNEL_MAP_START));
}

void kimg_write_vmcoreinfo(struct kimg *k, uint64_t kerneloffset)
{
    char text[2048];
    uint64_t top_va = MS_KERNEL_MAP_START + k->root - (uint64_t)phys_base(k);
    snprintf(text, sizeof(text),
             "OSRELEASE=%s\nPAGESIZE=4096\nSYMBOL(init_uts_ns)=%llx\nOFFSET(uts_namespace.name)=0\n"
             "SYMBOL(init_top_pgt)=%llx\nSYMBOL(prb)=%llx\nNUMBER(phys_base)=%lld\n"
             "NUMBER(pgtable_l5_enabled)=0\n" KIMG_PRB_LAYOUT
             "OFFSET(atomic_long_t.counter)=0\nKERNELOFFSET=%llx\n",
             release, (unsigned long long)kimg_va(k, OFF_UTS), (unsigned long long)top_va,
             (unsigned long long)kimg_va(k, OFF_PRB), (long long)phys_base(k),
             (unsigned long long)kerneloffset);
    static const uint8_t zero[4096];
    ms_ram_write(k->im->ram, k->vmcoreinfo, zero, sizeof(zero), NULL, NULL);
    ms_ram_write(k->im->ram, k->vmcoreinfo, text, strlen(text), NULL, NULL);
}

void kimg_build(struct kimg *k, struct img *im, uint64_t slide)
{
    memset(k, 0, sizeof(*k));
    k->im = im;
    k->slide = slide;
    struct img_tree t;
    img_tree_init(&t, im, false, 4, NULL, 0);
    k->root = t.root;
    for (uint64_t p = 0; p < IMAGE_PAGES; p++)
        img_map(&t, kimg_va(k, p * 4096), KIMG_TEXT_PA + p * 4096, 1, PTE_P | PTE_RW);
    k->vmcoreinfo = img_alloc_page(im);
    if (k->vmcoreinfo >= KIMG_TEXT_PA)
        abort(); /* the bump allocator ran into the image */
    put(k, OFF_BANNER, banner, sizeof(banner));
    put(k, OFF_UTS + 130, release, sizeof(release));
    put64(k, OFF_PRB, kimg_va(k, OFF_RING));
    uint32_t bits = CBITS;
    put(k, OFF_RING, &bits, 4);
    put64(k, OFF_RING + 8, kimg_va(k, OFF_DESCS));
    put64(k, OFF_RING + 16, kimg_va(k, OFF_INFOS));
    bits = SBITS;
    put(k, OFF_RING + 40, &bits, 4);
    put64(k, OFF_RING + 48, kimg_va(k, OFF_DATA));
    kimg_write_vmcoreinfo(k, slide);
    snprintf(k->map, sizeof(k->map),
             "%016llx T _text\n%016llx D linux_banner\n%016llx D prb\n%016llx D init_top_pgt\n",
             (unsigned long long)KIMG_LINK_TEXT, (unsigned long long)(KIMG_LINK_TEXT + OFF_BANNER),
             (unsigned long long)(KIMG_LINK_TEXT + OFF_PRB),
             (unsigned long long)(KIMG_LINK_TEXT + k->root - KIMG_TEXT_PA));
}

void kimg_printk(struct kimg *k, const char *text, unsigned level, uint64_t ts_nsec)
{
    uint64_t id = k->nrec++, len = strlen(text);
    uint64_t size = (8 + len + 7) & ~7ULL, begin = k->head_lpos;
    if (id >= (1u << CBITS) || begin + size > (1u << SBITS))
        abort(); /* this ring model does not wrap */
    put64(k, OFF_DATA + begin, id);
    put(k, OFF_DATA + begin + 8, text, len);
    k->head_lpos = begin + size;
    put64(k, OFF_DESCS + id * DESC_SZ, id | 2ULL << 62); /* finalized */
    put64(k, OFF_DESCS + id * DESC_SZ + 8, begin);
    put64(k, OFF_DESCS + id * DESC_SZ + 16, k->head_lpos);
    uint8_t info[INFO_SZ] = {0};
    uint16_t tl = (uint16_t)len;
    uint32_t caller = 0x80000000u;
    memcpy(info, &id, 8); /* seq */
    memcpy(info + 8, &ts_nsec, 8);
    memcpy(info + 16, &tl, 2);
    info[19] = (uint8_t)(level << 5);
    memcpy(info + 20, &caller, 4);
    put(k, OFF_INFOS + id * INFO_SZ, info, sizeof(info));
    put64(k, OFF_RING + 24, id);           /* head_id */
    put64(k, OFF_RING + 56, k->head_lpos); /* head_lpos */
}
