"""The guest kernel over memsrv's protocol (DMESG, SYMBOL, ADDRSYM): `memsrv
--connect S dmesg|sym` and the Python module's connect().space().dmesg() /
.symbol() give exactly what the in-process paths give, on the real guests
(guest5, guest_kaslr, guest4_4g: conftest.py) and on a nested guest behind
EPT; and what cannot work says why."""

import os
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "gdbext"))

import test_linux as tl  # noqa: E402  (memsrv(), vmlinux(), transplant(), ...)
from nested import _memsrv as M  # noqa: E402

memsrv = tl.memsrv
DMESG_STYLES = [[], ["--raw"], ["--crash"], ["--level", "4"], ["--stats"]]


class Server:
    """`memsrv serve` on a UNIX socket in tmp_path; stop() checks its exit."""

    def __init__(self, ram, sock, *args, source="--ram"):
        self.sock = sock
        self.p = subprocess.Popen([tl.MEMSRV, "serve", source, ram, "--socket", sock, *args],
                                  stderr=subprocess.PIPE, text=True)
        self.line = self.p.stderr.readline()
        assert "serving" in self.line, self.line + self.p.stderr.read()

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
        assert self.p.wait(timeout=20) == 0, self.p.stderr.read()


@pytest.fixture
def servers(guest, tmp_path):
    """The guest's RAM served twice: without a symbol file, and with its
    vmlinux. Yields (guest, {"none": Server, "vmlinux": Server})."""
    out = {"none": Server(guest.ram, str(tmp_path / "none.sock"))}
    try:
        out["vmlinux"] = Server(guest.ram, str(tmp_path / "vmlinux.sock"), "--vmlinux",
                                tl.vmlinux(guest))
        assert "kernel symbols from " + tl.vmlinux(guest) in out["vmlinux"].line
        yield guest, out
    finally:
        for s in out.values():
            s.stop()


@pytest.fixture(params=tl.GUESTS)
def guest(request):
    return request.getfixturevalue(request.param)


def test_dmesg_and_sym_over_the_socket_match_local(servers):
    g, srv = servers
    banner = memsrv("--ram", g.ram, "sym", "linux_banner")[0].split()[0]
    names = ["linux_banner", "init_task", "linux_banner+0x10", hex(int(banner, 16) + 5)]
    for kind, s in srv.items():
        local_opts = ["--vmlinux", tl.vmlinux(g)] if kind == "vmlinux" else []
        for style in DMESG_STYLES:
            want = memsrv("--ram", g.ram, *local_opts, "dmesg", *style)
            got = memsrv("--connect", s.sock, "dmesg", *style)
            assert got == want, (kind, style)
            assert len(got[0].splitlines()) > (10 if "--level" in style else 100)
        for marker in g.markers:
            assert any(line.endswith(" " + marker) for line in got[0].splitlines()), marker
        want = memsrv("--ram", g.ram, *local_opts, "sym", *names)
        got = memsrv("--connect", s.sock, "sym", *names)
        assert got == want, kind
        assert got[0].splitlines()[3].endswith(" linux_banner+0x5"), got
    # The KASLR guest's symbols really moved.
    with open(tl.system_map(g)) as f:
        link = next(int(line.split()[0], 16) for line in f if line.split()[2:] == ["linux_banner"])
    assert (int(banner, 16) != link) == (g.name == "guest_kaslr")


def test_python_connect_matches_in_process(servers):
    g, srv = servers
    with M.open(g.ram) as local, M.connect(srv["none"].sock) as remote:
        lsp, rsp = local.space(), remote.space()
        for kw in ({}, {"style": "raw"}, {"style": "crash", "level": 4}):
            assert rsp.dmesg(**kw) == lsp.dmesg(**kw), kw
        addr = lsp.symbol("linux_banner")
        assert rsp.symbol("linux_banner") == addr
        assert rsp.symbol(addr + 5) == lsp.symbol(addr + 5) == ("linux_banner", 5)
        with pytest.raises(M.MemsrvError) as e:
            rsp.symbol("no_such_symbol_here")
        with pytest.raises(M.MemsrvError) as le:
            lsp.symbol("no_such_symbol_here")
        assert (str(e.value), e.value.code) == (str(le.value), le.value.code)
        assert e.value.code == M.E_NOTFOUND
        # The symbol file belongs to the server.
        with pytest.raises(M.MemsrvError, match=r"give the symbol file to `memsrv serve`"):
            remote.set_symbols(tl.vmlinux(g))
        # Tasks with no symbol file: the guest's own kallsyms and BTF.
        assert rsp.tasks() == lsp.tasks() and len(lsp.tasks()) > 20
    with M.open(g.ram, symbols=tl.vmlinux(g)) as local, \
            M.connect(srv["vmlinux"].sock) as remote:
        assert remote.space().dmesg() == local.space().dmesg()
        assert remote.space().tasks() == local.space().tasks()
        assert any(t[4] == "swapper/0" for t in local.space().tasks())


