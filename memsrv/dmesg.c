#include "dmesg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"

/* kernel/printk/printk_ringbuffer.h, for 64-bit longs */
#define DESC_FLAGS_SHIFT 62
#define DESC_ID_MASK ((1ULL << DESC_FLAGS_SHIFT) - 1)
#define DESC_STATE(sv) (3 & ((sv) >> DESC_FLAGS_SHIFT))
enum { desc_reserved = 0, desc_committed = 1, desc_finalized = 2, desc_reusable = 3 };
#define FAILED_LPOS 0x1ULL
#define NO_LPOS 0x3ULL

void ms_printk_log_init(struct ms_printk_log *log)
{
    memset(log, 0, sizeof(*log));
}

void ms_printk_log_free(struct ms_printk_log *log)
{
    free(log->recs);
    free(log->text);
    ms_printk_log_init(log);
}

static uint64_t rd(const uint8_t *p, unsigned size)
{
    uint64_t v = 0;
    memcpy(&v, p, size); /* little-endian host and guest */
    return v;
}

/* Reads a field of `size` bytes at off inside an element of elem_size at
 * base[idx]; *ok cleared when out of the buffer. */
static uint64_t field(const uint8_t *buf, size_t buf_len, uint64_t elem_off, uint64_t off,
                      unsigned size, bool *ok)
{
    if (elem_off > buf_len || off > buf_len - elem_off || size > buf_len - elem_off - off) {
        *ok = false;
        return 0;
    }
    return rd(buf + elem_off + off, size);
}

static void note_bad(struct ms_printk_log *log, const char *fmt, unsigned long long a,
                     unsigned long long b)
{
    if (log->bad++ == 0)
        snprintf(log->first_bad, sizeof(log->first_bad), fmt, a, b);
}

static int add_record(struct ms_printk_log *log, const struct ms_printk_record *r,
                      const uint8_t *text, size_t len, struct ms_err *err)
{
    if (!MS_ARRAY_RESERVE(&log->recs, &log->cap, log->count + 1, 256))
        return ms_err_set(err, MS_ENOMEM, "out of memory for log records");
    if (!MS_ARRAY_RESERVE(&log->text, &log->text_cap, log->text_len + len + 1, 65536))
        return ms_err_set(err, MS_ENOMEM, "out of memory for log text");
    struct ms_printk_record *d = &log->recs[log->count++];
    *d = *r;
    d->text_off = log->text_len;
    d->text_len = len;
    if (len)
        memcpy(log->text + log->text_len, text, len);
    log->text_len += len;
    log->text[log->text_len] = '\0';
    return 0;
}

