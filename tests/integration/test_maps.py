"""memsrv maps against the guests' own /proc/PID/maps, printed before the
stop: userpat's on the single-level guests (tests/guest/init prints "lab:
mapspid N" and "lab: maps LINE" lines), and the user process of the real
Linux L2 through --ncr3 (tests/guest/l2init prints "l2lab: user pid=N" and
"l2lab: maps LINE"). Every line must be the same, paths, padding and
[heap]/[stack]/[vdso]/[vvar]/[vsyscall] names included; the layouts come
from the kernel's own BTF (no vmlinux) and from the -dbg vmlinux's DWARF."""

import os
import subprocess

import pytest

from test_l2linux import FIXTURES, _nested
from test_linux import MEMSRV, memsrv, transplant, vmlinux


class Server:
    """`memsrv serve` on a UNIX socket; stop() checks its exit."""

    def __init__(self, ram, sock):
        self.sock = sock
        self.p = subprocess.Popen([MEMSRV, "serve", "--ram", ram, "--socket", sock],
                                  stderr=subprocess.PIPE, text=True)
        self.line = self.p.stderr.readline()
        assert "serving" in self.line, self.line + self.p.stderr.read()

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
        assert self.p.wait(timeout=20) == 0, self.p.stderr.read()


def maps(*args, check=True):
    out, err, rc = memsrv(*args, check=check)
    return out.split("\n")[:-1], err, rc


def _check_oracle(lines):
    """The oracle itself: a real process's map, with a file path and the
    names /proc gives anonymous areas."""
    assert len(lines) >= 5, lines
    names = {ln[73:] for ln in lines if len(ln) > 73}
    assert {"[stack]", "[vdso]", "[vvar]"} <= names, lines
    assert any(n.startswith("/") for n in names), lines


@pytest.fixture(params=["guest5", "guest_kaslr"])
def guest(request):
    return request.getfixturevalue(request.param)


def test_maps_single_level(guest, tmp_path):
    g = guest
    want = g.maps
    _check_oracle(want)
    mine, err, _ = maps("--ram", g.ram, "maps", str(g.maps_pid), "--stats")
    assert "types: BTF" in err, err
    assert mine == want, (mine, want)
    # DWARF types: the same lines
    mine, err, _ = maps("--ram", g.ram, "--vmlinux", vmlinux(g), "maps", str(g.maps_pid),
                        "--stats")
    assert "types: DWARF" in err, err
    assert mine == want, (mine, want)
    # a program on another mount (a tmpfs on /tmp/lab-mnt), unlinked
    want2 = g.maps2
    assert any(ln.endswith(" /tmp/lab-mnt/busybox (deleted)") for ln in want2), want2
    mine, _, _ = maps("--ram", g.ram, "maps", str(g.maps2_pid))
    assert mine == want2, (mine, want2)
    # over a server (MAPS)
    srv = Server(g.ram, str(tmp_path / "s.sock"))
    try:
        remote, err, _ = maps("--connect", srv.sock, "maps", str(g.maps_pid), "--stats")
        assert remote == want and "types: BTF" in err, (remote, err)
    finally:
        srv.stop()


def test_maps_errors(guest5):
    g = guest5
    # no such pid
    out, err, rc = maps("--ram", g.ram, "maps", "999999", check=False)
    assert rc != 0 and out == [] and "no task with pid 999999" in err, (out, err)
    # kthreadd (pid 2): a kernel thread, no mm
    out, err, rc = maps("--ram", g.ram, "maps", "2", check=False)
    assert rc != 0 and out == [] and "kernel thread" in err, (out, err)
    out, err, rc = maps("--ram", g.ram, "maps", "-1", check=False)
    assert rc != 0 and "maps" in err, err


@pytest.mark.parametrize("kind", ["ept", "npt"])
def test_maps_behind_second_stage(guest5, tmp_path, kind):
    """guest5's RAM behind generated EPT/NPT tables (test_linux.transplant):
    the same map through --eptp and --ncr3."""
    g = guest5
    dst = str(tmp_path / "l1.ram")
    root = transplant(g.ram, dst, kind)
    stage = ["--eptp", hex(root)] if kind == "ept" else ["--ncr3", hex(root), "--npt-levels", "4"]
    for pid, want in ((g.maps_pid, g.maps), (g.maps2_pid, g.maps2)):
        mine, err, _ = maps("--ram", dst, *stage, "maps", str(pid))
        assert mine == want, (mine, want, err)
    os.unlink(dst)


@pytest.fixture(params=FIXTURES)
def l2g(request):
    return request.getfixturevalue(request.param)


def test_maps_l2_through_npt(l2g, tmp_path):
    l2 = l2g.l2linux
    want = l2["maps"]
    _check_oracle(want)
    pid = str(l2["user"]["pid"])
    mine, err, _ = maps(*_nested(l2g), "maps", pid, "--stats")
    assert "types: BTF" in err, err
    assert mine == want, (mine, want)
    # the second stage found by discover, and over a server
    auto, err, _ = maps("--ram", l2g.ram, "--nested", "auto", "maps", pid)
    assert auto == want, err
    srv = Server(l2g.ram, str(tmp_path / "s.sock"))
    try:
        args = _nested(l2g)
        remote, err, _ = maps("--connect", srv.sock, *args[2:], "maps", pid)
        assert remote == want, err
    finally:
        srv.stop()


def test_maps_qemu_in_l1(guest_l2linux):
    """L1's QEMU (running the L2) has hundreds of areas: a maple tree of
    several levels (arange_64 nodes over leaves), shared mappings and an
    anonymous inode. Its map moves while L2 boots, so there is no /proc
    oracle of the stopped moment: the shape is checked, and BTF, DWARF and
    a server must agree."""
    g = guest_l2linux
    ps, _, _ = memsrv("--ram", g.ram, "ps")
    # QEMU and its threads (ps lists every thread): one mm, one map
    pids = sorted((ln.split()[0] for ln in ps.splitlines() if ln.endswith(" qemu-system-x86")),
                  key=int)
    assert len(pids) >= 2, ps
    mine, err, _ = maps("--ram", g.ram, "maps", pids[0], "--stats")
    assert "types: BTF" in err, err
    assert len(mine) > 100, mine
    ranges = [tuple(int(x, 16) for x in ln.split()[0].split("-")) for ln in mine]
    assert all(s < e for s, e in ranges), mine
    assert all(a[1] <= b[0] for a, b in zip(ranges, ranges[1:])), mine
    names = [ln[73:] for ln in mine]
    assert "?" not in names, mine
    for n in ("[heap]", "[stack]", "[vdso]", "[vvar]"):
        assert names.count(n) == 1, (n, mine)
    assert any(ln.split()[1] == "r-xp" and ln.endswith(" /usr/bin/qemu-system-x86_64")
               for ln in mine), mine
    assert any(ln.split()[1] == "rw-s" and ln.endswith(" anon_inode:kvm-vcpu:0") for ln in mine), mine
    dwarf, err, _ = maps("--ram", g.ram, "--vmlinux", vmlinux(g), "maps", pids[0], "--stats")
    assert "types: DWARF" in err and dwarf == mine, err
    thread, _, _ = maps("--ram", g.ram, "maps", pids[-1])
    assert thread == mine
