"""One target under every front (issue "One target under every front"): what
used to differ between the CLI, the Python module, GDB and a server, because
each built its own stack and opened the kernel its own way.

- Symbols name addresses everywhere, with no symbol file (the guest's own
  kallsyms) and over --connect: `x/2gx init_task` works locally, through a
  server, and from Python, and agrees with the vmlinux's answer.
- A dump's VMCOREINFO note is the outer guest's: it is never handed to the
  kernel of a nested level (GDB `nested dmesg` in L2 of an L1 dump, the
  module, a server, the CLI).
- No Python object points into the RAM mapping: a file that shrinks under
  the module gives MemsrvError, never SIGBUS."""

import os
import random
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "gdbext"))

import test_linux as tl  # noqa: E402
from nested import _memsrv as M  # noqa: E402
from test_gdbext import GDBEXT, run_gdb  # noqa: E402
from test_remote_linux import Server  # noqa: E402

memsrv = tl.memsrv


@pytest.fixture(params=["guest5", "guest_kaslr"])
def guest(request):
    return request.getfixturevalue(request.param)


def test_symbols_name_addresses_everywhere(guest, tmp_path):
    g = guest
    with_vmlinux, _, _ = memsrv("--ram", g.ram, "--vmlinux", tl.vmlinux(g), "x/2gx", "init_task")
    plain, _, _ = memsrv("--ram", g.ram, "x/2gx", "init_task")
    assert plain == with_vmlinux and plain.startswith("0xffffffff"), (plain, with_vmlinux)
    assert "<init_task>" in plain, plain
    banner, _, _ = memsrv("--ram", g.ram, "x/s", "linux_banner")
    assert '"Linux version 6.1.0-' in banner and "<linux_banner>" in banner, banner
    srv = Server(g.ram, str(tmp_path / "s.sock"))
    try:
        remote, _, _ = memsrv("--connect", srv.sock, "x/2gx", "init_task")
        assert remote == plain, (remote, plain)
        vtop, _, _ = memsrv("--connect", srv.sock, "vtop", "--brief", "linux_banner+8")
        lvtop, _, _ = memsrv("--ram", g.ram, "vtop", "--brief", "linux_banner+8")
        assert vtop == lvtop and len(vtop.split()) == 2, (vtop, lvtop)
        # The module, in-process and through the server: the kernel's own
        # page tables (kernel=True) under a kallsyms name.
        with M.open(g.ram) as local, M.connect(srv.sock) as rem:
            lk, rk = local.space(kernel=True), rem.space(kernel=True)
            addr = lk.symbol("init_task")
            assert rk.symbol("init_task") == addr
            assert lk.read(addr, 16) == rk.read(addr, 16)
            assert lk.root == rk.root and lk.levels == rk.levels == g.levels
            assert lk.describe() == rk.describe()
            comm = lk.read(addr, 4096)
            assert b"swapper/0" in comm
    finally:
        srv.stop()


def _nested_roots(mem):
    """nCR3, NPT depth and L2's CR3 from the library's discover."""
    best = mem.discover()[0]
    assert best["kind"] == "VMCB" and best["root_levels"] in (4, 5), best
    return best["root"], best["root_levels"], best["cr3"]


def test_dump_note_never_reaches_a_nested_kernel(request, tmp_path):
    g = request.getfixturevalue("guest_svm")
    dump = g.dump()
    with M.open_dump(dump) as mem:
        assert mem.vmcoreinfo and "OSRELEASE=" in mem.vmcoreinfo, "no VMCOREINFO note"
        ncr3, levels, l2cr3 = _nested_roots(mem)
        # L1's own kernel: the note is used.
        assert "Linux version" in mem.space().dmesg()
        # L2 (a bare KVM program): no kernel, said as such, whatever L1's
        # note says; before, L1's prb was looked up in L2's memory.
        with pytest.raises(M.MemsrvError) as e:
            mem.space(ncr3=ncr3, npt_levels=levels).dmesg()
        assert "no VMCOREINFO" in str(e.value) and "prb" not in str(e.value), e.value
    out, err, rc = memsrv("--dump", dump, "--ncr3", hex(ncr3), "--npt-levels", str(levels),
                          "dmesg", check=False)
    assert rc == 1 and "no VMCOREINFO" in err and "prb" not in err, err
    # A server on the dump: the same answer over the wire.
    sock = str(tmp_path / "svm.sock")
    srv = subprocess.Popen([tl.MEMSRV, "serve", "--dump", dump, "--socket", sock],
                           stderr=subprocess.PIPE, text=True)
    try:
        assert "serving" in srv.stderr.readline()
        with M.connect(sock) as rem:
            assert "Linux version" in rem.space().dmesg()
            with pytest.raises(M.MemsrvError) as e:
                rem.space(ncr3=ncr3, npt_levels=levels).dmesg()
            assert "no VMCOREINFO" in str(e.value), e.value
    finally:
        srv.terminate()
        srv.wait(timeout=20)
    # GDB, post-crash on the dump, viewing L2.
    cmds = [
        "source %s/nested.gdb" % GDBEXT,
        "nested attach %s" % dump,
        "nested ncr3 0x%x --levels %d" % (ncr3, levels),
        "nested mode l2",
        "nested cr3 0x%x --levels 4" % l2cr3,
        "nested dmesg",
        "nested mode l1",
        "nested dmesg -n 3",
    ]
    _, res = run_gdb(cmds, str(tmp_path), timeout=300)
    for r in res[:5]:
        assert r["err"] is None, r
    assert res[5]["err"] and "no VMCOREINFO" in res[5]["err"], res[5]
    assert "prb" not in res[5]["err"], res[5]
    assert res[7]["err"] is None and len(res[7]["out"].splitlines()) == 3, res[7]


SHRINK = r"""
import os, sys
sys.path.insert(0, %(gdbext)r)
from nested import _memsrv as M
m = M.open(%(ram)r, map="0:0x400000@0")
sp = m.space()
assert sp.read(0x300000, 8) == %(want)r
assert not any(hasattr(o, "view") for o in (m, sp)), "an API hands out the mapping"
os.truncate(%(ram)r, 0x100000)
for _ in range(2):
    try:
        sp.read(0x300000, 8)
    except M.MemsrvError as e:
        print("ERROR", e.code_name, e)
    else:
        print("READ")
print("ALIVE", sp.read(0x1000, 8) == %(low)r)
"""


def test_shrinking_file_is_an_error_not_sigbus(tmp_path):
    ram = str(tmp_path / "r.ram")
    data = random.Random(3).randbytes(4 << 20)
    with open(ram, "wb") as f:
        f.write(data)
    code = SHRINK % {"gdbext": os.path.join(ROOT, "gdbext"), "ram": ram,
                     "want": data[0x300000:0x300008], "low": data[0x1000:0x1008]}
    for argv in (["/usr/bin/python3", "-c", code],
                 ["gdb", "-batch", "-nx", "-ex", "python exec(%r)" % code]):
        with open(ram, "wb") as f:
            f.write(data)
        p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, (argv[0], p.returncode, p.stdout, p.stderr)
        lines = p.stdout.splitlines()
        assert lines[0].startswith("ERROR") and lines[1].startswith("ERROR"), p.stdout
        assert "shrank" in lines[0] or "not in RAM" in lines[0], p.stdout
        assert lines[2] == "ALIVE True", p.stdout
