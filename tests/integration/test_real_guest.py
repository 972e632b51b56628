"""memsrv against QEMU's own answers on real guests (TCG, file-backed RAM):
thousands of addresses through `memsrv vtop --brief -` against QMP/HMP
`gva2gpa`, memsrv x/Ngx bytes against `xp`, the raw RAM file against the
ELF dump of the same stopped moment, the layout file against the q35 rule,
and a user process's pages against /proc/self/pagemap ground truth.
Counts go to the assertion messages and to
${NESTED_CACHE}/test-reports/integration.txt."""

import os
import random
import re
import tempfile

import pytest

import guests
import oracle
import qmp as qmplib

SINGLE = ["guest5", "guest4_4g", "guest_kaslr"]


@pytest.fixture(params=SINGLE)
def single(request):
    return request.getfixturevalue(request.param)


_cand_cache = {}


def cands(g):
    if g.name not in _cand_cache:
        _cand_cache[g.name] = oracle.candidates(g)
    return _cand_cache[g.name]


def test_guest_state(single):
    g = single
    expect_levels = 4 if "la57=off" in g.cpu else 5
    assert g.levels == expect_levels, f"{g.name}: CR4={g.cr4:#x}"
    assert "MARKER-12345" in g.markers and "USERPAT-KMSG-4321" in g.markers, g.markers
    assert os.path.getsize(g.ram) == g.mem_size
    # The /init marker is in guest RAM (printk ring and console buffers).
    with open(g.ram, "rb") as f:
        import mmap
        with mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
            assert m.find(b"MARKER-12345") >= 0


def test_vtop_matches_gva2gpa(single):
    g = single
    groups, info = cands(g)
    addrs = oracle.unique(groups)
    mem = oracle.vtop_batch(oracle.paging_args(g), addrs)
    qemu = oracle.qemu_gva2gpa(g, addrs)
    counts, bad = oracle.compare_translations(mem, qemu, g.layout_regions())
    per_group = {k: len(v) for k, v in groups.items()}
    msg = (f"{g.name}: {len(addrs)} addresses compared {counts}, groups {per_group}, "
           f"slide {info['slide']:#x}, page_offset_base {info['page_offset_base']:#x}")
    guests.report("vtop vs gva2gpa " + msg + f", {len(bad)} mismatches")
    assert not bad, msg + "; mismatches: " + oracle.fmt_bad(bad)
    # The comparison must have covered every kind of address.
    assert counts["mapped"] > 3000 and counts["unmapped"] > 100, msg
    kinds = {"text": 0, "direct": 0, "vmalloc_or_module": 0, "user": 0}
    for a in addrs:
        if qemu[a] is None:
            continue
        if a >> 63 == 0:
            kinds["user"] += 1
        elif a >= 0xffffffff80000000 and a < 0xffffffffc0000000:
            kinds["text"] += 1
        elif info["page_offset_base"] <= a < info["page_offset_base"] + (1 << 40):
            kinds["direct"] += 1
        else:
            kinds["vmalloc_or_module"] += 1
    guests.report(f"vtop kinds {g.name}: {kinds}")
    assert all(v > 0 for v in kinds.values()), f"{g.name}: {kinds}"


def _x_words(g, args, addr, n):
    r = oracle.memsrv(args + [f"x/{n}gx", hex(addr)])
    if r.returncode != 0:
        return None, r.stderr.strip()
    return oracle.parse_x_gx(r.stdout), r.stdout


