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


def follow(g, until, timeout, *extra):
    """memsrv dmesg --follow's lines until one contains `until` (then
    SIGINT), or the timeout."""
    p = subprocess.Popen([MEMSRV, "--ram", g.ram, "dmesg", "--follow", *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines, seen = [], threading.Event()

    def reader():
        for raw in p.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            lines.append(line)
            if until in line:
                seen.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    seen.wait(timeout)
    p.send_signal(signal.SIGINT)
    p.wait(30)
    t.join(30)
    err = p.stderr.read().decode()
    assert seen.is_set(), f"no {until!r} within {timeout} s; stderr {err[-1000:]}; " \
                          f"last lines {lines[-5:]}"
    return lines, err


def test_follow_flood(guest_flood):
    g = guest_flood
    n = int(re.search(r"lab\.kmsgflood=(\d+)", g.append).group(1))
    t0 = time.monotonic()
    lines, err = follow(g, "lab: flood done", 600, "--interval", "50")
    secs = time.monotonic() - t0
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
    print(f"follow: {len(got)} of {n} flood lines printed, {lost_total} records reported lost, "
          f"{secs:.1f} s")
    assert len(got) + lost_total >= n


def test_follow_module(guest_flood):
    """The Python module's dmesg_next: the whole ring first (what memsrv
    dmesg prints of the now quiet guest), then nothing new, the cursor
    passed back and forth."""
    import sys
    sys.path.insert(0, os.path.join(ROOT, "gdbext"))
    from nested import _memsrv
    g = guest_flood
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
    g = guest_flood
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
