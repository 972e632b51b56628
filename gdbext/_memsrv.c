/* _memsrv: the memsrv library for Python (GDB's embedded Python or
 * /usr/bin/python3), in-process or through a running `memsrv serve`. A thin
 * front: every walk, parse and format is the library's (or the server's);
 * this file only converts arguments, results and errors.
 *
 *   m = _memsrv.open(path, machine=None, map=None, writable=False)
 *   m = _memsrv.open_dump(path)
 *   m = _memsrv.connect(address, token=None)   # the same API, over the socket
 *   sp = m.space(cr3=None, levels=4, eptp=None, ncr3=None, npt_levels=4)
 *   sp.read(addr, n) -> bytes         sp.view(addr, n) -> memoryview
 *   sp.translate(addr) -> (phys, lower, page_size, perms, trace)
 *   sp.x(fmt, addr, symbolizer=None) -> str
 *   sp.enumerate(start, end) -> ([(addr, size, lower, perms), ...], bad_tables)
 *   sp.dmesg(style='plain', level=-1) -> str   # the kernel of sp's guest-physical level
 *   sp.symbol('name') -> addr    sp.symbol(addr) -> (name, offset)
 *   m.flush()
 *
 * In-process, the GIL is held throughout: spaces keep translation caches
 * that are not safe to share between threads, and symbolizers call back into
 * Python. Over a connection it is released around the socket I/O (a lock
 * keeps one request at a time on the connection). What the protocol does not
 * carry (view, enumerate, discover, regions, ...) raises MemsrvError. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "client.h"
#include "error.h"
#include "format.h"
#include "kernel.h"
#include "layout.h"
#include "pte.h"
#include "ram.h"
#include "report.h"
#include "space.h"
#include "strbuf.h"
/* The discover module (VMCB/HSAVE/vmcs12/EPT scan) comes from another branch;
 * Memory.discover() exists when it is in the library. */
#if defined(__has_include)
#if __has_include("discover.h")
#include "discover.h"
#define HAVE_DISCOVER 1
#endif
#endif

/* Largest single read(): guest memory is hostile input, and a typo in a
 * count should not try to allocate terabytes. */
#define MAX_READ ((Py_ssize_t)1 << 32)
/* Bytes per READ request over a connection: well under the server's 64 MiB
 * response limit, so larger reads go as several requests. */
#define REMOTE_READ_CHUNK ((size_t)16 << 20)

static PyObject *MemsrvError;

/* Raises MemsrvError(msg) with .code and .code_name; returns NULL. */
static PyObject *raise_err(const struct ms_err *err)
{
    int code = err->code ? err->code : MS_EINVAL;
    const char *msg = err->msg[0] ? err->msg : ms_code_name(code);
    PyObject *exc = PyObject_CallFunction(MemsrvError, "s", msg);
    if (!exc)
        return NULL;
    PyObject *c = PyLong_FromLong(code);
    PyObject *n = PyUnicode_FromString(ms_code_name(code));
    if (c && n) {
        PyObject_SetAttrString(exc, "code", c);
        PyObject_SetAttrString(exc, "code_name", n);
    }
    Py_XDECREF(c);
    Py_XDECREF(n);
    PyErr_SetObject(MemsrvError, exc);
    Py_DECREF(exc);
    return NULL;
}

/* Attaches attr=value to the pending MemsrvError (steals value). */
static void err_attach(const char *attr, PyObject *value)
{
    if (!value)
        return;
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb);
    PyErr_NormalizeException(&type, &exc, &tb);
    if (exc)
        PyObject_SetAttrString(exc, attr, value);
    Py_DECREF(value);
    PyErr_Restore(type, exc, tb);
}

/* An address or value: any int (or object with __index__) that fits in 64
 * bits; negative values are taken modulo 2**64 (GDB hands kernel addresses
 * to Python as signed numbers). */
static int u64_conv(PyObject *obj, void *out)
{
    PyObject *i = PyNumber_Index(obj);
    if (!i)
        return 0;
    unsigned long long v = PyLong_AsUnsignedLongLong(i);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        long long s = PyLong_AsLongLong(i);
        if (s == -1 && PyErr_Occurred()) {
            Py_DECREF(i);
            PyErr_SetString(PyExc_OverflowError, "value does not fit in 64 bits");
            return 0;
        }
        v = (unsigned long long)s;
    }
    Py_DECREF(i);
    *(uint64_t *)out = v;
    return 1;
}

/* Like u64_conv, but None leaves *out untouched and sets the flag byte
 * following it in struct opt_u64. */
struct opt_u64 {
    uint64_t value;
    int given;
};

static int opt_u64_conv(PyObject *obj, void *out)
{
    struct opt_u64 *o = out;
    if (obj == Py_None) {
        o->given = 0;
        return 1;
    }
    if (!u64_conv(obj, &o->value))
        return 0;
    o->given = 1;
    return 1;
}

/* ------------------------------------------------------------------ Memory */

/* A connection to `memsrv serve`. The lock lives as long as the Memory, so
 * that close() can take it while another thread is in a request. */
struct remote {
    struct ms_client client;
    PyThread_type_lock lock;
    bool closed; /* by close(); a lost connection stays open and fails */
};

typedef struct {
    PyObject_HEAD struct ms_ram *ram; /* in-process; NULL once closed */
    struct remote *remote;            /* connect(); NULL in-process */
    PyObject *path;                   /* the file, or the server's address */
    Py_ssize_t exports;               /* zero-copy views alive: close() waits for them */
} MemoryObject;

static PyTypeObject MemoryType;

static void remote_free(struct remote *r)
{
    ms_client_close(&r->client);
    if (r->lock)
        PyThread_free_lock(r->lock);
    PyMem_Free(r);
}

/* Around a client call: releases the GIL (other Python threads run during
 * the socket I/O) and takes the connection's lock (one request at a time).
 * No Python API between remote_begin and remote_end. */
static PyThreadState *remote_begin(struct remote *r)
{
    PyThreadState *ts = PyEval_SaveThread();
    PyThread_acquire_lock(r->lock, WAIT_LOCK);
    return ts;
}

static void remote_end(struct remote *r, PyThreadState *ts)
{
    PyThread_release_lock(r->lock);
    PyEval_RestoreThread(ts);
}

static int mem_check(MemoryObject *m)
{
    if (m->remote ? m->remote->closed : !m->ram) {
        PyErr_SetString(PyExc_ValueError, "memory is closed");
        return -1;
    }
    return 0;
}

/* The RAM of an in-process memory. NULL with MemsrvError over a connection:
 * the server holds the RAM, and its protocol does not carry `what`. */
static struct ms_ram *mem_ram(MemoryObject *m, const char *what)
{
    if (mem_check(m))
        return NULL;
    if (m->remote) {
        struct ms_err err = {0};
        const char *addr = PyUnicode_AsUTF8(m->path);
        ms_err_set(&err, MS_EINVAL,
                   "%s needs an in-process open (_memsrv.open or open_dump): this memory is "
                   "served by memsrv at %s, whose protocol does not carry it",
                   what, addr ? addr : "?");
        PyErr_Clear();
        raise_err(&err);
        return NULL;
    }
    return m->ram;
}

/* Takes ram or remote (freed on failure). */
static PyObject *mem_new(struct ms_ram *ram, struct remote *remote, const char *path)
{
    MemoryObject *m = PyObject_New(MemoryObject, &MemoryType);
    if (!m) {
        if (ram)
            ms_ram_close(ram);
        if (remote)
            remote_free(remote);
        return NULL;
    }
    m->ram = ram;
    m->remote = remote;
    m->exports = 0;
    m->path = PyUnicode_DecodeFSDefault(path);
    if (!m->path) {
        Py_DECREF(m);
        return NULL;
    }
    return (PyObject *)m;
}

static void mem_dealloc(MemoryObject *m)
{
    if (m->ram)
        ms_ram_close(m->ram);
    if (m->remote)
        remote_free(m->remote);
    Py_XDECREF(m->path);
    PyObject_Free(m);
}

/* The Memory for a RAM open() or open_dump() made (rc 0), or its error;
 * releases the converted path either way. */
static PyObject *opened(int rc, struct ms_ram *ram, PyObject *path_obj, const struct ms_err *err)
{
    PyObject *m = rc ? raise_err(err) : mem_new(ram, NULL, PyBytes_AS_STRING(path_obj));
    Py_DECREF(path_obj);
    return m;
}

