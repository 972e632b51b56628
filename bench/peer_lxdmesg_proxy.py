#!/usr/bin/python3
"""Linux's lx-dmesg in stock GDB through `memsrv gdbproxy` against the same
lx-dmesg over QEMU's own gdbstub, on a single-level guest (no second stage:
the proxy serves RAM from the file through the vCPU's CR3 and forwards what
the file does not back to QEMU).

lx-dmesg is Linux's own GDB helper (scripts/gdb of linux-source-6.1, made by
scripts/fetch-lx-gdb as for bench/peer_dmesg.py). It reads three small
pieces of guest memory per record (descriptor, info, text): over a remote
stub, three m packets per record. The ways to run it:

  QEMU stub             target remote to QEMU's gdbstub (peer_dmesg's row)
  QEMU stub + cache     the same with GDB's data cache on all memory, 2 KiB
                        lines (QEMU's stub refuses larger m packets)
  proxy stdio + cache   target remote | memsrv gdbproxy --stdio (no --eptp,
                        --ncr3: the vCPU is in L1, all there is), with the
                        data cache as `nested proxy` sets it (mem 0
                        0xffffffffffffffff rw cache, 4 KiB lines)
  nested proxy          what `nested proxy` runs: the same with `exec` and
                        the proxy's stderr on GDB's own; with the cache
                        (what a user gets) and without (--no-cache)
  proxy tcp + cache     memsrv gdbproxy --listen 127.0.0.1:0, GDB on TCP

GDB reads a `target remote |` program's stderr with one read() per byte it
receives from the program (generic_readchar -> ser_base_read_error_fd): an
8 KiB reply costs it ~3-4 ms on this machine, against ~0.15-0.3 ms over TCP
or once that stderr is closed (GDB then stops reading it): the "proxy stdio"
row shows the cost, `nested proxy` avoids it.

Each round is a fresh GDB (and a fresh proxy): it loads the vmlinux at the
KASLR slide (memsrv sym _text against System.map's _text), connects,
sources vmlinux-gdb.py, then runs lx-dmesg twice, each timed inside GDB
(time.perf_counter around gdb.execute): "first" includes GDB expanding the
symbols lx-dmesg looks up (about 0.11 s here, the same on every side);
"again" is a second lx-dmesg after `maint flush dcache`: the memory path
and lx-dmesg's own Python. Every output is checked before its time counts:
equal to `memsrv dmesg` on the RAM file (timestamps within 1 us: lx-dmesg
rounds where dmesg truncates), which is itself checked against the guest's
serial log (peer_dmesg's check_serial). The goal (issue 11): lx-dmesg
through the proxy at least 10x faster than over QEMU's stub; the verdict
compares what `nested proxy` gives (with the cache) and the proxy on TCP
with plain GDB on QEMU's stub.

Two guests, peer_dmesg's (KASLR on): "small", a plain boot; "16M",
log_buf_len=16M and lab.fill=N so the ring has wrapped.

  bench/peer_lxdmesg_proxy.py [--quick] [--rounds N] [--fill N]
"""

import argparse
import os
import re
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
import peer_dmesg  # noqa: E402

MEMSRV = peer_dmesg.MEMSRV
GOAL = 10.0
QEMU_CACHE = ["mem 0 0xffffffffffffffff rw cache", "set dcache line-size 2048"]
PROXY_CACHE = ["mem 0 0xffffffffffffffff rw cache", "set dcache line-size 4096"]  # nested proxy

# Runs inside GDB (gdb -x): lx-dmesg twice, timed, and what each printed.
TIMER = """
import time
for name in ("first", "again"):
    gdb.execute("maint flush dcache", to_string=True)
    t0 = time.perf_counter()
    out = gdb.execute("lx-dmesg", to_string=True)
    t = time.perf_counter() - t0
    with open(%r + "." + name, "w") as f:
        f.write(out)
    print("LXTIME %%s %%.6f" %% (name, t))
"""


class Fail(Exception):
    pass


def slide(g):
    """KASLR's slide: memsrv's _text (from the RAM file) against the
    vmlinux's own (System.map)."""
    r = subprocess.run([MEMSRV, "--ram", g.ram, "sym", "_text"], capture_output=True, text=True,
                       timeout=120)
    m = re.fullmatch(r"(0x[0-9a-f]+) _text\n", r.stdout)
    if r.returncode or not m:
        raise Fail(f"memsrv sym _text: {r.stdout}{r.stderr}")
    with open(os.path.join(g.kernel_dir, "System.map")) as f:
        text = next(int(a, 16) for a, _t, n in (line.split()[:3] for line in f) if n == "_text")
    return int(m.group(1), 16) - text


