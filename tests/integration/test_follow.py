"""memsrv dmesg --follow on a running guest whose /dev/kmsg is flooded with
numbered lines (guest_flood: lab.kmsgflood=N in tests/guest/init) while the
ring (128 KiB, ~1200 of these lines) wraps under the reader: every number
appears once, in order, whole, or is counted in a "-- N records lost --"
line where it went missing."""

import os
import re
import signal
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MEMSRV = os.environ.get("MEMSRV", os.path.join(ROOT, "build", "memsrv"))
PAD = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdef"
FLOOD_RE = re.compile(r"^\[\s*\d+\.\d{6}\] lab: flood (\d+) " + PAD + "$")
LINE_RE = re.compile(r"^\[\s*\d+\.\d{6}\] ")
LOST_RE = re.compile(r"^-- (\d+) records lost --$")


class Follower:
    """memsrv dmesg --follow's lines, read as they come, until one contains
    `until` (then SIGINT)."""

    def __init__(self, memory, until, *extra):
        self.until = until
        self.p = subprocess.Popen([MEMSRV, *memory, "dmesg", "--follow", *extra],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines, self.seen = [], threading.Event()
        self.t = threading.Thread(target=self.read, daemon=True)
        self.t.start()

    def read(self):
        for raw in self.p.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            if self.until in line:
                self.seen.set()

    def stop(self, timeout):
        self.seen.wait(timeout)
        self.p.send_signal(signal.SIGINT)
        self.p.wait(30)
        self.t.join(30)
        err = self.p.stderr.read().decode()
        assert self.seen.is_set(), f"no {self.until!r} within {timeout} s; stderr " \
                                   f"{err[-1000:]}; last lines {self.lines[-5:]}"
        return self.lines, err


def check_flood(lines, n):
    """Every flood number once, in order, whole, or counted lost where it
    went missing; returns (printed, lost)."""
    # the log from boot on, once
    assert sum("LAB: READY" in l for l in lines) == 1
    got, lost_total, pending_lost = [], 0, 0
    prev = 0
    for line in lines:
        m = LOST_RE.match(line)
        if m:
            pending_lost += int(m.group(1))
            lost_total += int(m.group(1))
            continue
        assert LINE_RE.match(line), f"not a dmesg line: {line!r}"
        if "lab: flood done" in line:
            break
        if "lab: flood " not in line:
            continue
        m = FLOOD_RE.match(line)
        assert m, f"torn record: {line!r}"
        i = int(m.group(1))
        assert i > prev, f"flood {i} after {prev}: out of order or repeated"
        # every number skipped is a record counted lost at this place
        assert pending_lost >= i - prev - 1, \
            f"flood {prev + 1}..{i - 1} missing, only {pending_lost} records reported lost"
        pending_lost = 0
        got.append(i)
        prev = i
    assert pending_lost >= n - prev, f"flood {prev + 1}..{n} missing, {pending_lost} lost"
    assert got, "no flood line followed"
    assert len(got) + lost_total >= n
    return len(got), lost_total


def test_follow_flood(guest_flood, tmp_path):
    """Two followers of the same flood: on the RAM file, and through a
    server (DMESG_NEXT, the cursor kept by the client)."""
    from test_remote_linux import Server
    g = guest_flood
    n = int(re.search(r"lab\.kmsgflood=(\d+)", g.append).group(1))
    srv = Server(g.ram, str(tmp_path / "s.sock"))
    try:
        t0 = time.monotonic()
        local = Follower(["--ram", g.ram], "lab: flood done", "--interval", "50")
        remote = Follower(["--connect", srv.sock], "lab: flood done", "--interval", "50")
        # both have printed the ring as it was at READY: the flood comes after
        deadline = time.monotonic() + 60
        while not all(any("LAB: READY" in l for l in f.lines) for f in (local, remote)):
            assert time.monotonic() < deadline, "the followers printed nothing"
            time.sleep(0.1)
        g.qmp.cmd("cont")
        for name, f in (("RAM file", local), ("server", remote)):
            lines, _err = f.stop(600)
            got, lost = check_flood(lines, n)
            print(f"follow ({name}): {got} of {n} flood lines printed, {lost} records "
                  f"reported lost, {time.monotonic() - t0:.1f} s")
    finally:
        srv.stop()


def flooded(g):
    """g resumed (it runs on after test_follow_flood) and its flood over."""
    g.qmp.cmd("cont")
    deadline = time.monotonic() + 600
    while "lab: flood done" not in g.serial():
        assert time.monotonic() < deadline, "the flood did not end"
        time.sleep(0.5)
    return g


def test_follow_module(guest_flood):
    """The Python module's dmesg_next: the whole ring first (what memsrv
    dmesg prints of the now quiet guest), then nothing new, the cursor
    passed back and forth."""
    import sys
    sys.path.insert(0, os.path.join(ROOT, "gdbext"))
    from nested import _memsrv
    g = flooded(guest_flood)
    m = _memsrv.open(g.ram)
    sp = m.space()
    m.flush()
    text, lost, cursor = sp.dmesg_next()
    assert lost == 0 and "lab: flood done" in text
    m.flush()
    again, lost2, cursor2 = sp.dmesg_next(cursor)
    assert (again, lost2) == ("", 0) and cursor2[0] == cursor[0]
    out = subprocess.run([MEMSRV, "--ram", g.ram, "dmesg"], capture_output=True, text=True,
                         errors="replace").stdout
    assert text == out
    try:
        sp.dmesg_next((1, 2))
        assert False, "a malformed cursor was taken"
    except TypeError:
        pass


def test_follow_gdb(guest_flood, tmp_path):
    """nested dmesg -f in GDB prints the log and stops at Ctrl-C (SIGINT)."""
    from test_gdbext import GDBEXT, run_gdb
    g = flooded(guest_flood)
    cmds = [
        "target remote %s" % g.gdb_address,
        "source %s/nested.gdb" % GDBEXT,
        "nested attach",
        "python import os, signal, threading; "
        "threading.Timer(3, os.kill, (os.getpid(), signal.SIGINT)).start()",
        "nested dmesg -f",
        "nested dmesg",
        "disconnect",
    ]
    _, res = run_gdb(cmds, str(tmp_path), timeout=120)
    assert res[4]["err"] is None, res[4]
    assert res[4]["out"] == res[5]["out"] and "lab: flood done" in res[4]["out"], res[4]
