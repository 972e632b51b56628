"""memsrv gdbserver with a real GDB, against what the guests printed: the
kernel's own traces (sysrq t, lab.sysrq=t), its task list, its memory.

    gdb -batch vmlinux -ex 'target remote | memsrv gdbserver --stdio --ram F --vmlinux V'

`info threads` lists every task with "pid N comm"; `thread apply all bt`,
with gdbext's ORC unwinder (nested unwinder), gives every task that slept
through the stop the kernel's reliable frames in the kernel's order and ends
where the kernel's trace ends (ret_from_fork, entry_SYSCALL_64); GDB's own
DWARF unwinder alone runs past the entry code into made-up frames. Memory:
x/s linux_banner, p init_task.comm; writes and resumes are refused; raw
malformed packets over --listen get error replies and the server goes on.

Uses guest5 (nokaslr) and guest_kaslr from conftest.py (KASLR: GDB loads
the vmlinux at the slide memsrv finds, symbol-file -o)."""

import os
import re
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_bt import sysrq_traces, switches, switches_at_stop  # noqa: E402
from test_linux import MEMSRV, memsrv, vmlinux  # noqa: E402
from test_remote_linux import Server  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GDBEXT = os.path.join(ROOT, "gdbext")
GUESTS = ["guest5", "guest_kaslr"]
IDLE_TID_BASE = 0x40000000


@pytest.fixture(params=GUESTS)
def guest(request):
    return request.getfixturevalue(request.param)


_slides = {}


def slide(g):
    """KASLR slide: _text where memsrv finds it minus _text in the vmlinux."""
    if g.name not in _slides:
        out, _e, _r = memsrv("sym", "_text", "--ram", g.ram, "--vmlinux", vmlinux(g))
        runtime = int(re.search(r"0x[0-9a-f]+", out).group(0), 16)
        nm = subprocess.run(["nm", vmlinux(g)], capture_output=True, text=True, check=True).stdout
        link = int(re.search(r"^([0-9a-f]+) T _text$", nm, re.M).group(1), 16)
        _slides[g.name] = (runtime - link) & ((1 << 64) - 1)
    return _slides[g.name]


def gdb(g, *commands, unwinder=True, server_args=None, attach=None, timeout=300):
    """gdb -batch over `memsrv gdbserver --stdio` on g's RAM file (or
    server_args), gdbext attached to the RAM file (or `nested attach
    ATTACH`); returns (stdout, stderr)."""
    server = server_args or ["--ram", g.ram, "--vmlinux", vmlinux(g)]
    cmd = ["gdb", "-batch", "-nx"]
    if slide(g):
        cmd += ["-ex", "symbol-file -o %#x %s" % (slide(g), vmlinux(g))]
    else:
        cmd.append(vmlinux(g))
    cmd += ["-ex", "target remote | %s gdbserver --stdio %s" % (MEMSRV, " ".join(server))]
    if unwinder:
        cmd += ["-ex", "source %s/nested.gdb" % GDBEXT, "-ex", "nested symbols %s" % vmlinux(g),
                "-ex", "nested attach %s" % (attach or g.ram)]
        if unwinder == "all":
            cmd += ["-ex", "nested unwinder all"]
    for c in commands:
        cmd += ["-ex", c]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert "Fatal signal" not in p.stderr and "internal-error" not in p.stderr, p.stderr
    return p.stdout, p.stderr


def tasks(g):
    """{pid: (task address, comm)} from memsrv ps."""
    out, _e, _r = memsrv("ps", "--ram", g.ram, "--vmlinux", vmlinux(g))
    got = {}
    for line in out.splitlines()[1:]:
        f = line.split(None, 4)
        got.setdefault(int(f[0]), (int(f[3], 16), f[4] if len(f) > 4 else ""))
    return got


def gdb_frames(text):
    """{pid: [(type, pc, name)]} from gdb_frames.py's lines."""
    out = {}
    for tid, _lvl, ftype, pc, name in re.findall(
            r"^FRAME (\d+) (\d+) (\w+) (0x[0-9a-f]+) (\S+)$", text, re.M):
        tid = int(tid)
        out.setdefault(0 if tid >= IDLE_TID_BASE else tid, []).append((ftype, int(pc, 16), name))
    return out


_symbols = {}


def symbol_ranges(g):
    """{name: (address, size)} of the vmlinux's sized symbols (nm -S)."""
    if g.name not in _symbols:
        out = subprocess.run(["nm", "-S", vmlinux(g)], capture_output=True, text=True,
                             check=True).stdout
        table = {}
        for addr, size, _t, name in re.findall(r"^([0-9a-f]+) ([0-9a-f]+) (\w) (\S+)$", out, re.M):
            table.setdefault(name, (int(addr, 16), int(size, 16)))
        plain = {}
        for addr, _t, name in re.findall(r"^([0-9a-f]+) (\w) (\S+)$", out, re.M):
            plain.setdefault(name, int(addr, 16))
        _symbols[g.name] = table, plain
    return _symbols[g.name]


