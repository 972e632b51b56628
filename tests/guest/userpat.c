/* A user process with known memory contents, for user-page tests.
 * Maps PAGES anonymous pages (no huge pages), fills them with a pattern the
 * tests can recompute, prints each page's VA and its physical address from
 * /proc/self/pagemap to the kernel log, writes one marker to /dev/kmsg, then
 * either spins (so a stopped vCPU is most likely in this process, with its
 * CR3 loaded) or sleeps.
 *
 * Pattern: the first 64 bytes of page i hold "USERPAT-PAGE-<i>-PID-<pid>"
 * (NUL padded); every other 8-byte word at VA v holds v * 0x9E3779B97F4A7C15.
 *
 * Usage: userpat spin|sleep */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGES 16
#define PAGE 4096UL

static void kmsg(const char *text)
{
    int fd = open("/dev/kmsg", O_WRONLY);
    if (fd >= 0) {
        if (write(fd, text, strlen(text)) < 0) { /* best effort */
        }
        close(fd);
    }
    printf("%s\n", text);
    fflush(stdout);
}

static uint64_t phys_of(int pm, uintptr_t va)
{
    uint64_t e = 0;
    if (pread(pm, &e, 8, (off_t)(va / PAGE) * 8) != 8 || !(e >> 63))
        return 0;
    return (e & ((1ULL << 55) - 1)) * PAGE + (va % PAGE);
}

int main(int argc, char **argv)
{
    int spin = argc > 1 && strcmp(argv[1], "spin") == 0;
    uint8_t *mem =
        mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        perror("userpat: mmap");
        return 1;
    }
    madvise(mem, PAGES * PAGE, MADV_NOHUGEPAGE);
    mlock(mem, PAGES * PAGE); /* keep the pages where pagemap said they are */
    for (unsigned i = 0; i < PAGES; i++) {
        uint64_t *w = (uint64_t *)(mem + i * PAGE);
        for (unsigned k = 0; k < PAGE / 8; k++)
            w[k] = (uint64_t)(uintptr_t)&w[k] * 0x9E3779B97F4A7C15ULL;
        memset(mem + i * PAGE, 0, 64);
        snprintf((char *)mem + i * PAGE, 64, "USERPAT-PAGE-%u-PID-%d", i, (int)getpid());
    }
    int pm = open("/proc/self/pagemap", O_RDONLY);
    char line[256];
    snprintf(line, sizeof line, "lab: userpat pid=%d va=0x%lx pages=%d mode=%s", (int)getpid(),
             (unsigned long)(uintptr_t)mem, PAGES, spin ? "spin" : "sleep");
    kmsg(line);
    for (unsigned i = 0; i < PAGES; i++) {
        uintptr_t va = (uintptr_t)mem + i * PAGE;
        snprintf(line, sizeof line, "lab: userpat page=%u va=0x%lx phys=0x%llx", i,
                 (unsigned long)va, (unsigned long long)phys_of(pm, va));
        kmsg(line);
    }
    /* Built at run time: the literal is not in this binary. */
    volatile int n = 4000;
    snprintf(line, sizeof line, "lab: marker USERPAT%c%s-%d", '-', "KMSG", n + 321);
    kmsg(line);
    close(open("/tmp/userpat.ready", O_WRONLY | O_CREAT, 0644));
    if (spin) {
        volatile uint64_t sum = 0;
        for (;;)
            for (unsigned i = 0; i < PAGES * PAGE / 8; i += 61)
                sum += ((volatile uint64_t *)mem)[i];
    }
    for (;;)
        pause();
}
