#!/usr/bin/python3
"""memsrv bt --all against drgn's stack_trace() over every task, on the same
stopped Debian-kernel guest (tests/integration/guests.py's test kernel and
initramfs, KASLR on, sysrq t run last so the serial log holds the kernel's
own traces):

  memsrv   build/memsrv bt --all on the guest's RAM file (--vmlinux, and with
           no symbol file when the kernel's own types are available) and on
           QEMU's paging ELF dump
  drgn     python3-drgn: Program + core + vmlinux, prog.stack_trace(task) for
           every task of for_each_task(), on the paging dump (drgn 0.0.22
           needs kernel virtual addresses in the dump)

Every output is checked before its time counts: memsrv's frames against the
kernel's reliable frames (sysrq t) for each task asleep at both moments, and
drgn's function names against memsrv's per task (reported, not required:
drgn has known ORC bugs, and on QEMU's dumps takes pid 1 for the running
task). Measured: wall time (median of rounds, inputs in the page cache),
start-up (the tool doing nothing after loading: memsrv `sym linux_banner`,
drgn Program + core + load_debug_info) and peak RSS.

  bench/peer_bt.py [--rounds N]
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
import test_bt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpuinfo  # noqa: E402

MEMSRV = os.environ.get("MEMSRV", os.path.join(ROOT, "build", "memsrv"))
PY = "/usr/bin/python3"

DRGN = r"""
import sys, drgn
from drgn.helpers.linux.pid import for_each_task
mode, core, vmlinux = sys.argv[1:4]
prog = drgn.Program()
prog.set_core_dump(core)
prog.load_debug_info([vmlinux])
if mode == "traces":
    out = []
    for task in for_each_task(prog):
        pid = task.pid.value_()
        try:
            names = []
            for i, f in enumerate(prog.stack_trace(task)):
                if getattr(f, "is_inline", False):
                    continue
                try:
                    names.append(prog.symbol(f.pc - (1 if i else 0)).name)
                except LookupError:
                    names.append(hex(f.pc))
            out.append(f"{pid} {' '.join(names)}")
        except Exception as e:
            out.append(f"{pid} ERROR {str(e).replace(chr(10), ' ')}")
    print("\n".join(out))
"""


class Run:
    """One process: wall seconds, peak RSS (KiB), stdout, exit code; stdin
    bytes from a file, so writing them costs no time."""

    def __init__(self, argv, stdin=b""):
        with tempfile.TemporaryFile() as inp, tempfile.TemporaryFile() as out, \
                tempfile.TemporaryFile() as err:
            inp.write(stdin)
            inp.seek(0)
            t0 = time.perf_counter()
            p = subprocess.Popen(argv, stdin=inp, stdout=out, stderr=err)
            _, status, ru = os.wait4(p.pid, 0)
            self.seconds = time.perf_counter() - t0
            self.rc = os.waitstatus_to_exitcode(status)
            self.rss_kib = ru.ru_maxrss
            out.seek(0)
            err.seek(0)
            self.out = out.read().decode("utf-8", "replace")
            self.err = err.read().decode("utf-8", "replace")


def timed(argv, rounds, check, stdin=b""):
    """Median wall time and max RSS of `rounds` runs, each output checked."""
    secs, rss = [], 0
    for _ in range(rounds):
        r = Run(argv, stdin)
        if r.rc != 0:
            raise RuntimeError(f"{' '.join(argv)[:160]} exited {r.rc}: {r.err[-800:]}")
        check(r.out)
        secs.append(r.seconds)
        rss = max(rss, r.rss_kib)
    return statistics.median(secs), rss


def start(name, doc):
    """A peer benchmark's arguments (--rounds, --quick), its tools checked,
    the machine line printed."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="3 rounds")
    args = ap.parse_args()
    if args.quick:
        args.rounds = min(args.rounds, 3)
    if not os.access(MEMSRV, os.X_OK):
        sys.exit(f"{name}: no {MEMSRV} (make)")
    if subprocess.run([PY, "-c", "import drgn"], capture_output=True).returncode != 0:
        sys.exit(f"{name}: no python3-drgn (scripts/install-deps)")
    print(f"machine: {cpuinfo.machine()}; load average {os.getloadavg()[0]:.2f} at start")
    return args


