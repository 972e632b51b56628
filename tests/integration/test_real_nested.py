"""Nested SVM on a real stack: L0 = QEMU TCG, L1 = Debian kernel with
kvm-amd, L2 = tests/guest/l2kvm.c (long mode, its own 4-level tables).
With the VM stopped while L2 runs, the VMCB is found by scanning the RAM
file (oracle.scan_vmcbs, the scan of notes/qemu.md section 5, done in
Python because memsrv has no `discover` command yet), and memsrv must read
L2's marker through L2 paging + the NPT, landing on the L1-physical page
that /proc/self/pagemap reported inside L1. QEMU itself cannot: its
gva2gpa says Unmapped (the negative oracle)."""

import struct

import guests
import oracle
import qmp as qmplib


def _find(g):
    vmcbs, hsaves = oracle.scan_vmcbs(g.ram, g.layout_regions())
    return vmcbs, hsaves


def test_nested_l2_marker(guest_svm):
    g = guest_svm
    l2 = g.l2
    assert l2 and l2["marker"] == "NESTED-L2-MARKER-6789", g.serial()[-2000:]
    assert l2["gva"] == 0x5a5a00042000 and l2["l2gpa"] == 0x2f3000 and l2["l1phys"], l2

    vmcbs, hsaves = _find(g)
    assert len(vmcbs) == 1, f"VMCB candidates: {vmcbs}"
    vmcb = vmcbs[0]
    assert vmcb["cr3"] == l2["cr3"], f"VMCB L2 CR3 {vmcb['cr3']:#x} vs l2kvm {l2['cr3']:#x}"
    # The NPT depth follows L1's CR4.LA57, read from the host-save area
    # (L1's state while the CPU is in L2), never guessed.
    l1 = [h for h in hsaves if h["cr4"] & 0x20 and h["rip"] >> 47]
    assert len(l1) == 1, f"HSAVE candidates: {hsaves}"
    npt_levels = 5 if l1[0]["cr4"] & (1 << 12) else 4
    assert npt_levels == 5  # -cpu max: LA57 in L1
    guests.report(f"nested: VMCB at GPA {vmcb['gpa']:#x} nCR3={vmcb['ncr3']:#x} "
                  f"L2 CR3={vmcb['cr3']:#x} exitcode={vmcb['exitcode']:#x}; HSAVE at "
                  f"{l1[0]['gpa']:#x} L1 CR3={l1[0]['cr3']:#x} CR4={l1[0]['cr4']:#x} "
                  f"rip={l1[0]['rip']:#x}; vCPU CR3 at stop {g.cr3:#x}")

    nested = ["--ram", g.ram, "--cr3", hex(vmcb["cr3"]), "--levels", "4",
              "--ncr3", hex(vmcb["ncr3"]), "--npt-levels", str(npt_levels)]
    # Translation: GVA -> L2-GPA -> L1-phys must equal pagemap's answer.
    gva = l2["gva"]
    addrs = [gva, gva + l2["preset_off"], gva + 0xff8]
    got = oracle.vtop_batch(nested, addrs)
    want = {a: l2["l1phys"] + (a - gva) for a in addrs}
    assert all(got[a] == ("ok", want[a]) for a in addrs), (got, {hex(a): hex(w) for a, w in want.items()})
    # Second stage alone: L2-GPAs of L2's page tables -> pagemap's L1-phys.
    tables = l2["tables"]
    got = oracle.vtop_batch(["--ram", g.ram, "--ncr3", hex(vmcb["ncr3"]),
                             "--npt-levels", str(npt_levels)], list(tables))
    assert all(got[a] == ("ok", p) for a, p in tables.items()), (got, tables)

    # Bytes: memsrv through both stages == QEMU's xp at the pagemap L1-phys.
    xp = qmplib.hmp_x_bytes(g.hmp(f"xp/4gx {l2['l1phys']:#x}"))
    assert xp.startswith(l2["marker"].encode()), xp
    r = oracle.memsrv(nested + ["x/s", hex(gva)])
    assert r.returncode == 0 and l2["marker"] in r.stdout, (r.stdout, r.stderr)
    r = oracle.memsrv(nested + ["x/s", hex(gva + l2["preset_off"])])
    assert r.returncode == 0 and l2["preset"] in r.stdout, (r.stdout, r.stderr)
    words, out = oracle.parse_x_gx(oracle.memsrv(nested + ["x/4gx", hex(gva)]).stdout), None
    assert words == xp, (words, xp)

    # The negative oracle. The stop caught the vCPU in L2 (the fixture
    # retries until it does), so QEMU shows L2's registers as if they were
    # the machine's, and cannot translate the L2 address; its physical read
    # of the L2-GPA silently returns L1's unrelated bytes.
    assert g.in_wanted_place and g.cr3 == l2["cr3"], (hex(g.cr3), hex(g.cr4))
    wrong = qmplib.hmp_x_bytes(g.hmp(f"xp/4gx {l2['l2gpa']:#x}"))
    assert wrong != xp
    assert qmplib.hmp_gva2gpa(g.hmp(f"gva2gpa {gva:#x}")) is None
    assert "Cannot access memory" in g.hmp(f"x/2gx {gva:#x}")


