"""memsrv against synthetic images whose truth is known by construction
(tests/fixtures/ptimage.py): 1-D paging, paging over EPT and NPT (the 2-D
walk), nested-physical spaces, every page size in both dimensions, reads
that run into unmapped pages, and hostile tables."""

import json
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "fixtures"))
import ptimage  # noqa: E402

MEMSRV = os.environ.get("MEMSRV", os.path.join(REPO, "build", "memsrv"))
HEX = re.compile(r"0x[0-9a-fA-F]+")

# (mode, first-stage levels, second-stage levels, layout)
SCENARIOS = [
    ("paging", 4, 0, "q35-4G"),
    ("paging", 5, 0, "q35-4G"),
    ("paging", 4, 0, "q35-3G-rule"),  # no .layout file: memsrv must apply the q35 rule
    ("paging", 5, 0, "small-split"),
    ("ept", 4, 4, "q35-4G"),
    ("ept", 4, 5, "q35-4G"),
    ("ept", 5, 4, "q35-4G"),
    ("ept", 5, 5, "q35-4G"),
    ("ept", 4, 4, "q35-3G-rule"),
    ("npt", 4, 4, "q35-4G"),
    ("npt", 5, 5, "q35-4G"),
    ("npt", 4, 5, "q35-3G-rule"),
    ("phys-ept", 0, 4, "q35-4G"),
    ("phys-ept", 0, 5, "q35-4G"),
    ("phys-npt", 0, 4, "q35-4G"),
    ("phys-npt", 0, 5, "q35-3G-rule"),
]


def scenario_id(s):
    return "%s-%dx%d-%s" % s


