#!/usr/bin/python3
"""memsrv and the GDB extension against their peers, on real QEMU guests.

Boots the Debian test guest (tests/integration/guests.py: QEMU TCG, q35,
-cpu max, nokaslr, stopped inside the spinning user process userpat) at each
RAM size and measures, checking before timing that both sides give the same
answer:

  GDB          nx/4096gx (gdbext, from the RAM file) against GDB's own
               x/4096gx over QEMU's gdbstub, same addresses, same GDB;
               `nested dmesg` (time only). First size only.
  Bulk reads   64 MiB of the kernel direct map: memsrv (the Python module,
               in-process: read_into) against a memcpy from
               an mmap of the RAM file (the ceiling) and GDB's
               `dump binary memory` over the gdbstub (the floor); the same
               range through generated EPT (scripts/ept-transplant).
  Translations random kernel and user addresses on one QEMU ELF dump:
               memsrv (read 8 bytes, translate, `vtop --brief -`) against
               drgn (prog.read, and the page-table walk behind access_remote_vm).
  Scale        the above at each RAM size, plus start-up and open times.

The dump is made with paging=true: drgn 0.0.22 cannot read kernel memory
from a paging=false QEMU dump ("recursive address translation": it reads
swapper_pg_dir through its own translation; fixed in later drgn), while
memsrv reads either.

usage: bench/peer_gdb.py [--quick] [--sizes 512M,4G,16G] [--rounds N]

Run by bench/run after the C benches. Also runs inside GDB as its own
driver (`gdb -batch -x bench/peer_gdb.py`, plan in $PEER_GDB_PLAN).
"""

import json
import os
import sys
import time

try:
    import gdb  # noqa: F401  (present only when GDB runs this file)
except ImportError:
    gdb = None

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MiB = 1 << 20
GiB = 1 << 30


# -- inside GDB ---------------------------------------------------------------

