/* Fuzzes the printk ring decoders: the input is a fake ring image. Byte 0:
 * count_bits (mod 7), byte 1: size_bits (3 + mod 10), bytes 2..17: head and
 * tail ids; the rest is split into the descriptor array, the info array and
 * the text ring (zero-padded when short). The same bytes also feed the old
 * log_buf decoder. Every decoded record must lie inside the snapshot. Byte
 * 1's top bit turns on the text tail check (tail lpos: head ^ tail), and a
 * follower steps over the records from a seq taken from the tail id. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmesg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 18)
        return 0;
    struct ms_prb_layout l = {0};
    l.desc_size = 24;
    l.desc_lpos_begin = 8;
    l.desc_lpos_next = 16;
    l.info_size = 88;
    l.info_ts_nsec = 8;
    l.info_text_len = 16;
    l.info_facility = 18;
    l.info_flags_level = 19;
    l.info_caller_id = 20;
    unsigned cb = data[0] % 7, sb = 3 + data[1] % 10;
    uint64_t head, tail;
    memcpy(&head, data + 2, 8);
    memcpy(&tail, data + 10, 8);
    const uint8_t *rest = data + 18;
    size_t n = size - 18;
    size_t dl = ((size_t)1 << cb) * 24, il = ((size_t)1 << cb) * 88, tl = (size_t)1 << sb;
    uint8_t *buf = calloc(1, dl + il + tl);
    if (!buf)
        return 0;
    memcpy(buf, rest, n < dl + il + tl ? n : dl + il + tl);
    struct ms_prb_image img = {&l, cb, sb, head, tail, buf, dl, buf + dl, il, buf + dl + il, tl};
    img.check_data_tail = data[1] & 0x80;
    img.data_tail_lpos = head ^ tail;
    struct ms_printk_log log;
    ms_printk_log_init(&log);
    struct ms_err err;
    ms_prb_decode(&img, &log, &err);
    if (log.count > ((size_t)1 << cb))
        abort();
    struct ms_dmesg_cursor cur = {tail & 0xff, data[0] & 0x40, 0, 0};
    size_t first, end;
    uint64_t lost;
    ms_dmesg_follow_step(&log, &cur, &first, &end, &lost);
    if (first > end || end > log.count)
        abort();
    struct ms_strbuf sb_out;
    ms_strbuf_init(&sb_out);
    struct ms_dmesg_opts o = {(enum ms_dmesg_style)(data[1] % 3), data[0] & 0x80 ? 4 : -1};
    ms_dmesg_format(&log, &o, &sb_out);
    ms_strbuf_free(&sb_out);
    ms_printk_log_free(&log);

    struct ms_plog_layout pl = {24, 0, 8, 10, 12, 14, 15, true, 16};
    ms_printk_log_init(&log);
    ms_plog_decode(&pl, rest, n, head % (n + 1), tail % (n + 1), 0, &log, &err);
    ms_printk_log_free(&log);
    free(buf);
    return 0;
}
