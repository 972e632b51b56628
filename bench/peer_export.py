#!/usr/bin/python3
"""memsrv export-vmcore against QEMU's own dump-guest-memory, writing a vmcore
of the same stopped guest (tests/integration/guests.py: the test kernel and
initramfs, KASLR on, q35):

  qemu     QMP dump-guest-memory (paging=false, ELF: QEMU's fastest form,
           every byte of RAM written) into a file, waited for with query-dump
  memsrv   build/memsrv export-vmcore on the guest's RAM file, with the -dbg
           vmlinux (pids of the running tasks) and without one (kallsyms)

Both write to the same file system; each output is deleted after its round.
Before any time counts, memsrv's vmcore is checked: crash's `log` on it must
equal `memsrv dmesg --crash`. Measured: wall time (median of rounds), the
guest RAM's MiB/s, the file's size and the blocks it really takes.

  bench/peer_export.py [--quick] [--rounds N] [--mem MiB]
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


def qemu_dump(g, path):
    if os.path.exists(path):
        os.unlink(path)
    t0 = time.perf_counter()
    g.qmp.cmd("dump-guest-memory", paging=False, protocol=f"file:{path}")
    while True:
        st = g.qmp.cmd("query-dump")
        if st.get("status") == "completed":
            return time.perf_counter() - t0
        if st.get("status") == "failed":
            raise RuntimeError(f"dump-guest-memory failed: {st}")
        time.sleep(0.005)


def memsrv_export(argv, path):
    if os.path.exists(path):
        os.unlink(path)
    t0 = time.perf_counter()
    p = subprocess.run(argv + ["-o", path], capture_output=True, timeout=900)
    secs = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {p.stderr.decode()[-500:]}")
    return secs


def check_with_crash(g, vm, core):
    """crash `log` on the export equals the guest's own log."""
    p = subprocess.run(["crash", "-s", vm, core], input=b"set scroll off\nlog\nquit\n",
                       capture_output=True, timeout=600)
    got = [line for line in p.stdout.decode("utf-8", "replace").splitlines()]
    start = next(i for i, line in enumerate(got) if line.startswith("["))
    want = subprocess.run([MEMSRV, "--ram", g.ram, "dmesg", "--crash"], capture_output=True,
                          check=True).stdout.decode("utf-8", "replace").splitlines()
    if got[start:start + len(want)] != want:
        raise RuntimeError("crash's log on memsrv's vmcore differs from memsrv dmesg --crash")
    return len(want)


def timed(fn, path, rounds):
    secs = []
    for _ in range(rounds):
        secs.append(fn(path))
        st = os.stat(path)
        size, used = st.st_size, st.st_blocks * 512
        os.unlink(path)
    return statistics.median(secs), size, used


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 GiB guest, one round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mem", type=int, default=4096, help="guest RAM in MiB (default 4096)")
    args = ap.parse_args()
    if args.quick:
        args.rounds = 1
        args.mem = min(args.mem, 1024)
    if not os.access(MEMSRV, os.X_OK):
        sys.exit(f"peer_export: no {MEMSRV} (make)")
    print(f"machine: {cpuinfo.machine()}; load average {os.getloadavg()[0]:.2f} at start")
    g = guests.Guest("peer-export", machine="q35", mem=args.mem * guests.MiB, cpu="max",
                     append="lab.user=sleep", boot_timeout=600)
    out = tempfile.mkdtemp(prefix="peer-export-")
    try:
        g.boot()
        vm = os.path.join(g.kernel_dir, "vmlinux")
        core = os.path.join(out, "memsrv.vmcore")
        with_vm = [MEMSRV, "--ram", g.ram, "--vmlinux", vm, "export-vmcore", "-q"]
        alone = [MEMSRV, "--ram", g.ram, "export-vmcore", "-q"]
        memsrv_export(with_vm, core)
        lines = check_with_crash(g, vm, core)
        os.unlink(core)
        rows = [
            ("qemu dump-guest-memory (ELF, paging=false)",
             timed(lambda p: qemu_dump(g, p), os.path.join(out, "qemu.elf"), args.rounds)),
            ("memsrv export-vmcore, RAM file + vmlinux",
             timed(lambda p: memsrv_export(with_vm, p), core, args.rounds)),
            ("memsrv export-vmcore, RAM file alone",
             timed(lambda p: memsrv_export(alone, p), core, args.rounds)),
        ]
    finally:
        g.close()
        for f in os.listdir(out):
            os.unlink(os.path.join(out, f))
        os.rmdir(out)
    mib = args.mem
    print(f"vmcore of a stopped guest: wall time, median of {args.rounds} runs; guest: Debian 6.1 "
          f"under QEMU TCG, q35, {mib} MiB, KASLR; memsrv's checked: crash log = dmesg "
          f"({lines} lines)")
    print(f"{'':46} {'time':>8} {'MiB/s':>7} {'file':>9} {'on disk':>9}")
    for label, (secs, size, used) in rows:
        print(f"{label:46} {secs:7.2f}s {mib / secs:7.0f} {size >> 20:7d}MB {used >> 20:7d}MB")
    ratio = rows[0][1][0] / rows[1][1][0]
    print(f"ratio qemu / memsrv (RAM file + vmlinux): {ratio:.1f}x (goal >= 10x) "
          f"{'met' if ratio >= 10 else 'MISSED'}")


if __name__ == "__main__":
    main()