def test_x_matches_xp(single):
    g = single
    groups, _ = cands(g)
    rnd = random.Random(7)
    pool = groups["symbols"][:150] + rnd.sample(groups["tlb"], 100) + groups["direct_map"][:50]
    qemu = oracle.qemu_gva2gpa(g, pool)
    regions = g.layout_regions()
    pool = [a for a in pool if qemu[a] is not None and oracle.in_layout(regions, qemu[a] + 31)
            and (qemu[a] & 0xfff) <= 0x1000 - 32]
    xp = g.hmp_many([f"xp/4gx {qemu[a]:#x}" for a in pool])
    bad = []
    for a, reply in zip(pool, xp):
        want = qmplib.hmp_x_bytes(reply)
        got, out = _x_words(g, oracle.paging_args(g), a, 4)
        if got != want:
            bad.append((a, want.hex() if want else reply, out))
    msg = f"{g.name}: {len(pool)} x/4gx reads compared with xp"
    guests.report(msg + f", {len(bad)} mismatches")
    assert len(pool) >= 200, msg
    assert not bad, msg + "; " + oracle.fmt_bad(bad, 4)


@pytest.mark.parametrize("name", ["guest5", "guest4_4g"])
def test_ram_and_dump_agree(request, name):
    g = request.getfixturevalue(name)
    dump = g.dump()
    regions = g.layout_regions()
    # Bytes: every 64th page of RAM (and the first and last page of each
    # region) must be identical in the RAM file and the ELF dump.
    ram = oracle.RamFile(g.ram, regions)
    elf = oracle.ElfDump(dump)
    pages = 0
    try:
        for gpa, length, _off in regions:
            for p in list(range(gpa, gpa + length, 64 * 4096)) + [gpa + length - 4096]:
                a, b = ram.read(p, 4096), elf.read(p, 4096)
                assert b is not None, f"{name}: GPA {p:#x} is in the layout but not in the dump"
                assert a == b, f"{name}: GPA {p:#x} differs between RAM file and dump"
                pages += 1
        # The dump holds no RAM the layout does not know (except ROM/VRAM
        # outside pc.ram, which the layout rightly leaves out).
    finally:
        ram.close()
        elf.close()
    # Translations: memsrv on the RAM file and on the dump must agree.
    groups, _ = cands(g)
    addrs = oracle.unique(groups)
    on_ram = oracle.vtop_batch(oracle.paging_args(g), addrs)
    on_dump = oracle.vtop_batch(oracle.paging_args(g, ["--dump", dump]), addrs)
    diff = [(a, str(on_dump[a]), on_ram[a]) for a in addrs
            if on_ram[a][0] != on_dump[a][0] or (on_ram[a][0] == "ok" and on_ram[a] != on_dump[a])]
    # Registers in the dump's notes are the same stopped moment.
    banner = oracle.symbol(g, "linux_banner")
    banner_ram = oracle.vtop_batch(oracle.paging_args(g), [banner])[banner]
    r = oracle.memsrv(["--dump", dump, "--cpu", "0", "vtop", "--brief", hex(banner)])
    msg = (f"{name}: {pages} pages compared byte for byte, {len(addrs)} translations "
           f"compared RAM vs dump")
    guests.report("ram vs dump " + msg + f", {len(diff)} differences")
    assert not diff, msg + "; " + oracle.fmt_bad(diff)
    assert banner_ram[0] == "ok" and r.returncode == 0 and \
        r.stdout.split()[1] == hex(banner_ram[1]), (r, banner_ram)
    # memsrv x on the dump equals memsrv x on the RAM file.
    sample = [a for a in groups["symbols"][:50] if on_ram[a][0] == "ok"]
    xdiff = [a for a in sample
             if _x_words(g, oracle.paging_args(g), a, 2)[0] !=
             _x_words(g, oracle.paging_args(g, ["--dump", dump]), a, 2)[0]]
    assert not xdiff, f"{name}: x/2gx differs RAM vs dump at {[hex(a) for a in xdiff[:5]]}"


def q35_rule(size):
    lowmem = 0x80000000 if size >= 0xb0000000 else size
    out = [(0, lowmem, 0)]
    if size > lowmem:
        out.append((1 << 32, size - lowmem, lowmem))
    return out


