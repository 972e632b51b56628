/* _memsrv: the memsrv library for Python (GDB's embedded Python or
 * /usr/bin/python3): a thin front over one ms_target (memsrv.h), in-process
 * or through a running `memsrv serve` alike. Every walk, parse and format
 * is the library's; this file only converts arguments, results and errors.
 *
 *   m = _memsrv.open(path, machine=None, map=None, writable=False, symbols=None)
 *   m = _memsrv.open_dump(path, writable=False, symbols=None)
 *   m = _memsrv.connect(address, token=None, timeout=30.0)
 *   sp = m.space(cr3=None, levels=4, eptp=None, ncr3=None, npt_levels=4, kernel=False)
 *   sp.read(addr, n) -> bytes       sp.read_into(addr, buf) -> int
 *   sp.translate(addr) -> (phys, lower, page_size, perms, trace)
 *   sp.x(fmt, addr, symbolizer=None) -> str
 *   sp.dmesg(style='plain', level=-1) -> str   # the kernel of sp's guest-physical level
 *   sp.dmesg_next(cursor=None, style='plain', level=-1) -> (str, lost, cursor)  # following
 *   sp.symbol('name') -> addr    sp.symbol(addr) -> (name, offset)
 *   sp.tasks() -> [(pid, ppid, state, task, comm)]
 *   m.flush()
 *
 * The GIL is released around every library call (a lock keeps one call at
 * a time on a target); a call that takes a Python symbolizer keeps it. No
 * Python object ever points into guest RAM: a RAM file that shrinks gives
 * MemsrvError, never SIGBUS in GDB. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "memsrv.h"

/* Largest single read(): guest memory is hostile input, and a typo in a
 * count should not try to allocate terabytes. */
#define MAX_READ ((Py_ssize_t)1 << 32)

static PyObject *MemsrvError;

/* Raises MemsrvError(msg) with .code, .code_name, .hint and .fault_addr
 * (None when no address faulted); returns NULL. */
static PyObject *raise_err(const struct ms_err *err)
{
    static const char *const hints[] = {
        [MS_HINT_SYMBOLS] = "symbols",   [MS_HINT_DWARF] = "dwarf", [MS_HINT_LAYOUT] = "layout",
        [MS_HINT_WRITABLE] = "writable", [MS_HINT_TOKEN] = "token",
    };
    int code = err->code ? err->code : MS_EINVAL;
    const char *msg = err->msg[0] ? err->msg : ms_code_name(code);
    PyObject *exc = PyObject_CallFunction(MemsrvError, "s", msg);
    if (!exc)
        return NULL;
    PyObject *c = PyLong_FromLong(code);
    PyObject *n = PyUnicode_FromString(ms_code_name(code));
    PyObject *h = err->hint > 0 && err->hint <= MS_HINT_TOKEN
                      ? PyUnicode_FromString(hints[err->hint])
                      : Py_NewRef(Py_None);
    PyObject *f =
        err->has_fault ? PyLong_FromUnsignedLongLong(err->fault_addr) : Py_NewRef(Py_None);
    if (c && n && h && f) {
        PyObject_SetAttrString(exc, "code", c);
        PyObject_SetAttrString(exc, "code_name", n);
        PyObject_SetAttrString(exc, "hint", h);
        PyObject_SetAttrString(exc, "fault_addr", f);
    }
    Py_XDECREF(c);
    Py_XDECREF(n);
    Py_XDECREF(h);
    Py_XDECREF(f);
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

/* Like u64_conv, with None meaning "not given". */
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

/* ------------------------------------------------------------------ Memory */

typedef struct {
    PyObject_HEAD struct ms_target *t; /* NULL once closed */
    PyThread_type_lock lock;           /* one call at a time on t */
    PyObject *path;                    /* the file, or the server's address */
} MemoryObject;

static PyTypeObject MemoryType;

/* Around a library call: releases the GIL (other Python threads run during
 * long walks and socket I/O) and takes the target's lock. No Python API
 * between call_begin and call_end. */
static PyThreadState *call_begin(MemoryObject *m)
{
    PyThreadState *ts = PyEval_SaveThread();
    PyThread_acquire_lock(m->lock, WAIT_LOCK);
    return ts;
}

static void call_end(MemoryObject *m, PyThreadState *ts)
{
    PyThread_release_lock(m->lock);
    PyEval_RestoreThread(ts);
}

/* The lock for a call that runs Python (a symbolizer): taken without the
 * GIL (a thread holding the lock may wait for the GIL), then kept with it. */
static void call_begin_gil(MemoryObject *m)
{
    PyThreadState *ts = PyEval_SaveThread();
    PyThread_acquire_lock(m->lock, WAIT_LOCK);
    PyEval_RestoreThread(ts);
}

#define CALL(m, rc, expr)                                                                          \
    do {                                                                                           \
        PyThreadState *ts_ = call_begin(m);                                                        \
        rc = (expr);                                                                               \
        call_end(m, ts_);                                                                          \
    } while (0)

static int mem_check(MemoryObject *m)
{
    if (!m->t) {
        PyErr_SetString(PyExc_ValueError, "memory is closed");
        return -1;
    }
    return 0;
}

static void mem_dealloc(MemoryObject *m)
{
    ms_target_close(m->t);
    if (m->lock)
        PyThread_free_lock(m->lock);
    Py_XDECREF(m->path);
    PyObject_Free(m);
}

/* Opens a target (GIL released: a connect may wait) into a new Memory. */
static PyObject *mem_open(const struct ms_target_opts *o, const char *where)
{
    MemoryObject *m = PyObject_New(MemoryObject, &MemoryType);
    if (!m)
        return NULL;
    m->t = NULL;
    m->lock = PyThread_allocate_lock();
    m->path = PyUnicode_DecodeFSDefault(where);
    if (!m->lock || !m->path) {
        Py_DECREF(m);
        return PyErr_Occurred() ? NULL : PyErr_NoMemory();
    }
    struct ms_err err = {0};
    int rc;
    CALL(m, rc, ms_target_open(&m->t, o, &err));
    if (rc) {
        Py_DECREF(m);
        return raise_err(&err);
    }
    return (PyObject *)m;
}

static PyObject *mod_open(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"path", "machine", "map", "writable", "symbols", NULL};
    PyObject *path_obj = NULL;
    struct ms_target_opts o = {0};
    int writable = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|zzpz:open", kwlist, PyUnicode_FSConverter,
                                     &path_obj, &o.machine, &o.map, &writable, &o.symbols))
        return NULL;
    o.ram = PyBytes_AS_STRING(path_obj);
    o.writable = writable;
    PyObject *m = mem_open(&o, o.ram);
    Py_DECREF(path_obj);
    return m;
}

