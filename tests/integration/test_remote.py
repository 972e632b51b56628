"""_memsrv.connect(): the Python module through a real `memsrv serve`, over
its UNIX socket and over TCP loopback with a token, against the in-process
open() of the same RAM file (synthetic images with known page tables,
tests/fixtures/ptimage.py): the same answers and the same errors, write
refused or allowed as the server says, tokens enforced, a killed server a
MemsrvError (not a crash or a hang); under /usr/bin/python3, inside
`gdb -batch`, and through `nested attach --connect` in GDB sessions sharing
one server."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GDBEXT = os.path.join(ROOT, "gdbext")
MEMSRV = os.environ.get("MEMSRV", os.path.join(ROOT, "build", "memsrv"))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
sys.path.insert(0, GDBEXT)

import gdbext_image as gi  # noqa: E402
import ptimage  # noqa: E402
import remote_compare  # noqa: E402
import test_gdbext as tg  # noqa: E402  (its GDB driver and preamble)
from nested import _memsrv as M  # noqa: E402

TOKEN = "remote-test-token-42"
# (mode, first-stage levels, second-stage levels): 1-D paging, paging over
# EPT and over NPT (the 2-D walks), and a nested guest's physical space.
SCENARIOS = [("paging", 5, 0), ("ept", 4, 4), ("ept", 5, 5), ("npt", 4, 5), ("phys-ept", 0, 4)]


class Server:
    """One `memsrv serve` process; stopped (and its exit checked) by stop()."""

    def __init__(self, ram, *args):
        self.p = subprocess.Popen([MEMSRV, "serve", "--ram", ram] + list(args),
                                  stderr=subprocess.PIPE, text=True)
        line = self.p.stderr.readline()
        assert "serving" in line, line
        m = re.search(r"\(port (\d+)\)", line)
        self.port = int(m.group(1)) if m else None

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
        rc = self.p.wait(timeout=20)
        assert rc in (0, -signal.SIGKILL), "server exited %d: %s" % (rc, self.p.stderr.read())


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Each scenario's image, served read-only on a UNIX socket (no token)
    and on TCP loopback with a token."""
    d = tmp_path_factory.mktemp("remote")
    tok = str(d / "token")
    with open(tok, "w") as f:
        f.write(TOKEN + "\n")
    # 48 MiB low, 80 MiB above 4 GiB: small, with a hole to fall into.
    layout = ptimage.Layout([(0, 48 * ptimage.MiB, 80 * ptimage.MiB),
                             (4 * ptimage.GiB, 80 * ptimage.MiB, 0)])
    out, servers = {}, []
    try:
        for i, (mode, levels, s2) in enumerate(SCENARIOS):
            name = "%s-%dx%d" % (mode, levels, s2)
            ram = str(d / (name + ".img"))
            _, truth = ptimage.build(ram, mode=mode, levels=levels or 4, s2_levels=s2 or 4,
                                     seed=500 + i, layout=layout, nprobes=400)
            sock = str(d / (name + ".sock"))
            unix = Server(ram, "--socket", sock)
            servers.append(unix)
            tcp = Server(ram, "--listen", "127.0.0.1:0", "--token-file", tok)
            servers.append(tcp)
            out[name] = {"ram": ram, "truth": truth, "unix": sock,
                         "tcp": "tcp:127.0.0.1:%d" % tcp.port, "token_file": tok}
        yield out
    finally:
        for s in servers:
            s.stop()


def names():
    return ["%s-%dx%d" % s for s in SCENARIOS]


@pytest.mark.parametrize("name", names())
def test_same_answers_in_process_unix_and_tcp(served, name):
    """read, read(partial), read_into, translate (trace and not), x (server's
    X; formatted here with a symbolizer or full=True), vtop, ptdump: equal
    values and equal errors, on the image's stack, its second stage alone
    and guest-physical (RAM edges and holes included)."""
    s = served[name]
    n = remote_compare.compare(s["ram"], s["truth"], [(s["unix"], None), (s["tcp"], TOKEN)])
    assert n > 5000


