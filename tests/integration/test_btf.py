"""The kernel's own types (BTF, read from guest memory) in place of a vmlinux:
ps with no symbol file equals ps with the -dbg vmlinux (DWARF) and crash's
task list, on 5-level nokaslr, KASLR, and the same kernel behind EPT/NPT.
ptype/o from BTF equals GDB's ptype/o on the vmlinux."""

import os
import re

import pytest

from test_linux import crash_run, memsrv, transplant, vmlinux

GUESTS = ["guest5", "guest_kaslr"]


@pytest.fixture(params=GUESTS)
def guest(request):
    return request.getfixturevalue(request.param)


def ps_rows(out):
    rows = out.splitlines()
    assert rows[0].split() == ["PID", "PPID", "ST", "TASK", "COMM"]
    return [r.split(None, 4) for r in rows[1:]]


def test_ps_without_vmlinux(guest):
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