def same_function(g, kernel, ours):
    """The kernel's name (kallsyms: "foo.cold", an inner global label such as
    entry_SYSCALL_64_after_hwframe) and GDB's (DWARF's function, or the
    sized ELF symbol around the address) name the same code."""
    if kernel == ours or kernel.split(".")[0] == ours.split(".")[0]:
        return True
    sized, plain = symbol_ranges(g)
    if ours in sized and kernel in plain:
        start, size = sized[ours]
        return start <= plain[kernel] < start + size
    return False


def real_frames(frames):
    """GDB's frames the kernel's trace also has: no inlined or tail-call
    ones, and not the zero pc where a trace ends."""
    return [(pc, name) for t, pc, name in frames if t == "NORMAL_FRAME" and pc]


def compare(g, kernel, ours, task_addrs):
    """Every task that slept through (as test_bt.compare decides it) must
    have the kernel's reliable frames in order; returns how many did."""
    sw = switches(g.serial())
    now = switches_at_stop(g, {pid: a for pid, (a, _c) in task_addrs.items()})
    compared = 0
    for pid, (state, comm, frames) in sorted(kernel.items()):
        if state.startswith("R") or pid not in ours or not frames:
            continue
        if not sw["before"].get(pid) == sw["after"].get(pid) == now.get(pid):
            continue
        got = real_frames(ours[pid])
        names = [f.split("+")[0] for f in frames]
        assert len(got) == len(names) and all(
            same_function(g, k, o) for k, (_pc, o) in zip(names, got)), (
            f"pid {pid} ({comm}): GDB {[o for _pc, o in got]}, the kernel's {names}")
        compared += 1
    return compared


def test_info_threads_lists_every_task(guest):
    out, err = gdb(guest, "info threads", unwinder=False)
    listed = {int(pid): comm for pid, comm in
              re.findall(r"Thread \d+ \(pid (\d+) (.*?)\)\s", out)}
    want = tasks(guest)
    assert set(listed) == set(want), (sorted(listed), sorted(want), err)
    for pid, (_addr, comm) in want.items():
        assert listed[pid] == comm, (pid, listed[pid], comm)


def test_thread_apply_all_bt_matches_sysrq(guest):
    t0 = time.monotonic()
    out, err = gdb(guest, "thread apply all bt", "python exec(open(%r).read())"
                   % os.path.join(HERE, "gdb_frames.py"))
    secs = time.monotonic() - t0
    ours = gdb_frames(out)
    n = compare(guest, sysrq_traces(guest.serial()), ours, tasks(guest))
    assert n >= 25, f"only {n} tasks compared\n{err}"
    # `thread apply all bt` printed the same frames
    assert out.count("\nThread ") >= len(ours) - 1
    # a kernel thread ends at ret_from_fork, a user task at its syscall entry,
    # then the zero pc where GDB stops
    kthreadd = real_frames(ours[2])
    assert kthreadd[-1][1] == "ret_from_fork" and ours[2][-1][1:] == (0, "??"), ours[2]
    init = real_frames(ours[1])
    assert same_function(guest, "entry_SYSCALL_64_after_hwframe", init[-1][1]), ours[1]
    assert ours[1][-1][1:] == (0, "??"), ours[1]
    # only the task on the (one) CPU has no registers in a RAM file
    stops = re.findall(r"Backtrace stopped: (.*)", out)
    assert len(stops) <= 1 and all("not enough registers" in r for r in stops), stops
    print(f"{guest.name}: gdb thread apply all bt over gdbserver: {len(ours)} threads, "
          f"{n} compared with sysrq t, {secs:.2f} s")


def test_orc_for_every_frame(guest5):
    """nested unwinder all: every kernel frame from ORC, as the kernel walks."""
    out, err = gdb(guest5, "python exec(open(%r).read())" % os.path.join(HERE, "gdb_frames.py"),
                   unwinder="all")
    ours = gdb_frames(out)
    assert compare(guest5, sysrq_traces(guest5.serial()), ours, tasks(guest5)) >= 25, err
    assert real_frames(ours[2])[-1][1] == "ret_from_fork", ours[2]