def test_errors_carry_the_same_message_both_ways(served):
    s = served["ept-4x4"]
    truth = s["truth"]
    kw = {"cr3": truth["cr3"], "levels": truth["levels"], "eptp": truth["eptp"]}
    unmapped = [p["addr"] for p in truth["probes"] if not p["ok"]][:20]
    assert unmapped
    local, remote = M.open(s["ram"]), M.connect(s["unix"])
    with local, remote:
        cases = [(kw, a, M.E_UNMAPPED) for a in unmapped]
        cases += [({}, 48 * ptimage.MiB + 16, M.E_OUTSIDE), ({}, 1 << 40, M.E_OUTSIDE)]
        codes = set()
        for space_kw, addr, code in cases:
            errors = []
            for m in (local, remote):
                sp = m.space(**space_kw)
                for fn in (lambda: sp.read(addr, 8), lambda: sp.translate(addr)):
                    with pytest.raises(M.MemsrvError) as e:
                        fn()
                    errors.append((str(e.value), e.value.code, e.value.code_name))
            assert errors[:2] == errors[2:], errors
            codes.add(errors[0][1])
            if code == M.E_OUTSIDE:
                assert errors[0][1] == code and "not in RAM" in errors[0][0], errors
        assert M.E_UNMAPPED in codes
        # What the server holds comes over the wire; enumerating mappings
        # needs the memory here and says so.
        sp = remote.space(**kw)
        assert remote.regions == local.regions and remote.cpus == local.cpus
        assert remote.discover() == local.discover()
        with pytest.raises(M.MemsrvError, match="needs the memory in this process"):
            sp.enumerate()
        # No kernel in these images: the server's search fails as in-process.
        errors = []
        for each in (local.space(**kw), sp):
            for fn in (lambda: each.dmesg(), lambda: each.symbol("linux_banner")):
                with pytest.raises(M.MemsrvError) as e:
                    fn()
                errors.append((str(e.value), e.value.code))
        assert errors[:2] == errors[2:] and "cannot locate the kernel" in errors[0][0], errors


def test_connection_attributes(served):
    s = served["paging-5x0"]
    with M.open(s["ram"]) as local, M.connect(s["tcp"], token=TOKEN) as remote:
        assert remote.remote and not local.remote
        assert remote.size == local.size and remote.writable is False
        assert remote.path == s["tcp"]
        g = remote.generation
        remote.flush()
        assert remote.generation > g
        st = remote.stats
        assert set(st) == {"requests", "errors", "generation", "hits", "misses", "walks",
                           "table_reads"} and st["requests"] > 0
        lst = local.stats
        assert set(lst) == set(st) and lst["requests"] == 0
    assert remote.closed
    with pytest.raises(ValueError, match="closed"):
        remote.space()


def test_tcp_needs_the_right_token(served):
    s = served["paging-5x0"]
    for token in (None, "wrong", TOKEN + "x"):
        with pytest.raises(M.MemsrvError, match="closed the connection") as e:
            M.connect(s["tcp"], token=token)
        assert e.value.code == M.E_PROTO
    with M.connect(s["tcp"], token=TOKEN) as m:
        assert m.space().read(0x1000, 8) == M.open(s["ram"]).space().read(0x1000, 8)
    with pytest.raises(M.MemsrvError, match="cannot connect"):
        M.connect(s["unix"] + ".missing")


