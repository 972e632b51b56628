/* Fuzzes the server's request handler: the input is a stream of frames
 * (headers and payloads as a client could send them) run against a target
 * over a small RAM image holding 4-level page tables and a VMCOREINFO, as
 * the server does per client. The RAM is 256 KiB so that a kernel search
 * (DMESG, SYMBOL) scans it in microseconds; the targets (one per mode) are
 * opened once and flushed after each input, as a server's would be. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../support/kimage.h"
#include "service.h"
#include "wire.h"

#define RAM_SIZE (256u << 10)

static char ram_path[64], map_path[64]; /* the RAM; a System.map for the kernel below */
static struct ms_target *targets[4];    /* [writable | symbols << 1] */
/* The RAM as built, put back after an input that could write: each input
 * starts from the same memory, so a crash reproduces from its own file. */
static int ram_fd = -1;
static uint8_t pristine[RAM_SIZE];

/* A kernel for DMESG/SYMBOL/ADDRSYM: init_top_pgt is the tree at 0x1000, and
 * `prb` is at VA 0 (PA 0x5000), where a WRITE can put a ring. */
static const char vmcoreinfo[] =
    "OSRELEASE=6.1.0-fuzz\nPAGESIZE=4096\nKERNELOFFSET=0\n"
    "SYMBOL(init_top_pgt)=ffffffff80001000\nSYMBOL(prb)=0\n"
    "NUMBER(phys_base)=0\nNUMBER(pgtable_l5_enabled)=0\n" KIMG_PRB_LAYOUT;

/* A RAM whose first pages hold a tiny page-table tree (CR3 0x1000), so that
 * SPACE/TRANSLATE/READ/PTDUMP requests reach real walks, and the kernel
 * above. */
static void make_ram(void)
{
    int fd = memfd_create("fuzz_service", 0);
    if (fd < 0 || ftruncate(fd, RAM_SIZE) != 0)
        abort();
    uint64_t e[4] = {0x2000 | 0x67, 0x3000 | 0x67, 0x4000 | 0x67, 0x5000 | 0x63};
    for (unsigned i = 0; i < 4; i++)
        if (pwrite(fd, &e[i], 8, 0x1000 * (i + 1)) != 8)
            abort();
    if (pwrite(fd, vmcoreinfo, sizeof(vmcoreinfo) - 1, 0x30000) != sizeof(vmcoreinfo) - 1)
        abort();
    snprintf(ram_path, sizeof(ram_path), "/proc/self/fd/%d", fd);
    ram_fd = fd;
    if (pread(fd, pristine, RAM_SIZE, 0) != RAM_SIZE)
        abort();
    static const char map[] = "0000000000000000 D prb\n"
                              "ffffffff80000800 T _text\n"
                              "ffffffff80001000 D init_top_pgt\n";
    int mfd = memfd_create("fuzz_service_map", 0);
    if (mfd < 0 || pwrite(mfd, map, sizeof(map) - 1, 0) != sizeof(map) - 1)
        abort();
    snprintf(map_path, sizeof(map_path), "/proc/self/fd/%d", mfd);
    for (unsigned i = 0; i < 4; i++) {
        char map[64];
        snprintf(map, sizeof(map), "0:%u@0", RAM_SIZE);
        struct ms_target_opts o = {
            .ram = ram_path, .map = map, .writable = i & 1, .symbols = (i & 2) ? map_path : NULL};
        if (ms_target_open(&targets[i], &o, NULL) != 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!targets[0])
        make_ram();
    /* The first byte picks writable, token and symbol file modes. */
    if (size < 1)
        return 0;
    struct ms_target *t = targets[(data[0] & 1) | ((data[0] >> 1) & 2)];
    const char *token = (data[0] & 2) ? "tok" : NULL;
    data++, size--;
    struct ms_service svc;
    ms_service_init(&svc, t, token);
    struct ms_service_conn conn = {token == NULL};
    struct ms_wbuf out = {0};
    size_t pos = 0;
    while (size - pos >= MS_WIRE_HEADER) {
        /* Frames are taken as they come, with the magic and version forced
         * so the fuzzer spends its time in the payload decoders. */
        uint8_t hdr[MS_WIRE_HEADER];
        memcpy(hdr, data + pos, sizeof(hdr));
        uint32_t magic = MS_WIRE_MAGIC;
        uint16_t version = MS_WIRE_VERSION;
        memcpy(hdr, &magic, 4);
        memcpy(hdr + 4, &version, 2);
        struct ms_wire_header h;
        if (ms_wire_parse_header(hdr, &h, NULL) != 0)
            abort();
        pos += MS_WIRE_HEADER;
        if (h.length > size - pos)
            h.length = (uint32_t)(size - pos);
        /* The payload must be its own allocation so ASan sees overreads. */
        uint8_t *payload = malloc(h.length ? h.length : 1);
        memcpy(payload, data + pos, h.length);
        pos += h.length;
        struct ms_err err;
        size_t before = out.len;
        int rc = ms_service_request(&svc, &conn, &h, payload, &out, &err);
        free(payload);
        if (rc == 0 && out.len < before + MS_WIRE_HEADER + 4)
            abort(); /* every answered request has a header and a status */
        if (rc != 0)
            break; /* the server drops such a client */
        if (out.len > (64u << 20))
            out.len = 0;
    }
    ms_wbuf_free(&out);
    if (t == targets[1] || t == targets[3]) {
        if (pwrite(ram_fd, pristine, RAM_SIZE, 0) != RAM_SIZE)
            abort();
    }
    ms_target_flush(t, NULL);
    return 0;
}
