"""The GDB extension without QEMU: real GDB on an ELF core made from a
synthetic raw RAM image (gdbext_image), GDB's own `x` as the oracle for `nx`,
and the C module imported under /usr/bin/python3.

Needs the module built (`make`, which tests/run does first)."""

import glob
import json
import os
import re
import struct
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GDBEXT = os.path.join(ROOT, "gdbext")
sys.path.insert(0, HERE)

import gdbext_image as gi  # noqa: E402


def module_built():
    return glob.glob(os.path.join(GDBEXT, "nested", "_memsrv.cpython-311-*.so"))


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    assert module_built(), "gdbext/nested/_memsrv*.so is not built: run make"
    d = str(tmp_path_factory.mktemp("gdbext"))
    im = gi.Image().build()
    ram, core = im.write(d)
    elf = gi.write_symbols(d)
    return {"im": im, "ram": ram, "core": core, "elf": elf, "dir": d}


def format_built():
    """False while memsrv/format.c is the placeholder (x/FMT not built yet)."""
    p = subprocess.run(
        ["/usr/bin/python3", "-c",
         "import sys; sys.path.insert(0, %r); from nested import _memsrv as M\n"
         "try:\n    M.parse_fmt('4gx'); print('yes')\nexcept M.MemsrvError as e:\n    print(e)"
         % GDBEXT],
        capture_output=True, text=True,
    )
    assert p.returncode == 0, p.stderr
    return p.stdout.strip() == "yes"


@pytest.fixture(scope="session")
def xfmt():
    """Tests of nx need the library's x/FMT formatter (the format branch)."""
    if not format_built():
        pytest.skip("memsrv/format.c is still the placeholder here: x/FMT not built yet")