int ms_prb_decode(const struct ms_prb_image *img, struct ms_printk_log *log, struct ms_err *err)
{
    const struct ms_prb_layout *l = img->layout;
    if (img->count_bits > MS_PRB_MAX_COUNT_BITS || img->size_bits > MS_PRB_MAX_SIZE_BITS ||
        img->size_bits < 3)
        return ms_err_set(err, MS_EFORMAT,
                          "printk ring geometry out of range (count_bits %u, size_bits %u)",
                          img->count_bits, img->size_bits);
    uint64_t count = 1ULL << img->count_bits;
    uint64_t dsize = 1ULL << img->size_bits;
    if (img->data_len < dsize)
        return ms_err_set(err, MS_EFORMAT, "printk text ring snapshot too short");
    if (l->desc_size == 0 || l->info_size == 0)
        return ms_err_set(err, MS_EFORMAT, "printk layout has zero-sized records");
    uint64_t head = img->head_id & DESC_ID_MASK, tail = img->tail_id & DESC_ID_MASK;
    uint64_t span = (head - tail) & DESC_ID_MASK;
    if (span >= count) {
        /* The kernel keeps tail within one lap of head; anything else is a
         * corrupt or torn snapshot: decode only the last lap. */
        note_bad(log, "tail id %#llx more than one lap behind head id %#llx",
                 (unsigned long long)tail, (unsigned long long)head);
        tail = (head - (count - 1)) & DESC_ID_MASK;
        span = count - 1;
    }
    uint64_t prev_seq = 0;
    bool have_prev = false;
    for (uint64_t n = 0; n <= span; n++) {
        uint64_t id = (tail + n) & DESC_ID_MASK;
        uint64_t idx = id & (count - 1);
        bool ok = true;
        uint64_t sv =
            field(img->descs, img->descs_len, idx * l->desc_size, l->desc_state_var, 8, &ok);
        uint64_t begin =
            field(img->descs, img->descs_len, idx * l->desc_size, l->desc_lpos_begin, 8, &ok);
        uint64_t next =
            field(img->descs, img->descs_len, idx * l->desc_size, l->desc_lpos_next, 8, &ok);
        if (!ok) {
            note_bad(log, "descriptor %llu beyond the descriptor array (%llu)",
                     (unsigned long long)idx, (unsigned long long)img->descs_len);
            continue;
        }
        if ((sv & DESC_ID_MASK) != id) {
            log->incomplete++; /* recycled since, or never written */
            continue;
        }
        if (n == 0 && !log->has_tail_seq) {
            /* the oldest record's seq, even when its text is gone: every
             * record before it has left the ring */
            bool seq_ok = true;
            uint64_t seq =
                field(img->infos, img->infos_len, idx * l->info_size, l->info_seq, 8, &seq_ok);
            if (seq_ok && (seq & (count - 1)) == idx) {
                log->tail_seq = seq;
                log->has_tail_seq = true;
            }
        }
        unsigned state = (unsigned)DESC_STATE(sv);
        if (state != desc_committed && state != desc_finalized) {
            log->incomplete++;
            continue;
        }
        uint64_t io = idx * l->info_size;
        struct ms_printk_record r = {0};
        r.seq = field(img->infos, img->infos_len, io, l->info_seq, 8, &ok);
        r.ts_nsec = field(img->infos, img->infos_len, io, l->info_ts_nsec, 8, &ok);
        uint64_t text_len = field(img->infos, img->infos_len, io, l->info_text_len, 2, &ok);
        r.facility = (uint8_t)field(img->infos, img->infos_len, io, l->info_facility, 1, &ok);
        uint8_t fl = (uint8_t)field(img->infos, img->infos_len, io, l->info_flags_level, 1, &ok);
        r.caller_id = (uint32_t)field(img->infos, img->infos_len, io, l->info_caller_id, 4, &ok);
        if (!ok) {
            note_bad(log, "info %llu beyond the info array (%llu bytes)", (unsigned long long)idx,
                     (unsigned long long)img->infos_len);
            continue;
        }
        r.flags = fl & 0x1f;
        r.level = fl >> 5;
        if ((r.seq & (count - 1)) != idx) {
            note_bad(log, "record seq %llu does not belong in slot %llu", (unsigned long long)r.seq,
                     (unsigned long long)idx);
            continue;
        }
        if (have_prev && r.seq <= prev_seq) {
            note_bad(log, "record seq %llu not after %llu", (unsigned long long)r.seq,
                     (unsigned long long)prev_seq);
            continue;
        }
        const uint8_t *text = NULL;
        uint64_t avail = 0;
        if (begin & 1) { /* data-less */
            if (begin == NO_LPOS && next == NO_LPOS) {
                text = (const uint8_t *)"";
            } else if (begin == FAILED_LPOS && next == FAILED_LPOS) {
                log->lost++;
                continue;
            } else {
                note_bad(log, "bad data-less lpos %#llx/%#llx", (unsigned long long)begin,
                         (unsigned long long)next);
                continue;
            }
        } else {
            uint64_t blk;
            if ((begin >> img->size_bits) == (next >> img->size_bits) && begin < next) {
                blk = begin & (dsize - 1);
                avail = next - begin;
            } else if (((begin + dsize) >> img->size_bits) == (next >> img->size_bits)) {
                blk = 0;
                avail = next & (dsize - 1);
            } else {
                note_bad(log, "block lpos %#llx..%#llx is not a valid block",
                         (unsigned long long)begin, (unsigned long long)next);
                continue;
            }
            if ((begin | next) & 7 || avail < 8 || blk + avail > dsize) {
                note_bad(log, "block lpos %#llx..%#llx misaligned or too small",
                         (unsigned long long)begin, (unsigned long long)next);
                continue;
            }
            if (img->check_data_tail && begin - img->data_tail_lpos >= dsize) {
                log->incomplete++; /* the text ring's tail passed it during the copy */
                continue;
            }
            if (rd(img->data + blk, 8) != id) {
                /* the text was overwritten after the descriptor was read */
                log->incomplete++;
                continue;
            }
            text = img->data + blk + 8;
            avail -= 8;
            if (text_len > avail) {
                log->truncated++;
                text_len = avail;
            }
        }
        if (!(begin & 1) && text_len > avail)
            text_len = avail;
        if (begin & 1)
            text_len = 0;
        int rc = add_record(log, &r, text, (size_t)text_len, err);
        if (rc < 0)
            return rc;
        prev_seq = r.seq;
        have_prev = true;
    }
    return 0;
}