def main():
    args = start("peer_bt", __doc__)
    g = guests.Guest("peer-bt", machine="q35", mem=512 * guests.MiB, cpu="max",
                     append="lab.user=sleep lab.sysrq=t", boot_timeout=600)
    failed = False
    differ = []
    try:
        g.boot()
        vm = os.path.join(g.kernel_dir, "vmlinux")
        dump = g.dump(paging=True)
        kernel = test_bt.sysrq_traces(g.serial())
        counts = {}

        def check_memsrv(label):
            def check(out):
                ours = test_bt.bt_traces(out)
                counts[label] = (len(ours), test_bt.compare(g, kernel, ours))
            return check

        rows = []
        for label, argv in [("memsrv bt --all, RAM file + vmlinux",
                             [MEMSRV, "bt", "--all", "--ram", g.ram, "--vmlinux", vm]),
                            ("memsrv bt --all, paging dump + vmlinux",
                             [MEMSRV, "bt", "--all", "--dump", dump, "--vmlinux", vm]),
                            ("memsrv bt --all, RAM file alone",
                             [MEMSRV, "bt", "--all", "--ram", g.ram])]:
            probe = Run(argv)
            if probe.rc != 0:
                rows.append((label, None, None, probe.err.strip().splitlines()[-1][:100]))
                continue
            secs, rss = timed(argv, args.rounds, check_memsrv(label))
            rows.append((label, secs, rss, "%d tasks, %d compared with sysrq t: all equal"
                         % counts[label]))
        ref = Run([MEMSRV, "bt", "--all", "--ram", g.ram, "--vmlinux", vm]).out
        ours = test_bt.bt_traces(ref)
        agree = {}

        def check_drgn(out):
            n = same = 0
            differ = []
            for line in out.strip().splitlines():
                pid, _, rest = line.partition(" ")
                pid = int(pid)
                if pid not in ours or ours[pid][3] or rest.startswith("ERROR"):
                    continue
                n += 1
                mine = [f.split("+")[0] for f in ours[pid][1]]
                if rest.split() == mine:
                    same += 1
                else:
                    differ.append(f"pid {pid}: drgn {' '.join(rest.split()[:4])}... "
                                  f"memsrv {' '.join(mine[:4])}...")
            agree["drgn"] = (len(out.strip().splitlines()), n, same, differ)

        secs, rss = timed([PY, "-c", DRGN, "traces", dump, vm], args.rounds, check_drgn)
        total, n, same, differ = agree["drgn"]
        rows.append(("drgn stack_trace() of every task, paging dump", secs, rss,
                     f"{total} tasks; function names equal to memsrv's on {same} of {n} "
                     "sleeping tasks"))
        start_m, _ = timed([MEMSRV, "sym", "linux_banner", "--ram", g.ram, "--vmlinux", vm],
                           args.rounds, lambda out: None)
        start_d, _ = timed([PY, "-c", DRGN, "startup", dump, vm], args.rounds, lambda out: None)
    except Exception as e:  # report, then fail
        print(f"peer_bt: {e}")
        failed = True
        rows = []
    finally:
        g.close()
    if failed:
        sys.exit(1)
    print(f"bt of every task: wall time, median of {args.rounds} runs, each output checked; "
          f"guest: Debian 6.1 under QEMU TCG, q35, 512 MiB, KASLR")
    print(f"start-up: memsrv sym {start_m * 1000:.0f} ms, drgn load {start_d * 1000:.0f} ms")
    print(f"{'':48} {'time':>9} {'peak RSS':>9}  checked")
    for label, secs, rss, note in rows:
        if secs is None:
            print(f"{label:48} {'n/a':>9} {'':>9}  {note}")
        else:
            print(f"{label:48} {secs * 1000:7.0f}ms {rss // 1024:7d}MB  {note}")
    for line in differ:
        print(f"  drgn differs on {line}")
    mem = next(r for r in rows if r[0].startswith("memsrv bt --all, RAM file + vmlinux"))
    drgn = rows[-1]
    ratio = drgn[1] / mem[1]
    print(f"ratio drgn / memsrv (RAM file + vmlinux): {ratio:.1f}x (goal >= 10x) "
          f"{'met' if ratio >= 10 else 'MISSED'}")


if __name__ == "__main__":
    main()
