"""memsrv bt against the kernel's own traces: the guests run `echo t >
/proc/sysrq-trigger` last before "LAB: READY" (lab.sysrq=t), so the serial
log holds every task's stack as the kernel's ORC unwinder saw it. For every
task that slept through it all, `memsrv bt` must print the kernel's reliable
frames (its lines without `?`) in the same order. "Slept through": asleep in
sysrq t's output, with the same context-switch counts before and after it
(the guest prints them, "lab: switches") and at the stop (task_struct's
nvcsw/nivcsw read from RAM) -- a task that ran in between may sleep
elsewhere now.

Uses guest5 (nokaslr) and guest_kaslr from conftest.py."""

import os
import re
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_linux import memsrv, transplant, vmlinux  # noqa: E402
from test_remote_linux import Server  # noqa: E402
GUESTS = ["guest5", "guest_kaslr"]
FRAME_RE = re.compile(r"^ (\? )?(\S+\+0x[0-9a-f]+/0x[0-9a-f]+)( \[\w+\])?$")
TASK_RE = re.compile(r"^task:(.{15}) state:(\S+)\s.*?\bpid:(\d+)")
BT_FRAME_RE = re.compile(r"^ ?#\d+ (\S+(?: \[\w+\])?)$")
GDBEXT = os.path.join(ROOT, "gdbext")


@pytest.fixture(params=GUESTS)
def guest(request):
    return request.getfixturevalue(request.param)


def sysrq_traces(log):
    """{pid: (state, comm, [reliable frames])} from sysrq t's output in a
    log (serial console or dmesg text, with "[ time] " prefixes)."""
    start = log.find("sysrq: Show State")
    assert start >= 0, "no sysrq t output in the log (lab.sysrq=t?)"
    end = log.find("lab: sysrq t done", start)
    assert end > start, "sysrq t output not finished in the log"
    out, cur = {}, None
    for line in log[start:end].splitlines():
        line = re.sub(r"^\[\s*\d+\.\d+\] ", "", line)
        m = TASK_RE.match(line)
        if m:
            cur = int(m.group(3))
            out[cur] = (m.group(2), m.group(1).rstrip(), [])
            continue
        m = FRAME_RE.match(line)
        if m and cur is not None and not m.group(1):
            out[cur][2].append(m.group(2) + (m.group(3) or ""))
    return out


def bt_traces(text):
    """{pid: (header, [frames], error line or None, running, task address)}
    from memsrv bt."""
    out = {}
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        m = re.match(r'^PID: (\d+) +TASK: ([0-9a-f]{16})  CPU: (\d+) +COMMAND: "(.*)"$', lines[0])
        assert m, f"bad header: {lines[0]!r}"
        frames = [BT_FRAME_RE.match(l).group(1) for l in lines[1:] if BT_FRAME_RE.match(l)]
        errors = [l for l in lines[1:] if l.startswith("    bt: ")]
        running = any("running on CPU" in l for l in lines[1:])
        out[int(m.group(1))] = (lines[0], frames, errors[0] if errors else None, running,
                                int(m.group(2), 16))
    return out


def switches(log):
    """{tag: {pid: (voluntary, involuntary)}} from the guest's "lab: switches"."""
    out = {}
    for tag, pid, v, n in re.findall(r"lab: switches (\w+) (\d+) (\d+) (\d+)", log):
        out.setdefault(tag, {})[int(pid)] = (int(v), int(n))
    return out


def switches_at_stop(g, tasks):
    """{pid: (nvcsw, nivcsw)} read from each task_struct in the RAM file
    (offsets from the vmlinux's DWARF through drgn; memory through the
    library's Python module)."""
    code = ("import sys, drgn; p = drgn.Program(); p.load_debug_info([sys.argv[1]]); "
            "t = p.type('struct task_struct'); "
            "print(drgn.offsetof(t, 'nvcsw'), drgn.offsetof(t, 'nivcsw'))")
    out = subprocess.run(["/usr/bin/python3", "-c", code, vmlinux(g)], capture_output=True,
                         text=True, check=True, timeout=120).stdout
    nv, niv = map(int, out.split())
    sys.path.insert(0, GDBEXT)
    from nested import _memsrv
    with _memsrv.open(g.ram, symbols=vmlinux(g)) as mem:
        space = mem.space(kernel=True)
        return {pid: (int.from_bytes(space.read(addr + nv, 8), "little"),
                      int.from_bytes(space.read(addr + niv, 8), "little"))
                for pid, addr in tasks.items()}