static PyObject *mod_open_dump(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"path", "writable", "symbols", NULL};
    PyObject *path_obj = NULL;
    struct ms_target_opts o = {0};
    int writable = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|pz:open_dump", kwlist, PyUnicode_FSConverter,
                                     &path_obj, &writable, &o.symbols))
        return NULL;
    o.dump = PyBytes_AS_STRING(path_obj);
    o.writable = writable;
    PyObject *m = mem_open(&o, o.dump);
    Py_DECREF(path_obj);
    return m;
}

static PyObject *mod_connect(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"address", "token", "timeout", NULL};
    PyObject *addr_obj = NULL;
    struct ms_target_opts o = {0};
    double timeout = 30.0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|zd:connect", kwlist, PyUnicode_FSConverter,
                                     &addr_obj, &o.token, &timeout))
        return NULL;
    if (!(timeout >= 0 && timeout <= 86400)) {
        Py_DECREF(addr_obj);
        PyErr_SetString(PyExc_ValueError, "timeout must be 0 (none) to 86400 seconds");
        return NULL;
    }
    o.connect = PyBytes_AS_STRING(addr_obj);
    /* 0 means "wait forever" here; the library's 0 means its default. */
    unsigned ms = (unsigned)(timeout * 1000);
    o.timeout_ms = timeout == 0 ? UINT32_MAX : ms ? ms : 1;
    PyObject *m = mem_open(&o, o.connect);
    Py_DECREF(addr_obj);
    return m;
}

static const struct ms_target_info *mem_info(MemoryObject *m)
{
    if (mem_check(m))
        return NULL;
    const struct ms_target_info *in;
    ms_target_info(m->t, &in, NULL);
    return in;
}

static PyObject *mem_flush(MemoryObject *m, PyObject *unused)
{
    (void)unused;
    if (mem_check(m))
        return NULL;
    struct ms_err err = {0};
    int rc;
    CALL(m, rc, ms_target_flush(m->t, &err));
    if (rc)
        return raise_err(&err);
    Py_RETURN_NONE;
}

static PyObject *mem_set_symbols(MemoryObject *m, PyObject *args)
{
    PyObject *path_obj = NULL;
    if (!PyArg_ParseTuple(args, "O&:set_symbols", PyUnicode_FSConverter, &path_obj))
        return NULL;
    if (mem_check(m)) {
        Py_DECREF(path_obj);
        return NULL;
    }
    struct ms_err err = {0};
    int rc;
    const char *path = PyBytes_AS_STRING(path_obj);
    CALL(m, rc, ms_target_set_symbols(m->t, path[0] ? path : NULL, &err));
    Py_DECREF(path_obj);
    if (rc)
        return raise_err(&err);
    Py_RETURN_NONE;
}

static PyObject *mem_close(MemoryObject *m, PyObject *unused)
{
    (void)unused;
    /* Waits for a call another thread has in flight. */
    PyThreadState *ts = call_begin(m);
    ms_target_close(m->t);
    m->t = NULL;
    call_end(m, ts);
    Py_RETURN_NONE;
}

static PyObject *mem_enter(MemoryObject *m, PyObject *unused)
{
    (void)unused;
    return Py_NewRef(m);
}

static PyObject *mem_exit(MemoryObject *m, PyObject *args)
{
    (void)args;
    return mem_close(m, NULL);
}

static PyObject *mem_get_regions(MemoryObject *m, void *closure)
{
    (void)closure;
    const struct ms_target_info *in = mem_info(m);
    if (!in)
        return NULL;
    PyObject *list = PyList_New(0);
    for (unsigned i = 0; list && i < in->nregions; i++) {
        const struct ms_target_region *r = &in->regions[i];
        PyObject *t =
            Py_BuildValue("(KKKI)", (unsigned long long)r->gpa, (unsigned long long)r->len,
                          (unsigned long long)r->offset, r->source);
        if (!t || PyList_Append(list, t))
            Py_CLEAR(list);
        Py_XDECREF(t);
    }
    return list;
}

static PyObject *mem_get_size(MemoryObject *m, void *closure)
{
    (void)closure;
    const struct ms_target_info *in = mem_info(m);
    return in ? PyLong_FromUnsignedLongLong(in->ram_size) : NULL;
}

static PyObject *mem_get_end(MemoryObject *m, void *closure)
{
    (void)closure;
    const struct ms_target_info *in = mem_info(m);
    return in ? PyLong_FromUnsignedLongLong(in->ram_end) : NULL;
}

static PyObject *mem_get_writable(MemoryObject *m, void *closure)
{
    (void)closure;
    const struct ms_target_info *in = mem_info(m);
    return in ? PyBool_FromLong(in->writable) : NULL;
}

static PyObject *mem_get_remote(MemoryObject *m, void *closure)
{
    (void)closure;
    const struct ms_target_info *in = mem_info(m);
    return in ? PyBool_FromLong(in->remote) : NULL;
}

static int mem_stats(MemoryObject *m, struct ms_target_stats *st)
{
    if (mem_check(m))
        return -1;
    struct ms_err err = {0};
    int rc;
    CALL(m, rc, ms_target_stats(m->t, st, &err));
    if (rc)
        raise_err(&err);
    return rc;
}

static PyObject *mem_get_generation(MemoryObject *m, void *closure)
{
    (void)closure;
    struct ms_target_stats st;
    return mem_stats(m, &st) ? NULL : PyLong_FromUnsignedLongLong(st.generation);
}

