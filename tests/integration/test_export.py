"""memsrv export-vmcore: the vmcore it writes, opened by the tools users know,
unpatched (crash 8.0.2, drgn 0.0.22), on the real guests:
  - crash `log` equals the guest's own log (`memsrv dmesg --crash`) line for line;
  - crash `ps` prints what it prints on QEMU's own dump of the same moment;
  - drgn lists every task `memsrv ps` lists, reads linux_banner, and names the
    task running on the CPU (userpat, which the guests stop inside) as the
    crashed thread: the NT_PRSTATUS pid;
  - a nested guest: guest5's RAM behind generated EPT tables
    (scripts/ept-transplant), exported through --eptp, gives crash the same log
    as the export of the original.

Uses guest5 (nokaslr) and guest_kaslr from conftest.py."""

import os
import re
import struct
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MEMSRV = os.environ.get("MEMSRV", os.path.join(ROOT, "build", "memsrv"))
TRANSPLANT = os.path.join(ROOT, "scripts", "ept-transplant")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_linux import memsrv, vmlinux  # noqa: E402
GUESTS = ["guest5", "guest_kaslr"]

DRGN_SCRIPT = r"""
import sys, drgn
from drgn.helpers.linux.pid import for_each_task
prog = drgn.Program()
prog.set_core_dump(sys.argv[1])
prog.load_debug_info([sys.argv[2]])
print("banner", prog["linux_banner"].string_().decode().rstrip("\n"))
print("crashed", prog.crashed_thread().tid)
for t in for_each_task(prog):
    print("task %d %x %s" % (t.pid, t.value_(), t.comm.string_().decode()))
"""


@pytest.fixture(params=GUESTS)
def guest(request):
    return request.getfixturevalue(request.param)


def crash(vml, core, commands):
    """crash's stdout for the commands, in batch."""
    p = subprocess.run(["crash", "-s", vml, core], input=("set scroll off\n" + commands +
                                                          "quit\n").encode(),
                       capture_output=True, timeout=300)
    out = p.stdout.decode("utf-8", "replace")
    assert "crash:" not in out.split("\n", 1)[0], out[:2000]
    return out


def log_lines(crash_out):
    """crash `log`: every line from the first timestamped one to the last."""
    lines = crash_out.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("["))
    end = max(i for i, l in enumerate(lines) if l.startswith("[")) + 1
    # continuation lines of a record are indented, and belong to it
    while end < len(lines) and lines[end].startswith(" ") and not lines[end].lstrip().startswith("PID"):
        end += 1
    return lines[start:end]


def ps_table(crash_out):
    lines = crash_out.splitlines()
    start = next(i for i, l in enumerate(lines) if l.split()[:2] == ["PID", "PPID"])
    return lines[start:]


def export(tmp_path, name, *args):
    out = str(tmp_path / name)
    _, err, _ = memsrv(*args, "export-vmcore", "-o", out)
    return out, err


def loads(path):
    """The PT_LOADs of an ELF file: (vaddr, paddr, filesz, align)."""
    with open(path, "rb") as f:
        eh = f.read(64)
        phoff, = struct.unpack_from("<Q", eh, 32)
        phnum, = struct.unpack_from("<H", eh, 56)
        f.seek(phoff)
        ph = f.read(56 * phnum)
    out = []
    for i in range(phnum):
        p_type, _, _, vaddr, paddr, filesz, _, align = struct.unpack_from("<IIQQQQQQ", ph, 56 * i)
        assert (p_type == 4) == (i == 0), "the PT_NOTE must be first and alone"
        if p_type == 1:
            out.append((vaddr, paddr, filesz, align))
    return out