def compare(g, kernel, ours):
    """Checks every task that slept through; returns how many were compared."""
    sw = switches(g.serial())
    assert {"before", "after"} <= set(sw), "no lab: switches lines in the serial log"
    now = switches_at_stop(g, {pid: t[4] for pid, t in ours.items()})
    compared = 0
    for pid, (state, comm, frames) in sorted(kernel.items()):
        if state.startswith("R") or pid not in ours or ours[pid][3]:
            continue  # running at sysrq time or at the stop, or gone
        if not sw["before"].get(pid) == sw["after"].get(pid) == now.get(pid):
            continue  # it ran in between: its stack moved on
        _header, got, error, _running, _addr = ours[pid]
        assert got == frames, (f"pid {pid} ({comm}): memsrv bt {got} (error: {error}), "
                               f"the kernel's reliable frames {frames}")
        assert error is None, f"pid {pid} ({comm}): {error}"
        compared += 1
    return compared


def test_sysrq_in_serial_and_dmesg(guest):
    """The oracle is there: the serial log has sysrq t's traces, and the
    guest's log read through memsrv holds the same ones."""
    serial = sysrq_traces(guest.serial())
    sleeping = [p for p, (st, _c, fr) in serial.items() if not st.startswith("R") and fr]
    assert len(sleeping) >= 30, f"only {len(sleeping)} sleeping tasks with frames"
    text, _err, _rc = memsrv("dmesg", "--ram", guest.ram, "--vmlinux", vmlinux(guest))
    assert sysrq_traces(text) == serial


def test_bt_all_matches_sysrq(guest):
    t0 = time.monotonic()
    out, _err, _rc = memsrv("bt", "--all", "--ram", guest.ram, "--vmlinux", vmlinux(guest))
    secs = time.monotonic() - t0
    ours = bt_traces(out)
    n = compare(guest, sysrq_traces(guest.serial()), ours)
    assert n >= 25, f"only {n} tasks compared"
    # the example: a kernel thread ends at ret_from_fork
    hdr, frames, error, _running, _addr = ours[2]
    assert re.match(r'^PID: 2        TASK: [0-9a-f]{16}  CPU: 0    COMMAND: "kthreadd"$', hdr)
    assert frames[-1].startswith("ret_from_fork+") and error is None
    # a user task's trace ends at its syscall entry, with the user registers
    init = out[out.index("PID: 1 "):].split("\n\n")[0]
    assert re.search(r"entry_SYSCALL_64_after_hwframe\+\S+\n    RIP: 0033:0x[0-9a-f]+\n"
                     r"    RSP: 002b:[0-9a-f]{16} EFLAGS: [0-9a-f]{8}", init), init
    print(f"{guest.name}: bt --all {len(ours)} tasks, {n} compared with sysrq t, {secs:.2f} s")


def test_bt_without_vmlinux(guest):
    """From the RAM file alone: kallsyms for names, the kernel's ORC tables
    from its memory, its own types (BTF) for the offsets."""
    out, err, rc = memsrv("bt", "--all", "--ram", guest.ram, check=False)
    if rc != 0 and "struct layouts" in err:
        pytest.skip(f"no struct layouts without a vmlinux yet (the kernel's BTF): {err.strip()}")
    assert rc == 0, err
    ours = bt_traces(out)
    assert compare(guest, sysrq_traces(guest.serial()), ours) >= 25
    full, _e, _r = memsrv("bt", "--all", "--ram", guest.ram, "--vmlinux", vmlinux(guest))
    assert {p: t[1:] for p, t in ours.items()} == {p: t[1:] for p, t in bt_traces(full).items()}