int ms_plog_decode(const struct ms_plog_layout *l, const uint8_t *buf, size_t buf_len,
                   uint64_t first_idx, uint64_t next_idx, uint64_t first_seq,
                   struct ms_printk_log *log, struct ms_err *err)
{
    if (l->size < 12 || l->size > 256)
        return ms_err_set(err, MS_EFORMAT, "struct printk_log size %llu implausible",
                          (unsigned long long)l->size);
    if (first_idx > buf_len || next_idx > buf_len)
        return ms_err_set(err, MS_EFORMAT,
                          "log_first_idx %llu / log_next_idx %llu outside log_buf (%zu bytes)",
                          (unsigned long long)first_idx, (unsigned long long)next_idx, buf_len);
    uint64_t idx = first_idx, seq = first_seq;
    bool wrapped = false;
    /* Every record takes at least l->size bytes: a bound on the loop. */
    uint64_t max = buf_len / l->size + 2;
    for (uint64_t n = 0; idx != next_idx; n++) {
        if (n > max) {
            note_bad(log, "log_buf walk exceeded %llu records at %llu", (unsigned long long)max,
                     (unsigned long long)idx);
            break;
        }
        bool ok = true;
        uint64_t len = field(buf, buf_len, idx, l->len, 2, &ok);
        if (!ok) {
            /* too close to the end for a header: the writer wrapped */
            len = 0;
        }
        if (len == 0) {
            if (wrapped || idx < next_idx) {
                note_bad(log, "log_buf record at %llu has length 0 (next %llu)",
                         (unsigned long long)idx, (unsigned long long)next_idx);
                break;
            }
            wrapped = true;
            idx = 0;
            continue;
        }
        if (len < l->size || len > buf_len - idx) {
            note_bad(log, "log_buf record at %llu has bad length %llu", (unsigned long long)idx,
                     (unsigned long long)len);
            break; /* the chain is broken: nothing after it can be trusted */
        }
        struct ms_printk_record r = {0};
        r.seq = seq;
        r.ts_nsec = field(buf, buf_len, idx, l->ts_nsec, 8, &ok);
        uint64_t text_len = field(buf, buf_len, idx, l->text_len, 2, &ok);
        r.facility = (uint8_t)field(buf, buf_len, idx, l->facility, 1, &ok);
        uint8_t fl = (uint8_t)field(buf, buf_len, idx, l->flags_level, 1, &ok);
        if (l->has_caller_id)
            r.caller_id = (uint32_t)field(buf, buf_len, idx, l->caller_id, 4, &ok);
        r.flags = fl & 0x1f;
        r.level = fl >> 5;
        if (!ok || text_len > len - l->size) {
            if (ok) {
                log->truncated++;
                text_len = len - l->size;
            } else {
                note_bad(log, "log_buf record at %llu truncated (len %llu)",
                         (unsigned long long)idx, (unsigned long long)len);
                break;
            }
        }
        int rc = add_record(log, &r, buf + idx + l->size, (size_t)text_len, err);
        if (rc < 0)
            return rc;
        idx += len;
        seq++;
        if (idx == buf_len && idx != next_idx) {
            if (wrapped)
                break;
            wrapped = true;
            idx = 0;
        }
    }
    return 0;
}