@pytest.mark.parametrize("name", ["guest5", "guest4_4g"])
def test_layout_file_and_q35_rule(request, name):
    g = request.getfixturevalue(name)
    regions = g.layout_regions()
    rule = q35_rule(g.mem_size)
    # The layout file (from info mtree, PAM window filled) lies inside the
    # rule and covers all of it.
    for gpa, length, off in regions:
        assert any(rg <= gpa and gpa + length <= rg + rl and off - gpa == ro - rg
                   for rg, rl, ro in rule), f"{name}: region {gpa:#x}+{length:#x}@{off:#x} vs {rule}"
    assert sum(r[1] for r in regions) == g.mem_size, regions
    if g.mem_size > 0xb0000000:
        assert (1 << 32, g.mem_size - (2 << 30), 2 << 30) in regions, regions
    # Same translations from: the layout file (default), the q35 rule (a RAM
    # path with no .layout beside it), and an explicit --map.
    groups, _ = cands(g)
    addrs = oracle.unique(groups)
    base = oracle.vtop_batch(oracle.paging_args(g), addrs)
    with tempfile.TemporaryDirectory() as d:
        link = os.path.join(d, "ram")
        os.symlink(g.ram, link)
        by_rule = oracle.vtop_batch(oracle.paging_args(g, ["--ram", link, "--machine", "q35"]), addrs)
        spec = ",".join(f"{a:#x}:{n:#x}@{o:#x}" for a, n, o in regions)
        by_map = oracle.vtop_batch(oracle.paging_args(g, ["--ram", link, "--map", spec]), addrs)
    bad = [(a, str(by_rule[a]), base[a]) for a in addrs if base[a] != by_rule[a]]
    bad += [(a, str(by_map[a]), base[a]) for a in addrs if base[a] != by_map[a]]
    guests.report(f"layout {name}: {len(addrs)} translations x3 (layout file, q35 rule, --map), "
                  f"{len(bad)} differences")
    assert not bad, f"{name}: " + oracle.fmt_bad(bad)


@pytest.mark.parametrize("name", ["guest5", "guest4_4g"])
def test_user_pages_match_pagemap(request, name):
    g = request.getfixturevalue(name)
    u = g.user
    assert u and u["mode"] == "spin" and len(u["phys"]) == u["pages"], u
    # userpat spins; the fixture stops the vCPU inside it, so its CR3 is loaded.
    assert g.in_wanted_place, f"{name}: vCPU not in userpat after {g.stop_attempts} stops"
    addrs = [u["va"] + i * 4096 + off for i in range(u["pages"]) for off in (0, 0x808, 0xff8)]
    mem = oracle.vtop_batch(oracle.paging_args(g), addrs)
    qemu = oracle.qemu_gva2gpa(g, addrs)
    want = {u["va"] + i * 4096 + off: u["phys"][i] + off
            for i in range(u["pages"]) for off in (0, 0x808, 0xff8)}
    bad = [(a, hex(want[a]), mem[a]) for a in addrs if mem[a] != ("ok", want[a])]
    bad += [(a, f"qemu {qemu[a]}", hex(want[a])) for a in addrs if qemu[a] != want[a]]
    assert not bad, f"{name}: user pages vs pagemap: " + oracle.fmt_bad(bad)
    # Contents: the pattern userpat wrote, through memsrv's translation.
    for i in (0, u["pages"] // 2, u["pages"] - 1):
        va = u["va"] + i * 4096 + 0x100
        got, out = _x_words(g, oracle.paging_args(g), va, 4)
        exp = b"".join(((va + 8 * k) * 0x9E3779B97F4A7C15 % (1 << 64)).to_bytes(8, "little")
                       for k in range(4))
        assert got == exp, f"{name}: userpat page {i} at {va:#x}: {out}"
    guests.report(f"user pages {name}: {len(addrs)} addresses vs pagemap and gva2gpa")


def test_gdbstub(guest5):
    """The gdbstub at .gdb_address sees the same stopped vCPU and memory."""
    g = guest5
    r = g.gdb_batch("p/x $cr3", "x/s 0xffffffff8211ffe0")
    assert r.returncode == 0, r.stderr
    assert f"= {g.cr3:#x}" in r.stdout, r.stdout
    assert '"Linux version 6.1.0-' in r.stdout, r.stdout
    assert not g.running()