def test_write_refused_read_only_and_done_on_writable(served, tmp_path):
    s = served["ept-4x4"]
    with M.connect(s["unix"]) as m:
        with pytest.raises(M.MemsrvError) as e:
            m.space().write(0x2000, b"abcd")
        assert e.value.code == M.E_PERM
        assert str(e.value) == (
            "this server is read-only (start it with --writable to allow writes)")
    # A writable server over the GDB-extension image: write through L1 paging,
    # and through L2 paging over EPT (the 2-D walk), check in-process.
    im = gi.Image().build()
    ram, _ = im.write(str(tmp_path))
    sock = str(tmp_path / "w.sock")
    srv = Server(ram, "--map", "0:0x%x@0" % gi.RAM_SIZE, "--socket", sock, "--writable")
    try:
        with M.connect(sock) as m:
            assert m.writable
            l1 = m.space(cr3=gi.CR3)
            l2 = m.space(cr3=gi.L2_CR3, eptp=gi.EPTP)
            big = bytes(range(256)) * 4096  # 1 MiB of plain data: two WRITE requests
            assert l1.write(gi.KBASE + 0xFF0, b"ACROSS-A-PAGE-EDGE") == 18
            assert l2.write(gi.L2VA + 0x10, b"through-EPT") == 11
            assert m.space().write(0x200000, big) == len(big)
            with pytest.raises(M.MemsrvError) as e:  # runs off the end of L2's 4 pages
                l2.write(gi.L2VA + gi.L2VA_PAGES * 0x1000 - 4, b"12345678")
            assert e.value.done == 4 and e.value.code == M.E_UNMAPPED
            assert l1.read(gi.KBASE + 0xFF0, 18) == b"ACROSS-A-PAGE-EDGE"
        with M.open(ram, map="0:0x%x@0" % gi.RAM_SIZE) as local:
            assert local.space(cr3=gi.CR3).read(gi.KBASE + 0xFF0, 18) == b"ACROSS-A-PAGE-EDGE"
            l2 = local.space(cr3=gi.L2_CR3, eptp=gi.EPTP)
            assert l2.read(gi.L2VA + 0x10, 11) == b"through-EPT"
            assert l2.read(gi.L2VA + gi.L2VA_PAGES * 0x1000 - 4, 4) == b"1234"
            assert local.space().read(0x200000, len(big)) == big
        pa = im.k_phys(gi.KBASE + 0xFF0)
        with open(ram, "rb") as f:
            f.seek(pa)
            assert f.read(16) == b"ACROSS-A-PAGE-ED"
    finally:
        srv.stop()


# The killed-server checks run in a child with a deadline: a hang must fail
# the test, not stop the run. The child's Python must keep running while a
# request waits on a stopped server (the GIL is released around the I/O).
KILL_SCRIPT = r"""
import os, signal, sys, threading, time
sys.path.insert(0, %(gdbext)r)
from nested import _memsrv as M
pid = %(pid)d
m = M.connect(%(address)r, token=%(token)r)
sp = m.space()
first = sp.read(0x1000, 64)
outcome = {}
started = threading.Event()

def reader():
    started.set()
    try:
        while True:
            sp.read(0, 4 << 20)
    except M.MemsrvError as e:
        outcome["error"] = (str(e), e.code_name)

t = threading.Thread(target=reader)
os.kill(pid, signal.SIGSTOP)      # requests now wait on the server
t.start()
started.wait()
ticks = 0
deadline = time.monotonic() + 0.5
while time.monotonic() < deadline:  # this thread runs meanwhile
    ticks += 1
print("ticks", ticks > 1000)
os.kill(pid, signal.SIGKILL)     # mid-request
t.join(30)
print("reader ended", not t.is_alive())
print("reader error", outcome.get("error"))
for fn in (lambda: sp.read(0x1000, 8), lambda: sp.translate(0), lambda: sp.x("2gx", 0),
           lambda: sp.vtop(0), lambda: m.flush(), lambda: m.stats, lambda: m.space(cr3=0x1000)):
    try:
        fn()
        print("after: no error")
    except M.MemsrvError as e:
        print("after:", e.code_name, e)
m.close()
print("closed", m.closed)
"""


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_server_killed_mid_session(served, transport, tmp_path):
    s = served["paging-5x0"]
    if transport == "unix":
        address, token, args = str(tmp_path / "k.sock"), None, ["--socket", str(tmp_path / "k.sock")]
    else:
        address, token, args = None, TOKEN, ["--listen", "127.0.0.1:0", "--token-file",
                                             s["token_file"]]
    srv = Server(s["ram"], *args)
    address = address or "tcp:127.0.0.1:%d" % srv.port
    try:
        code = KILL_SCRIPT % {"gdbext": GDBEXT, "pid": srv.p.pid, "address": address,
                              "token": token}
        p = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True,
                           timeout=120)
    finally:
        srv.p.kill()
        srv.stop()
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    assert "ticks True" in out and "reader ended True" in out, out
    m = re.search(r"reader error \('(.*)', '([^']+)'\)", out)
    assert m, out
    assert re.search(r"memsrv closed the connection|recv from memsrv|send to memsrv", m.group(1))
    after = [line for line in out.splitlines() if line.startswith("after:")]
    assert len(after) == 7 and all("not connected to memsrv" in a for a in after), out
    assert "closed True" in out


