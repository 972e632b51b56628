"""memsrv gdbproxy with real GDB and real QEMU: the nested SVM guest
(tests/guest/l2kvm.c as L2, stopped while the vCPU runs L2). Through the
proxy, stock GDB reads L2's marker at its L2 virtual address (QEMU's own
stub cannot: the negative oracle), a `break` on L2 code is hit as a hardware
breakpoint with the code bytes in the RAM file unchanged, the fifth such
breakpoint is refused, an L1 stop reads L1's kernel as QEMU does, and bad
input from GDB's side or QEMU dying ends in a clear error, not a hang.

Tests that resume the guest stop it in L2 again before they end (the other
nested tests want that moment)."""

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

import oracle

pytestmark = pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb not installed")

MARKER_GVA = 0x5a5a00042000
LOOP = bytes.fromhex("48ff4740ebfa")  # l2kvm's L2 loop: inc qword [rdi+0x40]; jmp loop
# --other-level-wait where a test waits for an other-level stop to be shown
WAIT = 1.0


def nested_args(g):
    """--ncr3/--npt-levels from the VMCB and host-save area found in RAM
    (as test_real_nested does), never from the test's knowledge of L2."""
    vmcbs, hsaves = oracle.scan_vmcbs(g.ram, g.layout_regions())
    assert len(vmcbs) == 1, vmcbs
    l1 = [h for h in hsaves if h["cr4"] & 0x20 and h["rip"] >> 47]
    assert len(l1) == 1, hsaves
    return ["--ncr3", hex(vmcbs[0]["ncr3"]),
            "--npt-levels", "5" if l1[0]["cr4"] & (1 << 12) else "4"]


def proxy_cmd(g, qemu=None, extra=()):
    return [oracle.MEMSRV, "gdbproxy", "--stdio", "--qemu", qemu or g.gdb_address,
            "--ram", g.ram, *nested_args(g), *extra]


def gdb_cmd(g, commands, proxy=None, vmlinux=False):
    cmd = ["gdb", "-batch", "-nx"]
    if vmlinux:
        cmd.append(os.path.join(g.kernel_dir, "vmlinux"))
    else:
        cmd += ["-ex", "set architecture i386:x86-64"]
    target = f"target remote | {' '.join(proxy)}" if proxy else f"target remote {g.gdb_address}"
    cmd += ["-ex", target]
    for c in commands:
        cmd += ["-ex", c]
    # disconnect, never detach: a detach resumes QEMU.
    return cmd + ["-ex", "disconnect"]


def gdb(g, commands, proxy=None, vmlinux=False, timeout=60):
    return subprocess.run(gdb_cmd(g, commands, proxy, vmlinux), capture_output=True, text=True,
                          timeout=timeout)


def code_bytes(g, l2):
    """L2's code page as the RAM file holds it (at the L1-physical address
    l2kvm read from /proc/self/pagemap)."""
    ram = oracle.RamFile(g.ram, g.layout_regions())
    try:
        return ram.read(l2["code_l1phys"], 4096)
    finally:
        ram.close()


def back_to_l2(g):
    """Stops the guest in L2 again, as the fixture left it."""
    g._settle()
    assert g.in_wanted_place, "could not stop the guest in L2 again"


def test_l2_memory_through_proxy(guest_svm):
    g = guest_svm
    l2 = g.l2
    assert g.in_wanted_place and g.cr3 == l2["cr3"]
    cmds = [f"x/s {MARKER_GVA:#x}", f"x/4gx {MARKER_GVA:#x}", "p/x $cr3",
            f"x/s {MARKER_GVA + l2['preset_off']:#x}"]
    r = gdb(g, cmds, proxy=proxy_cmd(g))
    out = r.stdout + r.stderr
    assert f"{MARKER_GVA:#x}:\t\"{l2['marker']}\"" in r.stdout, out
    assert l2["preset"] in r.stdout, out
    assert "the vCPU is in L2 (nested guest)" in r.stderr, out
    assert f"$1 = {l2['cr3']:#x}" in r.stdout, out  # registers pass through
    # The same bytes as QEMU's physical read at the L1 address pagemap gave.
    words = [int(w, 16) for pair in re.findall(r"^0x5a5a000420[01]0:\s+(0x\S+)\s+(0x\S+)$",
                                               r.stdout, re.M) for w in pair]
    xp = oracle.qmplib.hmp_x_bytes(g.hmp(f"xp/4gx {l2['l1phys']:#x}"))
    assert b"".join(w.to_bytes(8, "little") for w in words[:4]) == xp, (words, xp)

    # The negative oracle: stock GDB on QEMU's stub translates with CR3 alone.
    r = gdb(g, [f"x/s {MARKER_GVA:#x}"])
    assert f"Cannot access memory at address {MARKER_GVA:#x}" in r.stdout + r.stderr, r.stdout
    assert l2["marker"] not in r.stdout