static int get_off(const struct ms_typedb *db, const char *t, const char *m, uint64_t *v,
                   struct ms_err *err)
{
    return ms_typedb_offset(db, t, m, v, err);
}

int ms_prb_layout_from_typedb(struct ms_prb_layout *l, const struct ms_typedb *db,
                              struct ms_err *err)
{
    memset(l, 0, sizeof(*l));
    uint64_t desc_lpos, lb, ln, counter = 0;
    int rc = 0;
#define O(t, m, dst)                                                                               \
    if (rc == 0)                                                                                   \
    rc = get_off(db, t, m, dst, err)
    O("printk_ringbuffer", "desc_ring", &l->rb_desc_ring);
    O("printk_ringbuffer", "text_data_ring", &l->rb_text_data_ring);
    O("prb_desc_ring", "count_bits", &l->dr_count_bits);
    O("prb_desc_ring", "descs", &l->dr_descs);
    O("prb_desc_ring", "infos", &l->dr_infos);
    O("prb_desc_ring", "head_id", &l->dr_head_id);
    O("prb_desc_ring", "tail_id", &l->dr_tail_id);
    O("prb_data_ring", "size_bits", &l->tr_size_bits);
    O("prb_data_ring", "data", &l->tr_data);
    O("prb_data_ring", "head_lpos", &l->tr_head_lpos);
    O("prb_data_ring", "tail_lpos", &l->tr_tail_lpos);
    O("prb_desc", "state_var", &l->desc_state_var);
    O("prb_desc", "text_blk_lpos", &desc_lpos);
    O("prb_data_blk_lpos", "begin", &lb);
    O("prb_data_blk_lpos", "next", &ln);
    O("printk_info", "seq", &l->info_seq);
    O("printk_info", "ts_nsec", &l->info_ts_nsec);
    O("printk_info", "text_len", &l->info_text_len);
    O("printk_info", "caller_id", &l->info_caller_id);
#undef O
    if (rc == 0)
        rc = ms_typedb_size(db, "prb_desc", &l->desc_size, err);
    if (rc == 0)
        rc = ms_typedb_size(db, "printk_info", &l->info_size, err);
    if (rc == 0 && ms_typedb_size(db, "printk_ringbuffer", &l->rb_size, NULL) < 0)
        l->rb_size = l->rb_text_data_ring + 32;
    if (rc < 0)
        return ms_err_prefix(err, "printk ring layout: ");
    /* atomic_long_t wraps the counters: add its member offset (0). */
    ms_typedb_offset(db, "atomic_long_t", "counter", &counter, NULL);
    l->dr_head_id += counter;
    l->dr_tail_id += counter;
    l->tr_head_lpos += counter;
    l->tr_tail_lpos += counter;
    l->desc_state_var += counter;
    l->desc_lpos_begin = desc_lpos + lb;
    l->desc_lpos_next = desc_lpos + ln;
    if (ms_typedb_offset(db, "printk_info", "facility", &l->info_facility, NULL) < 0)
        l->info_facility = l->info_text_len + 2;
    const struct ms_typedb_entry *lev = ms_typedb_get(db, "printk_info.level");
    if (lev && lev->bit_size == 3)
        l->info_flags_level = lev->bit_offset / 8;
    else
        l->info_flags_level = l->info_text_len + 3;
    return 0;
}

