"""The GDB extension on the shared real guests (conftest.py fixtures guest5
and guest4_4g, stopped VMs): GDB connects to QEMU's gdbstub, `nested
attach` finds the RAM file and its layout through QEMU's monitor, and `nx`
must print exactly what GDB's own `x` prints for kernel addresses. Also
measures nx/4096gx against x/4096gx over the gdbstub.

Sessions end with `disconnect`: a detach would restart the stopped VM."""

import os
import re
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from test_gdbext import GDBEXT, run_gdb, xfmt  # noqa: E402,F401


def shared(request, name):
    try:
        return request.getfixturevalue(name)
    except pytest.FixtureLookupError:
        pytest.skip("fixture %s is not defined (tests/integration/conftest.py not merged)" % name)


EXPRS = [
    "&linux_banner",
    "&init_task",
    "init_task.stack",
    "$sp",
    "page_offset_base + 0x1000000",
    "(char *)&init_top_pgt + 0xfe0",
]
FORMATS = ["16gx", "8xb", "6dw", "5uh", "3s", "4a", "20c"]


def compare_session(guest, tmp_path, extra=()):
    cmds = [
        "file %s/vmlinux" % guest.kernel_dir,
        "target remote %s" % guest.gdb_address,
        "source %s/nested.gdb" % GDBEXT,
        "nested attach",
        "nested info",
    ]
    cmds += list(extra)
    for e in EXPRS:
        for f in FORMATS:
            cmds += ["x/%s %s" % (f, e), "nx/%s %s" % (f, e)]
    cmds += [
        "python import time; t = time.perf_counter(); gdb.execute('x/4096gx &linux_banner', to_string=True); print('TIME x %.4f' % (time.perf_counter() - t))",
        "python import time; t = time.perf_counter(); gdb.execute('nx/4096gx &linux_banner', to_string=True); print('TIME nx %.4f' % (time.perf_counter() - t))",
        "python print('SAME', gdb.execute('x/4096gx &linux_banner', to_string=True) == gdb.execute('nx/4096gx &linux_banner', to_string=True))",
        "disconnect",
    ]
    proc, res = run_gdb(cmds, str(tmp_path), timeout=300)
    r = {x["cmd"]: x for x in res}
    for x in res[:5]:
        assert x["err"] is None, x
    att = r["nested attach"]["out"]
    assert os.path.realpath(guest.ram) in att or guest.ram in att, att
    assert "from QEMU" in att, att
    pairs = [(a, b) for a, b in zip(res, res[1:]) if a["cmd"].startswith("x/") and b["cmd"] == "n" + a["cmd"]]
    assert len(pairs) == len(EXPRS) * len(FORMATS) + sum(c.startswith("x/") for c in extra)
    for x, nx in pairs:
        assert x["out"] == nx["out"] and x["err"] == nx["err"], (x, nx)
        assert x["out"], x
    text = "".join(x["out"] for x in res[-4:])
    assert "SAME True" in text, text
    tx = float(re.search(r"TIME x ([0-9.]+)", text).group(1))
    tnx = float(re.search(r"TIME nx ([0-9.]+)", text).group(1))
    print("x/4096gx over the gdbstub: %.3f s; nx/4096gx: %.3f s (%.1fx)" % (tx, tnx, tx / max(tnx, 1e-6)))
    return r


def test_guest5_nx_equals_x(xfmt, request, tmp_path):
    g = shared(request, "guest5")
    r = compare_session(g, tmp_path)
    assert "5 levels (vCPU)" in r["nested info"]["out"], r["nested info"]["out"]
    assert "Linux version" in r["nx/3s &linux_banner"]["out"]


def test_guest4_4g_split_layout(xfmt, request, tmp_path):
    g = shared(request, "guest4_4g")
    # Physical 4 GiB + 0x1000 through the direct map: in the RAM file at 2 GiB + 0x1000.
    high = "page_offset_base + 0x100001000"
    r = compare_session(g, tmp_path, extra=["x/16gx " + high, "nx/16gx " + high])
    att = r["nested attach"]["out"]
    assert "0x100000000-0x17fffffff@0x80000000" in att, att
    assert "4 levels (vCPU)" in r["nested info"]["out"]
    assert r["x/16gx " + high]["out"] == r["nx/16gx " + high]["out"]
    assert r["x/16gx " + high]["err"] is None