def test_silent_server_times_out(served, tmp_path):
    """A server that stops answering but keeps its socket open (SIGSTOP: a
    hypervisor developer's debugger paused it) must not hang GDB: the call
    fails after the timeout, with a message saying so, and the connection is
    closed. Without a timeout the same call would block forever."""
    s = served["paging-5x0"]
    sock = str(tmp_path / "t.sock")
    srv = Server(s["ram"], "--socket", sock)
    try:
        m = M.connect(sock, timeout=1.0)
        sp = m.space()
        assert len(sp.read(0x1000, 8)) == 8
        os.kill(srv.p.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        with pytest.raises(M.MemsrvError) as e:
            sp.read(0x1000, 8)
        waited = time.monotonic() - t0
        assert "did not answer within 1000 ms" in str(e.value), str(e.value)
        assert 0.9 <= waited < 10, waited
        with pytest.raises(M.MemsrvError, match="not connected"):
            sp.read(0x1000, 8)
        with pytest.raises(ValueError):
            M.connect(sock, timeout=-1)
    finally:
        os.kill(srv.p.pid, signal.SIGCONT)
        srv.p.kill()
        srv.stop()


def cases_file(served, tmp_path, limit):
    cases = [{"ram": s["ram"], "truth": s["ram"] + ".json",
              "servers": [[s["unix"], None], [s["tcp"], TOKEN]], "limit": limit}
             for s in served.values()]
    path = str(tmp_path / "cases.json")
    with open(path, "w") as f:
        json.dump(cases, f)
    return path


def test_module_under_usr_bin_python3(served, tmp_path):
    env = dict(os.environ, REMOTE_CASES=cases_file(served, tmp_path, 100))
    p = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "remote_compare.py")], env=env,
                       capture_output=True, text=True, timeout=600)
    last = (p.stdout.strip().splitlines() or [""])[-1]
    assert p.returncode == 0 and re.match(r"remote-compare: \d+ answers, all equal$", last), \
        p.stdout[-3000:] + p.stderr[-3000:]


def test_module_inside_gdb(served, tmp_path):
    """GDB's own Python (the module is built against it)."""
    env = dict(os.environ, REMOTE_CASES=cases_file(served, tmp_path, 100))
    p = subprocess.run(["gdb", "-batch", "-nx", "-x", os.path.join(HERE, "remote_compare.py")],
                       env=env, capture_output=True, text=True, timeout=600)
    last = (p.stdout.strip().splitlines() or [""])[-1]
    assert re.match(r"remote-compare: \d+ answers, all equal$", last), \
        p.stdout[-3000:] + p.stderr[-3000:]


@pytest.fixture(scope="module")
def gdb_image(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("remote-gdb"))
    im = gi.Image().build()
    ram, core = im.write(d)
    return {"im": im, "ram": ram, "core": core, "elf": gi.write_symbols(d), "dir": d}


