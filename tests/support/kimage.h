/* A tiny Linux kernel in a RAM image (tests/support/image.h), enough for
 * memsrv's kernel view: VMCOREINFO at a page start (slide, phys_base,
 * init_top_pgt, init_uts_ns, the printk ring's layout), the kernel's 4-level
 * page tables mapping its image, linux_banner, init_uts_ns's release, and a
 * lockless printk ring (16
 * descriptors, 256 bytes of text, records never wrap). */
#ifndef TESTS_SUPPORT_KIMAGE_H
#define TESTS_SUPPORT_KIMAGE_H

#include <stdint.h>

#include "image.h"

/* VMCOREINFO's lines for the ring's layout: 6.1's on 64-bit, as the kernel
 * exports them (header only, so the fuzz targets can use it too). */
#define KIMG_PRB_LAYOUT                                                                            \
    "SIZE(printk_ringbuffer)=80\nOFFSET(printk_ringbuffer.desc_ring)=0\n"                          \
    "OFFSET(printk_ringbuffer.text_data_ring)=40\nOFFSET(prb_desc_ring.count_bits)=0\n"            \
    "OFFSET(prb_desc_ring.descs)=8\nOFFSET(prb_desc_ring.infos)=16\n"                              \
    "OFFSET(prb_desc_ring.head_id)=24\nOFFSET(prb_desc_ring.tail_id)=32\nSIZE(prb_desc)=24\n"      \
    "OFFSET(prb_desc.state_var)=0\nOFFSET(prb_desc.text_blk_lpos)=8\n"                             \
    "OFFSET(prb_data_blk_lpos.begin)=0\nOFFSET(prb_data_blk_lpos.next)=8\n"                        \
    "SIZE(printk_info)=88\nOFFSET(printk_info.seq)=0\nOFFSET(printk_info.ts_nsec)=8\n"             \
    "OFFSET(printk_info.text_len)=16\nOFFSET(printk_info.caller_id)=20\n"                          \
    "OFFSET(prb_data_ring.size_bits)=0\nOFFSET(prb_data_ring.data)=8\n"                            \
    "OFFSET(prb_data_ring.head_lpos)=16\nOFFSET(prb_data_ring.tail_lpos)=24\n"

#define KIMG_LINK_TEXT 0xffffffff81000000ULL /* _text as linked */
#define KIMG_TEXT_PA 0x200000ULL             /* where the image lies */

struct kimg {
    struct img *im;
    uint64_t slide;      /* KASLR: runtime - link-time */
    uint64_t root;       /* init_top_pgt (guest-physical) */
    uint64_t vmcoreinfo; /* guest-physical page of the VMCOREINFO text */
    uint64_t nrec, head_lpos;
    char map[512]; /* System.map text (link-time addresses) */
};

/* Builds the kernel in im with the given slide (a multiple of 2 MiB). */
void kimg_build(struct kimg *k, struct img *im, uint64_t slide);
/* (Re)writes VMCOREINFO with this KERNELOFFSET (as a reboot would). */
void kimg_write_vmcoreinfo(struct kimg *k, uint64_t kerneloffset);
/* Appends a finalized record, as printk does. */
void kimg_printk(struct kimg *k, const char *text, unsigned level, uint64_t ts_nsec);
/* Runtime address of an offset in the image. */
uint64_t kimg_va(const struct kimg *k, uint64_t off);

#endif
