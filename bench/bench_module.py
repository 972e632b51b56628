#!/usr/bin/python3
"""Per-call latency of an 8-byte read from Python (the _memsrv module):
in-process (_memsrv.open) against a `memsrv serve` process over its UNIX
socket and over TCP loopback (_memsrv.connect), on guest-physical memory and
on an L2 virtual address (L2 paging over EPT, the 2-D walk; translations
cached on both sides). p50/p99 of single calls, and each against in-process.

Run by bench/run after `make` (needs build/memsrv and the built module)."""

import os
import random
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "gdbext"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import gdbext_image as gi  # noqa: E402
from nested import _memsrv as M  # noqa: E402

SAMPLES = 20000
TOKEN = "bench"


def serve(ram, *args):
    p = subprocess.Popen([os.path.join(ROOT, "build", "memsrv"), "serve", "--ram", ram,
                          "--map", "0:0x%x@0" % gi.RAM_SIZE] + list(args),
                         stderr=subprocess.PIPE, text=True)
    line = p.stderr.readline()
    if "serving" not in line:
        raise SystemExit("bench_module: memsrv serve failed: " + line)
    m = re.search(r"\(port (\d+)\)", line)
    return p, int(m.group(1)) if m else None


def percentiles(sp, addrs):
    t = []
    clock = time.perf_counter_ns
    for a in addrs:
        t0 = clock()
        sp.read(a, 8)
        t.append(clock() - t0)
    t.sort()
    return t[len(t) // 2] / 1000, t[len(t) * 99 // 100] / 1000


def main():
    d = tempfile.mkdtemp(prefix="bench-module-")
    im = gi.Image().build()
    ram, _ = im.write(d)
    tok = os.path.join(d, "token")
    with open(tok, "w") as f:
        f.write(TOKEN + "\n")
    sock = os.path.join(d, "s.sock")
    unix, _ = serve(ram, "--socket", sock)
    tcp, port = serve(ram, "--listen", "127.0.0.1:0", "--token-file", tok)
    try:
        mems = [("in-process", M.open(ram, map="0:0x%x@0" % gi.RAM_SIZE)),
                ("UNIX socket", M.connect(sock)),
                ("TCP loopback", M.connect("tcp:127.0.0.1:%d" % port, TOKEN))]
        rng = random.Random(1)
        phys = [rng.randrange(0, gi.RAM_SIZE - 8) for _ in range(SAMPLES)]
        l2 = [gi.L2VA + rng.randrange(0, gi.L2VA_PAGES * 0x1000 - 8) for _ in range(SAMPLES)]
        print("8-byte read from Python, one thread, %d calls each (p50 / p99, microseconds):"
              % SAMPLES)
        for what, kw, addrs in (("guest-physical", {}, phys),
                                ("L2 virtual (paging over EPT)",
                                 {"cr3": gi.L2_CR3, "eptp": gi.EPTP}, l2)):
            print("  %s" % what)
            base = None
            for name, m in mems:
                sp = m.space(**kw)
                percentiles(sp, addrs[:2000])  # warm caches and sockets
                p50, p99 = percentiles(sp, addrs)
                base = base or p50
                print("    %-14s %8.2f / %8.2f   %6.1fx in-process" % (name, p50, p99, p50 / base))
        for _, m in mems:
            m.close()
    finally:
        for p in (unix, tcp):
            p.terminate()
            p.wait(timeout=10)
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))
        os.rmdir(d)


if __name__ == "__main__":
    main()