def test_without_the_orc_unwinder_gdb_runs_past_entry_code(guest5):
    """The oracle can fail: GDB's DWARF unwinder alone does not stop at the
    syscall entry (entry_64.S has no CFI) but makes up frames after it."""
    out, _err = gdb(guest5, "python exec(open(%r).read())" % os.path.join(HERE, "gdb_frames.py"),
                    unwinder=False)
    init = gdb_frames(out)[1]
    names = [name for _t, _pc, name in init]
    entry = next(i for i, n in enumerate(names) if n.startswith("entry_SYSCALL_64"))
    assert any(pc for _t, pc, _n in init[entry + 1:]), init  # a made-up non-zero frame


def test_memory_reads_and_writes_refused(guest):
    out, err = gdb(guest, "x/s linux_banner", "p init_task.comm",
                   "set var init_task.comm[0] = 65", "p init_task.comm", "set $rax = 1",
                   "continue", unwinder=False)
    assert re.search(r"<linux_banner>:\s+\"Linux version 6\.1", out), out + err
    assert out.count('= "swapper/0') == 2, out + err
    assert "Cannot access memory at address" in err, err
    assert "read-only" in err, err
    assert "cannot run" in err, err


def select_pid(pid):
    """A GDB command selecting the thread of a pid (thread id = pid)."""
    return ("python [t.switch() for t in gdb.selected_inferior().threads() "
            "if t.ptid[1] == %d]" % pid)


def test_registers_of_a_sleeping_task(guest5):
    """Thread registers are the switched-out frame: rip is the return address
    in __schedule, rsp is just above the frame, rax is not known."""
    out, err = gdb(guest5, select_pid(2), "info registers rip rsp rax cs", unwinder=False)
    assert re.search(r"^rip\s+0xffffffff[0-9a-f]+\s+0x[0-9a-f]+ <__schedule\+\d+>", out,
                     re.M), out + err
    assert re.search(r"^rax\s+<unavailable>", out, re.M), out
    assert re.search(r"^cs\s+0x10\s", out, re.M), out


def test_running_task_from_a_dumps_cpu_note(guest5):
    """With a dump, the task on CPU 0 (userpat, spinning in user mode at the
    stop) has the vCPU's registers from the dump's note; with the RAM file
    alone they are unknown."""
    dump = guest5.dump()
    info, _e, _r = memsrv("info", "--dump", dump)
    rip = int(re.search(r"cpu 0: rip (0x[0-9a-f]+)", info).group(1), 16)
    pid = guest5.user["pid"]
    out, err = gdb(guest5, select_pid(pid), "info registers rip", unwinder=False,
                   server_args=["--dump", dump, "--vmlinux", vmlinux(guest5)])
    assert re.search(r"^rip\s+%#x\s" % rip, out, re.M), out + err
    out, err = gdb(guest5, select_pid(pid), "info registers rip", unwinder=False)
    assert re.search(r"^rip\s+<unavailable>", out, re.M), out + err


def gdb_answers(text):
    """What GDB printed, in an order of its own choosing (its thread list's
    order changes from run to run): `thread apply all bt`'s blocks sorted,
    gdb_frames.py's frames per thread, its STOP lines sorted."""
    bt = text[:text.find("\nFRAME ")]
    blocks = sorted(b.strip() for b in re.split(r"\n(?=Thread \d+ )", bt) if b.startswith("Thread "))
    stops = sorted(re.findall(r"^(?:STOP|NOFRAME) .*$", text, re.M))
    return blocks, gdb_frames(text), stops


def test_over_a_server(guest5, tmp_path):
    """memsrv --connect S gdbserver, with gdbext on the same server (nested
    attach --connect S): the threads' registers (TASK_REGS) and the ORC
    unwinder's steps (UNWIND_STEP) come over the wire, and GDB prints what it
    prints on the RAM file; a served dump gives the running task its CPU's
    registers."""
    frames = "python exec(open(%r).read())" % os.path.join(HERE, "gdb_frames.py")
    want, _err = gdb(guest5, "thread apply all bt", frames)
    srv = Server(guest5.ram, str(tmp_path / "ram.sock"), "--vmlinux", vmlinux(guest5))
    try:
        got, err = gdb(guest5, "thread apply all bt", frames, server_args=["--connect", srv.sock],
                       attach="--connect " + srv.sock)
    finally:
        srv.stop()
    assert "attached to memsrv at" in got, got + err
    answers = gdb_answers(got)
    assert answers == gdb_answers(want), err
    assert len(answers[0]) >= 30, got
    assert len(gdb_frames(got)) >= 30 and real_frames(gdb_frames(got)[2])[-1][1] == "ret_from_fork"

    dump = guest5.dump()
    info, _e, _r = memsrv("info", "--dump", dump)
    rip = int(re.search(r"cpu 0: rip (0x[0-9a-f]+)", info).group(1), 16)
    srv = Server(dump, str(tmp_path / "dump.sock"), "--vmlinux", vmlinux(guest5), source="--dump")
    try:
        out, err = gdb(guest5, select_pid(guest5.user["pid"]), "info registers rip",
                       unwinder=False, server_args=["--connect", srv.sock])
    finally:
        srv.stop()
    assert re.search(r"^rip\s+%#x\s" % rip, out, re.M), out + err


