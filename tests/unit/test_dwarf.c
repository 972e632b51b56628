/* DWARF struct layouts read from this test binary's own debug info (built
 * with -g): nested structs, typedefs, anonymous members, bitfields, arrays;
 * the cache file; and the zstd-compressed-sections refusal. */
#include <stddef.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "progress.h"
#include "dwarf.h"

typedef struct {
    long counter;
} memsrv_test_atomic_t;

struct memsrv_test_info {
    unsigned long long seq;
    unsigned long long ts_nsec;
    unsigned short text_len;
    unsigned char facility;
    unsigned char flags : 5;
    unsigned char level : 3;
    unsigned int caller_id;
};

struct memsrv_test_task {
    int pad;
    union {
        int a;
        struct {
            long b;
            memsrv_test_atomic_t inner;
        };
    };
    const volatile memsrv_test_atomic_t head_id;
    char comm[16];
    struct memsrv_test_info info[3];
    struct memsrv_test_task *parent;
};

typedef struct memsrv_test_task memsrv_test_task_t;

/* Keep the types in the binary's DWARF. */
volatile memsrv_test_task_t memsrv_test_task_var;
volatile struct memsrv_test_info memsrv_test_info_var;

static char self[4096];

static void test_layouts(void)
{
    struct ms_typedb db;
    ms_typedb_init(&db);
    struct ms_err err;
    static const char *const want[] = {"memsrv_test_task", "memsrv_test_info",
                                       "memsrv_test_atomic_t", NULL};
    struct seen_progress sp = {0};
    int rc = ms_dwarf_scan_types(&db, self, want, on_progress, &sp, &err);
    CHECK(rc == 0, "scan: %s", err.msg);
    /* Our own CUs are not among the kernel's hinted ones: the full pass
     * runs and reports over .debug_info, ending at its size. */
    CHECK(sp.calls >= 2 && sp.first == 0 && sp.backwards == 0 && sp.total > 0 &&
              sp.last == sp.total && !strcmp(sp.what, "DWARF types"),
          "progress: %u calls, %llu..%llu of %llu, %u backwards, %s", sp.calls,
          (unsigned long long)sp.first, (unsigned long long)sp.last, (unsigned long long)sp.total,
          sp.backwards, sp.what);
    uint64_t v;
#define OFF(t, m, want_)                                                                           \
    CHECK(ms_typedb_offset(&db, #t, #m, &v, &err) == 0 && v == (want_), #t "." #m ": %llu vs %zu", \
          (unsigned long long)v, (size_t)(want_))
    OFF(memsrv_test_task, pad, offsetof(struct memsrv_test_task, pad));
    OFF(memsrv_test_task, a, offsetof(struct memsrv_test_task, a));
    OFF(memsrv_test_task, b, offsetof(struct memsrv_test_task, b));
    OFF(memsrv_test_task, inner, offsetof(struct memsrv_test_task, inner));
    OFF(memsrv_test_task, head_id, offsetof(struct memsrv_test_task, head_id));
    OFF(memsrv_test_task, comm, offsetof(struct memsrv_test_task, comm));
    OFF(memsrv_test_task, info, offsetof(struct memsrv_test_task, info));
    OFF(memsrv_test_task, parent, offsetof(struct memsrv_test_task, parent));
    OFF(memsrv_test_info, caller_id, offsetof(struct memsrv_test_info, caller_id));
    OFF(memsrv_test_info, facility, offsetof(struct memsrv_test_info, facility));
    OFF(memsrv_test_atomic_t, counter, 0);
    CHECK(ms_typedb_size(&db, "memsrv_test_task", &v, &err) == 0 &&
              v == sizeof(struct memsrv_test_task),
          "sizeof task %llu", (unsigned long long)v);
    CHECK(ms_typedb_size(&db, "memsrv_test_atomic_t", &v, &err) == 0 && v == 8, "typedef size");
    const struct ms_typedb_entry *e = ms_typedb_get(&db, "memsrv_test_info.level");
    CHECK(e && e->bit_size == 3 && e->bit_offset == 19 * 8 + 5, "level bitfield %u/%u",
          e ? e->bit_offset : 0, e ? e->bit_size : 0);
    e = ms_typedb_get(&db, "memsrv_test_task.comm");
    CHECK(e && e->member_size == 16, "comm size %llu", e ? (unsigned long long)e->member_size : 0);
    e = ms_typedb_get(&db, "memsrv_test_task.info");
    CHECK(e && e->member_size == 3 * sizeof(struct memsrv_test_info), "array size %llu",
          e ? (unsigned long long)e->member_size : 0);
    static const char *const none[] = {"memsrv_no_such_struct", NULL};
    CHECK(ms_dwarf_scan_types(&db, self, none, NULL, NULL, &err) == MS_ENOTFOUND &&
              strstr(err.msg, "memsrv_no_such_struct"),
          "missing struct: %s", err.msg);
    ms_typedb_free(&db);
}

static void test_cache_and_zstd(void)
{
    char dir[] = "/tmp/test_dwarf_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char copy[4200], cmd[9000], beside[4300], cache[4300];
    snprintf(copy, sizeof(copy), "%s/vmlinux", dir);
    snprintf(beside, sizeof(beside), "%s.memsrv-types", copy);
    snprintf(cache, sizeof(cache), "%s/cache", dir);
    CHECK(mkdir(cache, 0700) == 0, "cache dir");
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", self, copy);
    CHECK(system(cmd) == 0, "copy");
    struct ms_typedb db;
    ms_typedb_init(&db);
    struct ms_err err;
    static const char *const want[] = {"memsrv_test_info", NULL};
    CHECK(ms_dwarf_load_types(&db, copy, want, cache, NULL, NULL, &err) == 0, "load: %s", err.msg);
    struct stat sb;
    CHECK(stat(copy, &sb) == 0, "stat");
    char cached[4400];
    snprintf(cached, sizeof(cached), "%s/memsrv-types-vmlinux-%lld-%lld", cache,
             (long long)sb.st_size, (long long)sb.st_mtime);
    CHECK(stat(cached, &sb) == 0 && sb.st_size > 0, "cache file written in the cache dir");
    CHECK(stat(beside, &sb) != 0, "nothing written beside the vmlinux");
    ms_typedb_free(&db);
    ms_typedb_init(&db);
    CHECK(ms_dwarf_load_types(&db, copy, want, cache, NULL, NULL, &err) == 0 &&
              strstr(db.source, "cached"),
          "second load from cache: %s / %s", err.msg, db.source);
    uint64_t v;
    CHECK(ms_typedb_offset(&db, "memsrv_test_info", "caller_id", &v, &err) == 0 && v == 20,
          "cached value");
    ms_typedb_free(&db);
    /* zstd-compressed debug sections: an error, not an empty answer */
    snprintf(cmd, sizeof(cmd), "objcopy --compress-debug-sections=zstd '%s' '%s.z' 2>/dev/null",
             self, copy);
    if (system(cmd) == 0) {
        char z[4300];
        snprintf(z, sizeof(z), "%s.z", copy);
        ms_typedb_init(&db);
        CHECK(ms_dwarf_scan_types(&db, z, want, NULL, NULL, &err) == MS_EFORMAT &&
                  strstr(err.msg, "zstd"),
              "zstd: %d %s", err.code, err.msg);
        ms_typedb_free(&db);
        unlink(z);
    } else {
        CHECK(0, "objcopy cannot write zstd sections here: the refusal is untested");
    }
    /* zlib-compressed sections are inflated by libdwarf: same answer */
    snprintf(cmd, sizeof(cmd), "objcopy --compress-debug-sections=zlib-gabi '%s' '%s.zl'", self,
             copy);
    CHECK(system(cmd) == 0, "objcopy zlib-gabi");
    char zl[4300];
    snprintf(zl, sizeof(zl), "%s.zl", copy);
    ms_typedb_init(&db);
    CHECK(ms_dwarf_scan_types(&db, zl, want, NULL, NULL, &err) == 0, "zlib: %s", err.msg);
    CHECK(ms_typedb_offset(&db, "memsrv_test_info", "caller_id", &v, &err) == 0 && v == 20,
          "zlib value");
    ms_typedb_free(&db);
    unlink(zl);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
}

int main(void)
{
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return 1;
    self[n] = '\0';
    memsrv_test_task_var.pad = 1;
    memsrv_test_info_var.seq = 1;
    test_layouts();
    test_cache_and_zstd();
    return check_done("test_dwarf");
}