def run(args, stdin=None, timeout=120):
    r = subprocess.run([MEMSRV] + args, input=stdin, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode < 128 and r.returncode >= 0, \
        "memsrv died (rc %d): %s" % (r.returncode, r.stderr[-2000:])
    return r


@pytest.fixture(scope="module")
def memsrv_built():
    assert os.access(MEMSRV, os.X_OK), "%s is not built (make)" % MEMSRV
    return MEMSRV


def build_scenario(tmpdir, s, seed):
    mode, levels, s2, lay = s
    path = os.path.join(str(tmpdir), scenario_id(s) + ".img")
    write_layout = True
    if lay == "q35-4G":
        layout = ptimage.Layout.q35(4 * ptimage.GiB)
    elif lay == "q35-3G-rule":
        layout = ptimage.Layout.q35(3 * ptimage.GiB)
        write_layout = False
    else:
        # 48 MiB low, 80 MiB above 4 GiB, stored in the file out of order.
        layout = ptimage.Layout([(0, 48 * ptimage.MiB, 80 * ptimage.MiB),
                                 (4 * ptimage.GiB, 80 * ptimage.MiB, 0)])
    img, truth = ptimage.build(path, mode=mode, levels=levels or 4, s2_levels=s2 or 4,
                               seed=seed, layout=layout, write_layout=write_layout,
                               nprobes=3000)
    args = ptimage.memsrv_args(truth, path)
    if lay == "small-split":
        assert write_layout  # the .layout file carries this one
    return img, truth, args


@pytest.fixture(scope="module", params=SCENARIOS, ids=[scenario_id(s) for s in SCENARIOS])
def scenario(request, tmp_path_factory, memsrv_built):
    tmp = tmp_path_factory.mktemp("synth")
    seed = 1000 + SCENARIOS.index(request.param)
    img, truth, args = build_scenario(tmp, request.param, seed)
    yield img, truth, args
    for f in os.listdir(tmp):
        os.unlink(os.path.join(tmp, f))


def vtop_batch(args, addrs):
    r = run(args + ["vtop", "--brief", "-"], stdin="".join("0x%x\n" % a for a in addrs))
    lines = r.stdout.splitlines()
    assert len(lines) == len(addrs), "one line per address expected: %s" % r.stderr[-500:]
    return r, lines


def test_vtop_matches_truth(scenario):
    img, truth, args = scenario
    probes = truth["probes"]
    ok = [p for p in probes if p["ok"]]
    assert len(probes) >= 2000 and len(ok) >= 1000
    r, lines = vtop_batch(args, [p["addr"] for p in probes])
    wrong = []
    for p, line in zip(probes, lines):
        a, _, rest = line.partition(" ")
        if int(a, 16) != p["addr"]:
            wrong.append((p, line))
        elif p["ok"] and rest != "0x%x" % p["phys"]:
            wrong.append((p, line))
        elif not p["ok"] and not rest.startswith("error: "):
            wrong.append((p, line))
    assert not wrong, "%d wrong, e.g. %s" % (len(wrong), wrong[:3])
    assert r.returncode != 0  # some probes are unmapped on purpose


def test_every_page_size_seen(scenario):
    """The image really exercises every page size in every dimension."""
    img, truth, args = scenario
    ok = [p for p in truth["probes"] if p["ok"]]
    sizes = {p["page_size"] for p in ok}
    if truth["mode"] == "paging" and truth["layout"][0][1] < ptimage.GiB:
        assert sizes == {ptimage.SIZE_4K, ptimage.SIZE_2M}
    else:
        assert sizes == {ptimage.SIZE_4K, ptimage.SIZE_2M, ptimage.SIZE_1G}
    if truth["mode"] in ("ept", "npt"):
        assert {p["s2_size"] for p in ok} == {ptimage.SIZE_4K, ptimage.SIZE_2M, ptimage.SIZE_1G}
        # the second dimension also fails on its own sometimes
        assert any(p.get("why") == "unmapped (second stage)" for p in truth["probes"])


def test_vtop_errors_name_the_dimension(scenario):
    img, truth, args = scenario
    probes = [p for p in truth["probes"] if not p["ok"]][:300]
    r, lines = vtop_batch(args, [p["addr"] for p in probes])
    for p, line in zip(probes, lines):
        if p["why"] == "unmapped (second stage)":
            kind = "EPT" if "eptp" in truth else "NPT"
            assert kind in line and "not present" in line, line
        elif p["why"] == "unmapped (first stage)" and truth["mode"] in ("paging", "ept", "npt"):
            assert ("paging" in line and "not present" in line) or "canonical" in line, line


def parse_x(out):
    """GDB x output -> {address: [values]} (addresses in the left column)."""
    rows = []
    for line in out.splitlines():
        m = re.match(r"\s*(0x[0-9a-f]+)(?:\s*<[^>]*>)?:\s*(.*)$", line)
        if m:
            rows.append((int(m.group(1), 16), [int(v, 16) for v in HEX.findall(m.group(2))]))
    return rows


def x_read(args, addr, count, unit):
    letter = {1: "b", 8: "g"}[unit]
    r = run(args + ["x/%dx%s" % (count, letter), "0x%x" % addr])
    values = []
    rows = parse_x(r.stdout)
    expect_addr = addr
    for a, vals in rows:
        assert a == expect_addr, "row address 0x%x, expected 0x%x: %s" % (a, expect_addr, r.stdout)
        values += vals
        expect_addr += unit * len(vals)
    data = b"".join(v.to_bytes(unit, "little") for v in values)
    return r, data


def test_x_reads_match_bytes(scenario):
    img, truth, args = scenario
    ok = [p for p in truth["probes"] if p["ok"]]
    # spread over page sizes: up to 40 per (size, s2 size) class
    classes = {}
    for p in ok:
        classes.setdefault((p["page_size"], p.get("s2_size")), []).append(p)
    chosen = [p for c in classes.values() for p in c[:12]][:60]
    for p in chosen:
        a = p["addr"] & ~7
        want, bad = img.read_virtual(a, 16)
        r, got = x_read(args, a, 2, 8)
        if bad is None:
            assert r.returncode == 0, r.stderr
            assert got == want, "0x%x: got %s want %s" % (a, got.hex(), want.hex())
            assert want.hex() == p["bytes16"]
        else:
            assert r.returncode != 0 and got == want[:len(got)]


def test_x_stops_at_first_unmapped_byte(scenario):
    """A read running from a mapped page into an unmapped one shows the
    mapped bytes and fails naming the first unmapped address."""
    img, truth, args = scenario
    edges = []
    for p in truth["probes"]:
        if not p["ok"]:
            continue
        page_end = (p["addr"] | 0xFFF) + 1
        if not img.resolve(page_end)["ok"] and img.resolve(page_end - 1)["ok"]:
            edges.append(page_end)
        if len(edges) >= 15:
            break
    assert edges, "the image has no mapped page followed by an unmapped one"
    for end in edges:
        want, bad = img.read_virtual(end - 16, 32)
        assert bad == end and len(want) == 16
        r, got = x_read(args, end - 16, 32, 1)
        assert r.returncode != 0, r.stdout
        assert got == want, "0x%x: %s vs %s" % (end, got.hex(), want.hex())
        msg = r.stdout + r.stderr
        assert "0x%x" % end in msg, msg
        # quadwords: the one that straddles nothing still ends at the boundary
        r, got = x_read(args, end - 16, 4, 8)
        assert r.returncode != 0 and got == want
        assert "0x%x" % end in r.stdout + r.stderr


def test_ptdump_matches_leaves(scenario):
    """Every mapping ptdump lists is one the builder made, with its lower
    address and permissions, and together they cover exactly the leaves."""
    img, truth, args = scenario
    r = run(args + ["ptdump"], timeout=300)
    assert r.returncode == 0, r.stderr
    line_re = re.compile(r"^0x([0-9a-f]+)-0x([0-9a-f]+)\s+[0-9a-f]+\s+->\s+0x([0-9a-f]+)\s+"
                         r"([r-][w-][x-])(?: ([us]))?")
    ranges = []
    for line in r.stdout.splitlines():
        m = line_re.match(line)
        if m:
            ranges.append((int(m.group(1), 16), int(m.group(2), 16), int(m.group(3), 16),
                           m.group(4), m.group(5)))
    if truth["mode"] in ("phys-ept", "phys-npt"):
        leaves = [(c["gpa"], c["size"], c["l1"], c["perms"]) for c in truth["stage2"]]
    else:
        leaves = [(lf["addr"], lf["size"], lf["target"], lf["perms"]) for lf in truth["leaves"]]
    covered = sum(hi - lo + 1 for lo, hi, _, _, _ in ranges)
    assert covered == sum(s for _, s, _, _ in leaves)
    starts = sorted(r[0] for r in ranges)
    import bisect
    for addr, size, target, perms in leaves:
        i = bisect.bisect_right(starts, addr) - 1
        assert i >= 0, hex(addr)
        lo, hi, lower, rwx, us = [r for r in ranges if r[0] == starts[i]][0]
        assert lo <= addr and addr + size - 1 <= hi, "0x%x not covered" % addr
        assert lower + (addr - lo) == target, "0x%x: lower 0x%x" % (addr, lower + addr - lo)
        if truth["mode"] == "phys-npt":
            continue  # NPT leaves carry paging-style bits: r/w/x only loosely comparable
        assert rwx == perms[:3], "0x%x: perms %s, built %s" % (addr, rwx, perms)
        if us is not None and truth["mode"] in ("paging", "ept", "npt"):
            assert us == ("u" if "u" in perms else "s")


# --- hostile images ------------------------------------------------------

@pytest.mark.parametrize("case", sorted(ptimage.HOSTILE_CASES))
def test_hostile(case, tmp_path, memsrv_built):
    path = str(tmp_path / ("h-" + case + ".img"))
    img, truth = ptimage.build_hostile(path, case, seed=7)
    h = truth["hostile"]
    args = ptimage.memsrv_args(truth, path)
    assert h["expect"]
    for e in h["expect"]:
        r = run(args + ["vtop", "--brief", "0x%x" % e["addr"]], timeout=30)
        out = (r.stdout + r.stderr).strip()
        if e["result"] == "ok":
            assert r.returncode == 0 and out == "0x%x 0x%x" % (e["addr"], e["phys"]), out
            continue
        if e["result"] == "read-error":
            # the translation may stand; the bytes cannot be read
            r = run(args + ["x/2gx", "0x%x" % e["addr"]], timeout=30)
            msg = r.stdout + r.stderr
            assert r.returncode != 0, msg
            nums = {int(x, 16) for x in HEX.findall(msg)}
            assert nums & set(e["where"]), msg
            continue
        if e["result"] == "ok-or-error":
            assert out.startswith("memsrv:") or out.endswith("0x%x" % e["phys"]) or \
                " error: " in out, "wrong answer: %s (want 0x%x or an error)" % (out, e["phys"])
            continue
        assert r.returncode != 0, "expected an error, got: " + out
        assert "error" in out or out.startswith("memsrv:"), out
        nums = {int(x, 16) for x in HEX.findall(out)}
        if "level" in e:
            assert any(lv in out for lv in e["level"]), "no level %s in: %s" % (e["level"], out)
        if "value" in e:
            assert e["value"] in nums, "entry value 0x%x not in: %s" % (e["value"], out)
        if "where" in e:
            assert nums & set(e["where"]), "entry address not in: " + out
        if "where_range" in e:
            lo, hi = e["where_range"]
            assert any(lo <= n < hi for n in nums), "table address not in: " + out
    if h["ptdump"]:
        r = run(args + ["ptdump"], timeout=120)  # must end, with output or a clear error
        assert r.returncode == 0 or r.stderr.strip(), "ptdump failed silently"


def shrink_run(tmp_path):
    """Answers for 3000 probes of an EPT image; the file is cut to 1 GiB
    (the EPT tables live above 4 GiB, at file offsets >= 2 GiB) after the
    first 1500 have been answered, while memsrv keeps it mapped."""
    path = str(tmp_path / "shrink.img")
    img, truth = ptimage.build(path, mode="ept", levels=4, s2_levels=4, seed=77, nprobes=3000)
    args = ptimage.memsrv_args(truth, path)
    probes = truth["probes"]
    first, second = probes[:1500], probes[1500:]
    p = subprocess.Popen([MEMSRV] + args + ["vtop", "--brief", "-"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.stdin.write("".join("0x%x\n" % q["addr"] for q in first))
    p.stdin.flush()
    # memsrv answers a line per line: wait for the first half's answers
    # (against the whole file) before cutting it.
    head = [p.stdout.readline() for _ in first]
    os.truncate(path, 1 << 30)
    p.stdin.write("".join("0x%x\n" % q["addr"] for q in second))
    out, err = p.communicate(timeout=120)
    assert 0 <= p.returncode < 128, "memsrv died (rc %d): %s" % (p.returncode, err[-2000:])
    lines = [l.rstrip("\n") for l in head] + out.splitlines()
    assert len(lines) == len(probes), err[-500:]
    return first, second, lines[len(first):]


def test_file_shrinks_under_a_live_mapping(tmp_path, memsrv_built):
    """Later walks fail with an error, not SIGBUS; nothing differs from
    the truth; every page not translated before the cut now fails."""
    first, second, lines = shrink_run(tmp_path)
    seen = {q["addr"] >> 12 for q in first}
    for q, line in zip(second, lines):
        a, _, rest = line.partition(" ")
        assert int(a, 16) == q["addr"]
        if rest.startswith("error: "):
            continue
        assert q["ok"] and rest == "0x%x" % q["phys"], "wrong answer: %s vs %s" % (line, q)
        assert q["addr"] >> 12 in seen, "a fresh walk succeeded over vanished tables: " + line
    assert any("shrank" in l for l in lines), "no message says the file shrank"


def test_no_stale_translation_after_shrink(tmp_path, memsrv_built):
    """Once memsrv has seen the file shrink, a translation cached before the
    cut must not be served (its tables and page are gone): the RAM should
    be refreshed and the caches dropped, as after ms_ram_flush()."""
    first, second, lines = shrink_run(tmp_path)
    cut_seen = False
    stale = []
    for q, line in zip(second, lines):
        if "shrank" in line:
            cut_seen = True
        elif cut_seen and not line.partition(" ")[2].startswith("error: "):
            stale.append(line)
    assert cut_seen
    assert not stale, "%d translations served from the cache after the file shrank, e.g. %s" % (
        len(stale), stale[:3])