def test_break_in_l2_is_hardware(guest_svm):
    g = guest_svm
    l2 = g.l2
    before = code_bytes(g, l2)
    loop = 0x10000 + before.index(LOOP)  # l2kvm's GPA_CODE, identity-mapped in L2
    try:
        r = gdb(g, [f"break *{loop:#x}", "continue", "p/x $pc", "p/x $cr3", "continue",
                    "p/x $pc", "delete"], proxy=proxy_cmd(g))
        out = r.stdout + r.stderr
        assert out.count(f"Breakpoint 1, {loop:#018x} in ?? ()") == 2, out
        assert f"$1 = {loop:#x}" in r.stdout and f"$2 = {l2['cr3']:#x}" in r.stdout, out
        # GDB's step off the breakpoint, at the next instruction; or where it
        # was, when QEMU's TCG returned from the step without executing it
        # (seen 1 run in 12: GDB then steps again).
        assert re.search(rf"memsrv: stopped in L2 \(nested guest\); CR3 {l2['cr3']:#x}: rip "
                         rf"(?:{loop + 4:#x}|{loop:#x}) maps through NPT \+ CR3 only", out), out
        # Hardware, not 0xCC: the code page in RAM is unchanged.
        assert code_bytes(g, l2) == before

        # Four debug registers: the fifth breakpoint in L2 is refused. (None
        # at the pc, where GDB would step off first with none inserted; the
        # last one is hit at once should the refusal fail.)
        addrs = [0x10000, 0x1000a, 0x10018, 0x10026, loop + 4]
        r = gdb(g, [f"break *{a:#x}" for a in addrs] + ["continue", "delete"],
                proxy=proxy_cmd(g))
        out = r.stdout + r.stderr
        assert re.search(r"Cannot insert breakpoint 5", out), out
        assert re.search(r"no debug register left for a hardware breakpoint at 0x[0-9a-f]+ "
                         r"\(4 in use\)", out), out
        assert code_bytes(g, l2) == before
    finally:
        if g.running():
            g.qmp.cmd("stop")
        back_to_l2(g)


def test_l1_stop_reads_l1(guest_svm):
    """A hardware breakpoint on an L1 kernel function (the timer interrupt,
    which runs whenever L1 takes L2's exits), set while GDB views L2, is
    meant for L2: its hits in L1 are stepped over unseen for
    --other-level-wait, and the next is shown, in L1; the proxy says so and
    GDB reads L1's linux_banner, as over QEMU's stub. A breakpoint set now,
    in L1, stops at its first hit; it stays software (QEMU's monitor says
    TCG, not KVM)."""
    g = guest_svm
    tick = oracle.symbol(g, "scheduler_tick")
    try:
        r = gdb(g, ["break *hrtimer_interrupt", "continue", "delete", "p/x $cr3",
                    "x/s &linux_banner", f"break *{tick:#x}", "continue", "p/x $pc", "delete"],
                proxy=proxy_cmd(g, extra=["--other-level-wait", str(WAIT)]), vmlinux=True,
                timeout=120)
        out = r.stdout + r.stderr
        hrtimer = oracle.symbol(g, "hrtimer_interrupt")
        assert f"memsrv: breakpoint at {hrtimer:#x} hit in L1, set for L2: resumed" in out, out
        assert re.search(rf"memsrv: breakpoint at {hrtimer:#x} hit in L1, set for L2, \d+ times "
                         r"in a row in \d\.\d s: this stop is shown", out), out
        # Once on GDB's console, once in the proxy's log; not for the one set in L1.
        assert out.count("times in a row") == 2, out
        assert "QEMU says 'kvm support: disabled': software breakpoints in L1 stay software" \
            in out, out
        assert f"$2 = {tick:#x}" in r.stdout, out
        assert re.search(r"memsrv: stopped in L1; CR3 0x[0-9a-f]+: rip 0xffffffff8[0-9a-f]+ "
                         r"maps through CR3 alone only", out), out
        banner = re.search(r"<linux_banner>:\s+\"(Linux version [^\"]+)", r.stdout)
        assert banner, out
        cr3 = re.search(r"\$1 = (0x[0-9a-f]+)", r.stdout).group(1)
        assert int(cr3, 16) != g.l2["cr3"], out
        direct = gdb(g, ["p/x $cr3", "x/s &linux_banner"], vmlinux=True)
        assert f"$1 = {cr3}" in direct.stdout, direct.stdout  # the same stop
        assert banner.group(1) in direct.stdout, direct.stdout
    finally:
        if g.running():
            g.qmp.cmd("stop")
        back_to_l2(g)


