"""A real Linux nested under real KVM: L0 = QEMU TCG, L1 = the Debian kernel
with kvm-amd running Debian's QEMU with -accel kvm, L2 = the same Debian
kernel (KASLR on) with its own busybox /init (tests/guest/l2init), which
printed its own oracles on L1's console before the stop (guests.parse_l2linux).

Everything is read from L1's RAM file. The truth about the VMCB comes from a
Python scan and walker (oracle.scan_vmcbs, oracle.nested_walker): the VMCB
whose nCR3 and L2 CR3 map L2's linux_banner (at the address L2's own
/proc/kallsyms gave) to "Linux version" bytes, at the NPT depth L1's -cpu
implies (LA57 in L1: 5-level NPT)."""

import re

import pytest

import oracle

FIXTURES = ["guest_l2linux", "guest_l2linux4"]


def _npt_levels(g):
    return 4 if "la57=off" in g.cpu else 5


VMCB_SAVE_CR3 = 0x550


def _truth(g):
    """(VMCB dict, NPT depth) of the first VMCB that reaches L2's banner (the
    SMP fixture has one per L2 vCPU, all with the same nCR3). The VMCB's page
    and nCR3 stay; its saved CR3 is L2's at the last #VMEXIT and moves
    whenever the guest ran (other tests resume it), so it is read anew."""
    v, levels = _truths(g)
    return v[0], levels


def _truths(g):
    """([VMCB dict...], NPT depth): every VMCB that reaches L2's banner,
    one per L2 vCPU, their saved CR3s read anew (see _truth)."""
    if getattr(g, "_l2truth", None):
        vs, levels = g._l2truth
        ram = oracle.RamFile(g.ram, g.layout_regions())
        try:
            vs = [dict(v, cr3=int.from_bytes(ram.read(v["gpa"] + VMCB_SAVE_CR3, 8), "little"))
                  for v in vs]
        finally:
            ram.close()
        return vs, levels
    l2 = g.l2linux
    banner = l2["kallsyms"]["linux_banner"]
    levels = _npt_levels(g)
    regions = g.layout_regions()
    vmcbs, _hsaves = oracle.scan_vmcbs(g.ram, regions)
    ram = oracle.RamFile(g.ram, regions)
    try:
        hits = []
        for v in vmcbs:
            _npt, walk2d = oracle.nested_walker(ram, v["ncr3"], levels)
            phys = walk2d(v["cr3"], banner, 4)
            if phys is not None and ram.read(phys, 14) == b"Linux version ":
                hits.append(v)
    finally:
        ram.close()
    # one VMCB per L2 vCPU, all over the one NPT of L2
    assert len(hits) == getattr(g, "smp", 1), f"VMCBs reaching L2's banner: {hits} (all: {vmcbs})"
    assert len({v["ncr3"] for v in hits}) == 1, hits
    g._l2truth = (hits, levels)
    return g._l2truth


def _nested(g, paging=False):
    v, levels = _truth(g)
    args = ["--ram", g.ram, "--ncr3", hex(v["ncr3"]), "--npt-levels", str(levels)]
    return args + (["--cr3", hex(v["cr3"]), "--levels", "4"] if paging else [])


def _discover_first(g):
    r = oracle.memsrv(["discover", "--ram", g.ram, "5"], check=True)
    rows = re.findall(r"^1\s+(VMCB|HSAVE|vmcs12|EPT tree)\s+0x([0-9a-f]+)\s+(-?\d+)\s+(.*)$",
                      r.stdout, re.M)
    assert rows, r.stdout
    kind, page, _score, use = rows[0]
    opts = dict(re.findall(r"--([\w-]+) (0x[0-9a-f]+|\d+)", use))
    return kind, int(page, 16), opts, r.stdout


def _check_discover(g):
    vs, levels = _truths(g)
    kind, page, opts, out = _discover_first(g)
    v = [v for v in vs if v["gpa"] == page]
    assert kind == "VMCB" and v, out
    v = v[0]
    assert int(opts["ncr3"], 16) == v["ncr3"], out
    assert opts.get("npt-levels") == str(levels), out
    assert int(opts["cr3"], 16) == v["cr3"] and opts["levels"] == "4", out


@pytest.fixture(params=FIXTURES)
def l2g(request):
    return request.getfixturevalue(request.param)


def test_l2_printed_its_oracles(l2g):
    l2 = l2g.l2linux
    assert l2["marker"] == "L2-LINUX-41234", l2l_tail(l2g)
    assert set(l2["kallsyms"]) == {"_text", "linux_banner", "init_task", "__per_cpu_offset"}, \
        l2["kallsyms"]
    # KASLR on in L2: its text is not at the default address.
    assert l2["kallsyms"]["_text"] != oracle.TEXT_NOKASLR
    assert l2["version"].startswith("Linux version "), l2["version"]
    assert l2["user"] and l2["maps"] and l2["sysrq"] and l2["ps"] and l2["modules"]


def l2l_tail(g):
    return g.serial()[-3000:]


def test_discover_ranks_the_true_vmcb_first(l2g):
    _check_discover(l2g)


