/* Fuzzes the gdbserver's packet handling (memsrv/gdbserver.c) over a
 * synthetic source: a few tasks (an idle one, pid 0, among them), registers
 * known or not, memory readable in part. Byte 0: bit 0 makes the task list
 * fail (one thread, no registers), bit 1 feeds the rest straight to the
 * packet handler as one payload, bits 4-7 pick the chunk size the stream
 * is fed in (1..16). Every reply must frame as a packet that decodes back
 * (acks aside), and nothing may crash or leak. */
#include <stdlib.h>
#include <string.h>

#include "gdbserver.h"
#include "rsp.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool fail_tasks;

static int fake_tasks(void *arg, struct ms_task **tasks, size_t *count, struct ms_err *err)
{
    (void)arg;
    if (fail_tasks)
        return ms_err_set(err, MS_ENOTFOUND, "no kernel here");
    static const int32_t pids[] = {0, 1, 2, 0x7fffffff, 0};
    size_t n = sizeof(pids) / sizeof(pids[0]);
    *tasks = calloc(n, sizeof(**tasks));
    if (!*tasks)
        return ms_err_set(err, MS_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        (*tasks)[i].pid = pids[i];
        (*tasks)[i].addr = 0xffff888000000000ull + 0x1000 * i;
        memset((*tasks)[i].comm, i == 3 ? 0xff : 'a' + (int)i, 16); /* no NUL, non-ASCII */
    }
    *count = n;
    return 0;
}

static int fake_regs(void *arg, const struct ms_task *task, struct ms_task_regs *out,
                     struct ms_err *err)
{
    (void)arg;
    memset(out, 0, sizeof(*out));
    if (task->pid == 2)
        return ms_err_set(err, MS_EUNMAPPED, "stack unmapped");
    out->source = task->pid == 1 ? MS_REGS_CPU : MS_REGS_FRAME;
    for (unsigned r = 0; r < MS_REG_COUNT; r++)
        out->regs.v[r] = task->addr * (r + 1);
    out->regs.valid = task->pid == 1 ? ~0ull : 0x1f0c0ull;
    return 0;
}

/* Readable: [0x1000, 0x3000) and anything above 2^63 up to 100 bytes. */
static int fake_read(void *arg, uint64_t addr, void *buf, size_t len, size_t *done,
                     struct ms_err *err)
{
    (void)arg;
    size_t ok = 0;
    if (addr >= 0x1000 && addr < 0x3000)
        ok = 0x3000 - addr < len ? (size_t)(0x3000 - addr) : len;
    else if (addr >> 63)
        ok = len < 100 ? len : 100;
    memset(buf, 0xa5, ok);
    *done = ok;
    return ok == len ? 0
                     : ms_err_set(err, MS_EUNMAPPED, "unmapped at 0x%llx",
                                  (unsigned long long)(addr + ok));
}

/* Every '$' frame in out decodes as a packet. */
static void check_frames(const struct ms_strbuf *out)
{
    static uint8_t buf[MS_GDB_PACKET_MAX * 2 + 1];
    struct ms_rsp_decoder d;
    ms_rsp_decoder_init(&d, buf, sizeof(buf) - 1);
    size_t used = 0;
    while (used < out->len) {
        enum ms_rsp_event ev;
        size_t n = ms_rsp_decode(&d, (const uint8_t *)out->data + used, out->len - used, &ev);
        if (n == 0 || ev == MS_RSP_BAD_CHECKSUM || ev == MS_RSP_MALFORMED || ev == MS_RSP_TOO_LONG)
            abort();
        used += n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    fail_tasks = data[0] & 1;
    struct ms_gdb_source src = {NULL, fake_tasks, fake_regs, fake_read};
    struct ms_gdbserver *g;
    if (ms_gdbserver_new(&g, &src, NULL))
        return 0;
    struct ms_strbuf out;
    ms_strbuf_init(&out);
    if (data[0] & 2) {
        ms_gdbserver_packet(g, data + 1, size - 1, &out);
    } else {
        size_t chunk = (size_t)(data[0] >> 4) + 1;
        for (size_t at = 1; at < size; at += chunk) {
            size_t n = size - at < chunk ? size - at : chunk;
            bool ended = ms_gdbserver_input(g, data + at, n, &out);
            if (ended)
                break;
        }
        check_frames(&out);
    }
    ms_strbuf_free(&out);
    ms_gdbserver_free(g);
    return 0;
}