def test_single_level_without_second_stage(guest5):
    """No --eptp/--ncr3 (a guest with no nested one, as
    bench/peer_lxdmesg_proxy.py runs it): the proxy takes the vCPU to be in
    L1, says why, and GDB reads the kernel (linux_banner, and a 4 KiB x of
    it) as over QEMU's stub."""
    g = guest5
    proxy = [oracle.MEMSRV, "gdbproxy", "--stdio", "--qemu", g.gdb_address, "--ram", g.ram]
    reads = ["x/s &linux_banner", "x/512gx &linux_banner"]
    r = gdb(g, reads, proxy=proxy, vmlinux=True)
    out = r.stdout + r.stderr
    assert "memsrv: the vCPU is in L1; no second stage given" in out, out
    banner = re.search(r"<linux_banner>:\s+\"(Linux version [^\"]+)", r.stdout)
    assert banner, out
    direct = gdb(g, reads, vmlinux=True)
    assert direct.stdout.count("0x") > 512 and r.stdout == direct.stdout, (out, direct.stdout)
    assert not g.running()


def test_interrupt(guest_svm):
    """continue, then ^C: GDB's interrupt byte goes through; the stop names
    its level."""
    g = guest_svm
    try:
        p = subprocess.Popen(gdb_cmd(g, ["continue", "p/x $cr3"], proxy=proxy_cmd(g)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        assert "received signal SIGINT" in out, out + err
        assert re.search(r"memsrv: stopped in L[12]", out + err), out + err
    finally:
        if g.running():
            g.qmp.cmd("stop")
        back_to_l2(g)


def _packet(payload):
    return b"$" + payload + b"#%02x" % (sum(payload) % 256)


def _read_until(s, want, timeout=10):
    """Bytes up to the end of the first frame ending in want ('#' also
    takes the two checksum digits), or to want itself."""
    s.settimeout(timeout)
    data = b""
    while True:
        i = data.find(want)
        if i >= 0 and (want != b"#" or len(data) >= i + 3):
            return data
        chunk = s.recv(1)
        if not chunk:
            return data
        data += chunk


def test_bad_input_from_gdb(guest_svm, tmp_path):
    """Raw packets from a client that is not GDB: no target description
    read, bad checksums, a packet with no length, one over the PacketSize,
    then a clean read; a second client after the first leaves."""
    g = guest_svm
    log = tmp_path / "proxy.log"
    with open(log, "w") as f:
        p = subprocess.Popen([oracle.MEMSRV, "gdbproxy", "--listen", "127.0.0.1:0", "--qemu",
                              g.gdb_address, "--ram", g.ram, *nested_args(g)], stderr=f)
    try:
        deadline = time.monotonic() + 20
        while not (m := re.search(r"listening on 127\.0\.0\.1:(\d+)", log.read_text())):
            assert time.monotonic() < deadline and p.poll() is None, log.read_text()
            time.sleep(0.05)
        port = int(m.group(1))
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(_packet(b"qSupported:multiprocess+"))
            got = _read_until(s, b"#")
            assert got.startswith(b"+$") and b"PacketSize=10000;QStartNoAckMode+" in got, got
            s.sendall(b"+$m1000,4#00")  # bad checksum: resend, please
            assert _read_until(s, b"-") == b"-"
            s.sendall(_packet(b"m1000"))  # no length
            assert _read_until(s, b"#") == b"+$E01#a6"
            s.sendall(b"+$" + b"a" * 70000 + b"#00")  # over the PacketSize offered
            assert _read_until(s, b"-") == b"-"
            s.sendall(_packet(b"QStartNoAckMode"))
            assert _read_until(s, b"#") == b"+$OK#9a"
            s.sendall(b"+" + _packet(f"m{MARKER_GVA:x},15".encode()))
            got = _read_until(s, b"#")
            assert got[1:got.index(b"#")] == g.l2["marker"].encode().hex().encode(), got
        # That client went away; the next one is served.
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(_packet(b"?"))
            got = _read_until(s, b"#")
            assert got.startswith(b"+$T05"), got
    finally:
        p.terminate()
        p.wait(10)
    err = log.read_text()
    assert "GDB sent a packet with a bad checksum: asked to resend" in err, err
    assert "GDB sent a malformed memory packet 'm1000'" in err, err
    assert "GDB sent a packet over the PacketSize offered" in err, err
    assert "GDB disconnected; waiting for the next" in err, err
    assert "the vCPU is in L2 (nested guest)" in err, err


def test_qemu_dies(guest_svm):
    """A gdbstub that answers qSupported, then dies mid-packet: GDB hears the
    connection close, the proxy says why, nothing hangs."""
    g = guest_svm
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def fake_qemu():
        conn, _ = srv.accept()
        with conn:
            _read_until(conn, b"#", 20)
            conn.sendall(b"+" + _packet(b"PacketSize=1000;qXfer:features:read+"))
            _read_until(conn, b"#", 20)
            conn.sendall(b"++$T05thr")  # the ack of qSupported's reply, ours, half a reply
            time.sleep(0.2)

    t = threading.Thread(target=fake_qemu, daemon=True)
    t.start()
    t0 = time.monotonic()
    r = gdb(g, ["p 1"], proxy=proxy_cmd(g, qemu=f"127.0.0.1:{port}"), timeout=60)
    took = time.monotonic() - t0
    srv.close()
    out = r.stdout + r.stderr
    assert "memsrv: QEMU's gdbstub closed the connection (did QEMU exit?)" in out, out
    assert re.search(r"Remote connection closed|Remote communication error", out), out
    assert took < 20, took


def test_nested_proxy_from_gdbext(guest_svm):
    """`nested proxy`: a session connected to QEMU, with the RAM file and the
    second stage found by gdbext (nested attach, nested scan), reconnects
    through the proxy; stock x then reads L2, also with GDB's data cache on
    (the default), and equals the uncached read."""
    g = guest_svm
    l2 = g.l2
    gdbext = os.path.join(os.path.dirname(oracle.MEMSRV), "..", "gdbext", "nested.gdb")
    cmds = ["source " + gdbext, "nested attach", "nested scan", "nested proxy",
            f"x/s {MARKER_GVA:#x}", f"x/64gx {MARKER_GVA:#x}", "info mem",
            "mem delete", f"x/64gx {MARKER_GVA:#x}"]
    r = gdb(g, cmds)
    out = r.stdout + r.stderr
    assert "through memsrv gdbproxy" in out, out
    assert f"{MARKER_GVA:#x}:\t\"{l2['marker']}\"" in r.stdout, out
    dumps = re.findall(r"((?:^0x5a5a00042\S+:\s+0x.*\n)+)", r.stdout, re.M)
    assert len(dumps) == 2 and dumps[0] == dumps[1] and len(dumps[0].splitlines()) == 32, out
    assert "cache" in r.stdout, out  # the region `nested proxy` made cacheable


# -- a scripted QEMU: breakpoint hits in the other level, two vCPUs ----------

def _frames(s, timeout=20):
    """The payloads of the frames arriving on s, acks skipped."""
    s.settimeout(timeout)
    buf = b""
    while True:
        start = buf.find(b"$")
        end = buf.find(b"#", start)
        if start >= 0 and end >= 0 and len(buf) >= end + 3:
            yield buf[start + 1:end]
            buf = buf[end + 3:]
            continue
        chunk = s.recv(65536)
        if not chunk:
            return
        buf += chunk


class FakeQemu:
    """A gdbstub with vCPUs whose registers the test sets: each is in L1
    (the registers of the host-save area: the L1 hypervisor) or L2 (the
    VMCB's save area) of the real guest_svm, with the rip the test picks, so
    the proxy decides the level from real RAM. Resumes take the next stop
    of a script: (thread, level, rip). Records every packet it got."""

    def __init__(self, g, kvm=False):
        vmcbs, hsaves = oracle.scan_vmcbs(g.ram, g.layout_regions())
        l1 = [h for h in hsaves if h["cr4"] & 0x20 and h["rip"] >> 47]
        self.regs = {1: l1[0], 2: vmcbs[0]}
        self.kvm = kvm
        self.vcpus = {1: (2, vmcbs[0]["rip"]), 2: (1, l1[0]["rip"])}  # thread: (level, rip)
        self.script = []
        self.got = []
        self.g_thread = 1
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.srv.getsockname()[1]}"
        self.error = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _reg(self, n):
        level, rip = self.vcpus[self.g_thread]
        r = self.regs[level]
        value = {0x10: rip, 7: r["rsp"], 0x1b: r["cr0"], 0x1d: r["cr3"], 0x1e: r["cr4"],
                 0x20: r["efer"]}.get(n)
        return b"E14" if value is None else value.to_bytes(8, "little").hex().encode()

    def _stop(self):
        thread, level, rip = self.script.pop(0)
        self.vcpus[thread] = (level, rip)
        self.g_thread = thread  # QEMU points g/p at the vCPU that stopped
        return b"T05thread:p01.%02x;" % thread

    def _answer(self, pkt):
        if pkt.startswith(b"qSupported"):
            return b"PacketSize=1000;qXfer:features:read+;vContSupported+;multiprocess+"
        if pkt == b"?":
            return b"T05thread:p01.%02x;" % self.g_thread
        if pkt.startswith(b"Hg"):
            self.g_thread = int(pkt.split(b".")[-1], 16)
            return b"OK"
        if pkt.startswith(b"p"):
            return self._reg(int(pkt[1:], 16))
        if pkt[:1] in b"Zz":
            return b"OK"
        if pkt == b"qRcmd," + b"info kvm".hex().encode():
            text = b"kvm support: %s\r\n" % (b"enabled" if self.kvm else b"disabled")
            return [b"O" + text.hex().encode(), b"OK"]
        if pkt[:1] in b"cs" or pkt.startswith(b"vCont;"):
            return self._stop() if self.script else None  # else run until interrupted
        return b""

    def _serve(self):
        conn, _ = self.srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            with conn:
                for pkt in _frames(conn, 60):
                    self.got.append(pkt.decode())
                    reply = self._answer(pkt)
                    replies = [reply] if isinstance(reply, bytes) else reply or []
                    conn.sendall(b"+" + b"".join(_packet(r) for r in replies))
        except Exception as e:  # noqa: BLE001 (reported by the test)
            self.error = e


class RawGdb:
    """A client of `memsrv gdbproxy --listen` speaking RSP by hand, in
    no-ack mode."""

    def __init__(self, proxy_args, log):
        self.log = log
        with open(log, "w") as f:
            self.p = subprocess.Popen([oracle.MEMSRV, "gdbproxy", "--listen", "127.0.0.1:0",
                                       *proxy_args], stderr=f)
        deadline = time.monotonic() + 20
        while not (m := re.search(r"listening on 127\.0\.0\.1:(\d+)", log.read_text())):
            assert time.monotonic() < deadline and self.p.poll() is None, log.read_text()
            time.sleep(0.05)
        self.s = socket.create_connection(("127.0.0.1", int(m.group(1))))
        self.frames = _frames(self.s)
        self.s.sendall(_packet(b"QStartNoAckMode"))
        assert next(self.frames) == b"OK"

    def ask(self, pkt):
        """The replies up to the first that is not a console message:
        (console text, reply)."""
        self.s.sendall(_packet(pkt.encode()))
        text = ""
        for f in self.frames:
            if re.fullmatch(rb"O([0-9a-f]{2})+", f):
                text += bytes.fromhex(f[1:].decode()).decode()
                continue
            return text, f.decode()
        raise AssertionError(f"the proxy closed the connection after {pkt}")

    def close(self):
        self.s.close()
        self.p.terminate()
        self.p.wait(10)
        return self.log.read_text()


def test_other_level_hit_resumed_silently(guest_svm, tmp_path):
    """A hardware breakpoint set in L2 is hit in L1 (the same linear address:
    debug registers and QEMU's breakpoints match it in either level): the
    proxy steps off it and resumes GDB's continue unseen, says so once, and
    shows the next hit, in L2. A breakpoint in a hot path of L1 is shown
    after --other-level-wait of silent hits in a row, not looped on for ever."""
    g = guest_svm
    q = FakeQemu(g)
    bp = q.vcpus[1][1]  # L2's rip
    c = RawGdb(["--qemu", q.address, "--ram", g.ram, *nested_args(g), "--other-level-wait",
                str(WAIT)], tmp_path / "proxy.log")
    try:
        assert c.ask("?") == ("", "T05thread:p01.01;")
        assert c.ask(f"Z1,{bp:x},1") == ("", "OK")  # set while the vCPU is in L2
        q.script = [(1, 1, bp), (1, 1, bp + 3), (1, 1, bp), (1, 1, bp + 3), (1, 2, bp)]
        start = len(q.got)
        text, stop = c.ask("vCont;c")
        assert stop == "T05thread:p01.01;", (text, stop)
        assert text.count("memsrv: breakpoint at") == 1, text
        assert f"memsrv: breakpoint at {bp:#x} hit in L1, set for L2: resumed (said once" \
            in text, text
        assert re.search(r"memsrv: stopped in L2 \(nested guest\); CR3 0x[0-9a-f]+: rip "
                         rf"{bp:#x} maps through NPT \+ CR3 only", text), text
        moves = [p for p in q.got[start:] if p[:1] in "Zz" or p.startswith("vCont")]
        step_off = [f"z1,{bp:x},1", "vCont;s:p1.1", f"Z1,{bp:x},1", "vCont;c"]
        assert moves == ["vCont;c"] + step_off * 2, moves
        assert not q.script

        # Hits in L1 for longer than the old cap of 100 in a row, well within
        # --other-level-wait: resumed unseen, and the stop shown is L2's.
        q.script = [(1, 1, bp), (1, 1, bp + 3)] * 150 + [(1, 2, bp)]
        start = q.got.count("c")
        text, stop = c.ask("c")
        assert stop == "T05thread:p01.01;" and "times in a row" not in text, (text, stop)
        assert not q.script and q.got.count("c") - start == 151, q.got.count("c") - start

        # Hits in L1 for --other-level-wait in a row: the next is shown, saying why.
        q.script = [(1, 1, bp), (1, 1, bp + 3)] * 100000
        start = q.got.count("c")
        text, stop = c.ask("c")
        assert stop == "T05thread:p01.01;", (text, stop)
        assert "resumed (said once" not in text, text
        shown = re.search(rf"memsrv: breakpoint at {bp:#x} hit in L1, set for L2, (\d+) times "
                          r"in a row in (\d+\.\d) s: this stop is shown \(L1 runs that address "
                          r"often\)", text)
        assert shown and float(shown.group(2)) >= WAIT, text
        assert "memsrv: stopped in L1;" in text, text
        hits = q.got.count("c") - start  # GDB's, then one again after each step off
        assert int(shown.group(1)) == hits and q.script, (shown.group(1), hits)
        q.script = []

        # A step is GDB's own: one that lands on the address in L1 is shown.
        q.script = [(1, 1, bp)]
        text, stop = c.ask("vCont;s:p1.1")
        assert stop == "T05thread:p01.01;" and "breakpoint at" not in text, (text, stop)
        moves = [p for p in q.got if p[:1] in "Zz" or p.startswith("vCont")]
        assert moves[-1] == "vCont;s:p1.1", moves[-3:]
    finally:
        log = c.close()
    assert q.error is None, q.error
    assert "breakpoint at" in log and "hit in L1, set for L2: resumed" in log, log


def test_two_vcpus_breakpoints(guest_svm, tmp_path):
    """Two vCPUs, one in L2 (thread 1), one in L1 (thread 2): the level of a
    breakpoint is that of the vCPU GDB views (Hg) when it first inserts it,
    kept when GDB reinserts it at a later stop; debug registers are counted
    once for all vCPUs (QEMU inserts each breakpoint in every vCPU); a
    software breakpoint in L1 under KVM becomes hardware (asked of QEMU's
    monitor once), and a hit of it in L2 on the other vCPU is stepped off on
    that vCPU."""
    g = guest_svm
    q = FakeQemu(g, kvm=True)
    # An address vCPU 1 runs in L2 (its rip), set as a breakpoint in L1.
    addr, l1_rip = q.vcpus[1][1], q.vcpus[2][1]
    c = RawGdb(["--qemu", q.address, "--ram", g.ram, *nested_args(g)], tmp_path / "proxy.log")
    try:
        assert c.ask("?") == ("", "T05thread:p01.01;")
        assert c.ask("Hgp1.2") == ("", "OK")
        assert c.ask(f"Z0,{addr:x},1") == ("", "OK")  # in L1, under KVM: made hardware
        assert q.got.count("qRcmd," + b"info kvm".hex()) == 1
        assert f"Z1,{addr:x},1" in q.got and f"Z0,{addr:x},1" not in q.got
        assert c.ask("Z1,1000,1") == ("", "OK")
        assert c.ask("Hgp1.1") == ("", "OK")
        assert c.ask(f"Z0,{l1_rip:x},1") == ("", "OK")  # in L2: made hardware
        assert c.ask("Z2,2000,8") == ("", "OK")  # a watchpoint takes one too
        # Four in use, in each vCPU: a fifth is refused whichever vCPU GDB views.
        assert c.ask("Z1,3000,1") == ("", "E0e")
        assert c.ask("Hgp1.2") == ("", "OK")
        assert c.ask("Z0,4000,1") == ("", "E0e")
        assert c.ask("z1,1000,1") == ("", "OK")
        assert c.ask("Z1,3000,1") == ("", "OK")
        assert c.ask("z1,3000,1") == ("", "OK")
        assert q.got.count("qRcmd," + b"info kvm".hex()) == 1  # asked once

        # GDB's stop/resume cycle: it removes every breakpoint at a stop and
        # inserts them again at the resume, now viewing vCPU 1 (in L2).
        for z in (f"z0,{addr:x},1", f"z0,{l1_rip:x},1", "z2,2000,8"):
            assert c.ask(z) == ("", "OK")
        assert c.ask("Hgp1.1") == ("", "OK")
        for z in (f"Z0,{addr:x},1", f"Z0,{l1_rip:x},1", "Z2,2000,8"):
            assert c.ask(z) == ("", "OK")
        assert q.got.count(f"Z1,{addr:x},1") == 2 and q.got.count(f"z1,{addr:x},1") == 1
        # vCPU 1 runs the L1 breakpoint's address in L2: stepped off on vCPU 1;
        # vCPU 2 then hits it in L1, where it was set: shown.
        q.script = [(1, 2, addr), (1, 2, addr + 2), (2, 1, addr)]
        start = len(q.got)
        text, stop = c.ask("vCont;c")
        assert stop == "T05thread:p01.02;", (text, stop)
        assert f"memsrv: breakpoint at {addr:#x} hit in L2, set for L1: resumed" in text, text
        assert "memsrv: stopped in L1;" in text, text
        moves = [p for p in q.got[start:] if p[:1] in "Zz" or p.startswith("vCont")]
        assert moves == ["vCont;c", f"z1,{addr:x},1", "vCont;s:p1.1", f"Z1,{addr:x},1",
                         "vCont;c"], moves
    finally:
        log = c.close()
    assert q.error is None, q.error
    assert "QEMU says 'kvm support: enabled': software breakpoints in L1 are made hardware" \
        in log, log


@pytest.mark.parametrize("wait", ["0", "-1", "x", "1s", "nan", "86401", ""])
def test_other_level_wait_refused(wait):
    """A wait that is not a positive number of seconds (a day at most) is
    refused before any connection, saying what it takes."""
    r = subprocess.run([oracle.MEMSRV, "gdbproxy", "--qemu", "127.0.0.1:1", "--stdio", "--ram",
                        "/dev/null", "--other-level-wait", wait], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 2 and "--other-level-wait takes seconds" in r.stderr, r