static PyObject *mod_open(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"path", "machine", "map", "writable", NULL};
    PyObject *path_obj = NULL;
    const char *machine = NULL, *map = NULL;
    int writable = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|zzp:open", kwlist, PyUnicode_FSConverter,
                                     &path_obj, &machine, &map, &writable))
        return NULL;
    const char *path = PyBytes_AS_STRING(path_obj);
    struct ms_err err = {0};
    struct ms_layout layout;
    struct ms_ram *ram = NULL;
    int rc = 0;
    if (map && map[0]) {
        rc = ms_layout_parse_map(&layout, map, &err);
        if (rc == 0)
            rc = ms_layout_check(&layout, &err);
        if (rc)
            ms_err_prefix(&err, "--map %s: ", map);
    }
    if (rc == 0)
        rc = ms_ram_open_file(&ram, path, map && map[0] ? &layout : NULL, machine,
                              writable ? MS_RAM_WRITABLE : 0, &err);
    return opened(rc, ram, path_obj, &err);
}

static PyObject *mod_open_dump(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"path", "writable", NULL};
    PyObject *path_obj = NULL;
    int writable = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|p:open_dump", kwlist, PyUnicode_FSConverter,
                                     &path_obj, &writable))
        return NULL;
    const char *path = PyBytes_AS_STRING(path_obj);
    struct ms_err err = {0};
    struct ms_ram *ram = NULL;
    int rc = ms_ram_open_dump(&ram, path, writable ? MS_RAM_WRITABLE : 0, &err);
    return opened(rc, ram, path_obj, &err);
}

/* connect(address, token=None) -> Memory served by `memsrv serve`. */
static PyObject *mod_connect(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"address", "token", "timeout", NULL};
    PyObject *addr_obj = NULL;
    const char *token = NULL;
    double timeout = MS_CLIENT_TIMEOUT_MS / 1000.0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|zd:connect", kwlist, PyUnicode_FSConverter,
                                     &addr_obj, &token, &timeout))
        return NULL;
    if (!(timeout >= 0 && timeout <= 86400)) {
        Py_DECREF(addr_obj);
        PyErr_SetString(PyExc_ValueError, "timeout must be 0 (none) to 86400 seconds");
        return NULL;
    }
    const char *address = PyBytes_AS_STRING(addr_obj);
    struct remote *r = PyMem_Calloc(1, sizeof(*r));
    if (!r || !(r->lock = PyThread_allocate_lock())) {
        PyMem_Free(r);
        Py_DECREF(addr_obj);
        return PyErr_NoMemory();
    }
    r->client.fd = -1;
    struct ms_err err = {0};
    PyThreadState *ts = PyEval_SaveThread();
    int rc = ms_client_connect(&r->client, address, token, &err);
    if (!rc)
        rc = ms_client_set_timeout(&r->client, (unsigned)(timeout * 1000), &err);
    PyEval_RestoreThread(ts);
    if (rc) {
        remote_free(r);
        Py_DECREF(addr_obj);
        return raise_err(&err);
    }
    PyObject *m = mem_new(NULL, r, address);
    Py_DECREF(addr_obj);
    return m;
}

/* FLUSH over a connection: the server re-reads the file size and drops
 * every cached translation (flush() and refresh() in one). */
static PyObject *remote_flush(MemoryObject *m)
{
    struct ms_err err = {0};
    PyThreadState *ts = remote_begin(m->remote);
    int rc = ms_client_flush(&m->remote->client, &err);
    remote_end(m->remote, ts);
    if (rc)
        return raise_err(&err);
    Py_RETURN_NONE;
}

static PyObject *mem_flush(MemoryObject *m, PyObject *unused)
{
    (void)unused;
    if (mem_check(m))
        return NULL;
    if (m->remote)
        return remote_flush(m);
    ms_ram_flush(m->ram);
    Py_RETURN_NONE;
}

static PyObject *mem_refresh(MemoryObject *m, PyObject *unused)
{
    (void)unused;
    if (mem_check(m))
        return NULL;
    if (m->remote)
        return remote_flush(m);
    struct ms_err err = {0};
    if (ms_ram_refresh(m->ram, &err))
        return raise_err(&err);
    Py_RETURN_NONE;
}