class Way:
    """target: what follows `target remote`; "tcp" starts a listening proxy."""

    def __init__(self, name, target, setup):
        self.name, self.target, self.setup = name, target, setup
        self.first, self.again = [], []

    def median(self, which):
        times = getattr(self, which)
        return statistics.median(times) if times else None


class ListeningProxy:
    """memsrv gdbproxy --listen 127.0.0.1:0 for one GDB; its address from
    the line it prints."""

    def __init__(self, g):
        self.p = subprocess.Popen([MEMSRV, "gdbproxy", "--listen", "127.0.0.1:0", "--qemu",
                                   g.gdb_address, "--ram", g.ram], stderr=subprocess.PIPE,
                                  text=True)
        line = self.p.stderr.readline()
        m = re.search(r"target remote (\S+)\)", line)
        if not m:
            self.close()
            raise Fail(f"memsrv gdbproxy --listen: {line}")
        self.address = m.group(1)

    def close(self):
        self.p.kill()
        self.p.wait(30)
        self.p.stderr.close()


def run_lx(g, way, lx_dir, offset, want):
    """One fresh GDB: lx-dmesg twice, timed inside it; each output checked."""
    vm = os.path.join(g.kernel_dir, "vmlinux")
    listener = ListeningProxy(g) if way.target == "tcp" else None
    try:
        with tempfile.TemporaryDirectory(prefix="lxproxy-") as tmp:
            out_path = os.path.join(tmp, "lx.out")
            script = os.path.join(tmp, "timer.py")
            with open(script, "w") as f:
                f.write(TIMER % out_path)
            target = listener.address if listener else way.target
            cmd = ["gdb", "-batch", "-nx", "-ex", f"symbol-file -o {offset:#x} {vm}",
                   "-ex", f"target remote {target}"]
            for line in way.setup:
                cmd += ["-ex", line]
            cmd += ["-ex", f"source {os.path.join(lx_dir, 'vmlinux-gdb.py')}", "-x", script,
                    "-ex", "disconnect"]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
            times = dict(re.findall(r"^LXTIME (\w+) ([0-9.]+)$", r.stdout, re.M))
            if set(times) != {"first", "again"}:
                raise Fail(f"{way.name}: no lx-dmesg timing from GDB:\n"
                           f"{(r.stdout + r.stderr)[-3000:]}")
            for name in ("first", "again"):
                with open(f"{out_path}.{name}", errors="replace") as f:
                    got = peer_dmesg.lx_log(f.read())
                bad = peer_dmesg.lx_matches(got, want)
                if bad:
                    raise Fail(f"{way.name}: lx-dmesg ({name}) disagrees with memsrv dmesg: {bad}")
    finally:
        if listener:
            listener.close()
    way.first.append(float(times["first"]))
    way.again.append(float(times["again"]))


