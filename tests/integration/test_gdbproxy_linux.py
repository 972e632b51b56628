"""Stock GDB on a real Linux nested under KVM (the guest_l2linux and
guest_l2linux4 fixtures: 5- and 4-level NPT), through `memsrv gdbproxy`,
stopped while the vCPU runs L2 (the fixture makes sure; L2 spins a shell,
tests/guest/l2init). The proxy's nCR3 and depth come from `memsrv discover`,
L2's KASLR slide from `memsrv sym _text` against the vmlinux's own _text; GDB
loads L2's vmlinux (the same Debian kernel as L1) at that slide. Then
`p linux_banner` is L2's /proc/version, as L2 printed it; a `break` on L2's
scheduler_tick is hit in L2 (the spinning shell's timer tick), as a hardware
breakpoint: the code bytes in the RAM file stay as they were; `bt` walks L2's
timer interrupt. The same `p linux_banner` over QEMU's own stub does not read
L2's banner (the negative oracle). The guest is left stopped (in L2's
kernel). Linux's lx-* scripts are not tried: scripts/fetch-lx-gdb needs
linux-source-6.1 (139 MB)."""

import os
import re
import shutil
import subprocess

import pytest

import oracle

pytestmark = pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb not installed")

BREAK_FUNC = "scheduler_tick"  # L2's timer tick runs it while the shell spins


@pytest.fixture(params=["guest_l2linux", "guest_l2linux4"])
def l2g(request):
    return request.getfixturevalue(request.param)


def _setup(g):
    """{ncr3, npt_levels, cr3, slide} for g, found once: the second stage
    from discover's best candidate, the slide from memsrv's L2 _text."""
    if getattr(g, "_proxy_linux", None):
        return g._proxy_linux
    r = oracle.memsrv(["discover", "--ram", g.ram, "3"], check=True)
    m = re.search(r"^1\s+VMCB\s+0x[0-9a-f]+\s+-?\d+\s+--ncr3 (0x[0-9a-f]+) --npt-levels (\d) "
                  r"--cr3 (0x[0-9a-f]+) --levels 4", r.stdout, re.M)
    assert m, r.stdout
    ncr3, levels, cr3 = int(m.group(1), 16), int(m.group(2)), int(m.group(3), 16)
    r = oracle.memsrv(["--ram", g.ram, "--ncr3", hex(ncr3), "--npt-levels", str(levels),
                       "sym", "_text"], check=True)
    m = re.fullmatch(r"(0x[0-9a-f]+) _text\n", r.stdout)
    assert m, r.stdout
    text = int(m.group(1), 16)
    # What L2's own /proc/kallsyms said, and not L1's (nokaslr) _text.
    assert text == g.l2linux["kallsyms"]["_text"] != oracle.symbol(g, "_text"), r.stdout
    g._proxy_linux = dict(ncr3=ncr3, npt_levels=levels, cr3=cr3,
                          slide=text - oracle.symbol(g, "_text"))
    return g._proxy_linux