static PyObject *mem_close(MemoryObject *m, PyObject *unused)
{
    (void)unused;
    if (m->remote) {
        /* Waits for a request another thread has in flight. */
        PyThreadState *ts = remote_begin(m->remote);
        ms_client_close(&m->remote->client);
        remote_end(m->remote, ts);
        m->remote->closed = true;
        Py_RETURN_NONE;
    }
    if (m->exports > 0) {
        PyErr_Format(PyExc_BufferError, "%zd zero-copy view(s) of this memory still exist",
                     m->exports);
        return NULL;
    }
    if (m->ram) {
        ms_ram_close(m->ram);
        m->ram = NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *mem_enter(MemoryObject *m, PyObject *unused)
{
    (void)unused;
    Py_INCREF(m);
    return (PyObject *)m;
}

static PyObject *mem_exit(MemoryObject *m, PyObject *args)
{
    (void)args;
    return mem_close(m, NULL);
}

static PyObject *mem_get_regions(MemoryObject *m, void *closure)
{
    (void)closure;
    struct ms_ram *ram = mem_ram(m, "Memory.regions");
    if (!ram)
        return NULL;
    PyObject *list = PyList_New(0);
    for (unsigned i = 0; list && i < ram->layout.count; i++) {
        const struct ms_region *r = &ram->layout.regions[i];
        PyObject *t =
            Py_BuildValue("(KKKI)", (unsigned long long)r->gpa, (unsigned long long)r->len,
                          (unsigned long long)r->offset, r->source);
        if (!t || PyList_Append(list, t)) {
            Py_XDECREF(t);
            Py_CLEAR(list);
            break;
        }
        Py_DECREF(t);
    }
    return list;
}

static PyObject *mem_get_size(MemoryObject *m, void *closure)
{
    (void)closure;
    if (mem_check(m))
        return NULL;
    return PyLong_FromUnsignedLongLong(m->remote ? m->remote->client.ram_size
                                                 : ms_ram_size(m->ram));
}

static PyObject *mem_get_end(MemoryObject *m, void *closure)
{
    (void)closure;
    struct ms_ram *ram = mem_ram(m, "Memory.end");
    return ram ? PyLong_FromUnsignedLongLong(ms_ram_end(ram)) : NULL;
}

static PyObject *mem_get_writable(MemoryObject *m, void *closure)
{
    (void)closure;
    if (mem_check(m))
        return NULL;
    return PyBool_FromLong(m->remote ? m->remote->client.server_flags & 1 : m->ram->writable);
}

/* The server's counters (STATS); non-zero with MemsrvError on failure. */
static int remote_stats(MemoryObject *m, struct ms_client_stats *st)
{
    struct ms_err err = {0};
    PyThreadState *ts = remote_begin(m->remote);
    int rc = ms_client_stats(&m->remote->client, st, &err);
    remote_end(m->remote, ts);
    if (rc)
        raise_err(&err);
    return rc;
}

static PyObject *mem_get_generation(MemoryObject *m, void *closure)
{
    (void)closure;
    if (mem_check(m))
        return NULL;
    if (!m->remote)
        return PyLong_FromUnsignedLongLong(m->ram->generation);
    struct ms_client_stats st;
    if (remote_stats(m, &st))
        return NULL;
    return PyLong_FromUnsignedLongLong(st.generation);
}

static PyObject *mem_get_stats(MemoryObject *m, void *closure)
{
    (void)closure;
    if (mem_check(m))
        return NULL;
    if (!m->remote) {
        struct ms_err err = {0};
        ms_err_set(&err, MS_EINVAL,
                   "Memory.stats are a server's counters (connect()); in-process, each "
                   "Space.stats has its cache counters");
        return raise_err(&err);
    }
    struct ms_client_stats st;
    if (remote_stats(m, &st))
        return NULL;
    return Py_BuildValue(
        "{sKsKsKsKsKsKsK}", "requests", (unsigned long long)st.requests, "errors",
        (unsigned long long)st.errors, "generation", (unsigned long long)st.generation, "hits",
        (unsigned long long)st.hits, "misses", (unsigned long long)st.misses, "walks",
        (unsigned long long)st.walks, "table_reads", (unsigned long long)st.table_reads);
}

static PyObject *mem_get_closed(MemoryObject *m, void *closure)
{
    (void)closure;
    return PyBool_FromLong(m->remote ? m->remote->closed : m->ram == NULL);
}

static PyObject *mem_get_remote(MemoryObject *m, void *closure)
{
    (void)closure;
    return PyBool_FromLong(m->remote != NULL);
}

static PyObject *mem_get_path(MemoryObject *m, void *closure)
{
    (void)closure;
    Py_INCREF(m->path);
    return m->path;
}

static PyObject *mem_get_vmcoreinfo(MemoryObject *m, void *closure)
{
    (void)closure;
    struct ms_ram *ram = mem_ram(m, "Memory.vmcoreinfo");
    if (!ram)
        return NULL;
    if (!ram->vmcoreinfo)
        Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(ram->vmcoreinfo, (Py_ssize_t)ram->vmcoreinfo_len, "replace");
}

/* The registers recorded in an ELF dump, one dict per vCPU. */
static PyObject *mem_get_cpus(MemoryObject *m, void *closure)
{
    (void)closure;
    struct ms_ram *ram = mem_ram(m, "Memory.cpus");
    if (!ram)
        return NULL;
    PyObject *list = PyList_New(0);
    for (unsigned i = 0; list && i < ram->ncpus; i++) {
        const struct ms_cpu_state *c = &ram->cpus[i];
#define R(n) #n, (unsigned long long)c->n
        PyObject *d = Py_BuildValue(
            "{sKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsO}", R(rax), R(rbx), R(rcx),
            R(rdx), R(rsi), R(rdi), R(rsp), R(rbp), R(r8), R(r9), R(r10), R(r11), R(r12), R(r13),
            R(r14), R(r15), R(rip), R(rflags), R(fs_base), R(gs_base), R(kernel_gs_base), R(cr0),
            R(cr2), R(cr3), R(cr4), "has_cr", c->has_cr ? Py_True : Py_False);
#undef R
        if (!d || PyList_Append(list, d)) {
            Py_XDECREF(d);
            Py_CLEAR(list);
            break;
        }
        Py_DECREF(d);
    }
    return list;
}

#ifdef HAVE_DISCOVER
/* discover(max=64) -> [dict], best first (ms_discover): kind ('VMCB', 'HSAVE',
 * 'vmcs12', 'EPT tree'), gpa, root, root_levels, saved registers, asid,
 * score, evidence. */
static PyObject *mem_discover(MemoryObject *m, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"max", NULL};
    unsigned max = 64;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|I:discover", kwlist, &max))
        return NULL;
    struct ms_ram *ram = mem_ram(m, "discover()");
    if (!ram)
        return NULL;
    if (max == 0 || max > 4096) {
        PyErr_SetString(PyExc_ValueError, "max must be 1..4096");
        return NULL;
    }
    struct ms_candidate *c = PyMem_Calloc(max, sizeof(*c));
    if (!c)
        return PyErr_NoMemory();
    struct ms_err err = {0};
    unsigned count = 0;
    if (ms_discover(ram, c, max, &count, &err)) {
        PyMem_Free(c);
        return raise_err(&err);
    }
    PyObject *list = PyList_New(0);
    for (unsigned i = 0; list && i < count && i < max; i++) {
        const struct ms_candidate *p = &c[i];
        PyObject *d = Py_BuildValue(
            "{sssKsKsIsKsKsKsKsKsKsIsiss}", "kind", ms_cand_kind_name(p->kind), "gpa",
            (unsigned long long)p->gpa, "root", (unsigned long long)p->root, "root_levels",
            p->root_levels, "cr0", (unsigned long long)p->cr0, "cr3", (unsigned long long)p->cr3,
            "cr4", (unsigned long long)p->cr4, "efer", (unsigned long long)p->efer, "rip",
            (unsigned long long)p->rip, "rsp", (unsigned long long)p->rsp, "asid", p->asid, "score",
            p->score, "evidence", p->evidence);
        if (!d || PyList_Append(list, d))
            Py_CLEAR(list);
        Py_XDECREF(d);
    }
    PyMem_Free(c);
    return list;
}
#endif

static PyObject *mem_space(MemoryObject *m, PyObject *args, PyObject *kw);

static PyObject *mem_repr(MemoryObject *m)
{
    if (m->remote ? m->remote->closed : !m->ram)
        return PyUnicode_FromFormat("<_memsrv.Memory %R (closed)>", m->path);
    if (m->remote)
        return PyUnicode_FromFormat("<_memsrv.Memory served by memsrv at %R, %llu bytes, %s>",
                                    m->path, (unsigned long long)m->remote->client.ram_size,
                                    m->remote->client.server_flags & 1 ? "writable" : "read-only");
    return PyUnicode_FromFormat("<_memsrv.Memory %R, %llu bytes in %u region(s)>", m->path,
                                (unsigned long long)ms_ram_size(m->ram), m->ram->layout.count);
}

static PyMethodDef mem_methods[] = {
    {"space", (PyCFunction)(void (*)(void))mem_space, METH_VARARGS | METH_KEYWORDS,
     "space(cr3=None, levels=4, eptp=None, ncr3=None, npt_levels=4) -> Space\n"
     "An address space over this memory: physical when nothing is given; paging\n"
     "rooted at cr3 (4 or 5 levels); over EPT (eptp) or AMD NPT (ncr3) for a\n"
     "nested guest. eptp/ncr3 without cr3 gives the nested guest's physical space."},
#ifdef HAVE_DISCOVER
    {"discover", (PyCFunction)(void (*)(void))mem_discover, METH_VARARGS | METH_KEYWORDS,
     "discover(max=64) -> [dict], best first: VMCBs, host-save areas, vmcs12 pages and\n"
     "EPT-shaped trees in RAM (ms_discover), each with kind, gpa, root, root_levels,\n"
     "saved cr0/cr3/cr4/efer/rip/rsp, asid, score and evidence."},
#endif
    {"flush", (PyCFunction)mem_flush, METH_NOARGS,
     "Invalidates every cached translation (call when the target ran). Over a\n"
     "connection the server also re-reads the file size (as refresh())."},
    {"refresh", (PyCFunction)mem_refresh, METH_NOARGS,
     "Re-reads the files' sizes; drops regions a shrunk file no longer backs."},
    {"close", (PyCFunction)mem_close, METH_NOARGS,
     "Unmaps the files, or closes the connection to the server."},
    {"__enter__", (PyCFunction)mem_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)mem_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef mem_getset[] = {
    {"regions", (getter)mem_get_regions, NULL, "[(gpa, len, file_offset, source), ...]", NULL},
    {"size", (getter)mem_get_size, NULL, "backed bytes (a connection's: when it was made)", NULL},
    {"end", (getter)mem_get_end, NULL, "highest backed address + 1", NULL},
    {"writable", (getter)mem_get_writable, NULL, NULL, NULL},
    {"closed", (getter)mem_get_closed, NULL, NULL, NULL},
    {"remote", (getter)mem_get_remote, NULL, "True when served by memsrv (connect())", NULL},
    {"stats", (getter)mem_get_stats, NULL,
     "a connection's server counters: requests, errors, generation, hits, misses, walks,\n"
     "table_reads",
     NULL},
    {"generation", (getter)mem_get_generation, NULL,
     "bumped by flush(): translations cached before it are stale", NULL},
    {"path", (getter)mem_get_path, NULL, "the file, or the server's address", NULL},
    {"vmcoreinfo", (getter)mem_get_vmcoreinfo, NULL, "VMCOREINFO text of a dump, or None", NULL},
    {"cpus", (getter)mem_get_cpus, NULL, "registers from a dump's notes, one dict per vCPU", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject MemoryType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "_memsrv.Memory",
    .tp_basicsize = sizeof(MemoryObject),
    .tp_dealloc = (destructor)mem_dealloc,
    .tp_repr = (reprfunc)mem_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Guest RAM: a raw memory-backend-file or a QEMU ELF dump (from open()/open_dump()),\n"
              "or the one a memsrv server serves (from connect()).",
    .tp_methods = mem_methods,
    .tp_getset = mem_getset,
};

/* --------------------------------------------------------- zero-copy views */

/* Exports a read-only (or writable) slice of the RAM mapping. Holds the
 * Memory so that close() can refuse while a view is alive. */
typedef struct {
    PyObject_HEAD MemoryObject *mem;
    void *ptr;
    Py_ssize_t len;
    int readonly;
} SliceObject;

static void slice_dealloc(SliceObject *s)
{
    if (s->mem) {
        s->mem->exports--;
        Py_DECREF(s->mem);
    }
    PyObject_Free(s);
}

static int slice_getbuffer(SliceObject *s, Py_buffer *view, int flags)
{
    return PyBuffer_FillInfo(view, (PyObject *)s, s->ptr, s->len, s->readonly, flags);
}

static PyBufferProcs slice_as_buffer = {
    .bf_getbuffer = (getbufferproc)slice_getbuffer,
};

static PyTypeObject SliceType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "_memsrv.Slice",
    .tp_basicsize = sizeof(SliceObject),
    .tp_dealloc = (destructor)slice_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A slice of the mapped RAM file (use through memoryview).",
    .tp_as_buffer = &slice_as_buffer,
};

/* ------------------------------------------------------------------- Space */

#define CHAIN_MAX 3

typedef struct {
    PyObject_HEAD MemoryObject *mem;
    /* [0] physical ... [n-1] the top. Over a connection the chain only
     * describes the stack (kind, root, levels; no RAM under it): the server
     * walks it, as `handle`. */
    struct ms_space *chain[CHAIN_MAX];
    unsigned n;
    uint32_t handle;
} SpaceObject;

static PyTypeObject SpaceType;

static struct ms_space *sp_top(SpaceObject *s)
{
    return s->chain[s->n - 1];
}

static int sp_check(SpaceObject *s)
{
    return mem_check(s->mem);
}

/* The top space for what only an in-process open can do (its walks read
 * RAM here); NULL with MemsrvError over a connection. */
static struct ms_space *sp_local(SpaceObject *s, const char *what)
{
    return mem_ram(s->mem, what) ? sp_top(s) : NULL;
}

/* Reads into buf, or writes from src, len bytes: in-process through the
 * library, else through the server in requests it accepts. *done gets the
 * bytes before the first that failed. */
static int sp_access(SpaceObject *s, uint64_t addr, void *buf, const void *src, size_t len,
                     size_t *done, struct ms_err *err)
{
    struct remote *r = s->mem->remote;
    if (!r)
        return src ? ms_space_write(sp_top(s), addr, src, len, done, err)
                   : ms_space_read(sp_top(s), addr, buf, len, done, err);
    size_t total = 0, chunk = src ? MS_WIRE_MAX_WRITE : REMOTE_READ_CHUNK;
    int rc = 0;
    PyThreadState *ts = remote_begin(r);
    while (rc == 0 && total < len) {
        size_t n = len - total < chunk ? len - total : chunk, got = 0;
        rc = src ? ms_client_write(&r->client, s->handle, addr + total,
                                   (const uint8_t *)src + total, n, &got, err)
                 : ms_client_read(&r->client, s->handle, addr + total, (uint8_t *)buf + total, n,
                                  &got, err);
        total += got;
    }
    remote_end(r, ts);
    if (done)
        *done = total;
    return rc;
}

static int sp_translate_one(SpaceObject *s, uint64_t addr, struct ms_xlat *x,
                            struct ms_trace *trace, struct ms_err *err)
{
    struct remote *r = s->mem->remote;
    if (!r)
        return ms_space_translate(sp_top(s), addr, x, trace, err);
    int status = 0;
    PyThreadState *ts = remote_begin(r);
    int rc = ms_client_translate(&r->client, s->handle, 1, &addr, x, &status, trace, err);
    remote_end(r, ts);
    return rc ? rc : status;
}

static void sp_dealloc(SpaceObject *s)
{
    while (s->n > 0)
        ms_space_free(s->chain[--s->n]);
    Py_XDECREF(s->mem);
    PyObject_Free(s);
}

static PyObject *mem_space(MemoryObject *m, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"cr3", "levels", "eptp", "ncr3", "npt_levels", NULL};
    struct opt_u64 cr3 = {0}, eptp = {0}, ncr3 = {0};
    unsigned levels = 4, npt_levels = 4;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O&IO&O&I:space", kwlist, opt_u64_conv, &cr3,
                                     &levels, opt_u64_conv, &eptp, opt_u64_conv, &ncr3,
                                     &npt_levels))
        return NULL;
    if (mem_check(m))
        return NULL;
    if (eptp.given && ncr3.given) {
        PyErr_SetString(PyExc_ValueError, "give eptp (Intel EPT) or ncr3 (AMD NPT), not both");
        return NULL;
    }
    SpaceObject *s = PyObject_New(SpaceObject, &SpaceType);
    if (!s)
        return NULL;
    Py_INCREF(m);
    s->mem = m;
    s->n = 0;
    s->handle = 0;
    struct ms_err err = {0};
    /* Built over a connection too (with no RAM): it checks the roots as
     * in-process, and describes the stack. */
    int rc = ms_space_phys(&s->chain[0], m->ram, &err);
    if (rc == 0) {
        s->n = 1;
        if (eptp.given)
            rc = ms_space_ept(&s->chain[s->n], sp_top(s), eptp.value, &err);
        else if (ncr3.given)
            rc = ms_space_npt(&s->chain[s->n], sp_top(s), ncr3.value, npt_levels, &err);
        if (rc == 0 && (eptp.given || ncr3.given))
            s->n++;
    }
    if (rc == 0 && cr3.given) {
        rc = ms_space_paging(&s->chain[s->n], sp_top(s), cr3.value, levels, &err);
        if (rc == 0)
            s->n++;
    }
    if (rc == 0 && m->remote) {
        struct ms_wire_stack d = {(uint8_t)(eptp.given   ? 1
                                            : ncr3.given ? 2
                                                         : 0),
                                  (uint8_t)(ncr3.given ? npt_levels : 0),
                                  (uint8_t)cr3.given,
                                  (uint8_t)(cr3.given ? levels : 0),
                                  eptp.given ? eptp.value : ncr3.value,
                                  cr3.given ? cr3.value : 0};
        PyThreadState *ts = remote_begin(m->remote);
        rc = ms_client_space(&m->remote->client, &d, &s->handle, &err);
        remote_end(m->remote, ts);
    }
    if (rc) {
        Py_DECREF(s);
        return raise_err(&err);
    }
    return (PyObject *)s;
}

