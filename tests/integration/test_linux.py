"""Linux inside the guest: dmesg, ps and symbols from guest RAM, checked
against crash 8.0.2 (`log`, `sym`, `list`) and drgn (get_printk_records) on a
dump of the same stopped moment, and against QEMU's own gva2gpa.

Uses the session fixtures guest5 (5-level, nokaslr), guest_kaslr (5-level,
KASLR) and guest4_4g (4-level, 4 GiB split layout) from conftest.py."""

import os
import re
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MEMSRV = os.environ.get("MEMSRV", os.path.join(ROOT, "build", "memsrv"))
GUESTS = ["guest5", "guest_kaslr", "guest4_4g"]
SYM_RE = re.compile(r"^([0-9a-f]{16}) \((\w)\) (\S+)$")

_crash_cache = {}
_drgn_dump_cache = {}


@pytest.fixture(params=GUESTS)
def guest(request):
    return request.getfixturevalue(request.param)


def vmlinux(g):
    return os.path.join(g.kernel_dir, "vmlinux")


def system_map(g):
    return os.path.join(g.kernel_dir, "System.map")


def memsrv(*args, check=True):
    p = subprocess.run([MEMSRV, *args], capture_output=True, timeout=300)
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    if check:
        assert p.returncode == 0, f"memsrv {' '.join(args)} failed ({p.returncode}): {err}"
    return out, err, p.returncode


def crash_run(g):
    """One crash session per guest: log, sym, the task list. Returns
    (log_lines, {sym: addr}, [(task, pid, comm)], seconds)."""
    dump = g.dump()
    if dump in _crash_cache:
        return _crash_cache[dump]
    cmds = ("set scroll off\nlog\nsym init_task\nsym linux_banner\n"
            "list task_struct.tasks -s task_struct.pid,comm -h init_task\nquit\n")
    t0 = time.monotonic()
    p = subprocess.run(["crash", "-s", vmlinux(g), dump], input=cmds.encode(),
                       capture_output=True, timeout=600)
    secs = time.monotonic() - t0
    lines = p.stdout.decode("utf-8", "replace").splitlines()
    # log: from its first timestamped line up to the first `sym` answer
    start = next(i for i, l in enumerate(lines) if l.startswith("["))
    end = next(i for i, l in enumerate(lines) if i > start and SYM_RE.match(l))
    log = lines[start:end]
    syms = {}
    i = end
    while i < len(lines) and SYM_RE.match(lines[i]):
        m = SYM_RE.match(lines[i])
        syms[m.group(3)] = int(m.group(1), 16)
        i += 1
    tasks = []
    text = "\n".join(lines[i:])
    for m in re.finditer(r"^([0-9a-f]{16})\n\s+pid = (\d+),\n\s+comm = \"((?:[^\"\\]|\\.)*)\"",
                         text, re.M):
        comm = m.group(3).split("\\000")[0]
        tasks.append((int(m.group(1), 16), int(m.group(2)), comm))
    assert log and syms and tasks, f"could not parse crash's output:\n{p.stdout[:2000]!r}\n{p.stderr[:2000]!r}"
    _crash_cache[dump] = (log, syms, tasks, secs)
    return _crash_cache[dump]


def paging_dump(g):
    """drgn needs kernel virtual addresses in the dump (`-p`) and a
    VMCOREINFO note; the plain fixture dump has neither kind of VirtAddr."""
    if g.ram in _drgn_dump_cache:
        return _drgn_dump_cache[g.ram]
    path = g.ram + ".paging.elf"
    if os.path.exists(path):
        os.unlink(path)
    g.hmp(f"dump-guest-memory -p {path}")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        st = g.hmp("info dump")
        if "completed" in st:
            break
        if "failed" in st:
            pytest.fail(f"dump-guest-memory -p failed: {st}")
        time.sleep(0.3)
    else:
        pytest.fail("dump-guest-memory -p did not complete")
    _drgn_dump_cache[g.ram] = path
    return path


DRGN_SCRIPT = r"""
import sys, time, drgn
from drgn.helpers.linux.printk import get_printk_records
t0 = time.monotonic()
prog = drgn.Program()
prog.set_core_dump(sys.argv[1])
prog.load_debug_info([sys.argv[2]])
recs = get_printk_records(prog)
sys.stderr.write("drgn-seconds %f\n" % (time.monotonic() - t0))
out = sys.stdout.buffer
for r in recs:
    out.write(b"%d %d %d %d " % (r.seq, r.timestamp, r.facility, r.level) + r.text.hex().encode() + b"\n")
"""


