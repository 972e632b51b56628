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
from test_linux import memsrv, vmlinux  # noqa: E402
GUESTS = ["guest5", "guest_kaslr"]
FRAME_RE = re.compile(r"^ (\? )?(\S+\+0x[0-9a-f]+/0x[0-9a-f]+)( \[\w+\])?$")
TASK_RE = re.compile(r"^task:(.{15}) state:(\S+)\s.*?\bpid:(\d+)")
BT_FRAME_RE = re.compile(r"^ ?#\d+ (\S+)$")
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
            out[cur][2].append(m.group(2))
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