static PyObject *sp_read(SpaceObject *s, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"addr", "n", "partial", NULL};
    uint64_t addr;
    Py_ssize_t n;
    int partial = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&n|p:read", kwlist, u64_conv, &addr, &n, &partial))
        return NULL;
    if (sp_check(s))
        return NULL;
    if (n < 0 || n > MAX_READ) {
        PyErr_Format(PyExc_ValueError, "read size %zd out of range (0 to %zd)", n, MAX_READ);
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, n);
    if (!out)
        return NULL;
    struct ms_err err = {0};
    size_t done = 0;
    if (n > 0 && sp_access(s, addr, PyBytes_AS_STRING(out), NULL, (size_t)n, &done, &err)) {
        if (partial) {
            /* What was read before the first unreadable byte. */
            _PyBytes_Resize(&out, (Py_ssize_t)done);
            return out;
        }
        Py_DECREF(out);
        raise_err(&err);
        err_attach("done", PyLong_FromSize_t(done));
        return NULL;
    }
    return out;
}

/* read_into (into a writable buffer) and write (from any buffer): bytes done. */
static PyObject *sp_transfer(SpaceObject *s, PyObject *args, bool write)
{
    uint64_t addr;
    Py_buffer buf;
    if (!PyArg_ParseTuple(args, write ? "O&y*:write" : "O&w*:read_into", u64_conv, &addr, &buf))
        return NULL;
    if (sp_check(s)) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    struct ms_err err = {0};
    size_t done = 0;
    int rc = 0;
    if (buf.len > 0)
        rc = sp_access(s, addr, write ? NULL : buf.buf, write ? buf.buf : NULL, (size_t)buf.len,
                       &done, &err);
    PyBuffer_Release(&buf);
    if (rc) {
        raise_err(&err);
        err_attach("done", PyLong_FromSize_t(done));
        return NULL;
    }
    return PyLong_FromSize_t(done);
}

static PyObject *sp_read_into(SpaceObject *s, PyObject *args)
{
    return sp_transfer(s, args, false);
}

static PyObject *sp_write(SpaceObject *s, PyObject *args)
{
    return sp_transfer(s, args, true);
}

/* Where guest-physical [gpa, gpa+len) sits in a mapping, when it lies
 * inside one region; NULL otherwise. */
static uint8_t *ram_ptr(struct ms_ram *ram, uint64_t gpa, uint64_t len)
{
    for (unsigned i = 0; i < ram->layout.count; i++) {
        const struct ms_region *r = &ram->layout.regions[i];
        if (gpa < r->gpa || gpa - r->gpa >= r->len || len > r->len - (gpa - r->gpa))
            continue;
        if (r->source >= ram->nsources || !ram->sources[r->source].map)
            return NULL;
        const struct ms_ram_source *src = &ram->sources[r->source];
        uint64_t off = r->offset + (gpa - r->gpa);
        if (off > src->size || len > src->size - off)
            return NULL;
        return src->map + off;
    }
    return NULL;
}

/* A memoryview of n bytes at addr: zero-copy into the RAM mapping when the
 * range is contiguous in one RAM file region, else a copy. The view shows
 * live memory (a running guest's writes appear in it). */
