/* Server round trips: an 8-byte read in-process (the library call), over the
 * UNIX socket and over TCP loopback (p50/p99 latency), batched reads per
 * second, and 1/8/64 concurrent clients. The server runs in this process's
 * thread; clients are threads. Prints each against the in-process call. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../tests/support/image.h"
#include "memsrv.h"
#include "server.h"

#define RAM (64u << 20)
#define SAMPLES 20000

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct server_thread {
    struct ms_server *srv;
    int stop[2];
};

static void *serve(void *arg)
{
    struct server_thread *st = arg;
    ms_server_run(st->srv, st->stop[0], NULL);
    return NULL;
}

/* c: a target (in-process or a server's client). */
static double latency(const char *label, struct ms_target *c, double base_p50)
{
    static double t[SAMPLES];
    uint64_t v;
    for (int i = 0; i < SAMPLES; i++) {
        uint64_t addr = ((uint64_t)rand() % (RAM / 8)) * 8;
        double t0 = now_ns();
        int rc = ms_target_read(c, 0, addr, &v, 8, NULL, NULL);
        t[i] = now_ns() - t0;
        if (rc) {
            fprintf(stderr, "bench: read failed\n");
            exit(1);
        }
    }
    qsort(t, SAMPLES, sizeof(t[0]), cmp_double);
    double p50 = t[SAMPLES / 2], p99 = t[SAMPLES * 99 / 100];
    printf("  %-22s p50 %8.2f us  p99 %8.2f us", label, p50 / 1e3, p99 / 1e3);
    if (base_p50 > 0)
        printf("   (%.0fx the in-process p50)", p50 / base_p50);
    printf("\n");
    return p50;
}

/* 8-byte reads per second: 4096 per ms_target_readv (one request to a
 * server), or one ms_target_read each when one_by_one. */
static double batched(struct ms_target *c, bool one_by_one)
{
    enum { N = 4096 };
    static uint64_t addrs[N], vals[N];
    static uint32_t lens[N];
    static void *bufs[N];
    static int st[N];
    static size_t done[N];
    for (int i = 0; i < N; i++) {
        addrs[i] = ((uint64_t)rand() % (RAM / 8)) * 8;
        lens[i] = 8;
        bufs[i] = &vals[i];
    }
    double t0 = now_ns();
    int rounds = 50;
    for (int r = 0; r < rounds; r++) {
        if (!one_by_one && ms_target_readv(c, 0, N, addrs, lens, bufs, st, done, NULL) != 0)
            exit(1);
        for (int i = 0; one_by_one && i < N; i++)
            if (ms_target_read(c, 0, addrs[i], bufs[i], 8, NULL, NULL) != 0)
                exit(1);
    }
    return rounds * (double)N / ((now_ns() - t0) / 1e9);
}

#define LOAD_REQUESTS 40000 /* per concurrency level, shared by the clients */

struct load {
    const char *address, *token;
    int reads;
    double *lat; /* this client's latencies, ns */
};

static void *load_client(void *arg)
{
    struct load *l = arg;
    struct ms_target *c;
    struct ms_target_opts o = {.connect = l->address, .token = l->token};
    if (ms_target_open(&c, &o, NULL) != 0)
        exit(1);
    uint64_t v;
    for (int i = 0; i < l->reads; i++) {
        double t0 = now_ns();
        if (ms_target_read(c, 0, ((uint64_t)i * 4096) % RAM, &v, 8, NULL, NULL) != 0)
            exit(1);
        l->lat[i] = now_ns() - t0;
    }
    ms_target_close(c);
    return NULL;
}

/* `clients` threads share LOAD_REQUESTS reads; prints total req/s and the
 * p50/p99 of every request's round trip. */
static void concurrent(const char *label, const char *address, const char *token, int clients)
{
    static double lat[LOAD_REQUESTS];
    pthread_t th[64];
    struct load l[64];
    int per = LOAD_REQUESTS / clients;
    double t0 = now_ns();
    for (int i = 0; i < clients; i++) {
        l[i] = (struct load){address, token, per, lat + (size_t)i * per};
        pthread_create(&th[i], NULL, load_client, &l[i]);
    }
    for (int i = 0; i < clients; i++)
        pthread_join(th[i], NULL);
    double secs = (now_ns() - t0) / 1e9;
    int n = per * clients;
    qsort(lat, (size_t)n, sizeof(lat[0]), cmp_double);
    printf("  %-14s %3d %12.0f %10.2f %10.2f\n", label, clients, n / secs, lat[n / 2] / 1e3,
           lat[(size_t)n * 99 / 100] / 1e3);
}

int main(void)
{
    struct img im;
    img_open(&im, RAM);
    char map[64];
    snprintf(map, sizeof(map), "0:%u@0", RAM);
    struct ms_target_opts lo = {.ram = im.path, .map = map};
    struct ms_target *local;
    struct ms_err err;
    if (ms_target_open(&local, &lo, &err) != 0) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    char sock[64];
    snprintf(sock, sizeof(sock), "/tmp/memsrv-bench.%d.sock", (int)getpid());
    const char *token = "bench";
    /* Two servers: UNIX without a token, TCP (which needs one). */
    struct ms_server_opts opts = {.socket_path = sock};
    struct server_thread su = {0}, stcp = {0};
    if (ms_server_new(&su.srv, local, &opts, &err) != 0) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    struct ms_server_opts topts = {.listen = "127.0.0.1:0", .token = token};
    if (ms_server_new(&stcp.srv, local, &topts, &err) != 0) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    char tcp[64];
    snprintf(tcp, sizeof(tcp), "tcp:127.0.0.1:%u", ms_server_tcp_port(stcp.srv));
    pthread_t tu, tt;
    if (pipe(su.stop) || pipe(stcp.stop))
        return 1;
    pthread_create(&tu, NULL, serve, &su);
    pthread_create(&tt, NULL, serve, &stcp);

    struct ms_target *cu, *ct;
    struct ms_target_opts uo = {.connect = sock}, to = {.connect = tcp, .token = token};
    if (ms_target_open(&cu, &uo, &err) || ms_target_open(&ct, &to, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    printf("8-byte read, one client, %d samples:\n", SAMPLES);
    double base = latency("in-process", local, 0);
    latency("UNIX socket", cu, base);
    latency("TCP loopback", ct, base);
    printf("batched 8-byte reads (4096 per request):\n");
    double in = batched(local, true);
    printf("  %-22s %10.2f M reads/s\n", "in-process calls", in / 1e6);
    double bu = batched(cu, false), bt = batched(ct, false);
    printf("  %-22s %10.2f M reads/s   (%.2fx in-process)\n", "UNIX socket", bu / 1e6, bu / in);
    printf("  %-22s %10.2f M reads/s   (%.2fx in-process)\n", "TCP loopback", bt / 1e6, bt / in);
    printf("concurrent clients, unbatched 8-byte reads (one server thread):\n");
    printf("  %-14s %3s %12s %10s %10s\n", "transport", "n", "req/s", "p50 us", "p99 us");
    for (int n = 1; n <= 64; n *= 8)
        concurrent("UNIX socket", sock, NULL, n);
    for (int n = 1; n <= 64; n *= 8)
        concurrent("TCP loopback", tcp, token, n);
    ms_target_close(cu);
    ms_target_close(ct);
    if (write(su.stop[1], "x", 1) != 1 || write(stcp.stop[1], "x", 1) != 1)
        return 1;
    pthread_join(tu, NULL);
    pthread_join(tt, NULL);
    ms_server_free(su.srv);
    ms_server_free(stcp.srv);
    ms_target_close(local);
    img_close(&im);
    return 0;
}