static PyObject *mem_get_stats(MemoryObject *m, void *closure)
{
    (void)closure;
    struct ms_target_stats st;
    if (mem_stats(m, &st))
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
    return PyBool_FromLong(m->t == NULL);
}

static PyObject *mem_get_path(MemoryObject *m, void *closure)
{
    (void)closure;
    return Py_NewRef(m->path);
}

static PyObject *mem_get_vmcoreinfo(MemoryObject *m, void *closure)
{
    (void)closure;
    const struct ms_target_info *in = mem_info(m);
    if (!in)
        return NULL;
    if (!in->vmcoreinfo)
        Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(in->vmcoreinfo, (Py_ssize_t)in->vmcoreinfo_len, "replace");
}

/* The registers recorded in an ELF dump, one dict per vCPU. */
static PyObject *mem_get_cpus(MemoryObject *m, void *closure)
{
    (void)closure;
    const struct ms_target_info *in = mem_info(m);
    if (!in)
        return NULL;
    PyObject *list = PyList_New(0);
    for (unsigned i = 0; list && i < in->ncpus; i++) {
        const struct ms_cpu_state *c = &in->cpus[i];
#define R(n) #n, (unsigned long long)c->n
        PyObject *d = Py_BuildValue(
            "{sKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsO}", R(rax), R(rbx), R(rcx),
            R(rdx), R(rsi), R(rdi), R(rsp), R(rbp), R(r8), R(r9), R(r10), R(r11), R(r12), R(r13),
            R(r14), R(r15), R(rip), R(rflags), R(fs_base), R(gs_base), R(kernel_gs_base), R(cr0),
            R(cr2), R(cr3), R(cr4), "has_cr", c->has_cr ? Py_True : Py_False);
#undef R
        if (!d || PyList_Append(list, d))
            Py_CLEAR(list);
        Py_XDECREF(d);
    }
    return list;
}

/* discover(max=64) -> [dict], best first: kind ('VMCB', 'HSAVE', 'vmcs12',
 * 'EPT tree'), gpa, root, root_levels, saved registers, asid, vcpu (a
 * VMCB's nested-guest CPU, -1 not told), score, evidence. */
static PyObject *mem_discover(MemoryObject *m, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"max", NULL};
    unsigned max = 64;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|I:discover", kwlist, &max))
        return NULL;
    if (mem_check(m))
        return NULL;
    if (max == 0 || max > 1000) {
        PyErr_SetString(PyExc_ValueError, "max must be 1..1000");
        return NULL;
    }
    struct ms_candidate *c = PyMem_Calloc(max, sizeof(*c));
    if (!c)
        return PyErr_NoMemory();
    struct ms_err err = {0};
    unsigned count = 0;
    int rc;
    CALL(m, rc, ms_target_discover(m->t, c, max, &count, &err));
    if (rc) {
        PyMem_Free(c);
        return raise_err(&err);
    }
    PyObject *list = PyList_New(0);
    for (unsigned i = 0; list && i < count && i < max; i++) {
        const struct ms_candidate *p = &c[i];
        PyObject *d = Py_BuildValue(
            "{sssKsKsIsKsKsKsKsKsKsIsisiss}", "kind", ms_cand_kind_name(p->kind), "gpa",
            (unsigned long long)p->gpa, "root", (unsigned long long)p->root, "root_levels",
            p->root_levels, "cr0", (unsigned long long)p->cr0, "cr3", (unsigned long long)p->cr3,
            "cr4", (unsigned long long)p->cr4, "efer", (unsigned long long)p->efer, "rip",
            (unsigned long long)p->rip, "rsp", (unsigned long long)p->rsp, "asid", p->asid, "vcpu",
            (int)p->vcpu, "score", p->score, "evidence", p->evidence);
        if (!d || PyList_Append(list, d))
            Py_CLEAR(list);
        Py_XDECREF(d);
    }
    PyMem_Free(c);
    return list;
}

static PyObject *mem_space(MemoryObject *m, PyObject *args, PyObject *kw);

static PyObject *mem_repr(MemoryObject *m)
{
    if (!m->t)
        return PyUnicode_FromFormat("<_memsrv.Memory %R (closed)>", m->path);
    const struct ms_target_info *in = mem_info(m);
    if (in->remote)
        return PyUnicode_FromFormat("<_memsrv.Memory served by memsrv at %R, %llu bytes, %s>",
                                    m->path, (unsigned long long)in->ram_size,
                                    in->writable ? "writable" : "read-only");
    return PyUnicode_FromFormat("<_memsrv.Memory %R, %llu bytes in %u region(s)>", m->path,
                                (unsigned long long)in->ram_size, in->nregions);
}

