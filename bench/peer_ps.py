#!/usr/bin/python3
"""memsrv ps with no vmlinux against crash's ps and drgn's task walk with the
vmlinux, on the same stopped Debian-kernel guest (KASLR on, sysrq t run last
so the serial log lists every task the kernel had):

  memsrv   build/memsrv ps on the guest's RAM file alone (kallsyms and the
           kernel's own BTF from guest memory), and with --vmlinux (DWARF)
  crash    crash -s vmlinux dump, ps (QEMU's dump-guest-memory ELF)
  drgn     python3-drgn: Program + core + vmlinux, for_each_task() printing
           pid and comm (paging dump: drgn 0.0.22 needs kernel virtual
           addresses in the dump)

Every output is checked before its time counts: memsrv's and drgn's pid
sets equal each other and hold every task sysrq t listed; crash's task
count is reported (crash 8.0.2's walk of a 6.1 task list lists only a few).
Measured: wall time (median of rounds, inputs in the page cache), peak RSS.

  bench/peer_ps.py [--rounds N] [--quick]
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import guests  # noqa: E402
import test_bt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_bt import MEMSRV, PY, start, timed  # noqa: E402

DRGN = r"""
import sys, drgn
from drgn.helpers.linux.pid import for_each_task
prog = drgn.Program()
prog.set_core_dump(sys.argv[1])
prog.load_debug_info([sys.argv[2]])
print("\n".join(f"{t.pid.value_()} {t.comm.string_().decode()}" for t in for_each_task(prog)))
"""


def memsrv_pids(out):
    """pids of memsrv ps's rows (a header line, then PID first)."""
    return {int(ln.split()[0]) for ln in out.splitlines()[1:] if ln.split()[:1] != []
            and ln.split()[0].isdigit()}


def main():
    args = start("peer_ps", __doc__)
    g = guests.Guest("peer-ps", machine="q35", mem=512 * guests.MiB, cpu="max",
                     append="lab.user=sleep lab.sysrq=t", boot_timeout=600)
    rows, failed = [], False
    try:
        g.boot()
        vm = os.path.join(g.kernel_dir, "vmlinux")
        dump = g.dump()
        pdump = g.dump(paging=True)
        kernel = set(test_bt.sysrq_traces(g.serial()))
        assert len(kernel) >= 20, f"sysrq t listed {len(kernel)} tasks"
        seen = {}

        def check_pids(label, parse):
            def check(out):
                pids = parse(out)
                missing = kernel - pids
                assert not missing, f"{label}: sysrq t's tasks {sorted(missing)} missing"
                seen[label] = pids
            return check

        for label, argv in [("memsrv ps, RAM file alone (kallsyms + BTF)",
                             [MEMSRV, "ps", "--ram", g.ram]),
                            ("memsrv ps, RAM file + vmlinux (DWARF)",
                             [MEMSRV, "ps", "--ram", g.ram, "--vmlinux", vm])]:
            secs, rss = timed(argv, args.rounds, check_pids(label, memsrv_pids))
            rows.append((label, secs, rss, f"{len(seen[label])} tasks, sysrq t's all there"))

        def drgn_pids(out):
            return {int(ln.split()[0]) for ln in out.splitlines() if ln.strip()}

        label = "drgn for_each_task, paging dump + vmlinux"
        secs, rss = timed([PY, "-c", DRGN, pdump, vm], args.rounds, check_pids(label, drgn_pids))
        alone = seen["memsrv ps, RAM file alone (kallsyms + BTF)"]
        # drgn's for_each_task walks the pid hash: the idle tasks (pid 0) are not in it
        same = seen[label] == alone - {0}
        rows.append((label, secs, rss, f"{len(seen[label])} tasks, pid set "
                     + ("equal to memsrv's but pid 0" if same else
                        f"DIFFERENT: {sorted(seen[label] ^ (alone - {0}))}")))
        failed |= not same

        crash_tasks = []

        def check_crash(out):
            crash_tasks[:] = re.findall(r"^[ >]\s*(\d+)\s+\d+\s+\d+\s+[0-9a-f]+\s", out, re.M)

        secs, rss = timed(["crash", "-s", vm, dump], args.rounds, check_crash,
                          stdin=b"set scroll off\nps\nquit\n")
        rows.append(("crash ps, QEMU dump + vmlinux", secs, rss,
                     f"{len(crash_tasks)} tasks listed (of {len(alone)})"))
    except Exception as e:  # report, then fail
        print(f"peer_ps: {e}")
        failed = True
    finally:
        g.close()
    print(f"ps: wall time, median of {args.rounds} runs, each output checked; "
          f"guest: Debian 6.1 under QEMU TCG, q35, 512 MiB, KASLR")
    print(f"{'':46} {'time':>9} {'peak RSS':>9}  checked")
    for label, secs, rss, note in rows:
        print(f"{label:46} {secs * 1000:7.0f}ms {rss // 1024:7d}MB  {note}")
    if failed or len(rows) < 4:
        sys.exit(1)
    mine, drgn, crash = rows[0][1], rows[2][1], rows[3][1]
    ratio = crash / mine
    print(f"ratio crash / memsrv (RAM file alone): {ratio:.1f}x (goal >= 50x) "
          f"{'met' if ratio >= 50 else 'MISSED'}; drgn / memsrv: {drgn / mine:.1f}x")


if __name__ == "__main__":
    main()