int ms_plog_layout_from_typedb(struct ms_plog_layout *l, const struct ms_typedb *db,
                               struct ms_err *err)
{
    memset(l, 0, sizeof(*l));
    int rc = ms_typedb_size(db, "printk_log", &l->size, err);
    if (rc == 0)
        rc = ms_typedb_offset(db, "printk_log", "ts_nsec", &l->ts_nsec, err);
    if (rc == 0)
        rc = ms_typedb_offset(db, "printk_log", "len", &l->len, err);
    if (rc == 0)
        rc = ms_typedb_offset(db, "printk_log", "text_len", &l->text_len, err);
    if (rc < 0)
        return ms_err_prefix(err, "printk_log layout: ");
    if (ms_typedb_offset(db, "printk_log", "dict_len", &l->dict_len, NULL) < 0)
        l->dict_len = l->text_len + 2;
    if (ms_typedb_offset(db, "printk_log", "facility", &l->facility, NULL) < 0)
        l->facility = l->dict_len + 2;
    l->flags_level = l->facility + 1;
    l->has_caller_id = ms_typedb_offset(db, "printk_log", "caller_id", &l->caller_id, NULL) == 0;
    return 0;
}

static int read_u64(struct ms_space *s, uint64_t addr, uint64_t *v, struct ms_err *err)
{
    return ms_space_read(s, addr, v, 8, NULL, err);
}

static void *read_block(struct ms_space *s, uint64_t addr, uint64_t len, const char *what,
                        struct ms_err *err)
{
    if (len > (1ULL << 31)) {
        ms_err_set(err, MS_ELIMIT, "%s too large (%llu bytes)", what, (unsigned long long)len);
        return NULL;
    }
    void *p = malloc(len ? (size_t)len : 1);
    if (!p) {
        ms_err_set(err, MS_ENOMEM, "out of memory for %s", what);
        return NULL;
    }
    if (ms_space_read(s, addr, p, (size_t)len, NULL, err) < 0) {
        ms_err_prefix(err, "reading %s at 0x%llx: ", what, (unsigned long long)addr);
        free(p);
        return NULL;
    }
    return p;
}

struct prb_hdr {
    uint64_t count_bits, descs, infos, head_id, tail_id, size_bits, data, head_lpos, tail_lpos;
};

static int read_hdr(struct ms_space *s, const struct ms_prb_layout *l, uint64_t rb,
                    struct prb_hdr *h, struct ms_err *err)
{
    uint8_t buf[512];
    if (l->rb_size > sizeof(buf) || l->rb_size == 0)
        return ms_err_set(err, MS_EFORMAT, "struct printk_ringbuffer size %llu implausible",
                          (unsigned long long)l->rb_size);
    int rc = ms_space_read(s, rb, buf, (size_t)l->rb_size, NULL, err);
    if (rc < 0)
        return ms_err_prefix(
            err, "reading struct printk_ringbuffer at 0x%llx: ", (unsigned long long)rb);
    bool ok = true;
    uint64_t d = l->rb_desc_ring, t = l->rb_text_data_ring, n = l->rb_size;
    h->count_bits = field(buf, n, d, l->dr_count_bits, 4, &ok);
    h->descs = field(buf, n, d, l->dr_descs, 8, &ok);
    h->infos = field(buf, n, d, l->dr_infos, 8, &ok);
    h->head_id = field(buf, n, d, l->dr_head_id, 8, &ok);
    h->tail_id = field(buf, n, d, l->dr_tail_id, 8, &ok);
    h->size_bits = field(buf, n, t, l->tr_size_bits, 4, &ok);
    h->data = field(buf, n, t, l->tr_data, 8, &ok);
    h->head_lpos = field(buf, n, t, l->tr_head_lpos, 8, &ok);
    h->tail_lpos = field(buf, n, t, l->tr_tail_lpos, 8, &ok);
    if (!ok)
        return ms_err_set(err, MS_EFORMAT, "printk ring layout offsets exceed the struct");
    if (h->count_bits > MS_PRB_MAX_COUNT_BITS || h->size_bits > MS_PRB_MAX_SIZE_BITS ||
        h->size_bits < 3)
        return ms_err_set(err, MS_EFORMAT,
                          "printk ring at 0x%llx: count_bits %llu / size_bits %llu out of range "
                          "(wrong address or layout?)",
                          (unsigned long long)rb, (unsigned long long)h->count_bits,
                          (unsigned long long)h->size_bits);
    return 0;
}