static PyMethodDef mem_methods[] = {
    {"space", (PyCFunction)(void (*)(void))mem_space, METH_VARARGS | METH_KEYWORDS,
     "space(cr3=None, levels=4, eptp=None, ncr3=None, npt_levels=4, kernel=False) -> Space\n"
     "An address space over this memory: physical when nothing is given; paging\n"
     "rooted at cr3 (4 or 5 levels), or the Linux kernel's own page tables (kernel=True);\n"
     "over EPT (eptp) or AMD NPT (ncr3) for a nested guest. eptp/ncr3 alone gives the\n"
     "nested guest's physical space."},
    {"discover", (PyCFunction)(void (*)(void))mem_discover, METH_VARARGS | METH_KEYWORDS,
     "discover(max=64) -> [dict], best first: VMCBs, host-save areas, vmcs12 pages and\n"
     "EPT-shaped trees in RAM, each with kind, gpa, root, root_levels, saved\n"
     "cr0/cr3/cr4/efer/rip/rsp, asid, vcpu, score and evidence."},
    {"flush", (PyCFunction)mem_flush, METH_NOARGS,
     "The guest ran: re-reads the files' sizes and drops every cached translation;\n"
     "kernels are checked for a reboot before their next use."},
    {"refresh", (PyCFunction)mem_flush, METH_NOARGS, "The same as flush()."},
    {"set_symbols", (PyCFunction)mem_set_symbols, METH_VARARGS,
     "set_symbols(path) -> None: the vmlinux or System.map for every kernel from now on\n"
     "('' for none). In-process only: a server has its own."},
    {"close", (PyCFunction)mem_close, METH_NOARGS,
     "Unmaps the files, or closes the connection to the server."},
    {"__enter__", (PyCFunction)mem_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)mem_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef mem_getset[] = {
    {"regions", (getter)mem_get_regions, NULL, "[(gpa, len, file_offset, source), ...]", NULL},
    {"size", (getter)mem_get_size, NULL, "backed bytes", NULL},
    {"end", (getter)mem_get_end, NULL, "highest backed address + 1", NULL},
    {"writable", (getter)mem_get_writable, NULL, NULL, NULL},
    {"closed", (getter)mem_get_closed, NULL, NULL, NULL},
    {"remote", (getter)mem_get_remote, NULL, "True when served by memsrv (connect())", NULL},
    {"stats", (getter)mem_get_stats, NULL,
     "requests and errors (a server's), generation, and the translation caches' hits,\n"
     "misses, walks and table_reads",
     NULL},
    {"generation", (getter)mem_get_generation, NULL,
     "bumped by flush(): translations cached before it are stale", NULL},
    {"path", (getter)mem_get_path, NULL, "the file, or the server's address", NULL},
    {"vmcoreinfo", (getter)mem_get_vmcoreinfo, NULL,
     "the VMCOREINFO note of a dump (the outer guest's kernel), or None", NULL},
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

/* ------------------------------------------------------------------- Space */

typedef struct {
    PyObject_HEAD MemoryObject *mem;
    ms_handle h;
} SpaceObject;

static PyTypeObject SpaceType;

static int sp_check(SpaceObject *s)
{
    return mem_check(s->mem);
}

static void sp_dealloc(SpaceObject *s)
{
    Py_XDECREF(s->mem);
    PyObject_Free(s);
}

static PyObject *mem_space(MemoryObject *m, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"cr3", "levels", "eptp", "ncr3", "npt_levels", "kernel", NULL};
    struct opt_u64 cr3 = {0}, eptp = {0}, ncr3 = {0};
    unsigned levels = 4, npt_levels = 4;
    int kernel = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O&IO&O&Ip:space", kwlist, opt_u64_conv, &cr3,
                                     &levels, opt_u64_conv, &eptp, opt_u64_conv, &ncr3, &npt_levels,
                                     &kernel))
        return NULL;
    if (mem_check(m))
        return NULL;
    if (eptp.given && ncr3.given) {
        PyErr_SetString(PyExc_ValueError, "give eptp (Intel EPT) or ncr3 (AMD NPT), not both");
        return NULL;
    }
    if (kernel && cr3.given) {
        PyErr_SetString(PyExc_ValueError, "give cr3 or kernel=True, not both");
        return NULL;
    }
    struct ms_stack st = {
        .second = eptp.given   ? MS_SECOND_EPT
                  : ncr3.given ? MS_SECOND_NPT
                               : MS_SECOND_NONE,
        .second_root = eptp.given ? eptp.value : ncr3.value,
        .second_levels = npt_levels,
        .first = kernel      ? MS_FIRST_KERNEL
                 : cr3.given ? MS_FIRST_CR3
                             : MS_FIRST_NONE,
        .cr3 = cr3.value,
        .levels = levels,
    };
    struct ms_err err = {0};
    ms_handle h = 0;
    int rc;
    CALL(m, rc, ms_target_space(m->t, &st, &h, &err));
    if (rc)
        return raise_err(&err);
    SpaceObject *s = PyObject_New(SpaceObject, &SpaceType);
    if (!s)
        return NULL;
    s->mem = (MemoryObject *)Py_NewRef(m);
    s->h = h;
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
    int rc;
    char *buf = PyBytes_AS_STRING(out);
    CALL(s->mem, rc, ms_target_read(s->mem->t, s->h, addr, buf, (size_t)n, &done, &err));
    if (rc) {
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
    int rc;
    if (write)
        CALL(s->mem, rc,
             ms_target_write(s->mem->t, s->h, addr, buf.buf, (size_t)buf.len, &done, &err));
    else
        CALL(s->mem, rc,
             ms_target_read(s->mem->t, s->h, addr, buf.buf, (size_t)buf.len, &done, &err));
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

static PyObject *trace_list(const struct ms_trace *t)
{
    PyObject *list = PyList_New(0);
    for (unsigned i = 0; list && i < t->count && i < MS_TRACE_MAX; i++) {
        const struct ms_trace_entry *e = &t->entries[i];
        PyObject *tup =
            Py_BuildValue("(IIIIKKK)", (unsigned)e->depth, (unsigned)e->kind, (unsigned)e->level,
                          (unsigned)e->index, (unsigned long long)e->entry_addr,
                          (unsigned long long)e->entry_phys, (unsigned long long)e->value);
        if (!tup || PyList_Append(list, tup))
            Py_CLEAR(list);
        Py_XDECREF(tup);
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
    if (want_trace && !(trace = PyMem_Calloc(1, sizeof(*trace))))
        return PyErr_NoMemory();
    int rc, status = 0;
    CALL(s->mem, rc, ms_target_translate(s->mem->t, s->h, 1, &addr, &x, &status, trace, &err));
    if (rc || status) {
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

/* Text a report wrote, raising with .output (what came before the error)
 * when rc says it failed. */
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
    struct ms_x_state xs = {.format = 'x', .size = 'w'};
    int full = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "sO&|OO&O&p:x", kwlist, &text, u64_conv, &addr,
                                     &symfn, letter_conv, &xs.format, letter_conv, &xs.size, &full))
        return NULL;
    if (sp_check(s))
        return NULL;
    if (symfn != Py_None && !PyCallable_Check(symfn)) {
        PyErr_SetString(PyExc_TypeError, "symbolizer must be callable or None");
        return NULL;
    }
    struct ms_err err = {0};
    struct sym_ctx sym = {symfn, 0};
    struct ms_strbuf out;
    ms_strbuf_init(&out);
    int rc;
    if (symfn != Py_None) {
        xs.symbolize = py_symbolize;
        xs.symbolize_arg = &sym;
        call_begin_gil(s->mem);
        rc = ms_target_x(s->mem->t, s->h, text, addr, &xs, &out, &err);
        PyThread_release_lock(s->mem->lock);
    } else {
        CALL(s->mem, rc, ms_target_x(s->mem->t, s->h, text, addr, &xs, &out, &err));
    }
    if (sym.failed) {
        ms_strbuf_free(&out);
        return NULL; /* the symbolizer's exception */
    }
    if (rc && !out.len && !err.has_fault && err.code == MS_EINVAL) {
        ms_strbuf_free(&out);
        return raise_err(&err); /* a bad format */
    }
    if (!full)
        return report_result(&out, rc, &err);
    PyObject *str = report_result(&out, 0, NULL);
    if (!str)
        return NULL;
    PyObject *e = Py_NewRef(Py_None);
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
    return Py_BuildValue("(NKCCN)", str, (unsigned long long)xs.next, xs.format, xs.size, e);
}

/* Collects (merged) leaf mappings for enumerate(): called with the GIL. */
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
    if (sp_check(s))
        return NULL;
    struct enum_ctx c = {.list = PyList_New(0), .merge = merge};
    if (!c.list)
        return NULL;
    struct ms_err err = {0};
    uint64_t bad = 0;
    call_begin_gil(s->mem);
    int rc = ms_target_enumerate(s->mem->t, s->h, start, end, enum_cb, &c, max_tables, &bad, &err);
    PyThread_release_lock(s->mem->lock);
    if (PyErr_Occurred() || (rc == 0 && enum_flush(&c))) {
        Py_DECREF(c.list);
        return NULL;
    }
    if (rc < 0) {
        Py_DECREF(c.list);
        return raise_err(&err);
    }
    return Py_BuildValue("(NK)", c.list, (unsigned long long)bad);
}

