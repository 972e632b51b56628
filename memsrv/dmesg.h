/* The kernel log from guest memory: the lockless printk_ringbuffer of Linux
 * 5.10+ (descriptor ring of state+id words, text data ring of id-prefixed
 * blocks, info array), and the older log_buf of struct printk_log records
 * (3.5-5.9). Each ring is read in a few bulk reads and decoded by pure
 * functions (fuzzed); malformed records are skipped and counted. */
#ifndef MEMSRV_DMESG_H
#define MEMSRV_DMESG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "space.h"
#include "strbuf.h"
#include "typedb.h"

/* Offsets (bytes) of the lockless ring's structures. */
struct ms_prb_layout {
    uint64_t rb_desc_ring, rb_text_data_ring, rb_size;
    uint64_t dr_count_bits, dr_descs, dr_infos, dr_head_id, dr_tail_id;
    uint64_t tr_size_bits, tr_data, tr_head_lpos, tr_tail_lpos;
    uint64_t desc_size, desc_state_var, desc_lpos_begin, desc_lpos_next;
    uint64_t info_size, info_seq, info_ts_nsec, info_text_len, info_facility, info_flags_level,
        info_caller_id;
};

/* Offsets of struct printk_log (3.5-5.9). caller_id is absent before 5.1. */
struct ms_plog_layout {
    uint64_t size, ts_nsec, len, text_len, dict_len, facility, flags_level;
    bool has_caller_id;
    uint64_t caller_id;
};

/* Fills a layout from a typedb (DWARF or VMCOREINFO). The bitfield byte
 * (flags:5, level:3) comes from DWARF when known, else text_len + 3: the
 * layout every kernel since 3.5 has used (VMCOREINFO exports no bitfields). */
int ms_prb_layout_from_typedb(struct ms_prb_layout *l, const struct ms_typedb *db,
                              struct ms_err *err);
int ms_plog_layout_from_typedb(struct ms_plog_layout *l, const struct ms_typedb *db,
                               struct ms_err *err);

struct ms_printk_record {
    uint64_t seq;
    uint64_t ts_nsec;
    uint32_t caller_id;
    uint8_t facility, level, flags;
    size_t text_off, text_len; /* into ms_printk_log.text */
};

struct ms_printk_log {
    struct ms_printk_record *recs;
    size_t count, cap;
    char *text; /* all records' text, back to back (not NUL-separated) */
    size_t text_len, text_cap;
    /* Health of the ring as decoded: */
    uint64_t bad;        /* malformed records skipped (garbage, out-of-range lpos, ...) */
    uint64_t lost;       /* records whose data the kernel itself lost (FAILED_LPOS) */
    uint64_t incomplete; /* reserved (being written) or recycled descriptors skipped */
    uint64_t truncated;  /* text_len larger than its block: text cut, kept */
    char first_bad[160]; /* why the first bad record was rejected */
    uint64_t tail_seq;   /* seq of the ring's oldest record (has_tail_seq): older ones are gone */
    bool has_tail_seq;
    unsigned retries; /* re-reads because head/tail moved (live guest) */
    bool consistent;  /* head/tail unchanged across the final read */
};

void ms_printk_log_init(struct ms_printk_log *log);
void ms_printk_log_free(struct ms_printk_log *log);

/* One snapshot of a lockless ring, as read from memory. */
struct ms_prb_image {
    const struct ms_prb_layout *layout;
    unsigned count_bits; /* descriptors: 1 << count_bits */
    unsigned size_bits;  /* text ring bytes: 1 << size_bits */
    uint64_t head_id, tail_id;
    const uint8_t *descs;
    size_t descs_len;
    const uint8_t *infos;
    size_t infos_len;
    const uint8_t *data;
    size_t data_len;
    /* The text ring's tail read after the copy (check_data_tail): a block
     * that begins before it may have been overwritten while it was copied,
     * and is skipped, not decoded torn. */
    bool check_data_tail;
    uint64_t data_tail_lpos;
};

#define MS_PRB_MAX_COUNT_BITS 24 /* 16M descriptors */
#define MS_PRB_MAX_SIZE_BITS 30  /* 1 GiB of text */

/* Appends the records of img to log (which the caller inits). Fails only on
 * a ring that cannot be decoded at all (bad geometry); bad records are
 * counted in log. */
int ms_prb_decode(const struct ms_prb_image *img, struct ms_printk_log *log, struct ms_err *err);

/* Decodes an old log_buf snapshot: buf[0..buf_len), records from first_idx
 * to next_idx, numbered from first_seq. */
int ms_plog_decode(const struct ms_plog_layout *l, const uint8_t *buf, size_t buf_len,
                   uint64_t first_idx, uint64_t next_idx, uint64_t first_seq,
                   struct ms_printk_log *log, struct ms_err *err);

/* Reads the lockless ring whose struct printk_ringbuffer is at rb_addr (the
 * value of the kernel's `prb` pointer) through space. Re-reads when the
 * head or tail moved during the read (up to max_retries, 0 = 3). A live
 * ring never yields a torn record: only records the tails read after the
 * copy still cover are decoded (the kernel moves a tail past a record
 * before it reuses the record's descriptor or text). */
int ms_prb_read(struct ms_space *space, const struct ms_prb_layout *l, uint64_t rb_addr,
                unsigned max_retries, struct ms_printk_log *log, struct ms_err *err);

/* Reads the old log_buf: the addresses of the kernel variables log_buf,
 * log_buf_len, log_first_idx, log_next_idx and log_first_seq. */
struct ms_plog_symbols {
    uint64_t log_buf, log_buf_len, log_first_idx, log_next_idx, log_first_seq;
};
int ms_plog_read(struct ms_space *space, const struct ms_plog_layout *l,
                 const struct ms_plog_symbols *syms, struct ms_printk_log *log, struct ms_err *err);

void ms_dmesg_format(const struct ms_printk_log *log, const struct ms_dmesg_opts *opts,
                     struct ms_strbuf *sb);

/* Calls a missing record is waited for before it counts as lost. */
#define MS_DMESG_STALL_MAX 3

/* A follower's next step over a fresh snapshot (log, sorted by seq): the
 * records [*first, *end) of log->recs come next, after *lost records that
 * left the ring unread (the cursor moves past both). Stops before a record
 * missing between present ones, until it has been missing more than
 * MS_DMESG_STALL_MAX steps. A ring whose newest record is older than the
 * cursor (the guest rebooted) starts over. */
void ms_dmesg_follow_step(const struct ms_printk_log *log, struct ms_dmesg_cursor *c, size_t *first,
                          size_t *end, uint64_t *lost);

#endif