int ms_prb_read(struct ms_space *space, const struct ms_prb_layout *l, uint64_t rb_addr,
                unsigned max_retries, struct ms_printk_log *log, struct ms_err *err)
{
    if (!max_retries)
        max_retries = 3;
    for (unsigned attempt = 0;; attempt++) {
        struct prb_hdr h, h2;
        int rc = read_hdr(space, l, rb_addr, &h, err);
        if (rc < 0)
            return rc;
        uint64_t count = 1ULL << h.count_bits;
        if (count > UINT64_MAX / l->info_size)
            return ms_err_set(err, MS_EFORMAT, "printk ring too large");
        uint8_t *descs =
            read_block(space, h.descs, count * l->desc_size, "printk descriptors", err);
        uint8_t *infos =
            descs ? read_block(space, h.infos, count * l->info_size, "printk infos", err) : NULL;
        uint8_t *data =
            infos ? read_block(space, h.data, 1ULL << h.size_bits, "printk text ring", err) : NULL;
        if (!data) {
            free(descs);
            free(infos);
            return err ? err->code : MS_EIO;
        }
        rc = read_hdr(space, l, rb_addr, &h2, err);
        bool same = rc == 0 && h.head_id == h2.head_id && h.tail_id == h2.tail_id &&
                    h.head_lpos == h2.head_lpos && h.tail_lpos == h2.tail_lpos;
        if (same || attempt + 1 >= max_retries) {
            /* Records from the later tail to the earlier head: the newer
             * ones were not all copied, the older may have been reused. */
            uint64_t tail = rc == 0 ? h2.tail_id : h.tail_id;
            bool lapped = (((h.head_id - tail) & DESC_ID_MASK) >= count);
            struct ms_prb_image img = {
                .layout = l,
                .count_bits = (unsigned)h.count_bits,
                .size_bits = (unsigned)h.size_bits,
                .head_id = h.head_id,
                .tail_id = tail,
                .descs = descs,
                .descs_len = (size_t)(count * l->desc_size),
                .infos = infos,
                .infos_len = (size_t)(count * l->info_size),
                .data = data,
                .data_len = (size_t)(1ULL << h.size_bits),
                .check_data_tail = rc == 0,
                .data_tail_lpos = h2.tail_lpos,
            };
            /* a tail that passed the head: the whole copy may be reused */
            rc = lapped && !same ? 0 : ms_prb_decode(&img, log, err);
            log->consistent = same;
            log->retries = attempt;
            free(descs);
            free(infos);
            free(data);
            return rc;
        }
        free(descs);
        free(infos);
        free(data);
    }
}

int ms_plog_read(struct ms_space *space, const struct ms_plog_layout *l,
                 const struct ms_plog_symbols *syms, struct ms_printk_log *log, struct ms_err *err)
{
    uint64_t buf_addr, first_seq;
    uint32_t buf_len, first_idx, next_idx;
    int rc = read_u64(space, syms->log_buf, &buf_addr, err);
    if (rc == 0)
        rc = ms_space_read(space, syms->log_buf_len, &buf_len, 4, NULL, err);
    if (rc == 0)
        rc = ms_space_read(space, syms->log_first_idx, &first_idx, 4, NULL, err);
    if (rc == 0)
        rc = ms_space_read(space, syms->log_next_idx, &next_idx, 4, NULL, err);
    if (rc == 0)
        rc = read_u64(space, syms->log_first_seq, &first_seq, err);
    if (rc < 0)
        return ms_err_prefix(err, "reading log_buf variables: ");
    if (buf_len == 0 || buf_len > (1u << 30))
        return ms_err_set(err, MS_EFORMAT, "log_buf_len %u implausible", buf_len);
    uint8_t *buf = read_block(space, buf_addr, buf_len, "log_buf", err);
    if (!buf)
        return err ? err->code : MS_EIO;
    rc = ms_plog_decode(l, buf, buf_len, first_idx, next_idx, first_seq, log, err);
    log->consistent = true;
    free(buf);
    return rc;
}

