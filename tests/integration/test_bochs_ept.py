"""memsrv on a real kvm_intel EPT (issue 16): L1's RAM dumped by Bochs while
kvm_intel runs tests/guest/l2kvm's L2 (scripts/bochs-ept-image, built once
and cached in ~/.cache/nested), with Bochs's debugger as the oracle: `page`
printed every guest and EPT entry of the marker's 2-D walk and the
L1-physical page, `x` the marker's bytes, `creg` L2's CR3.

`memsrv discover` must rank the true EPT root first and tell its depth (4)
without a kernel to prove it (L2 is no Linux): from the tree's own leaves
and the EPTP in the VMCS Bochs keeps in L1's RAM."""

import json
import os
import re
import shutil
import subprocess

import pytest

import guests
import oracle

pytestmark = pytest.mark.skipif(
    shutil.which("bochs") is None or shutil.which("genisoimage") is None,
    reason="bochs not installed (scripts/install-deps installs it)")


@pytest.fixture(scope="module")
def bochs_ept():
    """The image directory and its image.json, built on first use (about
    25 s on 2 cores)."""
    r = subprocess.run([os.path.join(guests.ROOT, "scripts", "bochs-ept-image")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    d = r.stdout.strip().splitlines()[-1]
    with open(os.path.join(d, "image.json")) as f:
        info = json.load(f)
    info["dir"] = d
    info["ram"] = os.path.join(d, "ram.bin")
    with open(os.path.join(d, "page.txt")) as f:
        info["page"] = f.read()
    with open(os.path.join(d, "x.txt")) as f:
        info["x"] = f.read()
    with open(os.path.join(d, "creg.txt")) as f:
        info["creg"] = f.read()
    guests.report(f"bochs_ept: image {d} (built in {info['seconds']} s when made)")
    return info


def _ram_args(img):
    # the dump is flat: file offset = L1-physical address
    return ["--ram", img["ram"], "--map", f"0:{img['mem']:#x}@0"]


def _discover(img):
    r = oracle.memsrv(_ram_args(img) + ["discover"], check=True)
    rows = re.findall(r"^(\d+)\s+(\S+(?: tree)?)\s+0x([0-9a-f]+)\s+(-?\d+)\s+(.*)\n    (.*)$",
                      r.stdout, re.M)
    assert rows, r.stdout
    return r.stdout, [dict(kind=k, gpa=int(g, 16), score=int(s), use=u, evidence=e)
                      for _, k, g, s, u, e in rows]


def _bochs_walk(page):
    """The entry values of Bochs's `page` output, in its order: for each
    guest level the EPT walk of its table then its entry, then the EPT walk
    of the final page."""
    return [int(v, 16) for v in re.findall(r"^(?:EPT )?\s*(?:PML4|PDPE|PDE|PTE): 0x([0-9a-f]+)",
                                           page, re.M)]


def test_discover_decides_depth(bochs_ept):
    img = bochs_ept
    # L2 was running: Bochs stopped in it, with l2kvm's CR3
    cr3 = int(re.search(r"CR3=0x([0-9a-f]+)", img["creg"]).group(1), 16)
    assert cr3 == img["l2_cr3"] == 0x1000, img["creg"]
    out, rows = _discover(img)
    best = rows[0]
    assert best["kind"] == "EPT tree", out
    m = re.fullmatch(r"--eptp 0x([0-9a-f]+)", best["use"].strip())
    assert m, f"the best candidate's depth is not told: {out}"
    eptp = int(m.group(1), 16)
    assert eptp & ~0xfff == best["gpa"] and (eptp >> 3) & 7 == 3 and eptp & 7 == 6, hex(eptp)
    assert "depth not known" not in best["evidence"], out
    assert "its leaves say 4-level" in best["evidence"], out
    assert re.search(r"EPTP 0x%x \(4-level\) in RAM at 0x[0-9a-f]+" % eptp, best["evidence"]), out
    assert "depth 4 from its leaves and EPTP" in best["evidence"], out
    # every other EPT-shaped table ranks below it
    for r in rows[1:]:
        assert r["score"] < best["score"], out
    guests.report(f"bochs_ept: discover: {best['kind']} at {best['gpa']:#x} --eptp {eptp:#x} "
                  f"score {best['score']}, {len(rows)} candidates")


def test_marker_through_ept(bochs_ept):
    img = bochs_ept
    _, rows = _discover(img)
    eptp = int(re.search(r"--eptp 0x([0-9a-f]+)", rows[0]["use"]).group(1), 16)
    va = img["marker_va"]
    args = _ram_args(img) + ["--eptp", hex(eptp), "--cr3", hex(img["l2_cr3"]), "--levels", "4"]
    # the whole 2-D walk: the entries Bochs's walk read, in its order
    r = oracle.memsrv(args + ["vtop", hex(va)], check=True)
    ours = [int(v, 16) for v in re.findall(r"= 0x([0-9a-f]+)", r.stdout)]
    theirs = _bochs_walk(img["page"])
    assert len(theirs) == 4 * 5 + 4, img["page"]
    assert ours == theirs, f"memsrv:\n{r.stdout}\nBochs:\n{img['page']}"
    m = re.search(r"-> 0x([0-9a-f]+) \(guest-physical\)", r.stdout)
    assert m and int(m.group(1), 16) == img["l1_phys"], (r.stdout, hex(img["l1_phys"]))
    # the marker's bytes, as Bochs's x read them through the same walk
    # "0x00005a5a00042000 <bogus+       0>:\t0x4c2d44455453454e\t0x52454b52414d2d32"
    qwords = [int(w, 16) for line in re.findall(r">:(.*)$", img["x"], re.M)
              for w in line.split()]
    bochs_bytes = b"".join(q.to_bytes(8, "little") for q in qwords)
    marker = bochs_bytes.split(b"\0")[0].decode()
    assert marker == "NESTED-L2-MARKER-6789", img["x"]
    r = oracle.memsrv(args + ["x/s", hex(va)], check=True)
    assert f'"{marker}"' in r.stdout, r.stdout
    # and the L1-physical page holds it, read without any translation
    r = oracle.memsrv(_ram_args(img) + ["x/s", hex(img["l1_phys"])], check=True)
    assert f'"{marker}"' in r.stdout, r.stdout