def test_bt_pids(guest5):
    out, _err, _rc = memsrv("bt", "2", "1", "--ram", guest5.ram, "--vmlinux", vmlinux(guest5))
    assert [int(p) for p in re.findall(r"^PID: (\d+)", out, re.M)] == [2, 1]
    out, err, rc = memsrv("bt", "2", "999999", "--ram", guest5.ram, "--vmlinux", vmlinux(guest5),
                          check=False)
    assert rc == 1 and "no task with pid 999999" in err and out.startswith("PID: 2 ")
    _out, err, rc = memsrv("bt", "--ram", guest5.ram, check=False)
    assert rc == 2 and "usage" in err


def test_bt_over_a_server(guest, tmp_path):
    """`memsrv --connect S bt` prints what bt on the RAM file prints: every
    task, some pids, an unknown pid's error after the others' traces; with
    the server's vmlinux and with none (kallsyms and the kernel's own ORC
    tables and types)."""
    for name, syms in (("vmlinux", ["--vmlinux", vmlinux(guest)]), ("none", [])):
        srv = Server(guest.ram, str(tmp_path / f"{name}.sock"), *syms)
        try:
            for args in (["--all"], ["2", "1"], ["2", "999999"]):
                want = memsrv("bt", *args, "--ram", guest.ram, *syms, check=False)
                got = memsrv("--connect", srv.sock, "bt", *args, check=False)
                assert got == want, (name, args)
                if want[2] != 0 and "struct layouts" in want[1]:
                    break  # no types without a vmlinux: test_bt_without_vmlinux skips too
                if args == ["--all"]:
                    assert want[2] == 0 and len(bt_traces(got[0])) >= 30, (name, want[1])
                if "999999" in args:
                    assert got[2] == 1 and "no task with pid 999999" in got[1], got
                    assert got[0].startswith("PID: 2 "), got
        finally:
            srv.stop()


@pytest.mark.parametrize("kind", ["ept", "npt"])
def test_bt_through_a_second_stage(guest5, tmp_path, kind):
    """guest5's RAM as a nested guest behind generated EPT/NPT tables
    (test_linux.transplant): bt --all through the second stage prints what it
    prints on the original RAM file, with the vmlinux and without; over a
    server too (EPT)."""
    dst = str(tmp_path / "l1.ram")
    root = transplant(guest5.ram, dst, kind)
    stage = ["--eptp", hex(root)] if kind == "ept" else ["--ncr3", hex(root), "--npt-levels", "4"]
    for syms in (["--vmlinux", vmlinux(guest5)], []):
        want = memsrv("bt", "--all", "--ram", guest5.ram, *syms, check=False)
        got = memsrv("bt", "--all", "--ram", dst, *stage, *syms, check=False)
        assert got == want, (kind, syms, got[1])
        if syms:
            assert want[2] == 0 and len(bt_traces(want[0])) >= 30, want[1]
        else:  # no types without the vmlinux yet: as test_bt_without_vmlinux
            assert want[2] == 0 or "struct layouts" in want[1], want[1]
    if kind == "ept":
        srv = Server(dst, str(tmp_path / "l1.sock"), "--vmlinux", vmlinux(guest5))
        try:
            served = memsrv("--connect", srv.sock, *stage, "bt", "--all")
        finally:
            srv.stop()
        assert served == memsrv("bt", "--all", "--ram", guest5.ram, "--vmlinux", vmlinux(guest5))


