"""The kernel's own types (BTF, read from guest memory) in place of a vmlinux:
ps with no symbol file equals ps with the -dbg vmlinux (DWARF) and crash's
task list, on 5-level nokaslr, KASLR, and the same kernel behind EPT/NPT.
ptype/o from BTF equals GDB's ptype/o on the vmlinux."""

import os
import re
import subprocess

import pytest

from test_linux import crash_run, memsrv, transplant, vmlinux
from test_remote_linux import Server

GUESTS = ["guest5", "guest_kaslr"]


@pytest.fixture(params=GUESTS)
def guest(request):
    return request.getfixturevalue(request.param)


def ps_rows(out):
    rows = out.splitlines()
    assert rows[0].split() == ["PID", "PPID", "ST", "TASK", "COMM"]
    return [r.split(None, 4) for r in rows[1:]]


def test_ps_without_vmlinux(guest, tmp_path):
    out, err, _ = memsrv("--ram", guest.ram, "ps", "--stats")
    m = re.search(r"types: BTF \(guest memory, (\d+) types\), read and parsed in ([\d.]+) ms", err)
    assert m, err
    assert int(m.group(1)) > 50000
    print(f"\nBTF from guest memory: {m.group(1)} types in {m.group(2)} ms")
    # the same table as with the vmlinux's DWARF ...
    with_dwarf, err2, _ = memsrv("--ram", guest.ram, "--vmlinux", vmlinux(guest), "ps", "--stats")
    assert "types: DWARF" in err2, err2
    assert out == with_dwarf
    # ... as crash's walk of the task list ...
    _, _, tasks, _ = crash_run(guest)
    mine = sorted((int(t, 16), int(pid), comm) for pid, _, _, t, comm in ps_rows(out))
    assert len(tasks) > 20 and mine == sorted(tasks)
    # ... and holding the process the guest said it started
    pid = guest.user["pid"]
    assert any(int(p) == pid and c == "userpat" for p, _, _, _, c in ps_rows(out)), out
    # over a server with no symbol file: the same table
    srv = Server(guest.ram, str(tmp_path / "s.sock"))
    try:
        remote, err4, _ = memsrv("--connect", srv.sock, "ps", "--stats")
        assert remote == out and "types: BTF" in err4, err4
    finally:
        srv.stop()
    # a System.map gives symbols but no types: still BTF
    via_map, err3, _ = memsrv("--ram", guest.ram, "--system-map",
                              os.path.join(guest.kernel_dir, "System.map"), "ps", "--stats")
    assert "types: BTF" in err3 and via_map == out


@pytest.mark.parametrize("kind", ["ept", "npt"])
def test_ps_without_vmlinux_nested(guest5, tmp_path, kind):
    g = guest5
    dst = str(tmp_path / "l1.ram")
    root = transplant(g.ram, dst, kind)
    stage = ["--eptp", hex(root)] if kind == "ept" else ["--ncr3", hex(root), "--npt-levels", "4"]
    direct, _, _ = memsrv("--ram", g.ram, "--vmlinux", vmlinux(g), "ps")
    nested, err, _ = memsrv("--ram", dst, *stage, "ps", "--stats")
    assert "types: BTF" in err, err
    assert nested == direct
    os.unlink(dst)


PTYPE_STRUCTS = ["task_struct", "mm_struct", "module", "printk_ringbuffer", "prb_desc",
                 "printk_info", "inactive_task_frame", "list_head", "signal_struct",
                 "vm_area_struct", "pid", "uts_namespace"]
_gdb_ptype = {}


def gdb_ptype(kernel_dir):
    """GDB's ptype/o of every struct in PTYPE_STRUCTS on the -dbg vmlinux
    (DWARF), one text per struct."""
    if kernel_dir not in _gdb_ptype:
        cmds = []
        for s in PTYPE_STRUCTS:
            cmds += ["-ex", "echo ==== %s\\n" % s, "-ex", "ptype/o struct " + s]
        p = subprocess.run(["gdb", "-batch", "-nx", *cmds, os.path.join(kernel_dir, "vmlinux")],
                           capture_output=True, text=True, timeout=600)
        parts = re.split(r"^==== (\S+)\n", p.stdout, flags=re.M)
        _gdb_ptype[kernel_dir] = dict(zip(parts[1::2], parts[2::2]))
        assert set(_gdb_ptype[kernel_dir]) == set(PTYPE_STRUCTS), p.stderr[-2000:]
    return _gdb_ptype[kernel_dir]


def layout(text):
    """The lines with numbers: members (offset, size), holes, padding, totals."""
    return [l for l in text.splitlines() if l.startswith("/*") or "total size" in l]


def test_ptype_o_matches_gdb(guest, tmp_path):
    want = gdb_ptype(guest.kernel_dir)
    srv = Server(guest.ram, str(tmp_path / "s.sock"))
    try:
        for s in PTYPE_STRUCTS:
            mine, _, _ = memsrv("--ram", guest.ram, "ptype/o", "struct", s)
            # BTF cannot tell a GNU zero-length array from a flexible one:
            # "u8 x[0]" reads "u8 x[]" (its size, 0, is the same)
            gdb = want[s].replace("[0];", "[];")
            assert layout(mine) == layout(gdb), s
            assert mine == gdb, s
            remote, _, _ = memsrv("--connect", srv.sock, "ptype/o", "struct", s)
            assert remote == mine, s
    finally:
        srv.stop()
    task = layout(want["task_struct"])
    assert len(task) > 800  # every member of task_struct, nested structs expanded


def test_ptype_errors(guest5):
    out, err, rc = memsrv("--ram", guest5.ram, "ptype", "struct", "no_such_struct", check=False)
    assert rc == 1 and "No struct type named no_such_struct." in err, err
    out, err, rc = memsrv("--ram", guest5.ram, "ptype/x", "struct", "list_head", check=False)
    assert rc == 1 and "only /o" in err, err
    out, _, _ = memsrv("--ram", guest5.ram, "ptype", "pid_t")
    assert out == "type = int\n"