def test_gdb_sessions_share_one_server(gdb_image, served, tmp_path):
    """`nested attach --connect`: two GDB sessions at once on one server (its
    UNIX socket and TCP, both with --token-file since the server has one), the
    same output as a session that opens the file itself; L1 and L2 (EPT)."""
    im = gdb_image["im"]
    sock = str(tmp_path / "gdb.sock")
    tok = served["paging-5x0"]["token_file"]
    srv = Server(gdb_image["ram"], "--map", "0:0x%x@0" % gi.RAM_SIZE, "--socket", sock,
                 "--listen", "127.0.0.1:0", "--token-file", tok)
    work = [
        "nx/8gx kstart+0x200",
        "nx/3a kstart+0x200",
        "nx/2s 0xffffffff81000100",
        "nx",
        "nx/6gx 0xffffffff81000000 + 0xffe0",
        "nested vtop kstart+0x1238",
        "nested ptdump --kernel",
        "nested p/x *(unsigned long *)(kstart + 0x200)",
        "nested vtop 0x12345000",
        "nested eptp 0x%x" % gi.EPTP,
        "nested cr3 0x%x --levels 4" % gi.L2_CR3,
        "nested mode l2",
        "nx/s 0x%x" % gi.L2VA,
        "nx/8gx 0x%x" % (gi.L2VA + 0xFF0),
        "nested vtop 0x%x" % (gi.L2VA + 0x1008),
        "nested ptdump",
    ]
    attaches = {
        "file": "nested attach %s --map 0:0x%x@0" % (gdb_image["ram"], gi.RAM_SIZE),
        "unix": "nested attach --connect %s --token-file %s" % (sock, tok),
        "tcp": "nested attach --connect tcp:127.0.0.1:%d --token-file %s" % (srv.port, tok),
    }
    results = {}

    def session(kind):
        d = str(tmp_path / kind)
        os.makedirs(d)
        cmds = tg.preamble(gdb_image)
        cmds[3] = attaches[kind]
        cmds += work + ["nested info", "nested dmesg", "nested scan", "nested detach"]
        results[kind] = tg.run_gdb(cmds, d, cwd=gdb_image["dir"])[1]

    try:
        threads = [threading.Thread(target=session, args=(k,)) for k in ("unix", "tcp")]
        for t in threads:
            t.start()
        session("file")
        for t in threads:
            t.join(300)
        stats = M.connect(sock, TOKEN).stats
    finally:
        srv.stop()
    assert set(results) == {"file", "unix", "tcp"}
    n = len(tg.preamble(gdb_image))
    local = results["file"]
    tg.check_ok(local, n)
    assert "0x%x" % im.l2_phys(gi.L2VA + 0x1008) in local[n + 14]["out"]
    assert gi.MARKER[:-1].decode() in local[n + 12]["out"]
    for kind in ("unix", "tcp"):
        res = results[kind]
        tg.check_ok(res, n)
        assert "attached to memsrv at" in res[3]["out"] and "read-only" in res[3]["out"], res[3]
        for want, have in zip(local[n:n + len(work)], res[n:n + len(work)]):
            assert (want["out"], want["err"]) == (have["out"], have["err"]), (want, have)
        info, dmesg, scan, detach = res[n + len(work):]
        assert "served by memsrv at" in info["out"] and "EPT" in info["out"], info
        assert (scan["out"], scan["err"]) == (local[n + len(work) + 2]["out"],
                                              local[n + len(work) + 2]["err"]), scan
        # dmesg goes to the server, which fails as the library does here.
        assert dmesg["err"] and dmesg["err"] == local[n + len(work) + 1]["err"], dmesg
        assert detach["err"] is None
    # The two sessions' requests went to the one server (no other source of
    # these answers), which kept one set of caches for both.
    assert stats["requests"] > 30 and stats["hits"] > 0, stats


def test_attach_connect_errors(gdb_image, tmp_path):
    cmds = ["source %s/nested.gdb" % GDBEXT,
            "nested attach --connect %s" % (tmp_path / "nobody.sock"),
            "nested attach --connect %s --writable" % (tmp_path / "x.sock"),
            "nested attach %s --token-file %s" % (gdb_image["ram"], tmp_path / "t"),
            "nested attach --connect tcp:127.0.0.1:1 --token-file %s" % (tmp_path / "none")]
    _, res = tg.run_gdb(cmds, str(tmp_path))
    assert "cannot connect to" in res[1]["err"] and "memsrv serve" in res[1]["err"], res[1]
    assert "the server owns the memory" in res[2]["err"], res[2]
    assert "--token-file goes with --connect" in res[3]["err"], res[3]
    assert "cannot read token file" in res[4]["err"], res[4]