def test_dmesg_through_the_npt(l2g):
    l2 = l2g.l2linux
    r = oracle.memsrv(_nested(l2g) + ["dmesg"], check=True)
    lines = [ln.rstrip() for ln in r.stdout.splitlines()]
    # The kernel's own "l2lab:" lines, as L2's dmesg printed them (no timestamps).
    ours = [re.sub(r"^\[[^]]*\] ", "", ln) for ln in lines if "l2lab:" in ln]
    assert ours == l2["dmesg"], (ours, l2["dmesg"])
    assert f"l2lab: marker {l2['marker']}" in ours
    # The user process's sysrq-t trace, timestamps and all, as L2 printed it.
    missing = [s for s in l2["sysrq"] if s.rstrip() not in lines]
    assert not missing, (missing, lines[-40:])


def test_sym_is_l2_kallsyms(l2g):
    _check_sym(l2g)


def _check_sym(l2g):
    ks = l2g.l2linux["kallsyms"]
    names = sorted(ks)
    r = oracle.memsrv(_nested(l2g) + ["sym"] + names, check=True)
    got = {name: int(a, 16) for a, name in re.findall(r"^(0x[0-9a-f]+) (\S+)$", r.stdout, re.M)}
    assert got == ks, (r.stdout, ks)


def test_info_names_l2_kernel(l2g):
    """memsrv info on L2's space: L2's release (its /proc/version), its
    KASLR slide (its _text less the vmlinux's), symbols from its kallsyms."""
    r = oracle.memsrv(_nested(l2g) + ["info"], check=True)
    release = l2g.l2linux["version"].split()[2]
    slide = l2g.l2linux["kallsyms"]["_text"] - oracle.symbol(l2g, "_text")
    assert f"kernel: Linux {release}, KASLR slide {slide:#x}," in r.stdout, r.stdout
    assert re.search(r"^  symbols: \d{5,} from the kernel.s kallsyms$", r.stdout, re.M), r.stdout


def test_x_reads_l2_banner(guest_l2linux):
    g = guest_l2linux
    r = oracle.memsrv(_nested(g, paging=True) + ["x/s", "linux_banner"], check=True)
    # x/s shows the first 200 characters, escaped; /proc/version is the banner.
    m = re.search(r'<linux_banner>:\s+"(.*?)"', r.stdout)
    assert m and g.l2linux["version"].startswith(m.group(1)), (r.stdout, g.l2linux["version"])


def test_ps_and_bt(guest_l2linux):
    _check_ps_and_bt(guest_l2linux)


def _check_ps_and_bt(g):
    """ps: L2's kernel threads and user process as L2's own ps listed them;
    bt of that process: its sysrq-t trace's reliable frames, in order."""
    l2 = g.l2linux
    vmlinux = ["--vmlinux", f"{g.kernel_dir}/vmlinux"]
    r = oracle.memsrv(_nested(g) + vmlinux + ["ps"], check=True)
    tasks = {int(p): comm for p, comm in re.findall(r"^\s*(\d+)\s+\d+\s+\S+\s+\S+\s+(\S+)$",
                                                     r.stdout, re.M)}
    # Kernel threads and the user process, as L2's ps listed them (its own
    # short-lived ps/sed pipeline aside); kworker names change with their work.
    for ln in l2["ps"][1:]:
        pid, _user, cmd = ln.split(None, 2)
        m = re.fullmatch(r"\[([^]]+)\]", cmd)
        if m and not m.group(1).startswith("kworker"):
            assert tasks.get(int(pid)) == m.group(1), (ln, r.stdout)
    user = l2["user"]
    assert tasks.get(user["pid"]) == user["comm"], r.stdout
    # Its stack: the sysrq-t trace's reliable frames, in order.
    want = [re.sub(r"^\[[^]]*\]\s+", "", s) for s in l2["sysrq"]]
    want = [f for f in want if re.fullmatch(r"\w+\+0x[0-9a-f]+/0x[0-9a-f]+", f)]
    r = oracle.memsrv(_nested(g) + vmlinux + ["bt", str(user["pid"])], check=True)
    got = re.findall(r"^\s*#\d+\s+(\S+)", r.stdout, re.M)
    assert got == want, (r.stdout, want)


def test_the_ram_file_alone_after_qemu_quit(guest_l2linux):
    """Last in this file: it ends the L0 QEMU. From the RAM file alone:
    discover, dmesg, x, sym, ps, bt and cat against what L2 printed (the
    files after this one, test_lsmod, test_maps, test_print, also read
    guest_l2linux's file alone: lsmod, maps and p)."""
    import test_cat  # it imports this module
    g = guest_l2linux
    _truth(g)
    g.quit()
    assert not g.running_qemu()
    _check_discover(g)
    r = oracle.memsrv(_nested(g) + ["dmesg"], check=True)
    assert f"l2lab: marker {g.l2linux['marker']}" in r.stdout
    r = oracle.memsrv(_nested(g, paging=True) + ["x/s", "linux_banner"], check=True)
    assert "Linux version " in r.stdout
    _check_sym(g)
    _check_ps_and_bt(g)
    want = g.l2linux["file"]
    out, err, rc = test_cat.cat(want["path"], *_nested(g))
    assert rc == 0 and test_cat.md5(out) == str(want["md5"]), err
