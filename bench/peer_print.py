#!/usr/bin/python3
"""memsrv p (GDB's print from the kernel's own BTF and memory, no vmlinux)
against GDB 13 printing the same expressions with the -dbg vmlinux through
`memsrv gdbserver`, on one stopped guest (tests/integration/guests.py's
guest5: the test kernel, nokaslr, q35):

  memsrv p        build/memsrv --ram F p EXPR: finds the kernel, reads
                  kallsyms and the BTF (4 MB) from guest memory, evaluates
  memsrv p, srv   build/memsrv --connect S p EXPR against a warm server
  gdb             gdb -batch vmlinux -ex 'target remote | memsrv gdbserver'
                  -ex 'p EXPR': GDB reading the 560 MB vmlinux's DWARF

The texts are checked equal before any time counts. End to end wall time,
median of rounds; the issue's goal is memsrv p under 0.1 s.

  bench/peer_print.py [--quick] [--rounds N]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import guests  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpuinfo  # noqa: E402

MEMSRV = os.environ.get("MEMSRV", os.path.join(ROOT, "build", "memsrv"))
EXPRS = ["init_uts_ns.name.release", "*init_task.tasks.next", "*init_task.signal"]


def run(argv):
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, LC_ALL="C"))
    secs = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {p.stderr[-500:]}")
    return secs, p.stdout


def gdb_argv(g, expr):
    return ["gdb", "-batch", "-nx", os.path.join(g.kernel_dir, "vmlinux"), "-ex",
            f"target remote | {MEMSRV} gdbserver --stdio --ram {g.ram}", "-ex", f"p {expr}"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=0)
    a = ap.parse_args()
    rounds = a.rounds or (3 if a.quick else 10)
    gdb_rounds = 1 if a.quick else 3
    print(f"machine: {cpuinfo.machine()}; load average {os.getloadavg()[0]:.2f} at start")
    g = guests.Guest("guest5", **guests.SCENARIOS["guest5"])
    g.boot()
    tmp = tempfile.mkdtemp()
    sock = os.path.join(tmp, "s.sock")
    srv = subprocess.Popen([MEMSRV, "serve", "--ram", g.ram, "--socket", sock],
                           stderr=subprocess.PIPE, text=True)
    try:
        assert "serving" in srv.stderr.readline()
        print("| expression | memsrv p (RAM file) | memsrv p (server) | gdb + vmlinux | gdb / memsrv |")
        print("|---|---|---|---|---|")
        for e in EXPRS:
            _, mine = run([MEMSRV, "--ram", g.ram, "p", e])
            _, remote = run([MEMSRV, "--connect", sock, "p", e])
            _, gdb = run(gdb_argv(g, e))
            gdb_text = next(ln for ln in gdb.splitlines() if ln.startswith("$1 = ")) + "\n"
            if not (mine == remote == gdb_text):
                raise RuntimeError(f"p {e}: memsrv {mine[:200]!r} vs gdb {gdb_text[:200]!r}")
            local = statistics.median(run([MEMSRV, "--ram", g.ram, "p", e])[0]
                                      for _ in range(rounds))
            served = statistics.median(run([MEMSRV, "--connect", sock, "p", e])[0]
                                       for _ in range(rounds))
            slow = statistics.median(run(gdb_argv(g, e))[0] for _ in range(gdb_rounds))
            print(f"| `p {e}` | {local * 1000:.1f} ms | {served * 1000:.1f} ms | "
                  f"{slow:.2f} s | {slow / local:.0f}x |")
    finally:
        srv.terminate()
        srv.wait(timeout=20)
        g.close()


if __name__ == "__main__":
    main()