static PyObject *sp_view(SpaceObject *s, PyObject *args)
{
    uint64_t addr;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "O&n:view", u64_conv, &addr, &n))
        return NULL;
    struct ms_space *top = sp_local(s, "view() (zero-copy into the RAM file)");
    if (!top)
        return NULL;
    if (n <= 0 || n > MAX_READ) {
        PyErr_Format(PyExc_ValueError, "view size %zd out of range (1 to %zd)", n, MAX_READ);
        return NULL;
    }
    struct ms_err err = {0};
    struct ms_xlat x;
    uint64_t first = 0;
    int contiguous = 1;
    /* Every page must land right after the previous one. */
    for (uint64_t off = 0; off < (uint64_t)n;) {
        uint64_t a = addr + off;
        if (ms_space_translate(top, a, &x, NULL, &err))
            return raise_err(&err);
        if (off == 0)
            first = x.phys;
        else if (x.phys != first + off) {
            contiguous = 0;
            break;
        }
        off += 4096 - (a & 4095);
    }
    uint8_t *p = contiguous ? ram_ptr(s->mem->ram, first, (uint64_t)n) : NULL;
    if (!p) {
        PyObject *b = PyBytes_FromStringAndSize(NULL, n);
        if (!b)
            return NULL;
        if (ms_space_read(top, addr, PyBytes_AS_STRING(b), (size_t)n, NULL, &err)) {
            Py_DECREF(b);
            return raise_err(&err);
        }
        PyObject *mv = PyMemoryView_FromObject(b);
        Py_DECREF(b);
        return mv;
    }
    SliceObject *sl = PyObject_New(SliceObject, &SliceType);
    if (!sl)
        return NULL;
    Py_INCREF(s->mem);
    sl->mem = s->mem;
    s->mem->exports++;
    sl->ptr = p;
    sl->len = n;
    sl->readonly = !s->mem->ram->writable;
    PyObject *mv = PyMemoryView_FromObject((PyObject *)sl);
    Py_DECREF(sl);
    return mv;
}

static PyObject *trace_list(const struct ms_trace *t)
{
    PyObject *list = PyList_New(0);
    for (unsigned i = 0; list && i < t->count && i < MS_TRACE_MAX; i++) {
        const struct ms_trace_entry *e = &t->entries[i];
        PyObject *tup =
            Py_BuildValue("(IIIIKKK)", (unsigned)e->depth, (unsigned)e->kind, (unsigned)e->level,
                          (unsigned)e->index, (unsigned long long)e->entry_addr,
                          (unsigned long long)e->entry_phys, (unsigned long long)e->value);
        if (!tup || PyList_Append(list, tup)) {
            Py_XDECREF(tup);
            Py_CLEAR(list);
        } else {
            Py_DECREF(tup);
        }
    }
    return list;
}

static PyObject *sp_translate(SpaceObject *s, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"addr", "trace", NULL};
    uint64_t addr;
    int want_trace = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|p:translate", kwlist, u64_conv, &addr,
                                     &want_trace))
        return NULL;
    if (sp_check(s))
        return NULL;
    struct ms_err err = {0};
    struct ms_xlat x;
    struct ms_trace *trace = NULL;
    if (want_trace) {
        trace = PyMem_Calloc(1, sizeof(*trace));
        if (!trace)
            return PyErr_NoMemory();
    }
    if (sp_translate_one(s, addr, &x, trace, &err)) {
        raise_err(&err);
        /* The entries read before the walk stopped say where and why. */
        if (trace)
            err_attach("trace", trace_list(trace));
        PyMem_Free(trace);
        return NULL;
    }
    PyObject *tl = trace ? trace_list(trace) : PyList_New(0);
    PyMem_Free(trace);
    if (!tl)
        return NULL;
    return Py_BuildValue("(KKKIN)", (unsigned long long)x.phys, (unsigned long long)x.lower,
                         (unsigned long long)x.page_size, x.perms, tl);
}

/* ms_symbolize_fn over a Python callable returning "sym+off" or None. An
 * exception stops symbolizing and is re-raised after formatting. */
struct sym_ctx {
    PyObject *fn;
    int failed;
};

static int py_symbolize(void *arg, uint64_t addr, char *out, size_t out_size)
{
    struct sym_ctx *c = arg;
    if (c->failed || out_size == 0)
        return -1;
    PyObject *r = PyObject_CallFunction(c->fn, "K", (unsigned long long)addr);
    if (!r) {
        c->failed = 1;
        return -1;
    }
    int rc = -1;
    if (r != Py_None) {
        Py_ssize_t len;
        const char *str = PyUnicode_Check(r) ? PyUnicode_AsUTF8AndSize(r, &len) : NULL;
        if (!str) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "symbolizer must return str or None");
            c->failed = 1;
        } else if (len > 0) {
            size_t n = (size_t)len < out_size - 1 ? (size_t)len : out_size - 1;
            memcpy(out, str, n);
            out[n] = '\0';
            rc = 0;
        }
    }
    Py_DECREF(r);
    return rc;
}

static int space_read_fn(void *arg, uint64_t addr, void *buf, size_t len, size_t *done,
                         struct ms_err *err)
{
    return ms_space_read(arg, addr, buf, len, done, err);
}

/* The formatter reads unit by unit: over a connection it reads through a
 * window of one page, fetched in one request. A read the window does not
 * hold goes to the server as asked, so failures say what in-process says. */
struct read_window {
    SpaceObject *s;
    uint64_t base;
    size_t len;
    uint8_t buf[4096];
};

static bool window_has(const struct read_window *w, uint64_t addr, size_t len)
{
    return addr >= w->base && addr - w->base <= w->len && len <= w->len - (addr - w->base);
}

static int window_read_fn(void *arg, uint64_t addr, void *buf, size_t len, size_t *done,
                          struct ms_err *err)
{
    struct read_window *w = arg;
    if (!window_has(w, addr, len)) {
        w->base = addr & ~(uint64_t)(sizeof(w->buf) - 1);
        w->len = 0;
        sp_access(w->s, w->base, w->buf, NULL, sizeof(w->buf), &w->len, NULL);
        if (!window_has(w, addr, len))
            return sp_access(w->s, addr, buf, NULL, len, done, err);
    }
    memcpy(buf, w->buf + (addr - w->base), len);
    if (done)
        *done = len;
    return 0;
}

static int letter_conv(PyObject *obj, void *out)
{
    if (obj == Py_None)
        return 1;
    Py_ssize_t len;
    const char *s = PyUnicode_Check(obj) ? PyUnicode_AsUTF8AndSize(obj, &len) : NULL;
    if (!s || len != 1) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "expected a one-letter str");
        return 0;
    }
    *(char *)out = s[0];
    return 1;
}

/* x(fmt, addr, symbolizer=None, format='x', size='w', full=False)
 * format/size are GDB's sticky defaults (the last ones used). Returns the
 * text; with full=True returns (text, next_addr, format, size, error) where
 * error is None or a MemsrvError, and the text holds what was printed before
 * it, as GDB prints partial lines before "Cannot access memory". */
static PyObject *sp_x(SpaceObject *s, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"fmt", "addr", "symbolizer", "format", "size", "full", NULL};
    const char *text;
    uint64_t addr;
    PyObject *symfn = Py_None;
    struct ms_xfmt fmt = {.count = 1, .format = 'x', .size = 'w'};
    int full = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "sO&|OO&O&p:x", kwlist, &text, u64_conv, &addr,
                                     &symfn, letter_conv, &fmt.format, letter_conv, &fmt.size,
                                     &full))
        return NULL;
    if (sp_check(s))
        return NULL;
    if (symfn != Py_None && !PyCallable_Check(symfn)) {
        PyErr_SetString(PyExc_TypeError, "symbolizer must be callable or None");
        return NULL;
    }
    if (text[0] == '/')
        text++;
    struct ms_err err = {0};
    if (ms_xfmt_parse(text, &fmt, &err))
        return raise_err(&err);
    struct sym_ctx sym = {symfn, 0};
    struct ms_strbuf out;
    ms_strbuf_init(&out);
    uint64_t next = addr;
    struct remote *r = s->mem->remote;
    int rc;
    if (r && symfn == Py_None && !full) {
        /* One round trip: the server formats (the format resolved here
         * against the sticky defaults, so it needs none). */
        char spec[32];
        snprintf(spec, sizeof(spec), "%llu%c%c", (unsigned long long)fmt.count, fmt.format,
                 fmt.size);
        PyThreadState *ts = remote_begin(r);
        rc = ms_client_x(&r->client, s->handle, spec, addr, &out, &err);
        remote_end(r, ts);
    } else if (r) {
        /* The server has no symbols and does not say where x stopped: format
         * here, over its reads. */
        struct read_window *w = PyMem_Calloc(1, sizeof(*w));
        if (!w) {
            ms_strbuf_free(&out);
            return PyErr_NoMemory();
        }
        w->s = s;
        rc = ms_format_x(&fmt, addr, window_read_fn, w, symfn != Py_None ? py_symbolize : NULL,
                         &sym, &out, &next, &err);
        PyMem_Free(w);
    } else {
        rc = ms_format_x(&fmt, addr, space_read_fn, sp_top(s),
                         symfn != Py_None ? py_symbolize : NULL, &sym, &out, &next, &err);
    }
    if (sym.failed) {
        ms_strbuf_free(&out);
        return NULL; /* the symbolizer's exception */
    }
    if (out.failed) {
        ms_strbuf_free(&out);
        return PyErr_NoMemory();
    }
    PyObject *str = PyUnicode_DecodeUTF8(ms_strbuf_str(&out), (Py_ssize_t)out.len, "replace");
    ms_strbuf_free(&out);
    if (!str)
        return NULL;
    if (!full) {
        if (rc) {
            raise_err(&err);
            err_attach("output", str);
            return NULL;
        }
        return str;
    }
    PyObject *e = Py_None;
    Py_INCREF(e);
    if (rc) {
        PyObject *type, *tb;
        raise_err(&err);
        Py_DECREF(e);
        PyErr_Fetch(&type, &e, &tb);
        PyErr_NormalizeException(&type, &e, &tb);
        Py_XDECREF(type);
        Py_XDECREF(tb);
        if (!e) {
            Py_DECREF(str);
            return NULL;
        }
    }
    return Py_BuildValue("(NKCCN)", str, (unsigned long long)next, fmt.format, fmt.size, e);
}