def drgn_records(g):
    dump = paging_dump(g)
    p = subprocess.run(["/usr/bin/python3", "-c", DRGN_SCRIPT, dump, vmlinux(g)],
                       capture_output=True, timeout=600)
    assert p.returncode == 0, f"drgn failed: {p.stderr.decode()[-2000:]}"
    recs = []
    for line in p.stdout.decode().splitlines():
        seq, ts, fac, lev, hx = line.split(" ")
        recs.append((int(seq), int(ts), int(fac), int(lev), bytes.fromhex(hx)))
    secs = float(re.search(r"drgn-seconds (\S+)", p.stderr.decode()).group(1))
    return recs, secs


def raw_line(ts, fac, lev, text):
    """memsrv's --raw style: syslog prefix on every line of the record,
    control bytes as \\xNN like /dev/kmsg."""
    prefix = "<%d>[%5d.%06d] " % (fac << 3 | lev, ts // 1000000000, ts % 1000000000 // 1000)
    body = text.decode("utf-8", "replace")
    if body.endswith("\n"):
        body = body[:-1]
    out = []
    for part in body.split("\n"):
        out.append(prefix + "".join(c if c == "\t" or ord(c) >= 0x20 else "\\x%02x" % ord(c)
                                    for c in part))
    return out


def test_dmesg_matches_crash_log(guest):
    log, _, _, _ = crash_run(guest)
    out, _, _ = memsrv("--dump", guest.dump(), "--vmlinux", vmlinux(guest), "dmesg", "--crash")
    mine = out.splitlines()
    assert len(mine) > 100
    assert mine == log, "first difference at line %d" % next(
        (i for i, (a, b) in enumerate(zip(mine, log)) if a != b), min(len(mine), len(log)))


def test_dmesg_matches_drgn(guest):
    recs, _ = drgn_records(guest)
    assert len(recs) > 100
    out, _, _ = memsrv("--dump", guest.dump(), "dmesg", "--raw")
    want = []
    for seq, ts, fac, lev, text in recs:
        want.extend(raw_line(ts, fac, lev, text))
    assert out.splitlines() == want


def test_dmesg_markers_without_symbol_file(guest):
    # No vmlinux, no System.map, raw RAM file: VMCOREINFO is found by scanning.
    out, err, _ = memsrv("--ram", guest.ram, "dmesg", "--stats")
    assert "VMCOREINFO" in err, err
    assert " 0 bad" in err, err
    for marker in guest.markers:
        assert any(line.endswith(" " + marker) for line in out.splitlines()), marker
    # the same log through the other paths: dump note, and no VMCOREINFO at
    # all (slide from linux_banner + page tables)
    via_dump, _, _ = memsrv("--dump", guest.dump(), "dmesg")
    assert via_dump == out
    banner, err2, _ = memsrv("--ram", guest.ram, "--vmlinux", vmlinux(guest), "dmesg",
                             "--no-vmcoreinfo", "--stats")
    assert "linux_banner in RAM" in err2, err2
    assert banner == out


def test_ps_matches_crash(guest):
    _, _, tasks, _ = crash_run(guest)
    out, _, _ = memsrv("--ram", guest.ram, "--vmlinux", vmlinux(guest), "ps")
    rows = out.splitlines()
    assert rows[0].split() == ["PID", "PPID", "ST", "TASK", "COMM"]
    mine = []
    for r in rows[1:]:
        pid, ppid, st, task, comm = r.split(None, 4)
        mine.append((int(task, 16), int(pid), comm))
    # crash walks the `tasks` list (thread-group leaders); memsrv adds each
    # group's other threads, and the test guests run no multi-threaded process
    assert len(tasks) > 20
    assert sorted(mine) == sorted(tasks)
    assert any(c == "init" or c == "sh" for _, p, c in mine if p == 1)
    # without VMCOREINFO: same answer through the banner-derived slide
    out2, _, _ = memsrv("--ram", guest.ram, "--vmlinux", vmlinux(guest), "ps", "--no-vmcoreinfo")
    assert out2 == out


def test_sym_both_ways(guest):
    _, syms, _, _ = crash_run(guest)
    for name in ("init_task", "linux_banner"):
        # vmlinux, System.map, and no symbol file (the kernel's kallsyms)
        for tool in (["--vmlinux", vmlinux(guest)], ["--system-map", system_map(guest)], []):
            out, _, _ = memsrv("--ram", guest.ram, *tool, "sym", name)
            assert out.split() == ["0x%016x" % syms[name], name]
        out, _, _ = memsrv("--ram", guest.ram, "--system-map", system_map(guest), "sym",
                           "--no-vmcoreinfo", "0x%x" % (syms[name] + 5))
        assert out.split() == ["0x%016x" % (syms[name] + 5), name + "+0x5"]
        out, _, _ = memsrv("--dump", guest.dump(), "sym", "0x%x" % (syms[name] + 5))
        assert out.split() == ["0x%016x" % (syms[name] + 5), name + "+0x5"]
    # QEMU agrees that the slid address is the banner: gva2gpa, then the RAM
    # bytes there; and memsrv's walk of the guest's own CR3 agrees with QEMU
    addr = syms["linux_banner"]
    m = re.search(r"gpa: (0x[0-9a-f]+)", guest.hmp("gva2gpa 0x%x" % addr))
    assert m, "QEMU could not translate linux_banner"
    gpa = int(m.group(1), 16)
    out, _, _ = memsrv("--ram", guest.ram, "--cr3", hex(guest.cr3), "--levels", str(guest.levels),
                       "vtop", "--brief", "0x%x" % addr)
    assert out.split() == ["0x%x" % addr, "0x%x" % gpa]
    chars = re.findall(r"'(.)'", guest.hmp("xp/14c 0x%x" % gpa))
    assert "".join(chars).startswith("Linux version ")


def test_sym_kaslr_moved(guest_kaslr):
    out, _, _ = memsrv("--ram", guest_kaslr.ram, "--system-map", system_map(guest_kaslr), "sym",
                       "linux_banner")
    link = None
    with open(system_map(guest_kaslr)) as f:
        for line in f:
            a, _, n = line.split()
            if n == "linux_banner":
                link = int(a, 16)
    runtime = int(out.split()[0], 16)
    assert runtime != link and (runtime - link) % (2 << 20) == 0


def test_dmesg_timing_vs_crash_and_drgn(guest_kaslr):
    g = guest_kaslr
    t0 = time.monotonic()
    memsrv("--dump", g.dump(), "--vmlinux", vmlinux(g), "dmesg")
    t_memsrv = time.monotonic() - t0
    t0 = time.monotonic()
    memsrv("--ram", g.ram, "dmesg")
    t_ram = time.monotonic() - t0
    _, _, _, t_crash = crash_run(g)
    _, t_drgn = drgn_records(g)
    print(f"\ndmesg timing: memsrv --dump --vmlinux {t_memsrv:.3f} s, memsrv --ram (scan) "
          f"{t_ram:.3f} s, crash (startup+log+sym+list) {t_crash:.2f} s, drgn {t_drgn:.2f} s")
    assert t_memsrv < t_crash and t_ram < t_crash


# KVM's struct vmcs12 (arch/x86/kvm/vmx/vmcs12.h, VMCS12_REVISION and its
# CHECK_OFFSETs): field -> (offset, size).
VMCS12_REVISION = 0x11e57ed0
VMCS12 = {"launch_state": (8, 4), "ept_pointer": (120, 8), "guest_efer": (200, 8),
          "guest_cr0": (424, 8), "guest_cr3": (432, 8), "guest_cr4": (440, 8),
          "guest_gs_base": (488, 8), "guest_rsp": (536, 8), "guest_rip": (544, 8),
          "guest_rflags": (552, 8), "secondary_vm_exec_control": (804, 4),
          "virtual_processor_id": (960, 2)}
SECONDARY_ENABLE_EPT = 1 << 1


def transplant(src, dst, kind, vmcs12=None, kvm_regs=None):
    """Copies a real guest's RAM (its guest-physical 0..size) behind
    second-stage tables we build, the way a hypervisor would place a nested
    guest: the first 64 MiB in 4 KiB pages scattered by a permutation, the
    rest in 2 MiB pages in reverse order, tables after the data. Returns the
    EPTP (kind "ept") or nCR3 (kind "npt"). vmcs12 (EPT): guest-state
    fields of a KVM vmcs12 to write after the tables, as L1's KVM keeps one
    per L2 vCPU (its EPTP, launch state and EPT control are set here).
    kvm_regs: 17 values written as L1's KVM keeps the vCPU's general
    registers (struct kvm_vcpu_arch regs[]: RAX RCX RDX RBX RSP RBP RSI RDI
    R8-R15 RIP), straddling a page boundary."""
    import random
    with open(src, "rb") as f:
        data = f.read()
    size = len(data)
    assert size % (2 << 20) == 0 and size <= (1 << 30)
    small = 64 << 20
    extra = 8 << 20
    out = bytearray(size + extra)
    rng = random.Random(1234)
    perm = list(range(small // 4096))
    rng.shuffle(perm)
    # leaf placement: L2 page -> L1 address
    for i, j in enumerate(perm):
        out[j * 4096:(j + 1) * 4096] = data[i * 4096:(i + 1) * 4096]
    big = list(range(small // (2 << 20), size // (2 << 20)))
    dest = list(reversed(big))
    for i, j in zip(big, dest):
        out[j * (2 << 20):(j + 1) * (2 << 20)] = data[i * (2 << 20):(i + 1) * (2 << 20)]
    if kind == "ept":
        table, leaf4k, leaf2m = 0x7, 0x7 | 6 << 3, 0x7 | 6 << 3 | 0x80
    else:
        table, leaf4k, leaf2m = 0x7, 0x7, 0x87
    nxt = [size]

    def alloc():
        a = nxt[0]
        nxt[0] += 4096
        return a

    def put(table_addr, index, value):
        out[table_addr + 8 * index:table_addr + 8 * index + 8] = value.to_bytes(8, "little")

    pml4, pdpt, pd = alloc(), alloc(), alloc()
    put(pml4, 0, pdpt | table)
    put(pdpt, 0, pd | table)
    for k in range(small // (2 << 20)):
        pt = alloc()
        put(pd, k, pt | table)
        for e in range(512):
            put(pt, e, perm[k * 512 + e] * 4096 | leaf4k)
    for i, j in zip(big, dest):
        put(pd, i, j * (2 << 20) | leaf2m)
    root = pml4 | (3 << 3 | 6 if kind == "ept" else 0)
    if vmcs12 is not None:
        assert kind == "ept"
        page = alloc()
        fields = dict(vmcs12, launch_state=1, ept_pointer=root,
                      secondary_vm_exec_control=SECONDARY_ENABLE_EPT, virtual_processor_id=1)
        out[page:page + 4] = VMCS12_REVISION.to_bytes(4, "little")
        for name, value in fields.items():
            off, size = VMCS12[name]
            out[page + off:page + off + size] = value.to_bytes(size, "little")
    if kvm_regs is not None:
        at = alloc() + 4096 - 40  # across into the next page
        alloc()
        for i, value in enumerate(kvm_regs):
            out[at + 8 * i:at + 8 * i + 8] = value.to_bytes(8, "little")
    with open(dst, "wb") as f:
        f.write(out)
    return root


@pytest.mark.parametrize("kind", ["ept", "npt"])
def test_nested_guest_behind_second_stage(guest5, tmp_path, kind):
    """The same kernel seen as a nested guest: VMCOREINFO is found by
    enumerating the second stage's mappings, the kernel space is paging over
    EPT/NPT (the full 2-D walk), and dmesg/ps/sym give the direct answers."""
    g = guest5
    dst = str(tmp_path / "l1.ram")
    root = transplant(g.ram, dst, kind)
    stage = ["--eptp", hex(root)] if kind == "ept" else ["--ncr3", hex(root), "--npt-levels", "4"]
    direct, _, _ = memsrv("--ram", g.ram, "dmesg")
    nested, err, _ = memsrv("--ram", dst, *stage, "dmesg", "--stats")
    assert "VMCOREINFO" in err and " 0 bad" in err, err
    assert nested == direct
    # the scrambled image really needs the second stage
    plain, _, rc = memsrv("--ram", dst, "dmesg", check=False)
    assert rc != 0 or plain != direct
    ps_direct, _, _ = memsrv("--ram", g.ram, "--vmlinux", vmlinux(g), "ps")
    ps_nested, _, _ = memsrv("--ram", dst, *stage, "--vmlinux", vmlinux(g), "ps")
    assert ps_nested == ps_direct
    banner, _, _ = memsrv("--ram", dst, *stage, "--vmlinux", vmlinux(g), "dmesg",
                          "--no-vmcoreinfo")
    assert banner == direct
    sym_direct, _, _ = memsrv("--ram", g.ram, "sym", "init_task", "linux_banner")
    sym_nested, _, _ = memsrv("--ram", dst, *stage, "sym", "init_task", "linux_banner")
    assert sym_nested == sym_direct
    os.unlink(dst)
