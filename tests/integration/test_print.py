"""memsrv p (GDB's print over the kernel's own BTF and memory, no vmlinux)
against GDB 13 itself: GDB with the Debian -dbg vmlinux (DWARF) prints the
same expressions on the same stopped guest through `memsrv gdbserver`, and
the texts must be equal, on guest5 (nokaslr) and guest_kaslr (GDB loads the
vmlinux at the slide, symbol-file -o). Also over a server (--connect), and
on the real Linux L2 through --ncr3: L2's init_uts_ns.name.release is what
L2 printed as "l2lab: version".

Known differences kept out of the list (README, memsrv p): with no vmlinux
the symbols are kallsyms', which have no sizes, so a pointer just past an
object that GDB leaves unnamed (zero-sized ELF symbols such as init_stack)
is named here; at one address GDB may pick another alias (&jiffies is
<jiffies_64> to GDB); qualifiers of the well-known globals' types are not
kept ((volatile unsigned long *) &jiffies)."""

import os
import re
import subprocess
import time

import pytest

from test_gdbserver import slide
from test_l2linux import FIXTURES, _nested
from test_linux import MEMSRV, memsrv, transplant, vmlinux
from test_remote_linux import Server

GUESTS = ["guest5", "guest_kaslr"]

# Every printing rule: strings with embedded NULs and <repeats>, nested
# structs, anonymous unions, bitfields, bool-ish u8, enums, pointers with
# <sym+off>, char * with its string, function pointers and values, arrays
# of structs, the 200-element limit, formats, arithmetic, casts, sizeof.
EXPRS = [
    "p init_task.comm",
    "p init_uts_ns.name.release",
    "p init_uts_ns.name",
    "p init_uts_ns",
    "p sizeof(struct task_struct)",
    "p sizeof init_task.comm",
    "p/x init_task.pid",
    "p &init_task",
    "p *init_task.tasks.next",
    "p init_task.comm[1]",
    "p jiffies + 2",
    "p init_task.sched_class",
    "p *init_task.sched_class",
    "p *init_uts_ns.ns.ops",
    "p init_task.cpus_ptr",
    "p &init_task.comm",
    "p init_task.comm + 1",
    "p schedule",
    "p &schedule",
    "p init_mm.pgd",
    "p init_task.thread_info",
    "p init_task.se",
    "p init_task.signal->rlim",
    "p *init_task.signal",
    "p init_task.sighand->action[0]",
    "p system_state",
    "p init_task.sched_reset_on_fork",
    "p init_task.thread.fpu.__fpstate.regs.__padding",
    "p/x init_task.thread.fpu.__fpstate.regs.__padding",
    "p saved_command_line",
    "p/x init_task.comm",
    "p/d init_task.comm[0]",
    "p/c init_task.comm[2]",
    "p/a init_task.tasks.next",
    "p/o init_task.flags",
    "p/t init_task.flags",
    "p/z init_task.prio",
    "p/u -1",
    "p/x init_task.tasks",
    "p/x init_task.sched_class",
    "p init_task.prio - 200",
    "p -init_task.prio",
    "p ~init_task.pid",
    "p !init_task.pid",
    "p init_task.prio << 2",
    "p (unsigned char)init_task.prio",
    "p (long)&init_task",
    "p &init_task.tasks",
    "p init_task.tasks.next == &init_task.tasks",
    "p init_task.prio * 3 / 7 % 5",
    "p 0x7fffffff + 1",
    "p 18446744073709551615",
    "p TASK_COMM_LEN",
    "p 'A'",
    "p ((struct task_struct *)TASK1)->comm",
    "p ((struct task_struct *)TASK1)->mm->pgd",
    "p *((struct task_struct *)TASK1)->mm->pgd",
    "p ((struct task_struct *)TASK1)->parent->comm",
    "p *(struct task_struct *)TASK1",
    "p/x *(struct task_struct *)TASK1",
    "p *((struct task_struct *)TASK1)->mm",
    "p nosuch",
    "p init_task.nosuch",
    "p *(int *)0",
    "p 1 +",
    "p 1/0",
    "p init_task.pid.x",
    "p init_task.prio > 100 ? init_task.comm : init_uts_ns.name.release",
    "p init_task.comm@2",
    "p init_uts_ns.name.sysname[0]@10",
    "p *init_task.tasks.next@2",
    "p &(init_task.pid@3)",
    "p init_task + 1",
    "p init_task.pid@0",
    "p *init_task.thread_pid",
    "p *init_task.real_cred",
    "p *prb",
    "p init_net",
    "p/x init_task",
]


@pytest.fixture(params=GUESTS)
def guest(request):
    return request.getfixturevalue(request.param)


def task1(g):
    out, _, _ = memsrv("--ram", g.ram, "ps")
    row = next(r.split() for r in out.splitlines()[1:] if r.split()[0] == "1")
    return "0x" + row[3]


def commands(g):
    t = task1(g)
    return [e.replace("TASK1", t) for e in EXPRS]


def gdb_prints(g, cmds):
    """GDB's answer to each command (stdout and stderr, in order), with
    the value history number made $1 as memsrv prints it."""
    argv = ["gdb", "-batch", "-nx"]
    if slide(g):
        argv += ["-ex", "symbol-file -o %#x %s" % (slide(g), vmlinux(g))]
    else:
        argv.append(vmlinux(g))
    argv += ["-ex", "set pagination off",
             "-ex", "target remote | %s gdbserver --stdio --ram %s" % (MEMSRV, g.ram)]
    for i, c in enumerate(cmds):
        argv += ["-ex", "echo ==== %d\\n" % i, "-ex", c]
    argv += ["-ex", "echo ==== end\\n"]
    env = dict(os.environ, LC_ALL="C")
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=600, env=env)
    parts = re.split(r"^==== (\S+)\n", p.stdout, flags=re.M)
    got = dict(zip(parts[1::2], parts[2::2]))
    assert "end" in got, p.stdout[-3000:]
    return [re.sub(r"^\$\d+ = ", "$1 = ", got[str(i)], flags=re.M) for i in range(len(cmds))]