def panic_trace(log):
    """(pid, [reliable frames], user RIP, user RSP) of the panic text in a
    serial log: "CPU: N PID: P Comm: ..." after "Kernel panic - not syncing",
    then the "Call Trace:" lines up to </TASK>, with the user registers of
    the syscall (RIP: 0033:..., RSP: 002b:...)."""
    start = log.find("Kernel panic - not syncing")
    assert start >= 0, "no panic in the serial log"
    end = log.find("</TASK>", start)
    assert end > start, "the panic's trace did not end"
    pid, frames, rip, rsp = None, [], None, None
    for line in log[start:end].splitlines():
        line = re.sub(r"^\[\s*\d+\.\d+\] ", "", line)
        m = re.match(r"^CPU: \d+ PID: (\d+) Comm:", line)
        if m:
            pid = int(m.group(1))
        m = FRAME_RE.match(line)
        if m and not m.group(1):
            frames.append(m.group(2))
        m = re.match(r"^RIP: 0033:(0x[0-9a-f]+)$", line)
        if m:
            rip = int(m.group(1), 16)
        m = re.match(r"^RSP: 002b:([0-9a-f]{16}) ", line)
        if m:
            rsp = int(m.group(1), 16)
    return pid, frames, rip, rsp


def after_panic(frames):
    """The frames after panic's own: its callers (the kernel's trace stands
    in panic's dump_stack, memsrv's in panic's delay loop)."""
    names = [f.split("+")[0] for f in frames]
    assert "panic" in names, frames
    return frames[names.index("panic") + 1:]


def test_bt_of_the_panicking_cpu(guest_crash, tmp_path):
    """The crash-dump case: the task that panicked (the guest's /init, in
    `echo c > /proc/sysrq-trigger`) is on the CPU at the stop; from a dump's
    CPU notes memsrv unwinds it from that CPU's registers and must give the
    panic text's callers of panic(), frame for frame, down to the syscall's
    user registers. The RAM file alone has no registers: the task is named
    only. A server on the dump answers the same."""
    g = guest_crash
    pid, kernel, rip, rsp = panic_trace(g.serial())
    assert pid is not None and after_panic(kernel)[0].startswith("sysrq_handle_crash+"), kernel
    dump = g.dump()
    for syms in (["--vmlinux", vmlinux(g)], []):
        out, err, _rc = memsrv("bt", str(pid), "--dump", dump, *syms)
        lines = out.splitlines()
        assert re.match(r"^    running on CPU 0: RIP (\S+)\+0x[0-9a-f]+/0x[0-9a-f]+ RSP [0-9a-f]{16} "
                        r"EFLAGS [0-9a-f]{8}$", lines[1]), out
        ours = [BT_FRAME_RE.match(l).group(1) for l in lines if BT_FRAME_RE.match(l)]
        assert after_panic(ours) == after_panic(kernel), (out, kernel)
        assert ours[-1].startswith("entry_SYSCALL_64_after_hwframe+"), out
        assert f"    RIP: 0033:{rip:#x}" in lines and any(
            l.startswith(f"    RSP: 002b:{rsp:016x} ") for l in lines), (out, rip, rsp)
        assert not any(l.startswith("    bt: ") for l in lines), out
    out, _err, _rc = memsrv("bt", str(pid), "--ram", g.ram, "--vmlinux", vmlinux(g))
    assert "(running on CPU 0: its saved frame is stale)" in out and "#0" not in out, out
    srv = Server(dump, str(tmp_path / "dump.sock"), "--vmlinux", vmlinux(g), source="--dump")
    try:
        got = memsrv("--connect", srv.sock, "bt", "--all")
    finally:
        srv.stop()
    assert got == memsrv("bt", "--all", "--dump", dump, "--vmlinux", vmlinux(g))
    print(f"guest_crash: pid {pid}'s panic trace, {len(after_panic(kernel))} frames after panic")


KVM_REGS = ["RAX", "RCX", "RDX", "RBX", "RSP", "RBP", "RSI", "RDI", "R8", "R9", "R10", "R11",
            "R12", "R13", "R14", "R15", "RIP"]