def measure(g, label, lx_dir, fill, rounds, slow_rounds):
    want = subprocess.run([MEMSRV, "--ram", g.ram, "dmesg"], capture_output=True, text=True,
                          timeout=300)
    if want.returncode:
        raise Fail(f"{label}: memsrv dmesg: {want.stderr}")
    want = want.stdout.splitlines()
    serial = peer_dmesg.check_serial(g, want, fill)
    offset = slide(g)
    print(f"-- {label}: booted in {g.boot_seconds:.1f} s ({g.append}); memsrv dmesg: "
          f"{len(want)} lines; serial log: {serial}; KASLR slide {offset:#x}", flush=True)
    stdio = f"| {MEMSRV} gdbproxy --stdio --qemu {g.gdb_address} --ram {g.ram}"
    # What `nested proxy` runs (gdbext/nested/proxy.py): the proxy's stderr on
    # GDB's own ($PPID: the shell's parent is GDB), so that GDB stops reading it.
    nested = (f"| exec {MEMSRV} gdbproxy --stdio --qemu {g.gdb_address} --ram {g.ram} "
              "2>>/proc/$PPID/fd/2")
    ways = [Way("QEMU stub", g.gdb_address, []),
            Way("QEMU stub + cache", g.gdb_address, QEMU_CACHE),
            Way("proxy stdio + cache", stdio, PROXY_CACHE),
            Way("nested proxy, no cache", nested, []),
            Way("nested proxy", nested, PROXY_CACHE),
            Way("proxy tcp + cache", "tcp", PROXY_CACHE)]
    for w in ways:
        # The 16M ring over QEMU's stub without the cache, or with the proxy's
        # stderr read by GDB, takes a minute: fewer rounds there.
        n = slow_rounds if w.name in ("QEMU stub", "proxy stdio + cache") else rounds
        for _ in range(n):
            run_lx(g, w, lx_dir, offset, want)
        print(f"   {w.name}: lx-dmesg first {w.median('first'):.3f} s, again "
              f"{w.median('again'):.3f} s (median of {n})", flush=True)
    if g.running():
        raise Fail(f"{label}: the guest is running after the runs (gdb resumed it?)")
    return dict(label=label, lines=len(want), ways={w.name: w for w in ways})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the small guest only, 2 rounds")
    ap.add_argument("--rounds", type=int, default=3, help="fresh GDB runs per way (default 3)")
    ap.add_argument("--fill", type=int, default=200000,
                    help="lines written into the 16M ring (default 200000: ~1.3 rings full)")
    args = ap.parse_args()
    if args.quick:
        args.rounds = min(args.rounds, 2)
    lx = subprocess.run([os.path.join(ROOT, "scripts", "fetch-lx-gdb")], capture_output=True,
                        text=True)
    if lx.returncode:
        print("peer_lxdmesg_proxy: not run: " + (lx.stderr.strip().splitlines()
                                                  or ["fetch-lx-gdb failed"])[-1])
        return
    lx_dir = lx.stdout.strip().splitlines()[-1]
    t_start = time.monotonic()
    print(f"machine: {cpuinfo.machine()}; load average {os.getloadavg()[0]:.2f} at start")
    print(f"tools: {peer_dmesg.versions()}")
    scenarios = [("small", "lab.user=sleep", None, args.rounds)]
    if not args.quick:
        scenarios.append(("16M", f"log_buf_len=16M lab.user=sleep lab.fill={args.fill}",
                          args.fill, 1))
    results, errors = [], []
    for label, append, fill, slow in scenarios:
        g = guests.Guest(f"lxproxy-{label}", machine="q35", mem=512 * guests.MiB, cpu="max",
                         append=append, boot_timeout=600)
        try:
            g.boot()
            results.append(measure(g, label, lx_dir, fill, args.rounds, slow))
        except (Fail, peer_dmesg.Disagreement) as e:
            errors.append(str(e))
            print(f"   {e}", flush=True)
        finally:
            g.close()
    print()
    print("lx-dmesg (Linux's scripts/gdb), whole printk ring, single-level guest (Debian 6.1 "
          "under QEMU TCG, q35, 512 MiB, KASLR): seconds of the lx-dmesg command inside a fresh "
          f"GDB, median of {args.rounds} (QEMU stub, proxy stdio + cache on 16M: 1); first = first in the session, "
          "again = a second one after maint flush dcache; every output equal to memsrv dmesg")
    names = list(results[0]["ways"]) if results else []
    print("| guest | lines | run | " + " | ".join(names) + " | QEMU / nested proxy | "
          "QEMU / tcp+cache |")
    print("|---|---:|---|" + "---:|" * (len(names) + 2))
    for res in results:
        for which in ("first", "again"):
            m = {n: w.median(which) for n, w in res["ways"].items()}
            print(f"| {res['label']} | {res['lines']} | {which} | "
                  + " | ".join(f"{m[n]:.3f}" for n in names)
                  + f" | {m['QEMU stub'] / m['nested proxy']:.1f}x"
                  f" | {m['QEMU stub'] / m['proxy tcp + cache']:.1f}x |")
    for res in results:
        for which in ("first", "again"):
            m = {n: w.median(which) for n, w in res["ways"].items()}
            r_stdio = m["QEMU stub"] / m["nested proxy"]
            r_tcp = m["QEMU stub"] / m["proxy tcp + cache"]
            print(f"goal lx-dmesg through the proxy >= {GOAL:.0f}x faster than over QEMU's stub, "
                  f"{res['label']}, {which}: nested proxy (stdio, cache) {r_stdio:.1f}x: "
                  f"{'met' if r_stdio >= GOAL else 'MISSED'}; tcp + cache {r_tcp:.1f}x: "
                  f"{'met' if r_tcp >= GOAL else 'MISSED'}")
    print(f"total {time.monotonic() - t_start:.0f} s; load average "
          f"{os.getloadavg()[0]:.2f} at the end")
    if errors:
        print("FAILED:\n  " + "\n  ".join(errors))
        sys.exit(1)


if __name__ == "__main__":
    main()