def _gdb(g, commands, proxy=True, timeout=90):
    s = _setup(g)
    vmlinux = os.path.join(g.kernel_dir, "vmlinux")
    if proxy:
        target = (f"target remote | {oracle.MEMSRV} gdbproxy --stdio --qemu {g.gdb_address} "
                  f"--ram {g.ram} --ncr3 {s['ncr3']:#x} --npt-levels {s['npt_levels']}")
    else:
        target = f"target remote {g.gdb_address}"
    cmd = ["gdb", "-batch", "-nx", "-ex", f"symbol-file {vmlinux} -o {s['slide']:#x}",
           "-ex", target, "-ex", "set print elements 0"]
    for c in commands:
        cmd += ["-ex", c]
    # disconnect, never detach: a detach resumes QEMU.
    cmd += ["-ex", "disconnect"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return r, r.stdout + r.stderr


def _l2_code(g, addr, n=16):
    """n bytes at L2 kernel address addr as the RAM file holds them, walked
    in Python (oracle.nested_walker), not by memsrv."""
    s = _setup(g)
    ram = oracle.RamFile(g.ram, g.layout_regions())
    try:
        _npt, walk2d = oracle.nested_walker(ram, s["ncr3"], s["npt_levels"])
        phys = walk2d(s["cr3"], addr, 4)
        assert phys is not None, f"{addr:#x} does not translate through L2's tables"
        return ram.read(phys, n)
    finally:
        ram.close()


def test_linux_banner_through_proxy(l2g):
    g = l2g
    g.require_wanted_place("the fixture could not stop the vCPUs in L2")
    version = g.l2linux["version"]
    banner = oracle.symbol(g, "linux_banner") + _setup(g)["slide"]
    r, out = _gdb(g, ["p linux_banner", "x/s &linux_banner"])
    assert "memsrv: the vCPU is in L2 (nested guest)" in out, out
    # (GDB 13 shows this char array's address first, as for a char *.)
    assert re.search(rf'^\$1 = (?:{banner:#x} <linux_banner> )?"{re.escape(version)}\\n"$',
                     r.stdout, re.M), out
    assert f'{banner:#x} <linux_banner>:\t"{version}\\n"' in r.stdout, out

    # The negative oracle: QEMU's stub walks L2's CR3 as if it were L1's.
    r, out = _gdb(g, ["p linux_banner", "x/s &linux_banner"], proxy=False)
    assert version not in out, out
    assert "Linux version" not in out, out
    assert f"Cannot access memory at address {banner:#x}" in out, out


def test_break_in_l2_kernel_is_hardware(l2g):
    g = l2g
    g.require_wanted_place("the fixture could not stop the vCPUs in L2")
    func = oracle.symbol(g, BREAK_FUNC) + _setup(g)["slide"]
    before = _l2_code(g, func)
    assert before[0] != 0xCC, before.hex()
    try:
        r, out = _gdb(g, [f"break {BREAK_FUNC}", "continue", "p/x $pc", "bt 12", "delete",
                          "x/5xb $pc"])
    finally:
        if g.running():  # GDB timed out waiting for the breakpoint
            g._stop()
    assert f"Breakpoint 1, {BREAK_FUNC} () at kernel/sched/core.c" in out, out
    assert re.search(r"memsrv: stopped in L2 \(nested guest\); CR3 0x[0-9a-f]+: "
                     rf"rip {func:#x} maps through NPT \+ CR3 only", out), out
    assert f"$1 = {func:#x}" in r.stdout, out
    frames = re.findall(r"^#(\d+)\s+(?:0x[0-9a-f]+ in )?(\w+) \(", r.stdout, re.M)
    names = [f for _i, f in frames]
    # The timer tick's path, as L2's kernel takes it.
    assert names[:2] == [BREAK_FUNC, "update_process_times"], r.stdout
    assert "hrtimer_interrupt" in names and "sysvec_apic_timer_interrupt" in names, r.stdout
    # GDB reads the function's bytes as the RAM file holds them, and they
    # are unchanged: the breakpoint was a debug register, not an 0xCC.
    shown = bytes(int(b, 16) for b in re.findall(r"\t0x([0-9a-f]{2})",
                                                 out.split(f"<{BREAK_FUNC}>:", 1)[-1])[:5])
    assert shown == before[:5], (shown.hex(), before.hex(), out)
    assert _l2_code(g, func) == before


def test_break_set_in_l2_hit_in_l1(l2g):
    """L1's own scheduler_tick (nokaslr) is an address L1 runs at every tick
    and L2's kernel (slid) does not map. A hardware breakpoint there, set
    while GDB views L2, matches in L1 too: those hits are stepped over and
    resumed unseen (told once), and every stop GDB shows is L2's own
    scheduler_tick, in L2."""
    g = l2g
    g.require_wanted_place("the fixture could not stop the vCPUs in L2")
    func = oracle.symbol(g, BREAK_FUNC) + _setup(g)["slide"]
    l1_func = oracle.symbol(g, BREAK_FUNC)  # L1 runs its vmlinux unslid
    cmds = [f"break {BREAK_FUNC}", f"break *{l1_func:#x}"]
    for _ in range(3):
        cmds += ["continue", "p/x $pc"]
    for attempt in (1, 2):
        try:
            r, out = _gdb(g, cmds + ["delete"], timeout=150)
        finally:
            if g.running():
                g._stop()
        # Each L1 hit is a stop: hundreds of them can kill L2 under TCG
        # (guests.revive_if_broken), or leave it hung without a word (no
        # tick of L2's in 10 s of L1's); then once more on a fresh guest.
        hung = "times in a row" in out and "L2 reached no scheduler_tick in 10 s of L1 hits"
        if attempt == 2 or not g.revive_if_broken(otherwise=hung):
            break
        g.require_wanted_place("the fixture could not stop the vCPUs in L2")
        func = oracle.symbol(g, BREAK_FUNC) + _setup(g)["slide"]
    assert out.count(f"Breakpoint 1, {BREAK_FUNC} () at kernel/sched/core.c") == 3, out
    assert "Breakpoint 2," not in out, out
    assert re.findall(r"^\$\d+ = (0x[0-9a-f]+)$", r.stdout, re.M) == [hex(func)] * 3, out
    # Once on GDB's console, once in the proxy's log.
    assert out.count(f"memsrv: breakpoint at {l1_func:#x} hit in L1, set for L2: resumed "
                     "(said once: such hits are not shown)") == 2, out
    assert "times in a row" not in out, out
    assert "memsrv: stopped in L1" not in out, out


def test_attach_proxy_in_one_step(l2g):
    """`nested attach --proxy` in a session connected to QEMU's stub: the RAM
    file from QEMU's monitor, the second stage found by the proxy itself
    (--nested auto), and then GDB's own `p` reads L2's banner."""
    g = l2g
    g.require_wanted_place("the fixture could not stop the vCPUs in L2")
    s = _setup(g)
    gdbext = os.path.join(os.path.dirname(oracle.MEMSRV), "..", "gdbext", "nested.gdb")
    vmlinux = os.path.join(g.kernel_dir, "vmlinux")
    cmd = ["gdb", "-batch", "-nx", "-ex", f"symbol-file {vmlinux} -o {s['slide']:#x}",
           "-ex", f"target remote {g.gdb_address}", "-ex", "set print elements 0",
           "-ex", f"source {gdbext}", "-ex", "nested attach --proxy", "-ex", "p linux_banner",
           "-ex", "disconnect"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert "through memsrv gdbproxy" in out, out
    assert re.search(rf"--nested auto: VMCB at GPA 0x[0-9a-f]+ .*--ncr3 {s['ncr3']:#x} "
                     rf"--npt-levels {s['npt_levels']}", out), out
    assert f'"{g.l2linux["version"]}\\n"' in r.stdout, out