def gdb_driver():
    """Runs the plan: setup commands once, then `rounds` rounds of the timed
    commands (interleaved, so background load hits all alike), then the final
    ones. Writes each command's output and times. GDB exits 0 when a script
    raises, so every failure ends in `quit 1`; `disconnect` first, because a
    detach (what quit does) resumes a QEMU 7.2 guest."""
    with open(os.environ["PEER_GDB_PLAN"]) as f:
        plan = json.load(f)
    res = {"setup": [], "timed": {}, "final": []}
    connected = False
    try:
        for c in ("set pagination off", "set width 0", "set height 0", "set confirm off"):
            gdb.execute(c)
        for c in plan["setup"]:
            res["setup"].append({"cmd": c, "out": gdb.execute(c, to_string=True)})
            connected = connected or c.startswith("target remote")
        for r in range(plan["rounds"]):
            for c in plan["timed"]:
                t = time.perf_counter()
                out = gdb.execute(c, to_string=True)
                dt = time.perf_counter() - t
                e = res["timed"].setdefault(c, {"times": [], "out": out, "same": True})
                e["times"].append(dt)
                e["same"] = e["same"] and out == e["out"]
        for c in plan["final"]:
            res["final"].append({"cmd": c, "out": gdb.execute(c, to_string=True)})
        if connected:
            gdb.execute("disconnect")
            connected = False
        with open(os.environ["PEER_GDB_OUT"], "w") as f:
            json.dump(res, f)
    except BaseException as e:  # noqa: BLE001  (reported, then exit 1)
        print("peer_gdb (in GDB): %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.stderr.flush()
        if connected:
            gdb.execute("disconnect")
        gdb.execute("quit 1")
    gdb.execute("quit 0")


if gdb is not None:
    gdb_driver()


# -- the benchmark ------------------------------------------------------------

import mmap  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "gdbext"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpuinfo  # noqa: E402

MEMSRV = os.environ.get("MEMSRV", os.path.join(ROOT, "build", "memsrv"))


class BenchError(Exception):
    pass


def need(cond, what):
    """The two sides must agree before anything is timed."""
    if not cond:
        raise BenchError(what)


median = statistics.median


def parse_size(s):
    m = re.fullmatch(r"(\d+)([MG])", s.strip().upper())
    if not m:
        raise SystemExit("peer_gdb: size %r: use e.g. 512M, 4G" % s)
    return int(m.group(1)) * (MiB if m.group(2) == "M" else GiB)


def size_name(n):
    return "%d GiB" % (n // GiB) if n % GiB == 0 else "%d MiB" % (n // MiB)


def machine_line():
    return "%s, load %.2f at start" % (cpuinfo.machine(), os.getloadavg()[0])


def versions():
    out = []
    for cmd, pat in ((["qemu-system-x86_64", "--version"], r"version (\S+)"),
                     (["gdb", "--version"], r"GNU gdb \(.*?\) (\S+)")):
        try:
            m = re.search(pat, subprocess.run(cmd, capture_output=True, text=True).stdout)
            out.append("%s %s" % (os.path.basename(cmd[0]).split("-")[0], m.group(1) if m else "?"))
        except OSError:
            pass
    try:
        import drgn
        out.append("drgn " + drgn.__version__)
    except ImportError:
        out.append("drgn missing")
    return ", ".join(out)


def system_map(kernel_dir):
    syms = {}
    with open(os.path.join(kernel_dir, "System.map")) as f:
        for line in f:
            a, _t, name = line.split()[:3]
            syms.setdefault(name, int(a, 16))
    return syms


def run_gdb(plan, workdir, timeout=600):
    """Runs this file inside GDB with the plan; returns its results."""
    pfile = os.path.join(workdir, "gdb-plan.json")
    ofile = os.path.join(workdir, "gdb-out.json")
    with open(pfile, "w") as f:
        json.dump(plan, f)
    if os.path.exists(ofile):
        os.unlink(ofile)
    # LC_ALL=C: GDB then prints non-ASCII bytes in strings as escapes, as nx does.
    env = dict(os.environ, PEER_GDB_PLAN=pfile, PEER_GDB_OUT=ofile, LC_ALL="C")
    p = subprocess.run(["gdb", "-batch", "-nx", "-x", os.path.abspath(__file__)], env=env,
                       capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0 or not os.path.exists(ofile):
        raise BenchError("gdb failed (%d):\n%s\n%s" % (p.returncode, p.stdout[-2000:], p.stderr[-2000:]))
    with open(ofile) as f:
        return json.load(f)


def ensure_stopped(g):
    """The guest must stay at the stopped moment every part measures."""
    need(not g.running(), "%s: the guest is running after a GDB session" % g.name)


# -- part 1: GDB ----------------------------------------------------------------

def part_gdb(g, opts):
    exprs = ["&linux_banner", "page_offset_base + 0x1000000", "0x%x" % g.user["va"]]
    timed = []
    for e in exprs:
        timed += ["x/4096gx " + e, "nx/4096gx " + e]
    timed.append("nested dmesg")
    plan = {
        "setup": ["file %s/vmlinux" % g.kernel_dir,
                  "target remote %s" % g.gdb_address,
                  "source %s/gdbext/nested.gdb" % ROOT,
                  "nested attach"],
        "rounds": opts.rounds,
        "timed": timed,
        "final": [],
    }
    res = run_gdb(plan, g.workdir)
    ensure_stopped(g)
    att = res["setup"][-1]["out"]
    need("from QEMU" in att, "nested attach did not find the RAM file through QEMU: " + att)
    t = res["timed"]
    rows = []
    for e in exprs:
        x, nx = t["x/4096gx " + e], t["nx/4096gx " + e]
        need(x["same"] and nx["same"], "x/nx output changed between rounds at " + e)
        need(x["out"] == nx["out"], "nx/4096gx %s differs from x/4096gx:\n%s\n---\n%s"
             % (e, x["out"][:500], nx["out"][:500]))
        need(x["out"].count("\n") == 2048, "x/4096gx %s: %d lines" % (e, x["out"].count("\n")))
        rows.append((e, median(x["times"]), median(nx["times"])))
    d = t["nested dmesg"]
    need(d["same"] and "Linux version" in d["out"], "nested dmesg: no kernel log")
    return {"rows": rows, "dmesg": d["times"], "dmesg_lines": d["out"].count("\n")}


# -- part 2: bulk reads ---------------------------------------------------------

def file_offset(regions, gpa, n):
    for start, length, off, _src in regions:
        if start <= gpa and gpa + n <= start + length:
            return off + gpa - start
    raise BenchError("GPA 0x%x+0x%x is not in one RAM region" % (gpa, n))


def interleaved(rounds, methods):
    """Times each (label, fn) once per round, methods interleaved within a
    round so that the other load of the machine hits them alike; returns
    [(label, times)] and each method's last result."""
    times = {label: [] for label, _ in methods}
    results = {}
    for _ in range(rounds):
        for label, fn in methods:
            t = time.perf_counter()
            results[label] = fn()
            times[label].append(time.perf_counter() - t)
    return [(label, times[label]) for label, _ in methods], results


def transplant(g):
    """The guest's RAM behind generated EPT (scripts/ept-transplant), synced
    so that its writeback does not run under the timed reads."""
    tp = os.path.join(g.workdir, "ept.img")
    t = time.perf_counter()
    p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "ept-transplant"),
                        "--ram", g.ram, "--cr3", "0x%x" % g.cr3, "--levels", str(g.levels),
                        "--out", tp, "--ept-levels", "4", "--seed", "1"],
                       capture_output=True, text=True, timeout=900)
    need(p.returncode == 0, "ept-transplant failed: " + p.stderr[-1000:])
    fd = os.open(tp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    args = p.stdout.split()
    return tp, int(args[args.index("--eptp") + 1], 0), time.perf_counter() - t


def part_bulk(g, M, sp, pob, opts):
    n = opts.bulk
    va = pob + 0x1000000  # the kernel direct map from physical 16 MiB (kernel image and on)
    gpa = va - pob
    m = sp.memory
    res = {"n": n, "va": va}
    tp, eptp, res["transplant_s"] = transplant(g)
    m2 = M.open(tp)
    mm = None
    try:
        sp2 = m2.space(cr3=g.cr3, levels=g.levels, eptp=eptp)
        with open(g.ram, "rb") as f:
            mm = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        src = memoryview(mm)
        off = file_offset(m.regions, gpa, n)
        # One destination per method, written through memoryviews: a slice
        # assignment to a memoryview is one memcpy (a bytearray's would first
        # copy a source that is not a bytearray into a new object).
        bufs = [bytearray(n) for _ in range(3)]
        views = [memoryview(b) for b in bufs]

        def memcpy():
            views[0][:] = src[off:off + n]

        def read_into():
            m.flush()  # every round starts with cold translation caches
            sp.read_into(va, bufs[1])

        def read_2d():
            m2.flush()
            sp2.read_into(va, bufs[2])
        # The transplant is a fresh file, partly on disk only (or holes): an
        # untimed pass brings its pages in, as the guest's RAM file (QEMU's
        # memory) is in already. Every round still starts with cold caches.
        read_2d()
        rows, _ = interleaved(opts.fast_rounds, [
            ("memcpy from an mmap of the RAM file (ceiling)", memcpy),
            ("memsrv read_into (Python module, in-process)", read_into),
            ("memsrv read_into, 2-D (guest CR3 + EPT transplant)", read_2d)])
        res["rows"] = rows
        for v in views:
            v.release()
        src.release()
        ref = bufs[0]
        need(bufs[1] == ref, "memsrv read_into differs from the RAM file")
        need(bufs[2] == ref, "the 2-D read through EPT differs from the original RAM")
        del bufs[1:]
    finally:
        if mm is not None:
            mm.close()
        m2.close()
        for suffix in ("", ".layout", ".json"):
            if os.path.exists(tp + suffix):
                os.unlink(tp + suffix)

    # The floor: GDB's own read through QEMU's gdbstub.
    gn = opts.gdb_bulk
    out = os.path.join(g.workdir, "gdb-dump.bin")
    cmd = "dump binary memory %s 0x%x 0x%x" % (out, va, va + gn)
    r = run_gdb({"setup": ["set architecture i386:x86-64", "target remote %s" % g.gdb_address],
                 "rounds": 1, "timed": [cmd], "final": []}, g.workdir)
    ensure_stopped(g)
    with open(out, "rb") as f:
        need(f.read() == ref[:gn], "GDB's dump binary memory differs from the RAM file")
    os.unlink(out)
    res["gdb"] = (gn, r["timed"][cmd]["times"])
    return res


# -- part 3: translations vs drgn ----------------------------------------------

def sample(ranges, lo, hi, n, rng):
    """n addresses: 90% inside mapped ranges (a range picked uniformly, so
    small vmalloc and module ranges count as much as the direct map), 10%
    anywhere in [lo, hi) (mostly unmapped: the fault path), 8-aligned so
    that an 8-byte read never spans two pages where a translation does not."""
    out = []
    for _ in range(n):
        if rng.random() < 0.9:
            a, size = rng.choice(ranges)[:2]
            out.append(a + rng.randrange(size - 7))
        else:
            out.append(lo + 8 * rng.randrange((hi - lo) // 8))
    return out


def make_dump(g):
    """A paging=true dump-guest-memory ELF (drgn 0.0.22 needs its virtual
    segments to find swapper_pg_dir; memsrv uses the physical ones)."""
    path = os.path.join(g.workdir, "paging.elf")
    t = time.perf_counter()
    g.qmp.cmd("dump-guest-memory", paging=True, protocol="file:" + path)
    while True:
        st = g.qmp.cmd("query-dump")
        if st.get("status") == "completed":
            break
        need(st.get("status") != "failed", "dump-guest-memory failed: %s" % st)
        time.sleep(0.05)
    return path, time.perf_counter() - t


MS_READ = "memsrv read 8 bytes (Python module)"
DG_WALK = "drgn page-table walk, 8 bytes (_linux_helper_read_vm)"


def part_xlat(g, M, syms, opts):
    import drgn
    # What access_remote_vm/access_process_vm call, minus their reading
    # mm->pgd from the dump at every call: drgn's page-table walk.
    from _drgn import _linux_helper_read_vm
    from drgn.helpers.linux.pid import find_task

    res = {}
    dump, res["dump_s"] = make_dump(g)
    res["dump_size"] = os.path.getsize(dump)
    ensure_stopped(g)

    def memsrv_open():
        m = M.open_dump(dump)
        cpu = m.cpus[0]
        s = m.space(cr3=cpu["cr3"], levels=5 if cpu["cr4"] & (1 << 12) else 4)
        s.read(syms["linux_banner"], 8)
        return m, s
    times = []
    for _ in range(3):
        t = time.perf_counter()
        m, sp = memsrv_open()
        times.append(time.perf_counter() - t)
        m.close()
    res["memsrv_open"] = median(times)
    m, sp = memsrv_open()
    need(sp.root == g.cr3, "the dump's CPU 0 CR3 0x%x is not the guest's 0x%x" % (sp.root, g.cr3))

    # drgn's open, like memsrv's, needs no symbols to read; its DWARF
    # indexing (for the pgd lookups below) is timed apart.
    t = time.perf_counter()
    prog = drgn.Program()
    prog.set_core_dump(dump)
    prog.read(syms["linux_banner"], 8)
    res["drgn_open"] = time.perf_counter() - t
    t = time.perf_counter()
    prog.load_debug_info([os.path.join(g.kernel_dir, "vmlinux")])
    res["drgn_dwarf"] = time.perf_counter() - t
    init_pgd = prog["init_mm"].pgd.value_()
    task_pgd = find_task(prog, g.user["pid"]).mm.pgd.value_()

    levels = sp.levels
    vbits = 57 if levels == 5 else 48
    klo, ulo, uhi = (1 << 64) - (1 << (vbits - 1)), 0, 1 << (vbits - 1)
    kranges = sp.enumerate(klo, (1 << 64) - 1)[0]
    uranges = sp.enumerate(ulo, uhi - 1)[0]
    rng = random.Random(7)
    sets = {
        "kernel": (sample(kranges, klo, 1 << 64, opts.kaddrs, rng), init_pgd),
        "user": (sample(uranges, ulo, uhi, opts.uaddrs, rng), task_pgd),
    }
    rounds = opts.fast_rounds
    res["sets"] = {}
    for name, (addrs, pgd) in sets.items():
        r = {"n": len(addrs), "rows": []}
        read, translate, flush = sp.read, sp.translate, m.flush
        err_m, err_d = M.MemsrvError, drgn.FaultError
        pread, walk = prog.read, _linux_helper_read_vm

        def ms_read():
            flush()
            out = []
            for a in addrs:
                try:
                    out.append(read(a, 8))
                except err_m:
                    out.append(None)
            return out

        def ms_translate():
            flush()
            out = []
            for a in addrs:
                try:
                    out.append(translate(a, trace=False)[0])
                except err_m:
                    out.append(None)
            return out

        def dg_read():
            out = []
            for a in addrs:
                try:
                    out.append(pread(a, 8))
                except err_d:
                    out.append(None)
            return out

        def dg_walk():
            out = []
            for a in addrs:
                try:
                    out.append(walk(prog, pgd, a, 8))
                except err_d:
                    out.append(None)
            return out

        def cli():
            p = subprocess.run([MEMSRV, "--dump", dump, "--cr3", "0x%x" % sp.root,
                                "--levels", str(levels), "vtop", "--brief", "-"],
                               input="".join("0x%x\n" % a for a in addrs), capture_output=True,
                               text=True, timeout=600)
            return p.stdout.splitlines()

        methods = [(MS_READ, ms_read),
                   ("memsrv translate (Python module)", ms_translate),
                   ("memsrv vtop --brief - (CLI, one process)", cli),
                   (DG_WALK, dg_walk)]
        if name == "kernel":
            methods.append(("drgn prog.read 8 bytes (dump segments, else walk)", dg_read))
        r["rows"], answers = interleaved(rounds, methods)
        ref = answers[methods[0][0]]
        mapped = sum(v is not None for v in ref)
        need(mapped >= len(addrs) // 2, "%s: only %d of %d addresses mapped" % (name, mapped, len(addrs)))
        for label, _ in methods:
            if label.startswith("drgn"):
                bad = [(hex(a), x, y) for a, x, y in zip(addrs, ref, answers[label]) if x != y]
                need(not bad, "%s: %d of %d answers differ from memsrv, e.g. %s"
                     % (label, len(bad), len(addrs), bad[:3]))
        # Translations: drgn reads memsrv's physical answer back, and the CLI agrees.
        phys = answers["memsrv translate (Python module)"]
        for a, p, v in zip(addrs, phys, ref):
            need((p is None) == (v is None), "0x%x: translate and read disagree" % a)
            if p is not None:
                need(prog.read(p, 8, True) == v, "0x%x: drgn reads other bytes at memsrv's "
                     "physical 0x%x" % (a, p))
        lines = answers["memsrv vtop --brief - (CLI, one process)"]
        need(len(lines) == len(addrs), "vtop --brief: %d lines for %d addresses" % (len(lines), len(addrs)))
        for a, p, line in zip(addrs, phys, lines):
            head, _, rest = line.partition(" ")
            cp = None if rest.startswith("error") else int(rest, 16)
            need(int(head, 16) == a and cp == p, "vtop --brief: %r, translate gave %s" % (line, p))
        r["mapped"] = mapped
        res["sets"][name] = r
    m.close()
    os.unlink(dump)
    return res


# -- scale: start-up and open ----------------------------------------------------

def part_open(g, M, syms):
    res = {}
    st = os.stat(g.ram)
    res["ram_allocated"] = st.st_blocks * 512
    res["boot"] = g.boot_seconds
    va = syms["linux_banner"]
    times = []
    for _ in range(5):
        t = time.perf_counter()
        m = M.open(g.ram)
        m.space(cr3=g.cr3, levels=g.levels).read(va, 8)
        times.append(time.perf_counter() - t)
        m.close()
    res["module_open"] = median(times)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        p = subprocess.run([MEMSRV, "--ram", g.ram, "--cr3", "0x%x" % g.cr3, "--levels",
                            str(g.levels), "x/1gx", "0x%x" % va], capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        need(p.returncode == 0 and "0x" in p.stdout, "memsrv x/1gx failed: " + p.stderr)
    res["cli_first"] = median(times)
    return res


# -- driver ----------------------------------------------------------------------

def run_size(size, first, opts, M, guests):
    name = "peer%s" % size_name(size).replace(" ", "").lower()
    print("# %s: booting (q35, -cpu max, %s) ..." % (name, size_name(size)), file=sys.stderr)
    g = guests.Guest(name, machine="q35", mem=size, cpu="max", append="nokaslr lab.user=spin")
    try:
        g.boot()
        need(g.in_wanted_place and g.user, "%s: not stopped inside userpat" % name)
        syms = system_map(g.kernel_dir)
        res = {"size": size, "levels": g.levels}
        res["open"] = part_open(g, M, syms)
        m = M.open(g.ram)
        try:
            sp = m.space(cr3=g.cr3, levels=g.levels)
            pob = int.from_bytes(sp.read(syms["page_offset_base"], 8), "little")
            if first and "gdb" in opts.parts:
                print("# %s: GDB" % name, file=sys.stderr)
                res["gdb"] = part_gdb(g, opts)
            if "bulk" in opts.parts:
                print("# %s: bulk reads" % name, file=sys.stderr)
                res["bulk"] = part_bulk(g, M, sp, pob, opts)
        finally:
            m.close()
        if "xlat" in opts.parts:
            print("# %s: translations vs drgn" % name, file=sys.stderr)
            res["xlat"] = part_xlat(g, M, syms, opts)
        return res
    finally:
        g.close()


def fmt_s(s):
    return "%.3f s" % s if s >= 0.1 else "%.2f ms" % (s * 1e3) if s >= 1e-4 else "%.1f us" % (s * 1e6)


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def report(results, opts, machine, vers, cmdline):
    print("machine: %s; %s" % (machine, vers))
    print("command: %s\n" % cmdline)
    first = results[0]
    if "gdb" in first:
        gd = first["gdb"]
        print("## GDB\n")
        print("%s guest (%d-level paging), GDB attached to QEMU's gdbstub with vmlinux and "
              "gdbext; outputs checked identical before timing; median of %d rounds.\n"
              % (size_name(first["size"]), first["levels"], opts.rounds))
        rows = [("`x/4096gx %s` vs `nx/4096gx %s`" % (e, e), fmt_s(tx), fmt_s(tn),
                 "%.0fx" % (tx / tn)) for e, tx, tn in gd["rows"]]
        print(table(["command", "GDB x (gdbstub)", "nx (RAM file)", "x / nx"], rows))
        d = gd["dmesg"]
        print("\n`nested dmesg` (%d lines): first %s, median %s.\n"
              % (gd["dmesg_lines"], fmt_s(d[0]), fmt_s(median(d))))
    if "bulk" in first:
        print("## Bulk reads\n")
        b0 = first["bulk"]
        print("%s of the kernel direct map (VA 0x%x, physical 16 MiB on), bytes checked equal "
              "across all methods; median of %d rounds (first round in brackets: cold translation "
              "caches and mapping faults). GDB: one `dump binary memory` of %s.\n"
              % (size_name(b0["n"]), b0["va"], opts.fast_rounds, size_name(opts.gdb_bulk)))
        rows = []
        for r in results:
            b = r["bulk"]
            ceil = median(b["rows"][0][1])
            for label, ts in b["rows"]:
                t = median(ts)
                rows.append((size_name(r["size"]), label, "%s (%s)" % (fmt_s(t), fmt_s(ts[0])),
                             "%.0f" % (b["n"] / MiB / t), "%.2f" % (t / ceil)))
            gn, gts = b["gdb"]
            t = gts[0]
            rows.append((size_name(r["size"]), "GDB `dump binary memory`, %s (floor)" % size_name(gn),
                         fmt_s(t), "%.1f" % (gn / MiB / t), "%.0f" % ((t * b["n"] / gn) / ceil)))
        print(table(["guest", "method", "time", "MiB/s", "time / ceiling"], rows))
        print("\nEPT transplant build (scripts/ept-transplant, not timed above): %s.\n"
              % ", ".join("%s %.1f s" % (size_name(r["size"]), r["bulk"]["transplant_s"]) for r in results))
    if "xlat" in first:
        print("## Translations vs drgn\n")
        print("Same QEMU dump-guest-memory ELF (paging=true) for both; random addresses (90%% in "
              "mapped ranges, a range picked uniformly, 10%% anywhere in the half); every answer "
              "checked equal (bytes, faults, and drgn reading memsrv's physical address back); "
              "memsrv's caches flushed before each round; median of %d rounds.\n" % opts.fast_rounds)
        rows = []
        for r in results:
            for name, s in r["xlat"]["sets"].items():
                base = median(s["rows"][0][1])
                for label, ts in s["rows"]:
                    t = median(ts)
                    rows.append((size_name(r["size"]), "%s (%d, %d mapped)" % (name, s["n"], s["mapped"]),
                                 label, "{:,.0f}".format(s["n"] / t), "%.1f" % (t / base)))
        print(table(["guest", "addresses", "method", "per second", "time / memsrv read"], rows))
        print()
    print("## Scale\n")
    print("Same guest (q35, -cpu max, nokaslr) at each RAM size; RAM files are sparse; "
          "bulk and reads/s as in the tables above (medians). "
          "Opens are medians (module: open + space + first 8-byte read; CLI: whole "
          "`memsrv x/1gx linux_banner` process; drgn: set_core_dump + first read, "
          "then load_debug_info(vmlinux) for its symbols).\n")
    rows = []
    for r in results:
        o = r["open"]
        row = [size_name(r["size"]), "%.0f MiB" % (o["ram_allocated"] / MiB), "%.1f s" % o["boot"],
               fmt_s(o["module_open"]), fmt_s(o["cli_first"])]
        if "xlat" in r:
            x = r["xlat"]
            row += ["%.1f s, %.1f GiB" % (x["dump_s"], x["dump_size"] / GiB),
                    fmt_s(x["memsrv_open"]), "%s (+%s vmlinux)" % (fmt_s(x["drgn_open"]), fmt_s(x["drgn_dwarf"]))]
        if "bulk" in r:
            b = r["bulk"]
            t = [median(ts) for _label, ts in b["rows"]]
            row += ["%.0f (%.2fx memcpy)" % (b["n"] / MiB / t[1], t[0] / t[1]),
                    "%.0f" % (b["n"] / MiB / t[2])]
        if "xlat" in r:
            for name in ("kernel", "user"):
                s = r["xlat"]["sets"][name]
                t = {label: median(ts) for label, ts in s["rows"]}
                ms, dg = t[MS_READ], t[DG_WALK]
                row += ["%.0fk / %.0fk (%.1fx)" % (s["n"] / ms / 1e3, s["n"] / dg / 1e3, dg / ms)]
        rows.append(row)
    head = ["RAM", "RAM file on disk", "boot (TCG)", "module open", "CLI first answer"]
    if "xlat" in first:
        head += ["dump (QEMU)", "memsrv open dump", "drgn open dump"]
    if "bulk" in first:
        head += ["bulk MiB/s memsrv", "bulk MiB/s 2-D"]
    if "xlat" in first:
        head += ["kernel reads/s memsrv / drgn walk", "user reads/s memsrv / drgn walk"]
    print(table(head, rows))


def main():
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="512 MiB only, 2 rounds, fewer addresses, 16 MiB GDB dump (~20 s)")
    ap.add_argument("--sizes", help="RAM sizes, e.g. 512M,4G,16G (the default)")
    ap.add_argument("--rounds", type=int,
                    help="GDB rounds (default 5, quick 2); bulk and translation parts run 3x as many")
    ap.add_argument("--parts", default="gdb,bulk,xlat",
                    help="comma list of gdb, bulk, xlat (default: all)")
    opts = ap.parse_args()
    opts.parts = set(opts.parts.split(","))
    sizes = opts.sizes or ("512M" if opts.quick else "512M,4G,16G")
    opts.sizes = [parse_size(s) for s in sizes.split(",")]
    opts.rounds = opts.rounds or (2 if opts.quick else 5)
    # Rounds of the parts that take milliseconds: more of them steady the
    # medians on a machine shared with other QEMUs.
    opts.fast_rounds = 3 * opts.rounds
    opts.bulk = 64 * MiB
    opts.gdb_bulk = (16 if opts.quick else 64) * MiB
    opts.kaddrs, opts.uaddrs = (5000, 1000) if opts.quick else (20000, 4000)
    if not os.access(MEMSRV, os.X_OK):
        print("peer_gdb: %s is not built (run make)" % MEMSRV, file=sys.stderr)
        return 1
    try:
        from nested import _memsrv as M
    except ImportError as e:
        print("peer_gdb: the gdbext module is not built (run make): %s" % e, file=sys.stderr)
        return 1
    if "xlat" in opts.parts:
        try:
            import drgn  # noqa: F401
        except ImportError:
            print("peer_gdb: python3-drgn is missing (scripts/install-deps)", file=sys.stderr)
            return 1
    import guests
    machine, vers = machine_line(), versions()
    cmdline = " ".join(["bench/peer_gdb.py"] + sys.argv[1:])
    t0 = time.perf_counter()
    results = []
    try:
        for i, size in enumerate(opts.sizes):
            results.append(run_size(size, i == 0, opts, M, guests))
    except BenchError as e:
        print("peer_gdb: FAILED: %s" % e, file=sys.stderr)
        return 1
    report(results, opts, machine, vers, cmdline)
    print("\n(total %.0f s)" % (time.perf_counter() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
