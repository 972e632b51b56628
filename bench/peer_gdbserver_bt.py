#!/usr/bin/python3
"""GDB's `thread apply all bt` through memsrv gdbserver against crash's
`foreach bt`, on the same stopped Debian-kernel guest (guest_kaslr: KASLR on,
sysrq t run last so the serial log holds the kernel's own traces):

  gdb      gdb -batch vmlinux (loaded at the KASLR slide), target remote |
           memsrv gdbserver --stdio --ram F --vmlinux V, gdbext's ORC
           unwinder (nested attach F), thread apply all bt
  crash    crash -s vmlinux dump, foreach bt (QEMU's dump-guest-memory ELF)

GDB's output is checked before its time counts: every task that slept
through gives the kernel's reliable frames (test_gdbserver.compare). For
crash, how many tasks it shows a trace for is reported (crash 8.0.2's task
walk fails on 6.1). Measured: wall time, median of rounds, inputs in the
page cache; the ratio is crash's time over GDB's.

  bench/peer_gdbserver_bt.py [--rounds N]
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import guests  # noqa: E402
import test_bt  # noqa: E402
import test_gdbserver as tg  # noqa: E402
from test_linux import vmlinux  # noqa: E402


def timed(fn, rounds):
    times, out = [], None
    for _ in range(rounds):
        t0 = time.monotonic()
        out = fn()
        times.append(time.monotonic() - t0)
    return statistics.median(times), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    g = guests.boot("guest_kaslr")
    try:
        dump = g.dump()
        frames_py = os.path.join(ROOT, "tests", "integration", "gdb_frames.py")

        def gdb_bt():
            return tg.gdb(g, "thread apply all bt")[0]

        gdb_secs, out = timed(gdb_bt, args.rounds)
        threads = len(re.findall(r"^Thread \d+ ", out, re.M))
        # the check: the same session's frames against sysrq t
        checked, _e = tg.gdb(g, "python exec(open(%r).read())" % frames_py)
        n = tg.compare(g, test_bt.sysrq_traces(g.serial()), tg.gdb_frames(checked), tg.tasks(g))
        assert n >= 25, f"only {n} tasks matched the kernel's traces"

        def crash_bt():
            p = subprocess.run(["crash", "-s", vmlinux(g), dump],
                               input=b"set scroll off\nforeach bt\nquit\n",
                               capture_output=True, timeout=600)
            return p.stdout.decode("utf-8", "replace")

        crash_secs, cout = timed(crash_bt, args.rounds)
        crash_tasks = len(re.findall(r"^PID: +\d+ ", cout, re.M))
        print(f"guest_kaslr, {threads} threads, {n} traces checked against sysrq t")
        print(f"  gdb thread apply all bt via memsrv gdbserver + ORC unwinder: "
              f"{gdb_secs:.2f} s, {threads} tasks")
        print(f"  crash foreach bt (dump):                                     "
              f"{crash_secs:.2f} s, {crash_tasks} tasks")
        print(f"  ratio crash/gdb: {crash_secs / gdb_secs:.2f}x (median of {args.rounds})")
    finally:
        g.close()


if __name__ == "__main__":
    main()