def test_nested_walks_match_python_walker(guest_svm):
    """Every page of L2's 4 MiB RAM through the NPT (mapped or not: KVM
    builds NPT entries only for pages L2 touched), and every 4 KiB page
    of L2's identity-mapped first 2 MiB plus the marker page through both
    stages: memsrv vtop --brief must equal an independent Python walker
    (whose answers for the pages pagemap reported are checked too)."""
    g = guest_svm
    l2 = g.l2
    vmcbs, hsaves = _find(g)
    assert len(vmcbs) == 1, vmcbs
    ncr3 = vmcbs[0]["ncr3"]
    l1 = [h for h in hsaves if h["cr4"] & 0x20 and h["rip"] >> 47]
    assert len(l1) == 1, hsaves
    npt_levels = 5 if l1[0]["cr4"] & (1 << 12) else 4
    ram = oracle.RamFile(g.ram, g.layout_regions())
    try:
        npt, walk2d = oracle.nested_walker(ram, ncr3, npt_levels)
        # The Python walker agrees with pagemap where pagemap is known.
        for l2gpa, l1phys in l2["tables"].items():
            assert npt(l2gpa) == l1phys, (hex(l2gpa), hex(l1phys))
        assert walk2d(l2["cr3"], l2["gva"]) == l2["l1phys"]
        gpas = [a + 0x18 for a in range(0, 4 << 20, 4096)] + [(4 << 20) + 0x1000, 1 << 32]
        got = oracle.vtop_batch(["--ram", g.ram, "--ncr3", hex(ncr3), "--npt-levels",
                                 str(npt_levels)], gpas)
        want = {a: npt(a) for a in gpas}
        bad = [(a, str(want[a]), got[a]) for a in gpas
               if (want[a] is None) != (got[a][0] == "err") or
               (want[a] is not None and got[a] != ("ok", want[a]))]
        gvas = [a + 0x20 for a in range(0, 2 << 20, 4096)] + [l2["gva"] + 0x40,
                                                              l2["gva"] + 0x1000, 0x7fff_0000_0000]
        got2 = oracle.vtop_batch(["--ram", g.ram, "--cr3", hex(l2["cr3"]), "--levels", "4",
                                  "--ncr3", hex(ncr3), "--npt-levels", str(npt_levels)], gvas)
        want2 = {a: walk2d(l2["cr3"], a) for a in gvas}
        bad += [(a, str(want2[a]), got2[a]) for a in gvas
                if (want2[a] is None) != (got2[a][0] == "err") or
                (want2[a] is not None and got2[a] != ("ok", want2[a]))]
    finally:
        ram.close()
    mapped = sum(v is not None for v in list(want.values()) + list(want2.values()))
    msg = (f"nested: {len(gpas)} L2-GPAs (NPT) and {len(gvas)} L2 GVAs (2-D) compared with "
           f"the Python walker, {mapped} mapped")
    guests.report(msg + f", {len(bad)} mismatches")
    # KVM fills the NPT lazily (on L2's NPT faults), so only the pages L2
    # touched are mapped: its tables, code, stack and marker page.
    assert mapped >= 10, msg
    assert not bad, msg + "; " + oracle.fmt_bad(bad)