def has_discover():
    """Whether the built module has Memory.discover (the discover module)."""
    p = subprocess.run(
        ["/usr/bin/python3", "-c",
         "import sys; sys.path.insert(0, %r); from nested import _memsrv as M; "
         "print(hasattr(M.Memory, 'discover'))" % GDBEXT],
        capture_output=True, text=True,
    )
    assert p.returncode == 0, p.stderr
    return p.stdout.strip() == "True"


def _symbol(kernel_dir, name):
    with open(os.path.join(kernel_dir, "System.map")) as f:
        for line in f:
            addr, _t, sym = line.split()[:3]
            if sym == name:
                return int(addr, 16)
    raise KeyError(name)


def test_guest_svm_l2_through_npt(xfmt, request, tmp_path):
    """guest_svm is stopped while L2 runs: GDB (through QEMU) cannot read
    L2's memory, nx reads it through L2's tables and the NPT, lands on the
    L1-physical page /proc/self/pagemap reported, and auto mode says L2."""
    g = shared(request, "guest_svm")
    import oracle  # the guests engineer's VMCB scan (tests/integration/oracle.py)

    l2 = g.l2
    assert l2 and g.in_wanted_place, "guest_svm not stopped in L2"
    vmcbs, hsaves = oracle.scan_vmcbs(g.ram, g.layout_regions())
    assert len(vmcbs) == 1, vmcbs
    l1 = [h for h in hsaves if h["cr4"] & 0x20 and h["rip"] >> 47]
    assert len(l1) == 1, hsaves
    npt_levels = 5 if l1[0]["cr4"] & (1 << 12) else 4
    l1_levels = npt_levels  # the NPT depth follows L1's CR4.LA57
    gva = l2["gva"]
    banner = _symbol(g.kernel_dir, "linux_banner")
    # With the library's discover module, `nested scan` finds nCR3 and L1's
    # CR3 itself; without it they are given from the test oracle's scan.
    have_scan = has_discover()
    second = "nested scan" if have_scan else "nested ncr3 0x%x --levels %d" % (
        vmcbs[0]["ncr3"], npt_levels)
    l1_cr3 = "nested cr3" if have_scan else "nested cr3 0x%x --levels %d" % (l1[0]["cr3"], l1_levels)
    cmds = [
        "target remote %s" % g.gdb_address,
        "source %s/nested.gdb" % GDBEXT,
        "nested attach",
        second,
        "nested mode auto",
        "nested info",
        "x/s 0x%x" % gva,
        "nx/s 0x%x" % gva,
        "nx/4gx 0x%x" % gva,
        "nested vtop 0x%x" % gva,
        "nested p (char (*)[22])0x%x" % gva,
        "nested mode l1",
        l1_cr3,
        "nx/s 0x%x" % banner,
        "disconnect",
    ]
    _, res = run_gdb(cmds, str(tmp_path), timeout=300)
    r = {x["cmd"]: x for x in res}
    for x in res:
        assert x["err"] is None, x
    # memsrv's scan agrees with the test oracle's (a separate Python scan).
    scan = r[second]["out"]
    assert "ncr3 0x%x, NPT %d levels" % (vmcbs[0]["ncr3"], npt_levels) in scan, scan
    assert "[nested] vCPU shows L2" in r["nested mode auto"]["out"], r["nested mode auto"]
    assert "cr3: 0x%x" % l2["cr3"] in r["nested info"]["out"], r["nested info"]
    # GDB's own x goes through QEMU, which ignores the NPT.
    assert "Cannot access memory" in r["x/s 0x%x" % gva]["out"] + str(r["x/s 0x%x" % gva]["err"])
    assert '"%s"' % l2["marker"] in r["nx/s 0x%x" % gva]["out"]
    want = re.findall(r"0x[0-9a-f]{16}", g.hmp("xp/4gx 0x%x" % l2["l1phys"]))
    got = re.findall(r"\t(0x[0-9a-f]{16})", r["nx/4gx 0x%x" % gva]["out"])
    assert got == want and len(got) == 4, (got, want)
    assert "0x%x (guest-physical)" % l2["l1phys"] in r["nested vtop 0x%x" % gva]["out"]
    assert l2["marker"] in r["nested p (char (*)[22])0x%x" % gva]["out"]
    # L1 view while the vCPU shows L2: L1's CR3 from the host-save area.
    if have_scan:
        assert "cr3: 0x%x, %d levels (host-save area" % (l1[0]["cr3"], l1_levels) in r[l1_cr3]["out"]
    assert "Linux version" in r["nx/s 0x%x" % banner]["out"], r["nx/s 0x%x" % banner]


