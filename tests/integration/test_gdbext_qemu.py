"""The GDB extension against real QEMU (TCG): GDB connected to QEMU's
gdbstub, nested.gdb sourced, memory from the RAM file.

- a guest held at its first instruction (-S, gdbext_qemu.HeldGuest): `b`
  becomes a hardware breakpoint that stops at start_kernel, conditions kept;
  zero-configuration attach; nx equals GDB's x there;
- the shared fixtures (guest5, guest4_4g: conftest.py) for nx against x on a
  booted kernel, the 4 GiB split layout, and the nx/4096gx timing.

Every GDB session ends with `disconnect` (not detach), so that QEMU's VM
stays stopped for the other tests."""

import os
import re
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from gdbext_qemu import HeldGuest  # noqa: E402
from test_gdbext import GDBEXT, run_gdb, xfmt  # noqa: E402,F401


@pytest.fixture(scope="module")
def held(tmp_path_factory):
    g = HeldGuest(str(tmp_path_factory.mktemp("held")))
    yield g
    g.close()


def connect(guest):
    addr = guest.gdb_address
    return [
        "file %s/vmlinux" % guest.kernel_dir,
        "target remote %s" % addr,
        "source %s/nested.gdb" % GDBEXT,
        "nested attach",
    ]


KERNEL_EXPRS = [
    "&linux_banner",
    "&init_task",
    "init_task.stack",
    "(char *)&init_top_pgt + 0xff0",
]


def test_break_is_hw_and_stops_at_start_kernel(xfmt, held, tmp_path):
    # `b` before `target remote`: the exec target has no debug registers, so
    # the hbreak waits for the connection.
    c = connect(held)
    cmds = [c[0], c[2], "b start_kernel", "nested info", c[1], c[3]] + [
        "break do_one_initcall if 1 == 1",
        "tbreak kernel_init thread 1",
        "info breakpoints",
        "continue",
        "nested info",
        "info registers cr3",
    ]
    for e in KERNEL_EXPRS:
        cmds += ["x/16gx " + e, "nx/16gx " + e]
    cmds += ["x/8xb $sp", "nx/8xb $sp", "x/3s &linux_banner", "nx/3s &linux_banner", "disconnect"]
    proc, res = run_gdb(cmds, str(tmp_path), timeout=180)
    for r in res:
        assert r["err"] is None, r
    r = {x["cmd"]: x for x in res}
    att = r["nested attach"]["out"]
    assert held.ram in att and "from QEMU" in att, att
    assert "will be set when GDB connects" in r["b start_kernel"]["out"], r["b start_kernel"]
    assert "waiting for a target: hbreak start_kernel" in res[3]["out"]
    assert "Hardware assisted breakpoint 1 at" in r[c[1]]["out"], r[c[1]]
    info = r["info breakpoints"]["out"]
    assert re.search(r"^1\s+hw breakpoint\s+keep y.*in start_kernel at init/main.c", info, re.M), info
    assert re.search(r"^2\s+hw breakpoint\s+keep y.*in do_one_initcall", info, re.M), info
    assert re.search(r"^3\s+hw breakpoint\s+del\s+y.*in kernel_init", info, re.M), info
    assert "stop only if 1 == 1" in info
    assert re.search(r"stop only in thread 1\b", info), info
    cont = r["continue"]["out"]
    # GDB prints the stop location through its interpreter, past the log.
    assert "Breakpoint 1, start_kernel () at init/main.c:913" in proc.stdout, proc.stdout
    assert "913\tinit/main.c" in cont, cont
    assert "[nested] vCPU shows L1" in cont, cont
    cr3 = int(re.search(r"cr3\s+0x([0-9a-f]+)", r["info registers cr3"]["out"]).group(1), 16)
    ninfo = r["nested info"]["out"]
    assert "cr3: 0x%x, 5 levels (vCPU)" % cr3 in ninfo, ninfo
    pairs = [(a, b) for a, b in zip(res, res[1:]) if a["cmd"].startswith("x/") and b["cmd"] == "n" + a["cmd"]]
    assert len(pairs) == len(KERNEL_EXPRS) + 2
    for x, nx in pairs:
        assert x["out"] and x["out"] == nx["out"], (x, nx)
    assert "Linux version" in r["nx/3s &linux_banner"]["out"]


def test_hw_break_warning_past_four(held, tmp_path):
    cmds = connect(held) + ["b start_kernel", "b do_one_initcall", "b kernel_init",
                            "b rest_init", "b cpu_startup_entry", "nested swbreak panic",
                            "info breakpoints", "disconnect"]
    _, res = run_gdb(cmds, str(tmp_path), timeout=180)
    for x in res:
        assert x["err"] is None, x
    r = {x["cmd"]: x for x in res}
    assert "warning" not in r["b rest_init"]["out"]
    assert "5 hardware breakpoints/watchpoints are enabled" in r["b cpu_startup_entry"]["out"]
    info = r["info breakpoints"]["out"]
    assert re.search(r"^6\s+breakpoint\s+keep y.*in panic", info, re.M), info
    assert len(re.findall(r"hw breakpoint", info)) == 5


def test_each_stop_rereads_cr3_and_flushes(xfmt, held, tmp_path):
    """From wherever the held guest is (reset or start_kernel) to
    kernel_init: the CR3 in use is re-read and the caches flushed at the
    stop, and nx still equals x."""
    gen = "python import nested.commands; print('GEN', nested.commands.S.mem.generation)"
    cmds = connect(held) + [
        "nested info",
        "p/x $cr3",
        gen,
        "tbreak kernel_init",
        "continue",
        gen,
        "nested info",
        "p/x $cr3",
        "x/8gx $sp",
        "nx/8gx $sp",
        "x/4gx &init_top_pgt",
        "nx/4gx &init_top_pgt",
        "disconnect",
    ]
    proc, res = run_gdb(cmds, str(tmp_path), timeout=180)
    for x in res:
        assert x["err"] is None, x
    assert "Temporary breakpoint 1, kernel_init" in proc.stdout, proc.stdout
    cr3_a = int(re.search(r"= (0x[0-9a-f]+)", res[5]["out"]).group(1), 16)
    cr3_b = int(re.search(r"= (0x[0-9a-f]+)", res[11]["out"]).group(1), 16)
    assert cr3_a != cr3_b
    assert "cr3: 0x%x, 5 levels (vCPU)" % cr3_b in res[10]["out"], res[10]
    assert int(res[9]["out"].split()[1]) > int(res[6]["out"].split()[1])
    assert "[nested] vCPU shows L1" in res[8]["out"], res[8]
    assert res[12]["out"] and res[12]["out"] == res[13]["out"]
    assert res[14]["out"] and res[14]["out"] == res[15]["out"]
