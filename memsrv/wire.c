#include "error.h"
#include "wire.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

void ms_wbuf_free(struct ms_wbuf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

uint8_t *ms_wbuf_grow(struct ms_wbuf *b, size_t n)
{
    if (b->failed)
        return NULL;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *d = realloc(b->data, cap);
        if (!d) {
            b->failed = true;
            return NULL;
        }
        b->data = d;
        b->cap = cap;
    }
    uint8_t *p = b->data + b->len;
    b->len += n;
    return p;
}

void ms_wbuf_put(struct ms_wbuf *b, const void *p, size_t n)
{
    uint8_t *d = ms_wbuf_grow(b, n);
    if (d && n)
        memcpy(d, p, n);
}

/* The protocol is little-endian, like every host this runs on (x86-64):
 * values are copied as they are. */
void ms_wbuf_u8(struct ms_wbuf *b, uint8_t v)
{
    ms_wbuf_put(b, &v, 1);
}
void ms_wbuf_u16(struct ms_wbuf *b, uint16_t v)
{
    ms_wbuf_put(b, &v, 2);
}
void ms_wbuf_u32(struct ms_wbuf *b, uint32_t v)
{
    ms_wbuf_put(b, &v, 4);
}
void ms_wbuf_u64(struct ms_wbuf *b, uint64_t v)
{
    ms_wbuf_put(b, &v, 8);
}

void ms_wbuf_str(struct ms_wbuf *b, const char *s, size_t n)
{
    ms_wbuf_u32(b, (uint32_t)n);
    ms_wbuf_put(b, s, n);
}

size_t ms_wbuf_begin_frame(struct ms_wbuf *b)
{
    size_t at = b->len;
    uint8_t zero[MS_WIRE_HEADER] = {0};
    ms_wbuf_put(b, zero, sizeof(zero));
    return at;
}

void ms_wbuf_end_frame(struct ms_wbuf *b, size_t at, uint16_t op, uint32_t id)
{
    if (b->failed)
        return;
    struct ms_wire_header h = {MS_WIRE_MAGIC, MS_WIRE_VERSION, op, id,
                               (uint32_t)(b->len - at - MS_WIRE_HEADER)};
    memcpy(b->data + at, &h.magic, 4);
    memcpy(b->data + at + 4, &h.version, 2);
    memcpy(b->data + at + 6, &h.op, 2);
    memcpy(b->data + at + 8, &h.id, 4);
    memcpy(b->data + at + 12, &h.length, 4);
}

static bool take(struct ms_rbuf *r, void *v, size_t n)
{
    if (r->bad || r->len - r->pos < n) {
        r->bad = true;
        return false;
    }
    memcpy(v, r->p + r->pos, n);
    r->pos += n;
    return true;
}

bool ms_rbuf_u8(struct ms_rbuf *r, uint8_t *v)
{
    return take(r, v, 1);
}
bool ms_rbuf_u16(struct ms_rbuf *r, uint16_t *v)
{
    return take(r, v, 2);
}
bool ms_rbuf_u32(struct ms_rbuf *r, uint32_t *v)
{
    return take(r, v, 4);
}
bool ms_rbuf_u64(struct ms_rbuf *r, uint64_t *v)
{
    return take(r, v, 8);
}

const uint8_t *ms_rbuf_bytes(struct ms_rbuf *r, size_t n)
{
    if (r->bad || r->len - r->pos < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p + r->pos;
    r->pos += n;
    return p;
}

bool ms_rbuf_str(struct ms_rbuf *r, const char **s, uint32_t *n)
{
    if (!ms_rbuf_u32(r, n))
        return false;
    *s = (const char *)ms_rbuf_bytes(r, *n);
    return *s != NULL;
}

int ms_wire_parse_header(const uint8_t *p, struct ms_wire_header *h, struct ms_err *err)
{
    memcpy(&h->magic, p, 4);
    memcpy(&h->version, p + 4, 2);
    memcpy(&h->op, p + 6, 2);
    memcpy(&h->id, p + 8, 4);
    memcpy(&h->length, p + 12, 4);
    if (h->magic != MS_WIRE_MAGIC)
        return ms_err_set(err, MS_EPROTO, "bad frame magic 0x%08x (not a memsrv peer?)", h->magic);
    if (h->version != MS_WIRE_VERSION)
        return ms_err_set(err, MS_EPROTO, "protocol version %u, this side speaks %u", h->version,
                          MS_WIRE_VERSION);
    return 0;
}

int ms_wire_split_hostport(const char *spec, char *host, size_t host_size, const char **port,
                           struct ms_err *err)
{
    const char *colon = strrchr(spec, ':');
    if (!colon || (size_t)(colon - spec) >= host_size || colon[1] == '\0')
        return ms_err_set(err, MS_EINVAL, "want HOST:PORT, not '%s'", spec);
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    *port = colon + 1;
    return 0;
}

int ms_wire_unix_addr(struct sockaddr_un *sa, const char *path, struct ms_err *err)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path))
        return ms_err_set(err, MS_EINVAL, "socket path too long (%zu bytes at most): %s",
                          sizeof(sa->sun_path) - 1, path);
    strcpy(sa->sun_path, path);
    return 0;
}