def rsp(payload):
    return b"$%s#%02x" % (payload, sum(payload) & 0xFF)


def recv_until(s, want, timeout=60):
    data = b""
    s.settimeout(timeout)
    while want not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_malformed_packets_get_errors(guest5):
    """Raw bytes over --listen: a bad checksum is NAKed, malformed and
    oversized packets get error replies, the session and the server go on."""
    p = subprocess.Popen([MEMSRV, "gdbserver", "--listen", "127.0.0.1:0", "--ram", guest5.ram,
                          "--vmlinux", vmlinux(guest5)], stderr=subprocess.PIPE, text=True)
    try:
        line = p.stderr.readline()
        port = int(re.search(r"port (\d+)", line).group(1))
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"$qSupported#00")  # bad checksum
        assert recv_until(s, b"-") == b"-"
        s.sendall(rsp(b"a*") + rsp(b"m" + b"1" * 17 + b",8") + rsp(b"p" + b"z" * 3)
                  + rsp(b"Hgzz") + rsp(b"qXfer:features:read:target.xml:zz")
                  + rsp(b"\x00\xff}}") + rsp(b"T0") + rsp(b"M0,1:00") + rsp(b"Z0,0,1"))
        got = recv_until(s, b"breakpoints")
        replies = re.findall(rb"\$([^#]*)#", got)
        assert len(replies) == 9 and all(r.startswith(b"E") or r == b"" for r in replies), got
        assert replies[0].startswith(b"E.malformed"), got
        s.sendall(b"$" + b"a" * 20000 + b"#00")  # longer than PacketSize
        assert b"$E.packet too long" in recv_until(s, b"too long")
        s.sendall(rsp(b"m" + b"ffffffff82000000,4"))
        ok = recv_until(s, b"#")
        assert re.search(rb"\$([0-9a-f]{8}|E\w+)#", ok), ok
        s.sendall(rsp(b"qSupported"))
        assert b"PacketSize=" in recv_until(s, b"PacketSize")
        s.close()
        # the next session works: a real GDB
        out = subprocess.run(["gdb", "-batch", "-nx", vmlinux(guest5), "-ex",
                              "target remote 127.0.0.1:%d" % port, "-ex", "p init_task.pid",
                              "-ex", "disconnect"],
                             capture_output=True, text=True, timeout=120).stdout
        assert "$1 = 0" in out, out
        assert p.poll() is None
    finally:
        p.kill()
        p.wait()


def test_kaslr_slide_from_qoffsets(guest_kaslr, tmp_path):
    """GDB asks qOffsets: the vmlinux loaded as it is (no -o) lands at the
    guest's KASLR slide, found from the RAM file alone (kallsyms); a vmlinux
    already loaded at the slide (-o) stays there. Also over a server."""
    g = guest_kaslr
    assert slide(g), "guest_kaslr has no KASLR slide"
    out, _e, _r = memsrv("sym", "linux_banner", "--ram", g.ram)
    banner = int(out.split()[0], 16)
    srv = Server(g.ram, str(tmp_path / "s.sock"))
    try:
        # memsrv info names the kernel and its slide, here and over the server (KERNEL)
        local, _e, _r = memsrv("info", "--ram", g.ram)
        remote, _e, _r = memsrv("--connect", srv.sock, "info")
        line = re.search(r"^kernel: Linux \S+, KASLR slide (0x[0-9a-f]+),.*$", local, re.M)
        assert line and int(line.group(1), 16) == slide(g), local
        assert line.group(0) in remote.splitlines(), remote
        for load, server in ((vmlinux(g), f"--ram {g.ram}"),
                             (f"-ex 'symbol-file -o {slide(g):#x} {vmlinux(g)}'", f"--ram {g.ram}"),
                             (vmlinux(g), f"--connect {srv.sock}")):
            cmd = (f"gdb -batch -nx {load} -ex 'target remote | {MEMSRV} gdbserver --stdio "
                   f"{server}' -ex 'p &linux_banner' -ex 'x/s &linux_banner'")
            p = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=120)
            assert f"$1 = (const char (*)[" in p.stdout and f"{banner:#x} <linux_banner>" in p.stdout, \
                (cmd, p.stdout, p.stderr)
            assert re.search(rf'^{banner:#x} <linux_banner>:\s+"Linux version ', p.stdout, re.M), \
                (cmd, p.stdout, p.stderr)
    finally:
        srv.stop()