static PyObject *sp_vtop(SpaceObject *s, PyObject *arg)
{
    uint64_t addr;
    if (!u64_conv(arg, &addr) || sp_check(s))
        return NULL;
    struct ms_strbuf out;
    struct ms_err err = {0};
    ms_strbuf_init(&out);
    int rc;
    CALL(s->mem, rc, ms_target_vtop(s->mem->t, s->h, addr, &out, &err));
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
    int rc;
    CALL(s->mem, rc, ms_target_ptdump(s->mem->t, s->h, start, end, &out, &err));
    return report_result(&out, rc, &err);
}

static PyObject *sp_describe(SpaceObject *s, PyObject *unused)
{
    (void)unused;
    if (sp_check(s))
        return NULL;
    struct ms_strbuf out;
    struct ms_err err = {0};
    ms_strbuf_init(&out);
    int rc;
    CALL(s->mem, rc, ms_target_describe(s->mem->t, s->h, &out, &err));
    return report_result(&out, rc, &err);
}

static PyObject *sp_perm_text(SpaceObject *s, PyObject *arg)
{
    unsigned long perms = PyLong_AsUnsignedLong(arg);
    if ((perms == (unsigned long)-1 && PyErr_Occurred()) || sp_check(s))
        return NULL;
    char text[8];
    struct ms_err err = {0};
    int rc;
    CALL(s->mem, rc, ms_target_perm_text(s->mem->t, s->h, (unsigned)perms, text, &err));
    return rc ? raise_err(&err) : PyUnicode_FromString(text);
}

static PyObject *sp_canonical(SpaceObject *s, PyObject *arg)
{
    uint64_t addr, out;
    if (!u64_conv(arg, &addr) || sp_check(s))
        return NULL;
    struct ms_err err = {0};
    int rc;
    CALL(s->mem, rc, ms_target_canonical(s->mem->t, s->h, addr, &out, &err));
    return rc ? raise_err(&err) : PyLong_FromUnsignedLongLong(out);
}

/* dmesg(style='plain', level=-1) -> str */
static PyObject *sp_dmesg(SpaceObject *s, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"style", "level", NULL};
    static const char *const styles[] = {"plain", "raw", "crash"}; /* enum ms_dmesg_style */
    const char *style = "plain";
    int level = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|si:dmesg", kwlist, &style, &level))
        return NULL;
    struct ms_dmesg_opts o = {MS_DMESG_PLAIN, level};
    while (o.style <= MS_DMESG_CRASH && strcmp(style, styles[o.style]) != 0)
        o.style++;
    if (o.style > MS_DMESG_CRASH || level < -1 || level > 7) {
        PyErr_SetString(PyExc_ValueError, "style is 'plain', 'raw' or 'crash'; level -1 or 0..7");
        return NULL;
    }
    if (sp_check(s))
        return NULL;
    struct ms_strbuf out;
    struct ms_err err = {0};
    ms_strbuf_init(&out);
    int rc;
    CALL(s->mem, rc, ms_target_dmesg(s->mem->t, s->h, &o, &out, NULL, &err));
    if (rc) {
        ms_strbuf_free(&out);
        return raise_err(&err);
    }
    return report_result(&out, 0, NULL);
}

/* dmesg_next(cursor=None, style='plain', level=-1) -> (text, lost, cursor):
 * the records after the cursor (None: every record in the ring), as
 * ms_target_dmesg_next; the cursor is an opaque tuple to pass back. */