def test_guest_svm_level_at_each_stop(xfmt, request, tmp_path):
    """Stops in L2 (stepi) and in L1 (a hardware breakpoint in L1's timer
    interrupt, which L2's exits lead to): each stop prints the level the
    vCPU shows; viewing L2 while the vCPU is in L1 uses L2's CR3 seen at the
    last stop in L2. Puts the guest back in L2 afterwards for other tests."""
    g = shared(request, "guest_svm")
    import oracle

    l2 = g.l2
    assert l2 and g.in_wanted_place, "guest_svm not stopped in L2"
    vmcbs, hsaves = oracle.scan_vmcbs(g.ram, g.layout_regions())
    l1 = [h for h in hsaves if h["cr4"] & 0x20 and h["rip"] >> 47]
    assert len(vmcbs) == 1 and len(l1) == 1, (vmcbs, hsaves)
    npt_levels = 5 if l1[0]["cr4"] & (1 << 12) else 4
    gva = l2["gva"]
    banner = _symbol(g.kernel_dir, "linux_banner")
    timer = _symbol(g.kernel_dir, "hrtimer_interrupt")
    cmds = [
        "target remote %s" % g.gdb_address,
        "source %s/nested.gdb" % GDBEXT,
        "nested attach",
        "nested ncr3 0x%x --levels %d" % (vmcbs[0]["ncr3"], npt_levels),
        "stepi",
        "stepi",
        "hbreak *0x%x" % timer,
        "continue",
        "delete",
        "p/x $cr3",
        "nested info",
        "nx/s 0x%x" % banner,
        "nested mode l2",
        "nested info",
        "nx/s 0x%x" % gva,
        "disconnect",
    ]
    try:
        _, res = run_gdb(cmds, str(tmp_path), timeout=300)
    finally:
        if hasattr(g, "_settle"):
            g._settle(200)  # back into L2 (the guests fixture's own helper)
    for x in res:
        assert x["err"] is None, x
    assert "[nested] vCPU shows L2" in res[4]["out"], res[4]
    assert "[nested] vCPU shows L2" in res[5]["out"], res[5]
    assert "[nested] vCPU shows L1" in res[7]["out"], res[7]
    cr3 = int(re.search(r"= (0x[0-9a-f]+)", res[9]["out"]).group(1), 16)
    assert cr3 != l2["cr3"]
    assert "cr3: 0x%x, %d levels (vCPU)" % (cr3, npt_levels) in res[10]["out"], res[10]
    assert "Linux version" in res[11]["out"], res[11]
    assert "cr3: 0x%x, 4 levels (seen at the last stop in L2)" % l2["cr3"] in res[13]["out"], res[13]
    assert '"%s"' % l2["marker"] in res[14]["out"], res[14]


def test_guest5_dmesg(request, tmp_path):
    """nested dmesg: the kernel log read from the RAM file by the library
    (VMCOREINFO found in memory) holds what the guest's /init logged."""
    g = shared(request, "guest5")
    cmds = [
        "target remote %s" % g.gdb_address,
        "source %s/nested.gdb" % GDBEXT,
        "nested attach",
        "nested dmesg",
        "nested dmesg -n 3",
        "nested symbols %s/System.map" % g.kernel_dir,
        "nested dmesg -n 3",
        "disconnect",
    ]
    _, res = run_gdb(cmds, str(tmp_path), timeout=300)
    for x in res:
        assert x["err"] is None, x
    full = res[3]["out"]
    assert "Linux version" in full, full[:2000]
    assert g.markers and all(m in full for m in g.markers), (g.markers, full[-2000:])
    assert res[4]["out"] == "".join(full.splitlines(True)[-3:])
    assert res[6]["out"] == res[4]["out"]
