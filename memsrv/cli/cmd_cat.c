#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* The exit status of a file read whole but with pages not in the page
 * cache (zeros in their place). */
#define CAT_PARTIAL 3

struct holes {
    const char *path;
    uint64_t offset, len; /* the range not yet printed (len 0: none) */
    uint64_t total;
};

static void hole_flush(struct holes *h)
{
    if (h->len)
        fprintf(stderr,
                "memsrv: cat: %s: bytes %llu-%llu (%llu) not in the page cache: zeros in the "
                "output\n",
                h->path, (unsigned long long)h->offset,
                (unsigned long long)(h->offset + h->len - 1), (unsigned long long)h->len);
    h->len = 0;
}

static void hole_add(struct holes *h, const struct ms_file_hole *x)
{
    if (h->len && h->offset + h->len == x->offset) {
        h->len += x->len;
    } else {
        hole_flush(h);
        h->offset = x->offset;
        h->len = x->len;
    }
    h->total += x->len;
}

int cmd_cat(struct cli *cli, int argc, char **argv)
{
    if (argc != 2 || argv[1][0] != '/')
        return cli_usage("usage: cat /PATH");
    if (cli_open(cli))
        return cli_fail(cli);
    const char *path = argv[1];
    uint8_t *buf = malloc(MS_FILE_READ_MAX);
    struct ms_file_chunk *chunk = malloc(sizeof(*chunk));
    if (!buf || !chunk) {
        free(buf);
        free(chunk);
        fprintf(stderr, "memsrv: cat: out of memory\n");
        return 1;
    }
    struct holes holes = {path, 0, 0, 0};
    int rc = 0;
    uint64_t size = 0, off = 0;
    bool first = true;
    /* The size of the first answer is the file's: a file that changes
     * under a running guest fails rather than printing a mix. */
    while (first || off < size) {
        size_t want = first || size - off > MS_FILE_READ_MAX ? MS_FILE_READ_MAX : size - off;
        rc = ms_target_file_read(cli->t, cli->h, path, off, buf, want, chunk, &cli->err);
        if (rc < 0)
            break;
        if (first)
            size = chunk->size;
        else if (chunk->size != size)
            rc = ms_err_set(&cli->err, MS_EFORMAT, "%s: its size changed from %llu to %llu", path,
                            (unsigned long long)size, (unsigned long long)chunk->size);
        if (rc == 0 && chunk->len != (size - off < want ? size - off : want))
            rc = ms_err_set(&cli->err, MS_EPROTO, "%s: %llu bytes at %llu, %zu asked", path,
                            (unsigned long long)chunk->len, (unsigned long long)off, want);
        if (rc < 0)
            break;
        first = false;
        for (unsigned i = 0; i < chunk->nholes; i++)
            hole_add(&holes, &chunk->holes[i]);
        if (fwrite(buf, 1, chunk->len, stdout) != chunk->len) {
            rc = ms_err_set(&cli->err, MS_EIO, "writing the output failed");
            break;
        }
        off += chunk->len;
    }
    hole_flush(&holes);
    free(buf);
    free(chunk);
    if (fflush(stdout) != 0 && rc == 0)
        rc = ms_err_set(&cli->err, MS_EIO, "writing the output failed");
    if (rc < 0)
        return cli_fail(cli);
    if (holes.total) {
        fprintf(stderr,
                "memsrv: cat: %s: %llu of %llu bytes not in the page cache (output partial)\n",
                path, (unsigned long long)holes.total, (unsigned long long)size);
        return CAT_PARTIAL;
    }
    return 0;
}