def test_bt_cpu_from_a_vmcs12(guest_crash, tmp_path):
    """The Intel nested case: guest_crash's RAM behind EPT (test_linux.
    transplant) with a KVM vmcs12 holding the state QEMU shows for its CPU,
    as L1's KVM keeps one per L2 vCPU. discover names the vmcs12's L2 CPU
    from its GS base. bt --cpu 0 unwinds from the vmcs12's rip and rsp: with
    those alone it stops, saying so, at panic()'s frame (its ORC needs rbp);
    with L1's KVM's copy of the general registers in RAM too, it gives the
    panic text's callers of panic(), frame for frame."""
    g = guest_crash
    pid, kernel, _rip, _rsp = panic_trace(g.serial())
    r = g.regs
    gs = int(re.search(r"^GS =\w+ ([0-9a-f]+) ", g.registers_text, re.M).group(1), 16)
    state = {"guest_cr0": r["CR0"], "guest_cr3": r["CR3"], "guest_cr4": r["CR4"],
             "guest_efer": r["EFER"], "guest_gs_base": gs, "guest_rsp": r["RSP"],
             "guest_rip": r["RIP"], "guest_rflags": r["RFL"]}
    for gprs in (False, True):
        dst = str(tmp_path / f"l1-{gprs}.ram")
        eptp = transplant(g.ram, dst, "ept", vmcs12=state,
                          kvm_regs=[r[n] for n in KVM_REGS] if gprs else None)
        if not gprs:
            out, err, rc = memsrv("discover", "--ram", dst, "3")
            assert rc == 0, err
            row = next(l for l in out.splitlines() if re.match(r"^1\s", l))
            assert re.match(rf"^1\s+vmcs12\s+0x[0-9a-f]+\s+\d+\s+--eptp {eptp:#x} .*"
                            r"\(L2 vCPU 0, VPID 1, ", row), out
            assert re.search(rf"; L2 CPU 0: GS base {gs:#x} is __per_cpu_offset\[0\]", out), out
        for syms in (["--vmlinux", vmlinux(g)], []):
            out, err, rc = memsrv("--ram", dst, "--eptp", hex(eptp), *syms, "bt", "--cpu", "0")
            assert rc == 0, err
            lines = out.splitlines()
            assert re.match(rf"^PID: {pid}\s", lines[0]), out
            saved = "its vmcs12: the state KVM last wrote back" + (
                ", all registers from L1's KVM" if gprs else "")
            assert re.match(rf"^    running on CPU 0 \({saved}\): RIP \w+\+0x[0-9a-f]+/0x[0-9a-f]+ "
                            r"RSP ", lines[1]), out
            ours = [BT_FRAME_RE.match(l).group(1) for l in lines if BT_FRAME_RE.match(l)]
            if gprs:
                assert after_panic(ours) == after_panic(kernel), (out, kernel)
                assert not any(l.startswith("    bt: ") for l in lines), out
            else:
                assert ours and ours[-1].startswith("panic+"), out
                assert re.search(r"^    bt: ORC entry for ip 0x[0-9a-f]+ needs bp, and the "
                                 r"registers at hand lack it$", out, re.M), out


def test_bt_through_module_code(guest_svm):
    """Tasks asleep in module code (guest_svm's L1 runs KVM: the VM's
    kvm-nx-lpage-recovery thread sleeps in kvm.ko) unwind through the
    modules' own ORC tables, read from their struct module, and their
    frames are named as the kernel names them ("func+0x1c/0x3c0 [kvm]");
    with the vmlinux and from the RAM file alone."""
    g = guest_svm
    kernel = sysrq_traces(g.serial())
    in_modules = {p for p, (_s, _c, frames) in kernel.items() if any(" [" in f for f in frames)}
    assert in_modules, "no task of the guest's sysrq t has a frame in a module"
    for args in (["--vmlinux", vmlinux(g)], []):
        out, _err, _rc = memsrv("bt", "--all", "--ram", g.ram, *args)
        ours = bt_traces(out)
        assert compare(g, kernel, ours) >= 20
        compared = [p for p in in_modules if p in ours and ours[p][1] == kernel[p][2]]
        assert compared, (f"no task with module frames matched: "
                          f"{[(p, ours.get(p, (0, 0))[1], kernel[p][2]) for p in in_modules]}")