def run_gdb(cmds, workdir, cwd=None, timeout=120):
    """Runs the commands through gdbext_driver.py; returns its results."""
    cfile = os.path.join(workdir, "cmds.json")
    out = os.path.join(workdir, "out.json")
    if os.path.exists(out):
        os.unlink(out)
    with open(cfile, "w") as f:
        json.dump(cmds, f)
    # LC_ALL=C: in a UTF-8 locale GDB prints valid UTF-8 sequences inside
    # strings as characters, where ms_format_x (like GDB in the C locale)
    # prints octal escapes.
    env = dict(os.environ, GDBEXT_CMDS=cfile, GDBEXT_OUT=out, LC_ALL="C")
    p = subprocess.run(
        ["gdb", "-batch", "-nx", "-x", os.path.join(HERE, "gdbext_driver.py")],
        cwd=cwd or workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert p.returncode == 0, "gdb failed (%d):\n%s\n%s" % (p.returncode, p.stdout, p.stderr)
    with open(out) as f:
        return p, json.load(f)


def preamble(image, cr3=True):
    cmds = [
        "source %s/nested.gdb" % GDBEXT,
        "file " + image["elf"],
        "core-file " + image["core"],
        "nested attach %s --map 0:0x%x@0" % (image["ram"], gi.RAM_SIZE),
    ]
    if cr3:
        cmds.append("nested cr3 0x%x --levels 4" % gi.CR3)
    return cmds


def by_cmd(results):
    return {r["cmd"]: r for r in results}


def check_ok(results, upto):
    for r in results[:upto]:
        assert r["err"] is None, r


# --- the module under Debian's python3 (the same 3.11 as GDB's) ------------


def test_module_imports_under_usr_bin_python3(image):
    code = r"""
import sys
sys.path.insert(0, %r)
sys.path.insert(0, %r)
import gdbext_image as gi
from nested import _memsrv as M
m = M.open(%r, map="0:0x%x@0")
assert m.size == gi.RAM_SIZE, m.size
sp = m.space(cr3=gi.CR3, levels=4)
phys, lower, psize, perms, trace = sp.translate(gi.KBASE + 0x1238)
print("xlat", hex(phys), psize, perms, len(trace))
print("read", sp.read(gi.KBASE + 0xff8, 16).hex())
l2 = m.space(cr3=gi.L2_CR3, eptp=gi.EPTP)
print("l2", l2.read(gi.L2VA, 21).decode())
print("stack", l2.stack)
try:
    m.space(cr3=gi.CR3).read(0x7000000000, 8)
except M.MemsrvError as e:
    print("err", e.code == M.E_UNMAPPED, e.code_name, e.done, str(e))
rngs, bad = sp.enumerate(gi.KBASE, gi.KBASE + 0xffff)
print("enum", sum(r[1] for r in rngs), bad, rngs[0][0] == gi.KBASE, len(sp.enumerate(gi.KBASE, gi.KBASE + 0xffff, merge=False)[0]))
b = bytearray(0x10)
print("into", sp.read_into(gi.KBASE, b), bytes(b).hex())
m.close()
""" % (
        HERE,
        GDBEXT,
        image["ram"],
        gi.RAM_SIZE,
    )
    p = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    im = image["im"]
    lines = dict(l.split(" ", 1) for l in p.stdout.splitlines())
    phys = im.k_phys(gi.KBASE + 0x1238)
    assert lines["xlat"].split()[0] == hex(phys)
    assert lines["xlat"].split()[1] == "4096"
    # 4 entries of a 4-level walk, each read from physical memory.
    assert lines["xlat"].split()[3] == "4"
    a, b = im.k_phys(gi.KBASE + 0xFF8), im.k_phys(gi.KBASE + 0x1000)
    assert lines["read"] == (bytes(im.ram[a : a + 8]) + bytes(im.ram[b : b + 8])).hex()
    assert lines["l2"] == gi.MARKER[:21].decode()
    assert "'paging'" in lines["stack"] and "'EPT'" in lines["stack"]
    assert lines["err"].startswith("True unmapped 0 ")
    assert lines["enum"] == "%d 0 True %d" % (gi.K_PAGES * 0x1000, gi.K_PAGES)
    k = im.k_phys(gi.KBASE)
    assert lines["into"] == "16 " + bytes(im.ram[k : k + 16]).hex()


def test_module_missing_message(tmp_path):
    """nested.gdb from a copy without the built module says what to do."""
    import shutil

    dst = tmp_path / "gdbext"
    shutil.copytree(GDBEXT, dst, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    p = subprocess.run(
        ["gdb", "-batch", "-nx", "-ex", "source %s/nested.gdb" % dst, "-ex", "help nested"],
        capture_output=True,
        text=True,
        cwd="/",
    )
    text = p.stdout + p.stderr
    assert "_memsrv.cpython-311-x86_64-linux-gnu.so is not built" in text, text
    assert "run `make`" in text
    # A module built for another Python is named as such.
    (dst / "nested" / "_memsrv.cpython-312-x86_64-linux-gnu.so").write_bytes(b"")
    p = subprocess.run(
        ["gdb", "-batch", "-nx", "-ex", "source %s/nested.gdb" % dst],
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert "built for another Python" in p.stdout + p.stderr, p.stdout + p.stderr


# --- nx against GDB's own x ---------------------------------------------------

PHYS_CASES = [
    # (format, address expression) over physical memory (no CR3)
    ("4gx", "0x100000"),
    ("9bx", "0x100ffc"),
    ("5hx", "0x100ff8"),
    ("7wx", "0x101ff4"),
    ("3gx", "0x3ffff0"),  # runs off the end of RAM: partial line + error
    ("2s", "0x100100"),
    ("20c", "0x100100"),
    ("8xb", "0x3ffffc"),
]

FORMATS = [
    "%d%s%s" % (n, f, s)
    for n, f in ((5, "x"), (6, "d"), (4, "u"), (3, "o"), (3, "t"), (5, "z"), (9, "c"))
    for s in "bhwg"
]

VIRT_CASES = (
    [(f, "kstart+0xff0") for f in FORMATS]
    + [
        ("3a", "kstart+0x200"),
        ("2ga", "kstart+0x200"),
        ("2fg", "kstart+0x300"),
        ("3fw", "kstart+0x300"),
        ("4s", "kstart+0x100"),
        ("2sb", "kstart+0x100"),
        ("16c", "kstart+0x100"),
        ("4gx", "&kdata"),
        ("4gx", "kmiddle"),
        ("2gx", "kmiddle + 8 * 3"),
        ("6gx", "0xffffffff81000000 + 0xffe0"),  # runs off the mapping: partial + error
        ("x", "kstart"),  # sticky defaults: last format and size
        ("4dh", "kstart+0x20"),
        ("2", "kstart+0x40"),
    ]
)


def test_nx_equals_x_physical(xfmt, image):
    cmds = preamble(image, cr3=False)
    n = len(cmds)
    for fmt, expr in PHYS_CASES:
        cmds += ["x/%s %s" % (fmt, expr), "nx/%s %s" % (fmt, expr)]
    _, res = run_gdb(cmds, image["dir"])
    check_ok(res, n)
    for i in range(n, len(res), 2):
        x, nx = res[i], res[i + 1]
        assert x["out"] == nx["out"] and x["err"] == nx["err"], (x, nx)
    # The oracle really printed something, and the error cases errored.
    r = by_cmd(res)
    assert r["x/3gx 0x3ffff0"]["err"] == "Cannot access memory at address 0x400000"
    assert "Linux version 6.1.0 nested test image" in r["nx/2s 0x100100"]["out"]


def test_nx_equals_x_virtual(xfmt, image):
    cmds = preamble(image)
    n = len(cmds)
    # x and nx keep separate sticky state, so run each sequence on its own.
    for fmt, expr in VIRT_CASES:
        cmds.append("x/%s %s" % (fmt, expr))
    cmds.append("x")
    for fmt, expr in VIRT_CASES:
        cmds.append("nx/%s %s" % (fmt, expr))
    cmds.append("nx")
    _, res = run_gdb(cmds, image["dir"])
    check_ok(res, n)
    k = len(VIRT_CASES) + 1
    xs, nxs = res[n : n + k], res[n + k :]
    assert len(xs) == len(nxs) == k
    compared = 0
    for x, nx in zip(xs, nxs):
        assert x["out"] == nx["out"], "%s\n--- x:\n%s\n--- nx:\n%s" % (nx["cmd"], x["out"], nx["out"])
        assert x["err"] == nx["err"], (x, nx)
        compared += bool(x["out"])
    assert compared == k
    r = by_cmd(res)
    # Symbols appear as GDB prints them, and the off-the-end case errored.
    assert "<kstart+512>" in r["nx/3a kstart+0x200"]["out"]
    assert "<kmiddle+564>" in r["nx/3a kstart+0x200"]["out"]
    assert r["nx/6gx 0xffffffff81000000 + 0xffe0"]["err"] == (
        "Cannot access memory at address 0xffffffff81010000"
    )


def test_nested_l2_on_synthetic_ept(xfmt, image):
    """Post-crash on a synthetic EPT image: nx reads L2 memory through L2's
    page tables and the EPT, where GDB's own x fails."""
    im = image["im"]
    va = gi.L2VA
    cmds = preamble(image, cr3=False) + [
        "nested eptp 0x%x" % gi.EPTP,
        "nested cr3 0x%x --levels 4" % gi.L2_CR3,
        "nested mode l2",
        "nx/s 0x%x" % va,
        "x/s 0x%x" % va,
        "nx/8gx 0x%x" % (va + 0xFF0),
        "x/2gx 0x%x" % im.l2_phys(va + 0xFF0),
        "x/6gx 0x%x" % im.l2_phys(va + 0x1000),
        "nested vtop 0x%x" % (va + 0x1008),
        "nested p (char (*)[22])0x%x" % va,
        "nested info",
        "nested mode l1",
        "nx/s 0x%x" % va,
    ]
    _, res = run_gdb(cmds, image["dir"])
    check_ok(res, 8)
    r = res[7:]
    assert r[0]["out"] == '0x%x:\t"%s"\n' % (va, gi.MARKER[:-1].decode()), r[0]
    assert r[1]["out"] == "0x%x:\t<error: Cannot access memory at address 0x%x>\n" % (va, va), r[1]
    # nx's values are the bytes at the two scrambled physical pages.
    values = lambda out: re.findall(r"0x[0-9a-f]{16}", out)  # noqa: E731
    assert r[2]["err"] is None
    assert values(r[2]["out"]) == values(r[3]["out"]) + values(r[4]["out"])
    assert len(values(r[2]["out"])) == 8
    vt = r[5]["out"]
    assert r[5]["err"] is None, r[5]
    assert "EPT" in vt and "paging" in vt
    assert "0x%x" % im.l2_phys(va + 0x1008) in vt, vt
    assert vt.count("EPT    PTE") == 5  # 4 table reads + the final address, each through EPT
    assert "NESTED-L2-MARKER-6789" in r[6]["out"], r[6]
    assert "EPT" in r[7]["out"] and "viewing L2" in r[7]["out"], r[7]
    # Viewed as L1, the same address is not mapped.
    assert r[9]["out"] == "0x%x:\t<error: Cannot access memory at address 0x%x>\n" % (va, va), r[9]


def test_vtop_ptdump_and_p(image):
    im = image["im"]
    cmds = preamble(image) + [
        "nested vtop kstart+0x1238",
        "nested ptdump --kernel",
        "nested ptdump --user",
        "nested p (unsigned long *)(kstart + 0x200)",
        "nested p/x *(unsigned long *)(kstart + 0x200)",
        "nested p (double *)(kstart + 0x300)",
        "nested vtop 0x12345000",
    ]
    _, res = run_gdb(cmds, image["dir"])
    check_ok(res, 5 + 5)
    r = res[5:]
    phys = im.k_phys(gi.KBASE + 0x1238)
    assert "0x%x" % phys in r[0]["out"], r[0]
    assert r[0]["out"].count("paging PTE") == 1 and "PML4E" in r[0]["out"]
    # One merged range per scrambled page (unless two happen to be adjacent).
    lines = [l for l in r[1]["out"].splitlines() if l.startswith("0xffffffff81")]
    assert len(lines) >= 2
    first = lines[0].split()[0].split("-")
    assert int(first[0], 16) == gi.KBASE
    assert "0x%x" % im.kpages[0] in lines[0]
    total = sum(int(l.split()[1], 16) for l in lines)
    assert total == gi.K_PAGES * 0x1000, r[1]["out"]
    assert not any(l.startswith("0x0") for l in r[2]["out"].splitlines()), r[2]
    assert re.search(r"\$\d+ = %d\n" % (gi.KBASE + 0x1234), r[3]["out"]), r[3]
    assert re.search(r"\$\d+ = 0xffffffff81001234", r[4]["out"]), r[4]
    assert re.search(r"\$\d+ = 3\.25", r[5]["out"]), r[5]
    assert r[6]["err"] is not None and "not present" in r[6]["err"], r[6]
    assert "PML4E" in r[6]["out"], r[6]


def test_break_commands_without_target(image):
    """The Python `break` replaces the built-in (and its aliases); with
    `nested hw off` it makes software breakpoints that keep conditions."""
    cmds = [
        "source %s/nested.gdb" % GDBEXT,
        "file " + image["elf"],
        "help b",
        "help tbreak",
        "help nested",
        "help nvtop",
        "help np",
        "nested hw off",
        "b kmiddle if 1 == 1",
        "tbreak kstart",
        "nested swbreak *0x%x if $rax == 3" % (gi.KBASE + 0x10),
        "info breakpoints",
        "nested hw on",
        "nested hw",
        "complete nested mode l",
        "complete nested ptdump --k",
        "complete b kmid",
        "complete nested attach %s/guest.r" % image["dir"],
    ]
    _, res = run_gdb(cmds, image["dir"])
    for r in res:
        assert r["err"] is None, r
    r = by_cmd(res)
    assert "HARDWARE breakpoint" in r["help b"]["out"]
    assert "temporary HARDWARE breakpoint" in r["help tbreak"]["out"]
    help_nested = r["help nested"]["out"]
    for sub in ("attach", "eptp", "ncr3", "cr3", "mode", "vtop", "ptdump", "p", "swbreak", "hw"):
        assert re.search(r"^nested %s(, \w+)? -- \S" % sub, help_nested, re.M), sub
    assert "Translate an address through every dimension" in r["help nvtop"]["out"]
    assert "Print a value from nested memory" in r["help np"]["out"]
    info = r["info breakpoints"]["out"]
    assert re.search(r"^1\s+breakpoint\s+keep y.*<kmiddle", info, re.M), info
    assert re.search(r"^2\s+breakpoint\s+del\s+y.*<kstart", info, re.M), info
    assert re.search(r"^3\s+breakpoint\s+keep y.*<kstart\+16>", info, re.M), info
    assert "stop only if 1 == 1" in info and "stop only if $rax == 3" in info
    assert "hw breakpoint" not in info
    assert "hardware" in r["nested hw"]["out"]
    assert r["complete nested mode l"]["out"] == "nested mode l1\nnested mode l2\n"
    assert r["complete nested ptdump --k"]["out"] == "nested ptdump --kernel\n"
    assert r["complete b kmid"]["out"] == "b kmiddle\n"
    assert r["complete nested attach %s/guest.r" % image["dir"]]["out"] == (
        "nested attach %s/guest.ram\n" % image["dir"])


def test_nested_gdb_found_from_any_directory(image, tmp_path):
    """Relative paths, another working directory: the package is found."""
    rel = os.path.relpath(os.path.join(GDBEXT, "nested.gdb"), str(tmp_path))
    p = subprocess.run(
        ["gdb", "-batch", "-nx", "-ex", "source " + rel, "-ex", "nested info"],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
    )
    assert "memory: not attached" in p.stdout, p.stdout + p.stderr


def test_level_detection_from_dump_registers(xfmt, image):
    """QEMU's dump carries the registers of whichever level ran; with the
    EPTP given, auto mode works out which by walking pc and sp both ways."""
    im = image["im"]
    d = image["dir"]
    l2dump = os.path.join(d, "l2.dump")
    l1dump = os.path.join(d, "l1.dump")
    gi.write_qemu_dump(l2dump, bytes(im.ram), rip=gi.L2VA + 0x10, rsp=gi.L2VA + 0x3008, cr3=gi.L2_CR3)
    gi.write_qemu_dump(l1dump, bytes(im.ram), rip=gi.KBASE + 0x10, rsp=gi.KBASE + 0x2000, cr3=gi.CR3)
    cmds = [
        "source %s/nested.gdb" % GDBEXT,
        "file " + image["elf"],
        "nested attach " + l2dump,
        "nested eptp 0x%x" % gi.EPTP,
        "nested mode auto",
        "nx/s 0x%x" % gi.L2VA,
        "nested info",
        "nested attach " + l1dump,
        "nested mode auto",
        "nx/2gx kstart",
        "nested mode l2",
        "nx/2gx kstart",
    ]
    _, res = run_gdb(cmds, d)
    for r in res[:10]:
        assert r["err"] is None, r
    assert "[nested] vCPU shows L2" in res[4]["out"], res[4]
    assert "L1 0/4, L2 4/4" in res[4]["out"], res[4]
    assert gi.MARKER[:-1].decode() in res[5]["out"], res[5]
    assert "cr3: 0x%x, 4 levels (vCPU)" % gi.L2_CR3 in res[6]["out"], res[6]
    assert "[nested] vCPU shows L1" in res[8]["out"] and "L1 4/4, L2 0/4" in res[8]["out"], res[8]
    k = im.k_phys(gi.KBASE)
    want = ["0x%016x" % v for v in struct.unpack_from("<2Q", im.ram, k)]
    assert re.findall(r"\t(0x[0-9a-f]{16})", res[9]["out"]) == want, res[9]
    # Forced to L2 while the vCPU shows L1: $cr3 is L1's, and L2's was never
    # seen, so nx refuses rather than walk L2 with L1's CR3.
    assert "L2's CR3 has not been seen" in res[11]["err"], res[11]


def test_ram_file_shrinks_under_gdb(xfmt, image, tmp_path):
    """The RAM file truncated while attached (QEMU gone): an error naming the
    cause, not a SIGBUS that kills GDB."""
    import shutil

    ram = str(tmp_path / "shrinking.ram")
    shutil.copy(image["ram"], ram)
    cmds = [
        "source %s/nested.gdb" % GDBEXT,
        "nested attach %s --map 0:0x%x@0" % (ram, gi.RAM_SIZE),
        "nx/2gx 0x200000",
        "python import os; os.truncate(%r, 0x100000)" % ram,
        "nx/2gx 0x200000",
        "nx/2gx 0x1000",
        "nested p (long *)0x200000",
        "python import nested.commands; print('generation', nested.commands.S.mem.generation)",
        "nested flush",
        "python import nested.commands; print('generation', nested.commands.S.mem.generation)",
    ]
    _, res = run_gdb(cmds, str(tmp_path))
    assert res[2]["err"] is None and res[2]["out"].startswith("0x200000:\t0x"), res[2]
    # x's wording, as GDB's x would say; `nested p` gives the library's cause.
    assert res[4]["err"] == "Cannot access memory at address 0x200000", res[4]
    assert res[5]["err"] is None and res[5]["out"].startswith("0x1000:\t0x"), res[5]
    # The first fault says the file shrank; the library then drops the
    # regions the file no longer backs, so later reads say "not in RAM".
    assert res[6]["err"] is not None, res[6]
    assert "shrank" in res[6]["err"] or "is not in RAM" in res[6]["err"], res[6]
    g1 = int(res[7]["out"].split()[1])
    g2 = int(res[9]["out"].split()[1])
    assert g2 > g1, (res[7], res[9])


def test_scan(image):
    """`nested scan` runs the library's discovery when it is built in (on the
    synthetic image it finds the EPT tree), else says what to do instead."""
    probe = subprocess.run(
        ["/usr/bin/python3", "-c",
         "import sys; sys.path.insert(0, %r); from nested import _memsrv as M; "
         "print(hasattr(M.Memory, 'discover'))" % GDBEXT],
        capture_output=True, text=True,
    )
    assert probe.returncode == 0, probe.stderr
    cmds = preamble(image, cr3=False) + ["nested scan --all"]
    _, res = run_gdb(cmds, image["dir"])
    if probe.stdout.strip() == "True":
        assert res[-1]["err"] is None, res[-1]
        assert "EPT tree" in res[-1]["out"] and "0x%x" % gi.EPT_ROOT in res[-1]["out"], res[-1]
    else:
        assert "no discover module" in res[-1]["err"], res[-1]


def test_module_rejects_bad_arguments(image, tmp_path):
    """Bad paths, maps, sizes and types give exceptions with messages, never
    a crash; a closed memory refuses to be used."""
    code = r"""
import sys
sys.path.insert(0, %r)
from nested import _memsrv as M
def tryit(label, f):
    try:
        f()
        print(label, "NO ERROR")
    except M.MemsrvError as e:
        print(label, "MemsrvError", e.code_name, "|", e)
    except (ValueError, TypeError, OverflowError, BufferError, ZeroDivisionError) as e:
        print(label, type(e).__name__, "|", e)
tryit("nofile", lambda: M.open(%r + "/missing.ram"))
tryit("badmap", lambda: M.open(%r, map="zzz"))
tryit("overlap", lambda: M.open(%r, map="0:0x2000@0,0x1000:0x1000@0"))
tryit("notdump", lambda: M.open_dump(%r))
m = M.open(%r, map="0:0x%x@0")
sp = m.space()
tryit("huge", lambda: sp.read(0, 1 << 40))
tryit("negative_n", lambda: sp.read(0, -1))
tryit("past_end", lambda: sp.read(0x%x - 4, 8))
tryit("addr_type", lambda: sp.read("0", 8))
tryit("addr_too_big", lambda: sp.read(1 << 64, 8))
tryit("levels", lambda: m.space(cr3=0x1000, levels=3))
tryit("both", lambda: m.space(eptp=0x1001e, ncr3=0x1000))
tryit("badeptp", lambda: m.space(eptp=0x1000))
tryit("fmt", lambda: sp.x("4q", 0))
tryit("sym", lambda: sp.x("4gx", 0, 5))
tryit("symraise", lambda: sp.x("2a", 0x100200, lambda a: 1 / 0))
print("partial", sp.read(0x%x - 4, 8, partial=True).hex())
m.close()
tryit("closed", lambda: sp.read(0, 8))
""" % (GDBEXT, str(tmp_path), image["ram"], image["ram"], image["ram"], image["ram"],
       gi.RAM_SIZE, gi.RAM_SIZE, gi.RAM_SIZE)
    p = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    out = dict(l.split(" ", 1) for l in p.stdout.splitlines())
    assert "NO ERROR" not in p.stdout, p.stdout
    assert out["nofile"].startswith("MemsrvError") and "missing.ram" in out["nofile"]
    assert out["badmap"].startswith("MemsrvError"), out["badmap"]
    assert out["overlap"].startswith("MemsrvError"), out["overlap"]
    assert out["notdump"].startswith("MemsrvError"), out["notdump"]
    assert out["huge"].startswith("ValueError") and out["negative_n"].startswith("ValueError")
    assert out["past_end"].startswith("MemsrvError outside RAM"), out["past_end"]
    assert out["addr_type"].startswith("TypeError")
    assert out["addr_too_big"].startswith("OverflowError")
    assert out["levels"].startswith("MemsrvError") and out["both"].startswith("ValueError")
    assert out["badeptp"].startswith("MemsrvError"), out["badeptp"]
    assert out["sym"].startswith("TypeError")
    assert out["partial"] == bytes(image["im"].ram[-4:]).hex()
    assert out["closed"].startswith("ValueError | memory is closed")
    if format_built():
        assert out["fmt"].startswith("MemsrvError"), out["fmt"]
        assert out["symraise"].startswith("ZeroDivisionError"), out["symraise"]


def interactive_gdb(args, lines, cwd, timeout=60):
    """GDB at a terminal (a pty), as a user types: each of `lines` is sent
    after a prompt ("" is Enter on an empty line, which repeats). Returns
    the output after each line, echo and prompt removed."""
    import pty
    import select
    main, sub = pty.openpty()
    env = dict(os.environ, TERM="dumb", LC_ALL="C", COLUMNS="200", LINES="50")
    p = subprocess.Popen(["gdb", "-nx", "-q", "-iex", "set pagination off",
                          "-iex", "set width 0", "-iex", "set style enabled off", *args],
                         stdin=sub, stdout=sub, stderr=sub, cwd=cwd, env=env,
                         start_new_session=True)
    os.close(sub)

    def until_prompt():
        buf = b""
        deadline = __import__("time").time() + timeout
        while not buf.endswith(b"(gdb) "):
            left = deadline - __import__("time").time()
            assert left > 0, "no prompt; got %r" % buf[-500:]
            if select.select([main], [], [], left)[0]:
                buf += os.read(main, 65536)
        return buf.decode(errors="replace").replace("\r", "")

    outs = []
    try:
        until_prompt()
        for line in lines:
            os.write(main, line.encode() + b"\n")
            text = until_prompt()[: -len("(gdb) ")]
            outs.append(text.split("\n", 1)[1] if "\n" in text else "")
        os.write(main, b"quit\n")
        p.wait(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
        os.close(main)
    return outs


def test_nx_repeats_on_enter_like_x(xfmt, image):
    """At a terminal, Enter after nx continues after the last address shown,
    as Enter after x does (GDB's x is the oracle); typing the same nx again
    shows the same address again, as x does."""
    setup = ["-ex", "source %s/nested.gdb" % GDBEXT, "-ex", "file " + image["elf"],
             "-ex", "core-file " + image["core"],
             "-ex", "nested attach %s --map 0:0x%x@0" % (image["ram"], gi.RAM_SIZE)]
    seq = ["{}/2gx 0x100100", "", "", "{}/s 0x100100", "", "{}/3xb 0x100000",
           "{}/3xb 0x100000", ""]
    x = interactive_gdb(setup, [s.format("x") for s in seq], image["dir"])
    nx = interactive_gdb(setup, [s.format("nx") for s in seq], image["dir"])
    assert nx == x, (nx, x)
    # The oracle moved on at each Enter and not when the line was typed again.
    assert x[0].startswith("0x100100:") and x[1].startswith("0x100110:"), x
    assert x[2].startswith("0x100120:") and x[5] == x[6] and x[7].startswith("0x100003:"), x


def test_help_and_tab_completion(image):
    """`help nested` lists every subcommand; subcommands and their options
    complete as GDB's `complete` shows Tab would."""
    cmds = ["source %s/nested.gdb" % GDBEXT, "help nested", "complete nested a",
            "complete nested attach --m", "complete nested vtop --", "complete nested scan -",
            "complete nested ncr3 --l", "complete nested eptp no", "complete nested ptdump --k",
            "complete nested mode l", "complete nested proxy --n",
            "complete nested attach %s/cmd" % image["dir"]]
    _, res = run_gdb(cmds, image["dir"])
    check_ok(res, len(res))
    r = by_cmd(res)
    # Every command class registered under `nested` (eptp, ncr3 and cr3
    # through _Value, whose __init__ adds the prefix).
    src = "".join(open(f).read() for f in glob.glob(os.path.join(GDBEXT, "nested", "*.py")))
    subs = sorted(set(re.findall(r'__init__\(\s*"nested (\w+)"', src) +
                      re.findall(r'super\(\).__init__\("(\w+)"\)', src)))
    assert len(subs) >= 16 and "attach" in subs and "vtop" in subs, subs
    listed = re.findall(r"^nested (\w+)", r["help nested"]["out"], re.M)
    assert sorted(listed) == subs, (listed, subs)
    assert "nx" in r["help nested"]["out"]
    assert r["complete nested a"]["out"] == "nested attach\n"
    assert r["complete nested attach --m"]["out"] == "nested attach --machine\nnested attach --map\n"
    assert r["complete nested vtop --"]["out"] == "nested vtop --l1\nnested vtop --l2\n"
    assert r["complete nested scan -"]["out"] == "nested scan --all\n"
    assert r["complete nested ncr3 --l"]["out"] == "nested ncr3 --levels\n"
    assert r["complete nested eptp no"]["out"] == "nested eptp none\n"
    assert r["complete nested ptdump --k"]["out"] == "nested ptdump --kernel\n"
    assert r["complete nested mode l"]["out"] == "nested mode l1\nnested mode l2\n"
    assert r["complete nested proxy --n"]["out"] == "nested proxy --no-cache\n"
    # Not an option: file names, as before.
    assert r["complete nested attach %s/cmd" % image["dir"]]["out"] == \
        "nested attach %s/cmds.json\n" % image["dir"]