def test_export_crash_and_drgn(guest, tmp_path):
    g = guest
    core, err = export(tmp_path, "vmcore", "--ram", g.ram, "--vmlinux", vmlinux(g))
    assert "current_task: 1 of 1 read" in err, err
    st = os.stat(core)
    assert st.st_blocks * 512 < st.st_size // 2, "zero pages should be holes"
    # the kernel image at _text (KASLR applied), RAM at the direct map
    text, _, _ = memsrv("--ram", g.ram, "sym", "_text")
    pob, _, _ = memsrv("--ram", g.ram, "x/gx", "page_offset_base")
    pob = int(pob.split()[-1], 16)
    ph = loads(core)
    assert ph[0][0] == int(text.split()[0], 16) and ph[0][2] > 16 << 20
    assert all(align == 0 for _, _, _, align in ph)
    assert [(v - p, p) for v, p, _, _ in ph[1:]] == [(pob, p) for _, p, _, _ in ph[1:]]
    assert sum(n for _, _, n, _ in ph[1:]) == g.mem_size

    out = crash(vmlinux(g), core, "log\nps\n")
    mine, _, _ = memsrv("--ram", g.ram, "dmesg", "--crash")
    assert log_lines(out) == mine.splitlines()
    assert len(mine.splitlines()) > 500
    qemu = crash(vmlinux(g), g.dump(), "ps\n")
    assert ps_table(out) == ps_table(qemu)
    assert len(ps_table(out)) >= 2

    p = subprocess.run(["/usr/bin/python3", "-c", DRGN_SCRIPT, core, vmlinux(g)],
                       capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    lines = p.stdout.decode().splitlines()
    banner = lines[0].split(" ", 1)[1]
    assert banner.startswith("Linux version ") and banner in mine
    # pr_pid: the task on the CPU, not QEMU's CPU number
    assert int(lines[1].split()[1]) == g.user["pid"]
    tasks = sorted((int(pid), int(addr, 16), comm) for _, pid, addr, comm in
                   (l.split(" ", 3) for l in lines[2:]))
    ps, _, _ = memsrv("--ram", g.ram, "--vmlinux", vmlinux(g), "ps")
    want = sorted((int(r.split()[0]), int(r.split()[3], 16), r.split(None, 4)[4])
                  for r in ps.splitlines()[1:] if int(r.split()[0]) != 0)
    assert len(want) > 20 and tasks == want


def test_export_without_vmlinux(guest5, tmp_path):
    """The kernel's kallsyms and BTF suffice: the same file."""
    g = guest5
    core, err = export(tmp_path, "vmcore", "--ram", g.ram)
    assert "current_task: 1 of 1 read" in err, err
    with_vmlinux, _ = export(tmp_path, "vmcore2", "--ram", g.ram, "--vmlinux", vmlinux(g))
    assert loads(core) == loads(with_vmlinux)


def test_export_nested_ept(guest5, tmp_path):
    g = guest5
    l1 = str(tmp_path / "l1.img")
    r = subprocess.run([sys.executable, TRANSPLANT, "--ram", g.ram, "--layout", g.layout,
                        "--cr3", hex(g.cr3), "--levels", str(g.levels), "--out", l1,
                        "--ept-levels", "5", "--seed", "7"], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr
    args = r.stdout.split()
    eptp = args[args.index("--eptp") + 1]
    nested, err = export(tmp_path, "nested.vmcore", "--ram", l1, "--eptp", eptp,
                         "--vmlinux", vmlinux(g))
    direct, _ = export(tmp_path, "direct.vmcore", "--ram", g.ram, "--vmlinux", vmlinux(g))
    assert loads(nested) == loads(direct)
    nested_log = log_lines(crash(vmlinux(g), nested, "log\n"))
    direct_log = log_lines(crash(vmlinux(g), direct, "log\n"))
    assert len(direct_log) > 500 and nested_log == direct_log
    # without its second stage, the L1 image's copy of the VMCOREINFO page
    # names page tables that are not there: no kernel of L1's own is taken
    # from it, an error, not a file
    _, err, rc = memsrv("--ram", l1, "export-vmcore", "-o", str(tmp_path / "plain"),
                        check=False)
    assert rc == 1 and "no VMCOREINFO in guest memory" in err, err


def drgn_tasks(core, vml):
    p = subprocess.run(["/usr/bin/python3", "-c", DRGN_SCRIPT, core, vml],
                       capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    lines = p.stdout.decode().splitlines()
    tasks = sorted((int(pid), int(addr, 16), comm) for _, pid, addr, comm in
                   (l.split(" ", 3) for l in lines[2:]))
    return lines[0].split(" ", 1)[1], tasks


def ps_tasks(*args):
    ps, _, _ = memsrv(*args, "ps")
    return sorted((int(r.split()[0]), int(r.split()[3], 16), r.split(None, 4)[4])
                  for r in ps.splitlines()[1:] if int(r.split()[0]) != 0)


def test_export_l2linux(guest_l2linux, tmp_path):
    """The real nested Linux (L2 under KVM in L1, KASLR on): its memory
    through the NPT, with holes where L1's KVM has mapped nothing."""
    import test_l2linux
    g = guest_l2linux
    args = test_l2linux._nested(g) + ["--vmlinux", vmlinux(g)]
    core, err = export(tmp_path, "l2.vmcore", *args)
    print(err.strip())
    holes = re.search(r"(\d+) ranges", err)
    assert holes and int(holes.group(1)) > 1, err
    mine, _, _ = memsrv(*args, "dmesg", "--crash")
    assert log_lines(crash(vmlinux(g), core, "log\n")) == mine.splitlines()
    assert f"l2lab: marker {g.l2linux['marker']}" in mine
    banner, tasks = drgn_tasks(core, vmlinux(g))
    assert g.l2linux["version"].startswith(banner[:60]), (banner, g.l2linux["version"])
    want = ps_tasks(*args)
    assert len(want) > 20 and tasks == want


def test_export_errors(guest5, tmp_path):
    g = guest5
    _, err, rc = memsrv("--ram", g.ram, "--cr3", hex(g.cr3), "export-vmcore", "-o",
                        str(tmp_path / "x"), check=False)
    assert rc == 2 and "no --cr3" in err
    _, err, rc = memsrv("--ram", g.ram, "export-vmcore", check=False)
    assert rc == 2 and "-o OUT" in err
    _, err, rc = memsrv("--ram", g.ram, "export-vmcore", "-o", "/nonexistent/dir/vmcore",
                        check=False)
    assert rc == 1 and "cannot create /nonexistent/dir/vmcore" in err
