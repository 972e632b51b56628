"""The same questions asked of one RAM file in-process (_memsrv.open) and
through memsrv servers (_memsrv.connect): every answer, value or error
(message, code, .done, .trace, .output), must be the same.

Imported by test_remote.py, and run as a script under /usr/bin/python3 and
inside `gdb -batch` (GDB's own Python): then $REMOTE_CASES names a JSON file
[{"ram": PATH, "truth": PATH.json, "servers": [[ADDRESS, TOKEN], ...]}], and
the last line printed is `remote-compare: N answers, all equal` or a failure
(GDB exits 0 when a script raises, so the caller checks that line)."""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "gdbext"))
from nested import _memsrv as M  # noqa: E402

MiB = 1 << 20


def outcome(fn):
    try:
        return ("ok", fn())
    except M.MemsrvError as e:
        return ("error", str(e), e.code, getattr(e, "done", None), getattr(e, "trace", None),
                getattr(e, "output", None))


def symbolizer(addr):
    return "sym+%d" % (addr & 0xFF) if addr & 0x10 else None


def x_full(sp, fmt, addr):
    text, nxt, f, size, err = sp.x(fmt, addr, symbolizer, format="d", size="h", full=True)
    return text, nxt, f, size, None if err is None else (str(err), err.code)


def read_into(sp, addr):
    buf = bytearray(300)
    return sp.read_into(addr, buf), bytes(buf)


def questions(sp, addr):
    """(name, callable) pairs for one address."""
    return [
        ("translate", lambda: sp.translate(addr)),
        ("translate-notrace", lambda: sp.translate(addr, trace=False)),
        ("read16", lambda: sp.read(addr, 16)),
        ("read-partial", lambda: sp.read(addr & ~0xFFF, 3 * 4096 + 5, partial=True)),
        ("read_into", lambda: read_into(sp, addr)),
        ("x/4gx", lambda: sp.x("4gx", addr)),
        ("x/3s", lambda: sp.x("/3s", addr)),
        ("x/12xb", lambda: sp.x("12xb", addr & ~0xF)),
        ("x-full-sym", lambda: x_full(sp, "40a", addr & ~7)),
        ("x-sticky", lambda: sp.x("6", addr, format="u", size="h")),
        ("vtop", lambda: sp.vtop(addr)),
    ]


def stacks(truth):
    """(space arguments, which address of a probe to ask there): the image's
    stack, its second stage alone (the nested guest's physical space), and
    guest-physical."""
    top = {}
    if truth.get("cr3") is not None:
        top.update(cr3=truth["cr3"], levels=truth["levels"])
    second = {}
    if "eptp" in truth:
        second["eptp"] = truth["eptp"]
    if "ncr3" in truth:
        second.update(ncr3=truth["ncr3"], npt_levels=truth["s2_levels"])
    out = [(dict(top, **second), "addr")]
    if second and top:
        out.append((second, "lower"))
    return out + [({}, "phys")]


def addresses(truth, which, limit):
    """The probes' addresses in one space, and for guest-physical the edges
    of RAM (into a hole, past the end)."""
    out = [p[which] for p in truth["probes"][:limit] if which in p]
    if which == "phys":
        for gpa, length, _ in truth["layout"]:
            out += [gpa, gpa + length - 8, gpa + length, gpa + length + 4096]
        out += [(1 << 52) - 8, (1 << 64) - 8]
    return out


def compare(ram, truth, servers, limit=400):
    """Asks every question of the in-process open and of each server;
    returns the number of answers compared, raises AssertionError on the
    first difference."""
    local = M.open(ram)
    remotes = [M.connect(address, token) for address, token in servers]
    n = 0
    try:
        for kw, which in stacks(truth):
            spaces = [m.space(**kw) for m in [local] + remotes]
            for sp in spaces[1:]:
                assert sp.describe() == spaces[0].describe() and sp.stack == spaces[0].stack
            for addr in addresses(truth, which, limit):
                per_space = [[(name, outcome(fn)) for name, fn in questions(sp, addr)]
                             for sp in spaces]
                for (address, _), got in zip(servers, per_space[1:]):
                    for want, have in zip(per_space[0], got):
                        assert want == have, "%s %r at 0x%x via %s:\n in-process: %r\n server: %r" % (
                            want[0], kw, addr, address, want[1], have[1])
                        n += 1
            if kw:
                want = outcome(lambda: spaces[0].ptdump())
                assert want[0] == "ok", want
                for sp in spaces[1:]:
                    assert outcome(lambda: sp.ptdump()) == want, kw
                    n += 1
            want = outcome(lambda: spaces[0].ptdump(0, 1 << 30))
            for sp in spaces[1:]:
                assert outcome(lambda: sp.ptdump(0, 1 << 30)) == want, kw
                n += 1
    finally:
        for m in remotes + [local]:
            m.close()
    return n


def main():
    with open(os.environ["REMOTE_CASES"]) as f:
        cases = json.load(f)
    total = 0
    for case in cases:
        with open(case["truth"]) as f:
            truth = json.load(f)
        total += compare(case["ram"], truth, [tuple(s) for s in case["servers"]],
                         case.get("limit", 400))
    print("remote-compare: %d answers, all equal" % total)


if __name__ == "__main__":
    try:
        main()
    except BaseException as e:  # noqa: BLE001 - reported, and the caller checks the last line
        import traceback

        traceback.print_exc(file=sys.stdout)
        print("remote-compare: FAILED: %s" % str(e).splitlines()[0] if str(e) else repr(e))
        sys.stdout.flush()
        os._exit(1)