def memsrv_prints(args, cmds):
    """memsrv's answer: stdout, or its error as GDB words it."""
    out = []
    for c in cmds:
        verb, expr = c.split(" ", 1)
        o, e, rc = memsrv(*args, verb, expr, check=False)
        if rc:
            assert o == "" and e.startswith("memsrv: "), (c, o, e)
            o = e[len("memsrv: "):]
        out.append(o)
    return out


def normalize_kaslr(texts):
    # GDB's symbol-file -o moves the per-CPU section too: NULL is named
    # <fixed_percpu_data> only where the vmlinux sits where it was linked
    return [re.sub(r" <fixed_percpu_data(\+\d+)?>", "", t) for t in texts]


def test_print_matches_gdb(guest, tmp_path):
    cmds = commands(guest)
    want = gdb_prints(guest, cmds)
    mine = memsrv_prints(["--ram", guest.ram], cmds)
    if slide(guest):
        want, mine = normalize_kaslr(want), normalize_kaslr(mine)
    bad = [(c, w, m) for c, w, m in zip(cmds, want, mine) if w != m]
    assert not bad, "\n".join(f"{c}\n  gdb:    {w!r}\n  memsrv: {m!r}" for c, w, m in bad)
    # the strings the guest holds, as it printed them
    assert mine[0] == '$1 = "swapper/0\\000\\000\\000\\000\\000\\000"\n'
    # over a server: the same texts
    srv = Server(guest.ram, str(tmp_path / "s.sock"))
    try:
        remote = memsrv_prints(["--connect", srv.sock], cmds)
    finally:
        srv.stop()
    if slide(guest):
        remote = normalize_kaslr(remote)
    assert remote == mine


def test_print_with_vmlinux_symbols(guest5):
    """With --vmlinux the names come from the ELF symbols (with their
    sizes): the zero-sized init_stack is not named, as in GDB."""
    g = guest5
    cmds = ["p init_task.stack", "p init_task", "p *init_uts_ns.ns.ops"]
    want = gdb_prints(g, cmds)
    assert memsrv_prints(["--ram", g.ram, "--vmlinux", vmlinux(g)], cmds) == want


def test_print_time(guest5):
    """The issue's goal: memsrv p end to end under 0.1 s."""
    t0 = time.monotonic()
    for _ in range(5):
        memsrv("--ram", guest5.ram, "p", "init_uts_ns.name.release")
    secs = (time.monotonic() - t0) / 5
    print(f"\nmemsrv p init_uts_ns.name.release: {secs * 1000:.1f} ms end to end")
    assert secs < 0.1


@pytest.fixture(params=FIXTURES)
def l2g(request):
    return request.getfixturevalue(request.param)


def test_print_l2_through_npt(l2g):
    release = l2g.l2linux["version"].split()[2]  # "Linux version 6.1.0-... (...)"
    out, _, _ = memsrv(*_nested(l2g), "p", "init_uts_ns.name.release")
    pad = 65 - len(release) - 1
    assert out == f'$1 = "{release}", \'\\000\' <repeats {pad} times>\n', out
    out, _, _ = memsrv(*_nested(l2g), "p", "init_task.comm")
    assert out == '$1 = "swapper/0\\000\\000\\000\\000\\000\\000"\n'
    # --nested auto finds the same VMCB
    auto, _, _ = memsrv("--ram", l2g.ram, "--nested", "auto", "p", "init_uts_ns.name.release")
    assert auto.startswith(f'$1 = "{release}"'), auto
    # L2's own kernel (its KASLR slide is not L1's): init_task where L2's
    # /proc/kallsyms put it, and its banner as /proc/version showed it
    at = l2g.l2linux["kallsyms"]["init_task"]
    out, _, _ = memsrv(*_nested(l2g), "p", "&init_task")
    assert out == f"$1 = (struct task_struct *) {at:#x} <init_task>\n", out
    out, _, _ = memsrv(*_nested(l2g), "p", "(char *)&linux_banner")
    banner = l2g.l2linux["version"]
    text = (banner + "\\n")[:200] if len(banner) < 200 else banner[:200]
    tail = '"...' if len(banner) + 1 > 200 else '"'  # print elements: 200 characters
    assert re.fullmatch(r"\$1 = 0x[0-9a-f]+ <linux_banner> ", out[:-len(text) - len(tail) - 2]), out
    assert out.endswith(f'"{text}{tail}\n'), out


@pytest.mark.parametrize("kind", ["ept", "npt"])
def test_print_through_transplant(guest5, tmp_path, kind):
    """guest5's memory moved behind an EPT/NPT (the kernel as a nested
    guest would see it): the same texts as on its own RAM."""
    g = guest5
    dst = str(tmp_path / "l1.ram")
    root = transplant(g.ram, dst, kind)
    stage = ["--eptp", hex(root)] if kind == "ept" else ["--ncr3", hex(root), "--npt-levels", "4"]
    cmds = commands(g)
    direct = memsrv_prints(["--ram", g.ram], cmds)
    nested = memsrv_prints(["--ram", dst, *stage], cmds)
    assert nested == direct
    os.unlink(dst)