/* Collects (merged) leaf mappings for enumerate(). */
struct enum_ctx {
    PyObject *list;
    int merge;
    int have;
    struct ms_mapping cur; /* the range being merged */
};

static int enum_flush(struct enum_ctx *c)
{
    if (!c->have)
        return 0;
    PyObject *t =
        c->merge ? Py_BuildValue("(KKKI)", (unsigned long long)c->cur.addr,
                                 (unsigned long long)c->cur.size, (unsigned long long)c->cur.lower,
                                 c->cur.perms)
                 : Py_BuildValue("(KKKIK)", (unsigned long long)c->cur.addr,
                                 (unsigned long long)c->cur.size, (unsigned long long)c->cur.lower,
                                 c->cur.perms, (unsigned long long)c->cur.leaf);
    c->have = 0;
    if (!t || PyList_Append(c->list, t)) {
        Py_XDECREF(t);
        return -1;
    }
    Py_DECREF(t);
    return 0;
}

static int enum_cb(void *arg, const struct ms_mapping *m)
{
    struct enum_ctx *c = arg;
    if (c->merge && c->have && c->cur.addr + c->cur.size == m->addr &&
        c->cur.lower + c->cur.size == m->lower && c->cur.perms == m->perms &&
        c->cur.size + m->size > c->cur.size) {
        c->cur.size += m->size;
        return 0;
    }
    if (enum_flush(c))
        return 1;
    c->cur = *m;
    c->have = 1;
    return 0;
}

static PyObject *sp_enumerate(SpaceObject *s, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"start", "end", "merge", "max_tables", NULL};
    uint64_t start = 0, end = UINT64_MAX, max_tables = 0;
    int merge = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O&O&pO&:enumerate", kwlist, u64_conv, &start,
                                     u64_conv, &end, &merge, u64_conv, &max_tables))
        return NULL;
    struct ms_space *top = sp_local(s, "enumerate()");
    if (!top)
        return NULL;
    struct enum_ctx c = {.list = PyList_New(0), .merge = merge};
    if (!c.list)
        return NULL;
    struct ms_err err = {0};
    uint64_t bad = 0;
    int rc = ms_space_enumerate(top, start, end, enum_cb, &c, max_tables, &bad, &err);
    if (PyErr_Occurred()) {
        Py_DECREF(c.list);
        return NULL;
    }
    if (rc < 0) {
        Py_DECREF(c.list);
        return raise_err(&err);
    }
    if (enum_flush(&c)) {
        Py_DECREF(c.list);
        return NULL;
    }
    return Py_BuildValue("(NK)", c.list, (unsigned long long)bad);
}

/* The library's reports (shared with the CLI): text, raising with .output
 * (what was written before the failure) on error. */
static PyObject *report_result(struct ms_strbuf *out, int rc, const struct ms_err *err)
{
    if (out->failed) {
        ms_strbuf_free(out);
        return PyErr_NoMemory();
    }
    PyObject *str = PyUnicode_DecodeUTF8(ms_strbuf_str(out), (Py_ssize_t)out->len, "replace");
    ms_strbuf_free(out);
    if (!str || rc == 0)
        return str;
    raise_err(err);
    err_attach("output", str);
    return NULL;
}

static PyObject *sp_vtop(SpaceObject *s, PyObject *arg)
{
    uint64_t addr;
    if (!u64_conv(arg, &addr) || sp_check(s))
        return NULL;
    struct ms_strbuf out;
    struct ms_err err = {0};
    ms_strbuf_init(&out);
    struct remote *r = s->mem->remote;
    int rc;
    if (r) {
        PyThreadState *ts = remote_begin(r);
        rc = ms_client_vtop(&r->client, s->handle, addr, &out, &err);
        remote_end(r, ts);
    } else {
        rc = ms_report_vtop(sp_top(s), addr, &out, &err);
    }
    return report_result(&out, rc, &err);
}

static PyObject *sp_ptdump(SpaceObject *s, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"start", "end", NULL};
    uint64_t start = 0, end = UINT64_MAX;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O&O&:ptdump", kwlist, u64_conv, &start, u64_conv,
                                     &end))
        return NULL;
    if (sp_check(s))
        return NULL;
    struct ms_strbuf out;
    struct ms_err err = {0};
    ms_strbuf_init(&out);
    struct remote *r = s->mem->remote;
    int rc;
    if (r) {
        PyThreadState *ts = remote_begin(r);
        rc = ms_client_ptdump(&r->client, s->handle, start, end, &out, &err);
        remote_end(r, ts);
    } else {
        rc = ms_report_ptdump(sp_top(s), start, end, &out, &err);
    }
    return report_result(&out, rc, &err);
}

static PyObject *sp_describe(SpaceObject *s, PyObject *unused)
{
    (void)unused;
    struct ms_strbuf out;
    ms_strbuf_init(&out);
    ms_report_stack(sp_top(s), &out);
    return report_result(&out, 0, NULL);
}

static PyObject *sp_perm_text(SpaceObject *s, PyObject *arg)
{
    unsigned long perms = PyLong_AsUnsignedLong(arg);
    if (perms == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    char text[8];
    ms_perm_text(sp_top(s), (unsigned)perms, text);
    return PyUnicode_FromString(text);
}

/* The Linux kernel in this level's guest-physical memory (below the paging,
 * if any), opened in-process: VMCOREINFO (given, or a RAM scan) or the
 * symbol file. */
static int sp_kernel_open(SpaceObject *s, const char *symbols, const char *vmci,
                          Py_ssize_t vmci_len, struct ms_kernel **k, struct ms_err *err)
{
    struct ms_space *top = sp_top(s);
    struct ms_kernel_opts o = {0};
    o.symbols = symbols;
    o.vmcoreinfo = vmci;
    o.vmcoreinfo_len = (size_t)vmci_len;
    o.kspace = top->kind == MS_SPACE_PAGING ? top : NULL;
    return ms_kernel_open(k, o.kspace && top->lower ? top->lower : top, &o, err);
}

/* -1 with an exception when the memory is closed, or when kernel arguments
 * come over a connection (the server finds the kernel with its own symbol
 * file). */
static int kernel_args_check(SpaceObject *s, const char *symbols, const char *vmci)
{
    if (sp_check(s))
        return -1;
    if (!s->mem->remote || (!symbols && !vmci))
        return 0;
    struct ms_err err = {0};
    ms_err_set(&err, MS_EINVAL,
               "over a connection memsrv finds the kernel itself: give the symbol file to "
               "`memsrv serve` (--vmlinux F or --system-map F); symbols= and vmcoreinfo= are "
               "for in-process opens");
    raise_err(&err);
    return -1;
}

/* dmesg(symbols=None, vmcoreinfo=None, style='plain', level=-1) -> str */
static PyObject *sp_dmesg(SpaceObject *s, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"symbols", "vmcoreinfo", "style", "level", NULL};
    static const char *const styles[] = {"plain", "raw", "crash"}; /* enum ms_dmesg_style */
    const char *symbols = NULL, *vmci = NULL, *style = "plain";
    Py_ssize_t vmci_len = 0;
    int level = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|zz#si:dmesg", kwlist, &symbols, &vmci, &vmci_len,
                                     &style, &level))
        return NULL;
    struct ms_dmesg_opts o = {MS_DMESG_PLAIN, level};
    while (o.style <= MS_DMESG_CRASH && strcmp(style, styles[o.style]) != 0)
        o.style++;
    if (o.style > MS_DMESG_CRASH || level < -1 || level > 7) {
        PyErr_SetString(PyExc_ValueError, "style is 'plain', 'raw' or 'crash'; level -1 or 0..7");
        return NULL;
    }
    if (kernel_args_check(s, symbols, vmci))
        return NULL;
    struct ms_strbuf out;
    struct ms_err err = {0};
    ms_strbuf_init(&out);
    struct remote *r = s->mem->remote;
    int rc;
    if (r) {
        struct ms_client_dmesg info;
        PyThreadState *ts = remote_begin(r);
        rc = ms_client_dmesg(&r->client, s->handle, &o, &out, &info, &err);
        remote_end(r, ts);
    } else {
        struct ms_kernel *k = NULL;
        struct ms_printk_log log;
        ms_printk_log_init(&log);
        rc = sp_kernel_open(s, symbols, vmci, vmci_len, &k, &err);
        if (!rc && ms_kernel_dmesg(k, &log, &err) < 0)
            rc = err.code;
        if (!rc)
            ms_dmesg_format(&log, &o, &out);
        ms_printk_log_free(&log);
        ms_kernel_close(k);
    }
    if (rc) {
        ms_strbuf_free(&out);
        return raise_err(&err);
    }
    return report_result(&out, 0, NULL);
}