def test_dmesg_timing_socket_vs_in_process(guest5, tmp_path):
    g = guest5
    s = Server(g.ram, str(tmp_path / "t.sock"))
    try:
        t0 = time.monotonic()
        first = memsrv("--connect", s.sock, "dmesg")
        t_first = time.monotonic() - t0
        t0 = time.monotonic()
        for _ in range(5):
            again = memsrv("--connect", s.sock, "dmesg")
        t_warm = (time.monotonic() - t0) / 5
        t0 = time.monotonic()
        for _ in range(5):
            local = memsrv("--ram", g.ram, "dmesg")
        t_local = (time.monotonic() - t0) / 5
    finally:
        s.stop()
    assert first == again == local
    print(f"\ndmesg on guest5: memsrv --connect first {t_first * 1000:.0f} ms (opens the "
          f"kernel), then {t_warm * 1000:.0f} ms; memsrv --ram {t_local * 1000:.0f} ms")


def test_errors_say_why(guest5, tmp_path):
    g = guest5
    s = Server(g.ram, str(tmp_path / "e.sock"))
    blank = str(tmp_path / "blank.ram")
    with open(blank, "wb") as f:
        f.truncate(64 << 20)
    b = Server(blank, str(tmp_path / "blank.sock"))
    try:
        _, err, rc = memsrv("--connect", s.sock, "--vmlinux", tl.vmlinux(g), "dmesg",
                            check=False)
        assert rc == 1 and "give the symbol file to `memsrv serve`" in err, err
        _, err, rc = memsrv("--connect", s.sock, "dmesg", "--no-vmcoreinfo", check=False)
        assert rc == 1 and "not with --connect" in err, err
        # No symbol file and no VMCOREINFO: the library's message, as locally.
        # The message is the library's on both sides; the hint is each front's.
        local = memsrv("--ram", blank, "dmesg", check=False)
        remote = memsrv("--connect", b.sock, "dmesg", check=False)
        assert remote[2] == local[2] == 1, (remote, local)
        assert remote[1].splitlines()[0] == local[1].splitlines()[0], (remote, local)
        assert "no VMCOREINFO in guest memory and no symbol file" in remote[1]
        assert "hint: give --vmlinux or --system-map" in local[1], local
        assert "hint: give the symbol file to `memsrv serve`" in remote[1], remote
        # sym says it per name, here and over --connect alike.
        local = memsrv("--ram", blank, "sym", "linux_banner", check=False)
        remote = memsrv("--connect", b.sock, "sym", "linux_banner", check=False)
        assert local == remote and local[2] == 1, (local, remote)
        assert "no VMCOREINFO" in local[0], local
        assert local[2] == remote[2] == 1
        with M.connect(b.sock) as m:
            with pytest.raises(M.MemsrvError, match="no VMCOREINFO in guest memory"):
                m.space().dmesg()
        # A symbol file that cannot be read stops the server at startup.
        p = subprocess.run([tl.MEMSRV, "serve", "--ram", blank, "--socket",
                            str(tmp_path / "x.sock"), "--system-map", str(tmp_path / "nope")],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 1 and "nope" in p.stderr, p.stderr
    finally:
        s.stop()
        b.stop()


@pytest.mark.parametrize("kind", ["ept", "npt"])
def test_nested_guest_over_the_socket(guest5, tmp_path, kind):
    """The nested guest's kernel (behind the handle's second stage): the same
    log and symbols as the direct view, from one server, which also serves
    the outer level's (here: no kernel) answer unchanged."""
    g = guest5
    dst = str(tmp_path / "l1.ram")
    root = tl.transplant(g.ram, dst, kind)
    stage = ["--eptp", hex(root)] if kind == "ept" else ["--ncr3", hex(root), "--npt-levels", "4"]
    s = Server(dst, str(tmp_path / "n.sock"))
    try:
        direct = memsrv("--ram", g.ram, "dmesg", "--stats")
        nested = memsrv("--connect", s.sock, *stage, "dmesg", "--stats")
        assert nested == direct == memsrv("--ram", dst, *stage, "dmesg", "--stats")
        assert memsrv("--connect", s.sock, *stage, "sym", "init_task", "linux_banner") == \
            memsrv("--ram", g.ram, "sym", "init_task", "linux_banner")
        # The outer level has no kernel of its own (the VMCOREINFO in its RAM
        # is the nested kernel's, whose tables do not read it back there):
        # the library's message on both sides, each front's hint.
        outer = memsrv("--connect", s.sock, "dmesg", check=False)
        local = memsrv("--ram", dst, "dmesg", check=False)
        assert outer[2] == local[2] == 1, (outer, local)
        assert outer[1].splitlines()[0] == local[1].splitlines()[0], (outer, local)
        assert "no VMCOREINFO in guest memory" in local[1], local
        with M.connect(s.sock) as m:
            kw = {"eptp": root} if kind == "ept" else {"ncr3": root, "npt_levels": 4}
            assert m.space(**kw).dmesg() == direct[0]
    finally:
        s.stop()
        os.unlink(dst)