def test_nested_auto(guest_svm, tmp_path):
    """--nested auto takes discover's best candidate (the VMCB of the running
    L2, NPT depth from the HSAVE), says so on stderr, and reads L2's marker
    through L2 paging + the NPT; the choice matches the Python scan. On a
    RAM file with two equally good VMCBs it refuses, naming both."""
    g, l2 = guest_svm, guest_svm.l2
    r = oracle.memsrv(["--ram", g.ram, "--nested", "auto", "x/s", hex(l2["gva"])])
    assert r.returncode == 0 and l2["marker"] in r.stdout, (r.stdout, r.stderr)
    vmcbs, _ = _find(g)
    assert len(vmcbs) == 1
    said = r.stderr.strip()
    assert said.startswith("memsrv: --nested auto: VMCB at GPA"), said
    for opt in [f"--ncr3 {vmcbs[0]['ncr3']:#x}", "--npt-levels 5", f"--cr3 {l2['cr3']:#x}",
                "--levels 4"]:
        assert opt in said, (opt, said)
    # An explicit --cr3 wins over the candidate's; a conflicting stage is refused.
    r = oracle.memsrv(["--ram", g.ram, "--nested", "auto", "--cr3", hex(l2["cr3"]), "vtop",
                       "--brief", hex(l2["gva"])])
    assert r.returncode == 0 and r.stdout.split()[1] == hex(l2["l1phys"]), (r.stdout, r.stderr)
    r = oracle.memsrv(["--ram", g.ram, "--nested", "auto", "--eptp", "0x1000", "info"])
    assert r.returncode == 1 and "drop --eptp" in r.stderr, r.stderr
    r = oracle.memsrv(["--ram", g.ram, "--nested", "manual", "info"])
    assert r.returncode == 2 and "--nested takes auto" in r.stderr, r.stderr

    # A second VMCB as good as the first: a copy of the VMCB page whose nCR3
    # points to a copy of the NPT root page (same tables below, so the same
    # translations and score, but another root): no clear best.
    regions = g.layout_regions()
    vmcb, size = vmcbs[0], 1 << 30
    copy = tmp_path / "two.ram"
    with open(g.ram, "rb") as src, open(copy, "wb") as dst:
        while chunk := src.read(1 << 24):
            dst.write(chunk)
    with open(copy, "r+b") as f:
        def page(gpa):
            f.seek(qmplib.gpa_to_offset(regions, gpa))
            return bytearray(f.read(4096))
        vmcb_page, root_page = page(vmcb["gpa"]), page(vmcb["ncr3"] & ~0xfff)
        free = _free_pages(f, size, 2)
        struct.pack_into("<Q", vmcb_page, 0xb0, free[1] | (vmcb["ncr3"] & 0xfff))
        for off, data in ((free[0], vmcb_page), (free[1], root_page)):
            f.seek(off)
            f.write(data)
    r = oracle.memsrv(["--ram", str(copy), "--map", f"0:{size:#x}@0", "discover"])
    assert r.stdout.count("VMCB") == 2, r.stdout
    r = oracle.memsrv(["--ram", str(copy), "--map", f"0:{size:#x}@0", "--nested", "auto", "info"])
    assert r.returncode == 1 and "no clear best candidate" in r.stderr, (r.stdout, r.stderr)
    assert f"VMCB at {vmcb['gpa']:#x}" in r.stderr and f"VMCB at {free[0]:#x}" in r.stderr, r.stderr


def _free_pages(f, size, count):
    """Zero pages high in RAM (the guest's RAM file maps GPA 0 at offset 0
    below 2 GiB), far from what the guest used at boot."""
    found = []
    for off in range(size - (64 << 20), 16 << 20, -4096):
        f.seek(off)
        if f.read(4096) == bytes(4096):
            found.append(off)
            if len(found) == count:
                return found
    raise AssertionError("no free pages")