static PyObject *sp_dmesg_next(SpaceObject *s, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"cursor", "style", "level", NULL};
    static const char *const styles[] = {"plain", "raw", "crash"}; /* enum ms_dmesg_style */
    PyObject *cursor = Py_None;
    const char *style = "plain";
    int level = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|Osi:dmesg_next", kwlist, &cursor, &style, &level))
        return NULL;
    struct ms_dmesg_opts o = {MS_DMESG_PLAIN, level};
    while (o.style <= MS_DMESG_CRASH && strcmp(style, styles[o.style]) != 0)
        o.style++;
    if (o.style > MS_DMESG_CRASH || level < -1 || level > 7) {
        PyErr_SetString(PyExc_ValueError, "style is 'plain', 'raw' or 'crash'; level -1 or 0..7");
        return NULL;
    }
    struct ms_dmesg_cursor cur = {0};
    unsigned long long next_seq = 0, stall_seq = 0;
    int started = 0;
    unsigned stalls = 0;
    if (cursor != Py_None) {
        if (!PyArg_ParseTuple(cursor, "KpKI:a dmesg_next cursor", &next_seq, &started, &stall_seq,
                              &stalls))
            return NULL;
        cur = (struct ms_dmesg_cursor){next_seq, started, stall_seq, stalls};
    }
    if (sp_check(s))
        return NULL;
    struct ms_strbuf out;
    struct ms_err err = {0};
    uint64_t lost = 0;
    ms_strbuf_init(&out);
    int rc;
    CALL(s->mem, rc, ms_target_dmesg_next(s->mem->t, s->h, &o, &cur, &out, &lost, &err));
    if (rc) {
        ms_strbuf_free(&out);
        return raise_err(&err);
    }
    PyObject *text = report_result(&out, 0, NULL);
    if (!text)
        return NULL;
    return Py_BuildValue("(NK(KOKI))", text, (unsigned long long)lost,
                         (unsigned long long)cur.next_seq, cur.started ? Py_True : Py_False,
                         (unsigned long long)cur.stall_seq, cur.stalls);
}

/* symbol(name_or_addr): a name -> its runtime address; an address ->
 * (name, offset). */
static PyObject *sp_symbol(SpaceObject *s, PyObject *what)
{
    const char *name = NULL;
    uint64_t addr = 0, off = 0;
    if (PyUnicode_Check(what) ? !(name = PyUnicode_AsUTF8(what)) : !u64_conv(what, &addr))
        return NULL;
    if (sp_check(s))
        return NULL;
    struct ms_strbuf sym;
    struct ms_err err = {0};
    ms_strbuf_init(&sym);
    int rc;
    if (name)
        CALL(s->mem, rc, ms_target_symbol(s->mem->t, s->h, name, &addr, &err));
    else
        CALL(s->mem, rc, ms_target_addrsym(s->mem->t, s->h, addr, &sym, &off, &err));
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

/* tasks() -> [(pid, ppid, state, task_struct, comm)] */
static PyObject *sp_tasks(SpaceObject *s, PyObject *unused)
{
    (void)unused;
    if (sp_check(s))
        return NULL;
    struct ms_task *tasks = NULL;
    size_t n = 0;
    uint64_t bad = 0;
    struct ms_err err = {0};
    int rc;
    CALL(s->mem, rc, ms_target_tasks(s->mem->t, s->h, &tasks, &n, &bad, &err));
    if (rc) {
        free(tasks);
        return raise_err(&err);
    }
    PyObject *list = PyList_New(0);
    for (size_t i = 0; list && i < n; i++) {
        const struct ms_task *t = &tasks[i];
        PyObject *tup = Py_BuildValue(
            "(iisKN)", t->pid, t->ppid, ms_task_state_name(t->state, t->exit_state),
            (unsigned long long)t->addr,
            PyUnicode_DecodeUTF8(t->comm, (Py_ssize_t)strnlen(t->comm, 16), "backslashreplace"));
        if (!tup || PyList_Append(list, tup))
            Py_CLEAR(list);
        Py_XDECREF(tup);
    }
    free(tasks);
    return list;
}

/* A register set from {name: int}: GDB's names (ms_reg_name). */
static int regs_from_dict(PyObject *dict, struct ms_regs *r)
{
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    if (!PyDict_Check(dict)) {
        PyErr_SetString(PyExc_TypeError, "regs must be a dict {name: int}");
        return -1;
    }
    while (PyDict_Next(dict, &pos, &key, &value)) {
        const char *name = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
        unsigned reg = 0;
        while (name && ms_reg_name(reg) && strcmp(ms_reg_name(reg), name))
            reg++;
        if (!name || !ms_reg_name(reg)) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError, "unknown register %R", key);
            return -1;
        }
        unsigned long long v = PyLong_AsUnsignedLongLongMask(value);
        if (v == (unsigned long long)-1 && PyErr_Occurred())
            return -1;
        r->v[reg] = v;
        r->valid |= 1ull << reg;
    }
    return 0;
}

static PyObject *sp_unwind(SpaceObject *s, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"ip", "sp", "bp", "exact", "regs", NULL};
    unsigned long long ip, sp;
    PyObject *bp = Py_None, *regs = Py_None;
    int exact = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "KK|OpO:unwind", kwlist, &ip, &sp, &bp, &exact,
                                     &regs))
        return NULL;
    if (sp_check(s))
        return NULL;
    struct ms_frame in = {0}, out;
    if (regs != Py_None && regs_from_dict(regs, &in.regs))
        return NULL;
    in.regs.v[MS_REG_RIP] = ip;
    in.regs.v[MS_REG_RSP] = sp;
    in.regs.valid |= 1ull << MS_REG_RIP | 1ull << MS_REG_RSP;
    if (bp != Py_None) {
        in.regs.v[MS_REG_RBP] = PyLong_AsUnsignedLongLongMask(bp);
        if (PyErr_Occurred())
            return NULL;
        in.regs.valid |= 1ull << MS_REG_RBP;
    }
    in.exact = exact;
    struct ms_err err = {0};
    int rc;
    CALL(s->mem, rc, ms_target_unwind_step(s->mem->t, s->h, &in, &out, &err));
    if (rc < 0)
        return raise_err(&err);
    if (rc == 0 && !out.user)
        Py_RETURN_NONE;
    PyObject *d = PyDict_New();
    for (unsigned reg = 0; d && reg < MS_REG_COUNT; reg++) {
        if (!(out.regs.valid & (1ull << reg)))
            continue;
        PyObject *v = PyLong_FromUnsignedLongLong(out.regs.v[reg]);
        if (!v || PyDict_SetItemString(d, ms_reg_name(reg), v))
            Py_CLEAR(d);
        Py_XDECREF(v);
    }
    return d ? Py_BuildValue("(NO)", d, out.exact ? Py_True : Py_False) : NULL;
}