static void put_prefix(struct ms_strbuf *sb, const struct ms_printk_record *r, bool raw)
{
    if (raw)
        ms_strbuf_printf(sb, "<%u>", (unsigned)r->facility << 3 | r->level);
    ms_strbuf_printf(sb, "[%5llu.%06llu] ", (unsigned long long)(r->ts_nsec / 1000000000ULL),
                     (unsigned long long)(r->ts_nsec % 1000000000ULL / 1000));
}

/* A byte printed as itself: crash's log shows only printable ASCII; the
 * others escape control characters as /dev/kmsg does. */
static bool plain_byte(unsigned char c, bool crash)
{
    if (c == '\t')
        return true;
    return crash ? (c >= 0x20 && c < 0x7f) : c >= 0x20;
}

void ms_dmesg_format(const struct ms_printk_log *log, const struct ms_dmesg_opts *opts,
                     struct ms_strbuf *sb)
{
    for (size_t i = 0; i < log->count; i++) {
        const struct ms_printk_record *r = &log->recs[i];
        if (opts->max_level >= 0 && r->level > opts->max_level)
            continue;
        const char *t = log->text + r->text_off;
        size_t n = r->text_len;
        size_t start = sb->len;
        put_prefix(sb, r, opts->style == MS_DMESG_RAW);
        size_t plen = sb->len - start;
        bool crash = opts->style == MS_DMESG_CRASH;
        for (size_t k = 0; k < n; k++) {
            /* Most text needs no escaping: copy such runs whole (a 16 MiB
             * ring spent most of its time here byte by byte). */
            size_t run = k;
            while (run < n && plain_byte((unsigned char)t[run], crash))
                run++;
            if (run > k) {
                ms_strbuf_append(sb, t + k, run - k);
                k = run - 1;
                continue;
            }
            unsigned char c = (unsigned char)t[k];
            if (c == '\n') {
                if (k + 1 == n)
                    break;
                ms_strbuf_putc(sb, '\n');
                if (crash)
                    ms_strbuf_printf(sb, "%*s", (int)plen, "");
                else
                    put_prefix(sb, r, opts->style == MS_DMESG_RAW);
            } else if (crash) {
                ms_strbuf_putc(sb, '.');
            } else {
                ms_strbuf_printf(sb, "\\x%02x", c); /* as /dev/kmsg escapes them */
            }
        }
        ms_strbuf_putc(sb, '\n');
    }
}

void ms_dmesg_follow_step(const struct ms_printk_log *log, struct ms_dmesg_cursor *c, size_t *first,
                          size_t *end, uint64_t *lost)
{
    *first = *end = 0;
    *lost = 0;
    size_t n = log->count;
    if (c->started && n && log->recs[n - 1].seq + 1 < c->next_seq)
        c->started = false; /* a new boot numbers from 0 again */
    if (!c->started) {
        c->started = true;
        c->stalls = 0;
        c->next_seq = n ? log->recs[0].seq : log->has_tail_seq ? log->tail_seq : 0;
    }
    size_t i = 0;
    while (i < n && log->recs[i].seq < c->next_seq)
        i++;
    if (log->has_tail_seq && c->next_seq < log->tail_seq) {
        *lost = log->tail_seq - c->next_seq; /* overwritten before it was read */
        c->next_seq = log->tail_seq;
    }
    if (i < n && log->recs[i].seq > c->next_seq) {
        if (c->stall_seq != c->next_seq) {
            c->stall_seq = c->next_seq;
            c->stalls = 0;
        }
        if (++c->stalls <= MS_DMESG_STALL_MAX) {
            *first = *end = i;
            return;
        }
        *lost += log->recs[i].seq - c->next_seq;
        c->next_seq = log->recs[i].seq;
    }
    *first = i;
    while (i < n && log->recs[i].seq == c->next_seq) {
        c->next_seq++;
        i++;
    }
    *end = i;
}