/* symbol(name_or_addr, symbols=None, vmcoreinfo=None): a name -> its
 * runtime address; an address -> (name, offset). */
static PyObject *sp_symbol(SpaceObject *s, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"what", "symbols", "vmcoreinfo", NULL};
    PyObject *what;
    const char *symbols = NULL, *vmci = NULL, *name = NULL;
    Py_ssize_t vmci_len = 0;
    uint64_t addr = 0, off = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|zz#:symbol", kwlist, &what, &symbols, &vmci,
                                     &vmci_len))
        return NULL;
    if (PyUnicode_Check(what) ? !(name = PyUnicode_AsUTF8(what)) : !u64_conv(what, &addr))
        return NULL;
    if (kernel_args_check(s, symbols, vmci))
        return NULL;
    struct ms_strbuf sym;
    struct ms_err err = {0};
    ms_strbuf_init(&sym);
    struct remote *r = s->mem->remote;
    int rc;
    if (r) {
        PyThreadState *ts = remote_begin(r);
        rc = name ? ms_client_symbol(&r->client, s->handle, name, &addr, &err)
                  : ms_client_addr_symbol(&r->client, s->handle, addr, &sym, &off, &err);
        remote_end(r, ts);
    } else {
        /* As `memsrv sym`: with no symbol file, the kernel's own kallsyms. */
        struct ms_kernel *k = NULL;
        const struct ms_symbol *found;
        rc = sp_kernel_open(s, symbols, vmci, vmci_len, &k, &err);
        if (!rc && !k->syms && ms_kernel_load_kallsyms(k, 0, &err) < 0)
            rc = err.code;
        if (!rc && name)
            rc = ms_kernel_symbol(k, name, &addr, &err);
        else if (!rc && (rc = ms_symtab_addr(k->syms, addr, &found, &off, &err)) == 0)
            ms_strbuf_append(&sym, found->name, strlen(found->name));
        ms_kernel_close(k);
    }
    PyObject *res = NULL;
    if (rc)
        raise_err(&err);
    else if (name)
        res = PyLong_FromUnsignedLongLong(addr);
    else if (sym.failed)
        PyErr_NoMemory();
    else
        res = Py_BuildValue(
            "(NK)", PyUnicode_DecodeUTF8(ms_strbuf_str(&sym), (Py_ssize_t)sym.len, "replace"),
            (unsigned long long)off);
    ms_strbuf_free(&sym);
    return res;
}

static PyObject *sp_canonical(SpaceObject *s, PyObject *arg)
{
    uint64_t addr;
    if (!u64_conv(arg, &addr))
        return NULL;
    return PyLong_FromUnsignedLongLong(ms_space_canonical(sp_top(s), addr));
}

static PyObject *sp_get_kind(SpaceObject *s, void *closure)
{
    (void)closure;
    return PyUnicode_FromString(ms_space_kind_name(sp_top(s)->kind));
}

static PyObject *sp_get_levels(SpaceObject *s, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLong(sp_top(s)->levels);
}

static PyObject *sp_get_root(SpaceObject *s, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(sp_top(s)->root);
}

static PyObject *sp_get_memory(SpaceObject *s, void *closure)
{
    (void)closure;
    Py_INCREF(s->mem);
    return (PyObject *)s->mem;
}

/* [(kind, root, levels), ...] from the top space down to physical. */
static PyObject *sp_get_stack(SpaceObject *s, void *closure)
{
    (void)closure;
    PyObject *list = PyList_New(0);
    for (unsigned i = s->n; list && i-- > 0;) {
        const struct ms_space *sp = s->chain[i];
        PyObject *t = Py_BuildValue("(sKI)", ms_space_kind_name(sp->kind),
                                    (unsigned long long)sp->root, sp->levels);
        if (!t || PyList_Append(list, t)) {
            Py_XDECREF(t);
            Py_CLEAR(list);
        } else {
            Py_DECREF(t);
        }
    }
    return list;
}

static PyObject *sp_get_stats(SpaceObject *s, void *closure)
{
    (void)closure;
    const struct ms_space *top = sp_local(s, "Space.stats (Memory.stats has the server's)");
    if (!top)
        return NULL;
    const struct ms_space_stats *st = &top->stats;
    return Py_BuildValue("{sKsKsKsK}", "hits", (unsigned long long)st->hits, "misses",
                         (unsigned long long)st->misses, "walks", (unsigned long long)st->walks,
                         "table_reads", (unsigned long long)st->table_reads);
}

static PyObject *sp_repr(SpaceObject *s)
{
    const struct ms_space *t = sp_top(s);
    if (t->kind == MS_SPACE_PHYS)
        return PyUnicode_FromString("<_memsrv.Space phys>");
    /* PyUnicode_FromFormat has no %llx. */
    char root[24];
    snprintf(root, sizeof(root), "0x%llx", (unsigned long long)t->root);
    return PyUnicode_FromFormat("<_memsrv.Space %s root=%s levels=%u, %u deep>",
                                ms_space_kind_name(t->kind), root, t->levels, s->n);
}

