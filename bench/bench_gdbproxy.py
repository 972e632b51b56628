#!/usr/bin/python3
"""memsrv gdbproxy against QEMU's own gdbstub, with stock GDB on the nested
SVM guest (tests/integration guest_svm: L2 = tests/guest/l2kvm.c, stopped in
L2).

  memory  32 KiB read with GDB's x (8 x x/512gx of L2's marker page, the
          L2 memory KVM has mapped) through the proxy, from the RAM file
          through the 2-D walk, against the same 32 KiB read over QEMU's
          gdbstub (x/4096gx of L1-physical memory: QEMU's stub cannot read
          L2 virtual memory at all; Qqemu.PhyMemMode:1 gives it the fastest
          path it has). Both answers are checked before timing.
          GDB's x reads one 8-byte item per packet and formats each line:
          its own cost, x/4096gx over an ELF file with no target, is shown
          and taken off both sides in the last row.
  stop    the time of a GDB stepi in L2 through the proxy (which reads six
          registers and walks rip and rsp both ways at each stop) against a
          stepi over QEMU's stub: what the proxy adds to a stop.

usage: bench/bench_gdbproxy.py [--rounds N]
"""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import guests  # noqa: E402
import oracle  # noqa: E402

MARKER_GVA = 0x5a5a00042000


def gdb(target, script):
    """GDB on a remote target, or (target an ELF file's path) on the file alone."""
    if target.startswith("/"):
        cmd = ["gdb", "-batch", "-nx", target]
    else:
        cmd = ["gdb", "-batch", "-nx", "-ex", "set architecture i386:x86-64", "-ex",
               f"target remote {target}"]
    for line in script:
        cmd += ["-ex", line]
    if not target.startswith("/"):
        cmd += ["-ex", "disconnect"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return r.stdout + r.stderr


def timed(target, setup, command, repeat, rounds):
    """Best of rounds: seconds for `repeat` runs of command, and its output."""
    py = ("python import time\n"
          f"python out = gdb.execute({command!r}, to_string=True)\n"
          "python print('OUT<' + out + '>OUT')\n"
          f"python best = min((lambda t0: ([gdb.execute({command!r}, to_string=True) "
          f"for _ in range({repeat})], time.perf_counter() - t0)[1])(time.perf_counter()) "
          f"for _ in range({rounds}))\n"
          "python print('TIME %.6f' % best)")
    out = gdb(target, setup + py.split("\n"))
    m = re.search(r"TIME ([0-9.]+)", out)
    if not m:
        raise SystemExit(f"bench_gdbproxy: no timing from GDB:\n{out[-3000:]}")
    return float(m.group(1)), re.search(r"OUT<(.*)>OUT", out, re.S).group(1)


def words(text):
    return [int(w, 16) for w in re.findall(r"0x[0-9a-f]{16}", text.split(":", 1)[1])] if text else []


def main():
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 5
    g = guests.boot("guest_svm")
    try:
        l2 = g.l2
        vmcbs, hsaves = oracle.scan_vmcbs(g.ram, g.layout_regions())
        l1 = [h for h in hsaves if h["cr4"] & 0x20 and h["rip"] >> 47]
        # As `nested proxy` runs it: exec, and the proxy's stderr on GDB's own
        # ($PPID), or GDB reads that stderr once per byte the proxy sends.
        proxy = (f"| exec {oracle.MEMSRV} gdbproxy --stdio --qemu {g.gdb_address} --ram {g.ram} "
                 f"--ncr3 {vmcbs[0]['ncr3']:#x} --npt-levels "
                 f"{5 if l1[0]['cr4'] & (1 << 12) else 4} 2>>/proc/$PPID/fd/2")
        t_proxy, out_proxy = timed(proxy, [], f"x/512gx {MARKER_GVA:#x}", 8, rounds)
        phys = ["maint packet Qqemu.PhyMemMode:1"]
        t_qemu, out_qemu = timed(g.gdb_address, phys, f"x/4096gx {l2['l1phys']:#x}", 1, rounds)
        # With GDB's data cache on all memory, x reads whole lines (2 KiB:
        # QEMU's stub refuses larger m packets) instead of one item a packet.
        cache = ["mem 0 0xffffffffffffffff rw cache", "set dcache line-size 2048"]
        t_proxy_c, out_proxy_c = timed(proxy, cache, f"x/512gx {MARKER_GVA:#x}", 8, rounds)
        t_qemu_c, out_qemu_c = timed(g.gdb_address, phys + cache,
                                     f"x/4096gx {l2['l1phys']:#x}", 1, rounds)
        if words(out_proxy_c) != words(out_proxy) or words(out_qemu_c) != words(out_qemu):
            raise SystemExit("bench_gdbproxy: GDB's data cache changed what x read")
        gdb(g.gdb_address, ["maint packet Qqemu.PhyMemMode:0"])
        # Same bytes: the marker page through the proxy, its L1 page over QEMU.
        if words(out_proxy)[:4] != words(out_qemu)[:4] or l2["marker"].encode() not in b"".join(
                w.to_bytes(8, "little") for w in words(out_proxy)[:4]):
            raise SystemExit(f"bench_gdbproxy: the proxy and QEMU disagree on the marker page:"
                             f"\n{out_proxy[:300]}\n{out_qemu[:300]}")

        # GDB's own cost: x/4096gx of the vmlinux file's bytes, no target.
        t_floor, _ = timed(os.path.join(g.kernel_dir, "vmlinux"), [], "x/4096gx &linux_banner",
                           1, rounds)
        t_step_proxy, _ = timed(proxy, [], "stepi", 20, rounds)
        t_step_qemu, _ = timed(g.gdb_address, [], "stepi", 20, rounds)
        print(f"machine: {os.cpu_count()} cores; guest_svm stopped in L2; best of {rounds}")
        print(f"{'32 KiB with GDB x':38} {'proxy (L2, file)':>18} {'QEMU stub (L1 phys)':>20} "
              f"{'ratio':>7} {'GDB alone (ELF file)':>21}")
        print(f"{'':38} {t_proxy * 1e3:15.2f} ms {t_qemu * 1e3:17.2f} ms "
              f"{t_qemu / t_proxy:6.1f}x {t_floor * 1e3:18.2f} ms")
        print(f"{'  with GDB data cache (2 KiB lines)':38} {t_proxy_c * 1e3:15.2f} ms "
              f"{t_qemu_c * 1e3:17.2f} ms {t_qemu_c / t_proxy_c:6.1f}x")
        print(f"{'  proxy with cache vs QEMU without':38} {t_proxy_c * 1e3:15.2f} ms "
              f"{t_qemu * 1e3:17.2f} ms {t_qemu / t_proxy_c:6.1f}x")
        print(f"{'  beyond GDB alone':38} {(t_proxy - t_floor) * 1e3:15.2f} ms "
              f"{(t_qemu - t_floor) * 1e3:17.2f} ms {(t_qemu - t_floor) / max(t_proxy - t_floor, 1e-6):6.1f}x")
        print(f"{'stepi in L2 (per stop)':38} {t_step_proxy / 20 * 1e3:15.3f} ms "
              f"{t_step_qemu / 20 * 1e3:17.3f} ms  +{(t_step_proxy - t_step_qemu) / 20 * 1e3:.3f} "
              "ms by the proxy")
    finally:
        g.close()


if __name__ == "__main__":
    main()