static int sp_stack(SpaceObject *s, struct ms_stack *st)
{
    if (sp_check(s))
        return -1;
    struct ms_err err = {0};
    int rc;
    CALL(s->mem, rc, ms_target_stack(s->mem->t, s->h, st, &err));
    if (rc)
        raise_err(&err);
    return rc;
}

/* [(kind, root, levels), ...] from the top space down to physical. */
static PyObject *stack_list(const struct ms_stack *st)
{
    PyObject *list = PyList_New(0);
    if (list && st->first != MS_FIRST_NONE) {
        PyObject *t = Py_BuildValue("(sKI)", ms_space_kind_name(MS_SPACE_PAGING),
                                    (unsigned long long)st->cr3, st->levels);
        if (!t || PyList_Append(list, t))
            Py_CLEAR(list);
        Py_XDECREF(t);
    }
    if (list && st->second != MS_SECOND_NONE) {
        bool ept = st->second == MS_SECOND_EPT;
        unsigned lv = ept ? (unsigned)((st->second_root >> 3) & 7) + 1 : st->second_levels;
        PyObject *t = Py_BuildValue("(sKI)", ms_space_kind_name(ept ? MS_SPACE_EPT : MS_SPACE_NPT),
                                    (unsigned long long)st->second_root, lv);
        if (!t || PyList_Append(list, t))
            Py_CLEAR(list);
        Py_XDECREF(t);
    }
    if (list) {
        PyObject *t = Py_BuildValue("(sKI)", ms_space_kind_name(MS_SPACE_PHYS), 0ULL, 0u);
        if (!t || PyList_Append(list, t))
            Py_CLEAR(list);
        Py_XDECREF(t);
    }
    return list;
}

static PyObject *sp_get_stack(SpaceObject *s, void *closure)
{
    (void)closure;
    struct ms_stack st;
    return sp_stack(s, &st) ? NULL : stack_list(&st);
}

/* The top of the stack: (kind, root, levels). */
static PyObject *sp_top_field(SpaceObject *s, int field)
{
    struct ms_stack st;
    if (sp_stack(s, &st))
        return NULL;
    PyObject *list = stack_list(&st);
    if (!list)
        return NULL;
    PyObject *v = Py_NewRef(PyTuple_GET_ITEM(PyList_GET_ITEM(list, 0), field));
    Py_DECREF(list);
    return v;
}

static PyObject *sp_get_kind(SpaceObject *s, void *closure)
{
    (void)closure;
    return sp_top_field(s, 0);
}

static PyObject *sp_get_root(SpaceObject *s, void *closure)
{
    (void)closure;
    return sp_top_field(s, 1);
}

static PyObject *sp_get_levels(SpaceObject *s, void *closure)
{
    (void)closure;
    return sp_top_field(s, 2);
}

static PyObject *sp_get_memory(SpaceObject *s, void *closure)
{
    (void)closure;
    return Py_NewRef(s->mem);
}

static PyObject *sp_get_handle(SpaceObject *s, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLong(s->h);
}

static PyObject *sp_repr(SpaceObject *s)
{
    if (!s->mem->t)
        return PyUnicode_FromString("<_memsrv.Space (memory closed)>");
    PyObject *d = sp_describe(s, NULL);
    if (!d) {
        PyErr_Clear();
        return PyUnicode_FromFormat("<_memsrv.Space handle %u>", s->h);
    }
    PyObject *r = PyUnicode_FromFormat("<_memsrv.Space %U>", d);
    Py_DECREF(d);
    return r;
}