static PyMethodDef sp_methods[] = {
    {"read", (PyCFunction)(void (*)(void))sp_read, METH_VARARGS | METH_KEYWORDS,
     "read(addr, n, partial=False) -> bytes\n"
     "Raises MemsrvError (with .done) at the first unreadable byte, or with\n"
     "partial=True returns the bytes before it."},
    {"read_into", (PyCFunction)sp_read_into, METH_VARARGS,
     "read_into(addr, buffer) -> int: fills a writable buffer."},
    {"write", (PyCFunction)sp_write, METH_VARARGS,
     "write(addr, data) -> int (needs open(..., writable=True))."},
    {"view", (PyCFunction)sp_view, METH_VARARGS,
     "view(addr, n) -> memoryview: zero-copy into the RAM file when the range is\n"
     "contiguous there (live memory; close() waits until it is released), else a copy."},
    {"translate", (PyCFunction)(void (*)(void))sp_translate, METH_VARARGS | METH_KEYWORDS,
     "translate(addr, trace=True) -> (phys, lower, page_size, perms, trace)\n"
     "trace: [(depth, kind, level, index, entry_addr, entry_phys, value), ...].\n"
     "On failure MemsrvError carries .trace: the entries read before the walk stopped."},
    {"x", (PyCFunction)(void (*)(void))sp_x, METH_VARARGS | METH_KEYWORDS,
     "x(fmt, addr, symbolizer=None, format='x', size='w', full=False) -> str\n"
     "GDB's x/FMT output. symbolizer(addr) -> 'sym+off' or None. format/size are\n"
     "the sticky defaults. full=True returns (text, next, format, size, error)."},
    {"enumerate", (PyCFunction)(void (*)(void))sp_enumerate, METH_VARARGS | METH_KEYWORDS,
     "enumerate(start=0, end=2**64-1, merge=True, max_tables=0) -> (ranges, bad_tables)\n"
     "merged: [(addr, size, lower, perms)], else [(addr, size, lower, perms, leaf)]."},
    {"canonical", (PyCFunction)sp_canonical, METH_O, "canonical(addr) -> int"},
    {"dmesg", (PyCFunction)(void (*)(void))sp_dmesg, METH_VARARGS | METH_KEYWORDS,
     "dmesg(symbols=None, vmcoreinfo=None, style='plain', level=-1) -> str: the Linux\n"
     "kernel log in this level's guest-physical memory (VMCOREINFO scan, or the\n"
     "vmlinux/System.map given), as `memsrv dmesg [--raw|--crash] [--level N]`. Over a\n"
     "connection the server finds the kernel (and keeps it) with its own symbol file."},
    {"symbol", (PyCFunction)(void (*)(void))sp_symbol, METH_VARARGS | METH_KEYWORDS,
     "symbol(name_or_addr, symbols=None, vmcoreinfo=None): name -> runtime address (KASLR\n"
     "applied); address -> (name, offset) of the symbol at or below it. Same kernel as\n"
     "dmesg(); with no symbol file, the kernel's kallsyms. In-process each call opens the\n"
     "kernel anew; a server keeps it."},
    {"vtop", (PyCFunction)sp_vtop, METH_O,
     "vtop(addr) -> str: the library's report, every entry of every dimension decoded.\n"
     "On failure MemsrvError carries .output (the entries read so far)."},
    {"ptdump", (PyCFunction)(void (*)(void))sp_ptdump, METH_VARARGS | METH_KEYWORDS,
     "ptdump(start=0, end=2**64-1) -> str: merged ranges (the library's report)."},
    {"describe", (PyCFunction)sp_describe, METH_NOARGS,
     "describe() -> str: '5-level paging (CR3 0x..) over ... over guest-physical RAM'"},
    {"perm_text", (PyCFunction)sp_perm_text, METH_O, "perm_text(perms) -> 'rwx u'"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef sp_getset[] = {
    {"kind", (getter)sp_get_kind, NULL, "the top space's kind", NULL},
    {"levels", (getter)sp_get_levels, NULL, NULL, NULL},
    {"root", (getter)sp_get_root, NULL, "CR3/nCR3/EPTP as given", NULL},
    {"memory", (getter)sp_get_memory, NULL, NULL, NULL},
    {"stack", (getter)sp_get_stack, NULL, "[(kind, root, levels)] top first", NULL},
    {"stats", (getter)sp_get_stats, NULL, "the top space's cache counters", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject SpaceType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "_memsrv.Space",
    .tp_basicsize = sizeof(SpaceObject),
    .tp_dealloc = (destructor)sp_dealloc,
    .tp_repr = (reprfunc)sp_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An address space stack (from Memory.space()).",
    .tp_methods = sp_methods,
    .tp_getset = sp_getset,
};

/* ------------------------------------------------------------------ module */

static PyObject *mod_kind_name(PyObject *self, PyObject *arg)
{
    (void)self;
    long k = PyLong_AsLong(arg);
    if (k == -1 && PyErr_Occurred())
        return NULL;
    if (k < MS_SPACE_PHYS || k > MS_SPACE_EPT) {
        PyErr_Format(PyExc_ValueError, "no space kind %ld", k);
        return NULL;
    }
    return PyUnicode_FromString(ms_space_kind_name((enum ms_space_kind)k));
}

static PyObject *mod_level_name(PyObject *self, PyObject *arg)
{
    (void)self;
    long l = PyLong_AsLong(arg);
    if (l == -1 && PyErr_Occurred())
        return NULL;
    if (l < 1 || l > 5) {
        PyErr_Format(PyExc_ValueError, "no paging level %ld", l);
        return NULL;
    }
    return PyUnicode_FromString(ms_level_name((unsigned)l));
}

static PyObject *mod_code_name(PyObject *self, PyObject *arg)
{
    (void)self;
    long c = PyLong_AsLong(arg);
    if (c == -1 && PyErr_Occurred())
        return NULL;
    return PyUnicode_FromString(ms_code_name((int)c));
}

static PyObject *mod_describe_entry(PyObject *self, PyObject *args)
{
    (void)self;
    int kind;
    unsigned level;
    uint64_t value;
    if (!PyArg_ParseTuple(args, "iIO&:describe_entry", &kind, &level, u64_conv, &value))
        return NULL;
    char out[128];
    ms_pte_describe(kind == MS_SPACE_EPT ? MS_PTE_EPT : MS_PTE_X86, value, level, out, sizeof(out));
    return PyUnicode_FromString(out);
}

/* parse_fmt(text, format='x', size='w') -> (count, format, size) */
static PyObject *mod_parse_fmt(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"text", "format", "size", NULL};
    const char *text;
    struct ms_xfmt fmt = {.count = 1, .format = 'x', .size = 'w'};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|O&O&:parse_fmt", kwlist, &text, letter_conv,
                                     &fmt.format, letter_conv, &fmt.size))
        return NULL;
    if (text[0] == '/')
        text++;
    struct ms_err err = {0};
    if (ms_xfmt_parse(text, &fmt, &err))
        return raise_err(&err);
    return Py_BuildValue("(KCC)", (unsigned long long)fmt.count, fmt.format, fmt.size);
}

static PyMethodDef mod_methods[] = {
    {"open", (PyCFunction)(void (*)(void))mod_open, METH_VARARGS | METH_KEYWORDS,
     "open(path, machine=None, map=None, writable=False) -> Memory\n"
     "A raw memory-backend-file. Layout: map ('GPA:LEN@OFF,...'), else PATH.layout\n"
     "when it exists, else QEMU's rule for machine ('q35' default, or 'pc')."},
    {"open_dump", (PyCFunction)(void (*)(void))mod_open_dump, METH_VARARGS | METH_KEYWORDS,
     "open_dump(path, writable=False) -> Memory: a QEMU dump-guest-memory ELF file."},
    {"connect", (PyCFunction)(void (*)(void))mod_connect, METH_VARARGS | METH_KEYWORDS,
     "connect(address, token=None, timeout=30.0) -> Memory served by `memsrv serve`:\n"
     "address is its UNIX socket path or 'tcp:HOST:PORT' (token: the server's --token-file\n"
     "text). A call fails after `timeout` seconds without progress (0: waits forever).\n"
     "Spaces read, write, translate, x, vtop, ptdump, dmesg and symbol through the server;\n"
     "what its protocol does not carry (view, enumerate, discover, regions, cpus, ...)\n"
     "raises MemsrvError."},
    {"parse_fmt", (PyCFunction)(void (*)(void))mod_parse_fmt, METH_VARARGS | METH_KEYWORDS,
     "parse_fmt(text, format='x', size='w') -> (count, format, size)"},
    {"describe_entry", mod_describe_entry, METH_VARARGS,
     "describe_entry(kind, level, value) -> 'P RW US A ...' (the library's decoding)"},
    {"kind_name", mod_kind_name, METH_O, "kind_name(kind) -> str"},
    {"level_name", mod_level_name, METH_O, "level_name(level) -> 'PML4E', ..."},
    {"code_name", mod_code_name, METH_O, "code_name(code) -> str"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef memsrv_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_memsrv",
    .m_doc = "Guest memory through nested address spaces (the memsrv library, in-process or\n"
             "through a memsrv server).",
    .m_size = -1,
    .m_methods = mod_methods,
};

PyMODINIT_FUNC PyInit__memsrv(void);

PyMODINIT_FUNC PyInit__memsrv(void)
{
    if (PyType_Ready(&MemoryType) < 0 || PyType_Ready(&SpaceType) < 0 ||
        PyType_Ready(&SliceType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&memsrv_module);
    if (!m)
        return NULL;
    MemsrvError = PyErr_NewExceptionWithDoc(
        "_memsrv.MemsrvError",
        "An error from the memsrv library: str() is its message; .code the MS_E* code\n"
        "(negative), .code_name its short name.",
        NULL, NULL);
    if (!MemsrvError)
        goto fail;
    /* Class-level defaults, so every instance has the attributes. */
    PyObject *dc = PyLong_FromLong(MS_EINVAL);
    PyObject *dn = PyUnicode_FromString(ms_code_name(MS_EINVAL));
    if (!dc || !dn || PyObject_SetAttrString(MemsrvError, "code", dc) ||
        PyObject_SetAttrString(MemsrvError, "code_name", dn)) {
        Py_XDECREF(dc);
        Py_XDECREF(dn);
        goto fail;
    }
    Py_DECREF(dc);
    Py_DECREF(dn);
    Py_INCREF(MemsrvError);
    if (PyModule_AddObject(m, "MemsrvError", MemsrvError) < 0) {
        Py_DECREF(MemsrvError);
        goto fail;
    }
    Py_INCREF(&MemoryType);
    Py_INCREF(&SpaceType);
    if (PyModule_AddObject(m, "Memory", (PyObject *)&MemoryType) < 0 ||
        PyModule_AddObject(m, "Space", (PyObject *)&SpaceType) < 0)
        goto fail;
    struct {
        const char *name;
        long value;
    } consts[] = {
        {"PERM_R", MS_PERM_R},
        {"PERM_W", MS_PERM_W},
        {"PERM_X", MS_PERM_X},
        {"PERM_U", MS_PERM_U},
        {"KIND_PHYS", MS_SPACE_PHYS},
        {"KIND_PAGING", MS_SPACE_PAGING},
        {"KIND_NPT", MS_SPACE_NPT},
        {"KIND_EPT", MS_SPACE_EPT},
        {"E_INVAL", MS_EINVAL},
        {"E_NOMEM", MS_ENOMEM},
        {"E_IO", MS_EIO},
        {"E_FORMAT", MS_EFORMAT},
        {"E_UNMAPPED", MS_EUNMAPPED},
        {"E_OUTSIDE", MS_EOUTSIDE},
        {"E_RESERVED", MS_ERESERVED},
        {"E_NOTFOUND", MS_ENOTFOUND},
        {"E_BUS", MS_EBUS},
        {"E_PERM", MS_EPERM},
        {"E_LIMIT", MS_ELIMIT},
        {"E_PROTO", MS_EPROTO},
    };
    for (size_t i = 0; i < sizeof(consts) / sizeof(consts[0]); i++)
        if (PyModule_AddIntConstant(m, consts[i].name, consts[i].value) < 0)
            goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