static PyMethodDef sp_methods[] = {
    {"read", (PyCFunction)(void (*)(void))sp_read, METH_VARARGS | METH_KEYWORDS,
     "read(addr, n, partial=False) -> bytes\n"
     "Raises MemsrvError (with .done and .fault_addr) at the first unreadable byte, or\n"
     "with partial=True returns the bytes before it."},
    {"read_into", (PyCFunction)sp_read_into, METH_VARARGS,
     "read_into(addr, buffer) -> int: fills a writable buffer."},
    {"write", (PyCFunction)sp_write, METH_VARARGS,
     "write(addr, data) -> int (needs open(..., writable=True), or a --writable server)."},
    {"translate", (PyCFunction)(void (*)(void))sp_translate, METH_VARARGS | METH_KEYWORDS,
     "translate(addr, trace=True) -> (phys, lower, page_size, perms, trace)\n"
     "trace: [(depth, kind, level, index, entry_addr, entry_phys, value), ...].\n"
     "On failure MemsrvError carries .trace: the entries read before the walk stopped."},
    {"x", (PyCFunction)(void (*)(void))sp_x, METH_VARARGS | METH_KEYWORDS,
     "x(fmt, addr, symbolizer=None, format='x', size='w', full=False) -> str\n"
     "GDB's x/FMT output. symbolizer(addr) -> 'sym+off' or None (default: the kernel's\n"
     "symbols once known). format/size are the sticky defaults. full=True returns\n"
     "(text, next, format, size, error)."},
    {"enumerate", (PyCFunction)(void (*)(void))sp_enumerate, METH_VARARGS | METH_KEYWORDS,
     "enumerate(start=0, end=2**64-1, merge=True, max_tables=0) -> (ranges, bad_tables)\n"
     "merged: [(addr, size, lower, perms)], else [(addr, size, lower, perms, leaf)].\n"
     "In-process only (a server has ptdump())."},
    {"canonical", (PyCFunction)sp_canonical, METH_O, "canonical(addr) -> int"},
    {"dmesg_next", (PyCFunction)(void (*)(void))sp_dmesg_next, METH_VARARGS | METH_KEYWORDS,
     "dmesg_next(cursor=None, style='plain', level=-1) -> (text, lost, cursor): the log\n"
     "records after the cursor (None: all in the ring), for following a running guest\n"
     "(m.flush() first). lost counts records the ring dropped unread, marked in the text\n"
     "by '-- N records lost --'. Pass the returned cursor to the next call."},
    {"dmesg", (PyCFunction)(void (*)(void))sp_dmesg, METH_VARARGS | METH_KEYWORDS,
     "dmesg(style='plain', level=-1) -> str: the Linux kernel log in this level's\n"
     "guest-physical memory, as `memsrv dmesg [--raw|--crash] [--level N]`. The kernel\n"
     "is found once (VMCOREINFO, the symbol file) and kept until a flush shows a reboot."},
    {"symbol", (PyCFunction)sp_symbol, METH_O,
     "symbol(name_or_addr): name -> runtime address (KASLR applied); address -> (name,\n"
     "offset) of the symbol at or below it. The same kernel as dmesg(); with no symbol\n"
     "file, the kernel's kallsyms."},
    {"tasks", (PyCFunction)sp_tasks, METH_NOARGS,
     "tasks() -> [(pid, ppid, state, task_struct, comm)] of the same kernel."},
    {"unwind", (PyCFunction)(void (*)(void))sp_unwind, METH_VARARGS | METH_KEYWORDS,
     "unwind(ip, sp, bp=None, exact=False, regs=None) -> (caller_regs, exact) or None\n"
     "One step of the kernel's ORC unwinder from a frame to its caller, reading the\n"
     "stack through this space (kernel addresses). exact: ip is where the frame stopped\n"
     "(the innermost frame, or interrupted), not a return address; regs: the frame's\n"
     "other registers {name: int} (all general ones with exact: the pt_regs case).\n"
     "caller_regs {name: int}: rip, rsp, rbp, or every register a pt_regs held (then\n"
     "exact is True), user mode's at the end of a syscall's or an interrupt's stack.\n"
     "None at the stack's end marker."},
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
    {"root", (getter)sp_get_root, NULL, "CR3/nCR3/EPTP (the kernel's, when kernel=True)", NULL},
    {"memory", (getter)sp_get_memory, NULL, NULL, NULL},
    {"handle", (getter)sp_get_handle, NULL, "the target's handle for this space", NULL},
    {"stack", (getter)sp_get_stack, NULL, "[(kind, root, levels)] top first", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject SpaceType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "_memsrv.Space",
    .tp_basicsize = sizeof(SpaceObject),
    .tp_dealloc = (destructor)sp_dealloc,
    .tp_repr = (reprfunc)sp_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An address space of a Memory (from Memory.space()).",
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
    ms_describe_entry((enum ms_space_kind)kind, level, value, out, sizeof(out));
    return PyUnicode_FromString(out);
}

/* parse_fmt(text, format='x', size='w') -> (count, format, size) */
static PyObject *mod_parse_fmt(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"text", "format", "size", NULL};
    const char *text;
    char format = 'x', size = 'w';
    uint64_t count = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|O&O&:parse_fmt", kwlist, &text, letter_conv,
                                     &format, letter_conv, &size))
        return NULL;
    struct ms_err err = {0};
    if (ms_parse_xfmt(text, &count, &format, &size, &err))
        return raise_err(&err);
    return Py_BuildValue("(KCC)", (unsigned long long)count, format, size);
}

static PyMethodDef mod_methods[] = {
    {"open", (PyCFunction)(void (*)(void))mod_open, METH_VARARGS | METH_KEYWORDS,
     "open(path, machine=None, map=None, writable=False, symbols=None) -> Memory\n"
     "A raw memory-backend-file. Layout: map ('GPA:LEN@OFF,...'), else PATH.layout\n"
     "when it exists, else QEMU's rule for machine ('q35' default, or 'pc'). symbols:\n"
     "a vmlinux or System.map for the kernels found in it."},
    {"open_dump", (PyCFunction)(void (*)(void))mod_open_dump, METH_VARARGS | METH_KEYWORDS,
     "open_dump(path, writable=False, symbols=None) -> Memory: a QEMU dump-guest-memory\n"
     "ELF file."},
    {"connect", (PyCFunction)(void (*)(void))mod_connect, METH_VARARGS | METH_KEYWORDS,
     "connect(address, token=None, timeout=30.0) -> Memory served by `memsrv serve`:\n"
     "address is its UNIX socket path or 'tcp:HOST:PORT' (token: the server's --token-file\n"
     "text). A call fails after `timeout` seconds without progress (0: waits forever).\n"
     "The same API as open(); what needs the memory in this process (enumerate) raises\n"
     "MemsrvError."},
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
    if (PyType_Ready(&MemoryType) < 0 || PyType_Ready(&SpaceType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&memsrv_module);
    if (!m)
        return NULL;
    MemsrvError = PyErr_NewExceptionWithDoc(
        "_memsrv.MemsrvError",
        "An error from the memsrv library: str() is its message; .code the MS_E* code\n"
        "(negative), .code_name its short name, .hint what would fix it ('symbols',\n"
        "'dwarf', 'layout', 'writable', 'token' or None), .fault_addr the first address\n"
        "that could not be accessed (or None).",
        NULL, NULL);
    if (!MemsrvError)
        goto fail;
    /* Class-level defaults, so every instance has the attributes. */
    PyObject *dc = PyLong_FromLong(MS_EINVAL);
    PyObject *dn = PyUnicode_FromString(ms_code_name(MS_EINVAL));
    if (!dc || !dn || PyObject_SetAttrString(MemsrvError, "code", dc) ||
        PyObject_SetAttrString(MemsrvError, "code_name", dn) ||
        PyObject_SetAttrString(MemsrvError, "hint", Py_None) ||
        PyObject_SetAttrString(MemsrvError, "fault_addr", Py_None)) {
        Py_XDECREF(dc);
        Py_XDECREF(dn);
        goto fail;
    }
    Py_DECREF(dc);
    Py_DECREF(dn);
    if (PyModule_AddObject(m, "MemsrvError", Py_NewRef(MemsrvError)) < 0) {
        Py_DECREF(MemsrvError);
        goto fail;
    }
    if (PyModule_AddObject(m, "Memory", Py_NewRef(&MemoryType)) < 0 ||
        PyModule_AddObject(m, "Space", Py_NewRef(&SpaceType)) < 0)
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
    if (PyModule_AddStringConstant(m, "__version__", ms_version()) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
