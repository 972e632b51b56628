"""SMP in the nested case (issue 16): L1 with 2 vCPUs (QEMU TCG) running a
Debian Linux L2 with 2 vCPUs under KVM (the guest_l2linux4 fixture: L2
pins one spinning shell to each of its CPUs and prints their pids, and its
kallsyms' __per_cpu_offset, tests/guest/l2init).

- discover lists one VMCB per L2 vCPU, each with the L2 CPU it holds; the
  oracle is Python's: the VMCB's GS base (else KERNEL_GS_BASE) against L2's
  __per_cpu_offset[] read through that VMCB's own NPT and CR3 at the
  address L2's /proc/kallsyms gave.
- bt --cpu N names the task L2 runs on CPU N (its spinner, while every
  vCPU runs L2 user code) and unwinds it from that CPU's VMCB. The VMCB
  holds the state at the last #VMEXIT: while that vCPU runs on in L2 the
  state is stale (its stack moved on), so the full unwind is checked on a
  CPU whose vCPU is out of L2 at the stop (the test stops the guest until
  one is, then settles it back in L2 for the other tests).
- GDB through the proxy sees 2 threads, each in L2, and reads L2's
  linux_banner and the thread's own user stack (its own CR3) in each."""

import os
import re
import shutil
import subprocess
import time

import pytest

import oracle
import test_l2linux

VMCB_GS_BASE = 0x458
VMCB_KERNEL_GS_BASE = 0x620
VMCB_RIP = 0x578
VMCB_CR3 = 0x550
USER_TOP = 1 << 47


@pytest.fixture
def g(guest_l2linux4):
    assert guest_l2linux4.smp == 2
    return guest_l2linux4


def _in_l2_everywhere(g):
    """Both vCPUs in L2 (other tests resume the guest): settled again if not."""
    g.require_wanted_place("could not stop the guest with both vCPUs in L2")


def _u64(ram, gpa):
    return int.from_bytes(ram.read(gpa, 8), "little")


def _vcpu_truth(g):
    """{VMCB page: L2 CPU} computed here: its GS base (KERNEL_GS_BASE in user
    mode) is __per_cpu_offset[cpu], read through its own NPT and CR3."""
    vmcbs, levels = test_l2linux._truths(g)
    table = g.l2linux["kallsyms"]["__per_cpu_offset"]
    ram = oracle.RamFile(g.ram, g.layout_regions())
    try:
        out = {}
        for v in vmcbs:
            _npt, walk2d = oracle.nested_walker(ram, v["ncr3"], levels)
            offsets = []
            for cpu in range(2):
                phys = walk2d(v["cr3"], table + 8 * cpu, 4)
                assert phys is not None, f"__per_cpu_offset does not map through {v}"
                offsets.append(_u64(ram, phys))
            bases = [_u64(ram, v["gpa"] + VMCB_GS_BASE), _u64(ram, v["gpa"] + VMCB_KERNEL_GS_BASE)]
            cpus = [offsets.index(b) for b in bases if b in offsets]
            assert cpus, (hex(v["gpa"]), [hex(b) for b in bases], [hex(o) for o in offsets])
            out[v["gpa"]] = cpus[0]
        return out, vmcbs, levels
    finally:
        ram.close()


def test_l2_runs_two_cpus(g):
    l2 = g.l2linux
    assert l2["cpus"] == {"nproc": 2, "processors": 2}, l2["cpus"]
    assert sorted(s["cpu"] for s in l2["spins"]) == [0, 1], l2["spins"]
    assert "__per_cpu_offset" in l2["kallsyms"], l2["kallsyms"]


def test_discover_lists_a_vmcb_per_vcpu(g):
    _in_l2_everywhere(g)
    truth, vmcbs, levels = _vcpu_truth(g)
    assert sorted(truth.values()) == [0, 1], truth
    r = oracle.memsrv(["discover", "--ram", g.ram, "6"], check=True)
    rows = re.findall(r"^(\d+)\s+VMCB\s+0x([0-9a-f]+)\s+\d+\s+--ncr3 (0x[0-9a-f]+) "
                      r"--npt-levels (\d).*\(L2 vCPU (\d+), ASID", r.stdout, re.M)
    got = {int(page, 16): int(cpu) for _n, page, _ncr3, _l, cpu in rows}
    assert got == truth, r.stdout
    # the two are the best candidates, vCPU 0 first, over the one NPT
    assert [int(n) for n, *_ in rows] == [1, 2], r.stdout
    assert [int(c) for *_, c in rows] == [0, 1], r.stdout
    assert {int(n3, 16) for _n, _p, n3, _l, _c in rows} == {vmcbs[0]["ncr3"]}, r.stdout
    assert {int(lv) for _n, _p, _n3, lv, _c in rows} == {levels}, r.stdout
    for cpu in (0, 1):
        assert re.search(rf"; L2 CPU {cpu}: (GS base|KERNEL_GS_BASE) 0x[0-9a-f]+ is "
                         rf"__per_cpu_offset\[{cpu}\]", r.stdout), r.stdout


def _bt_cpu(g, cpu):
    r = oracle.memsrv(test_l2linux._nested(g) + ["bt", "--cpu", str(cpu)], check=True)
    m = re.match(r"PID: (\d+)\s+TASK: ([0-9a-f]+)\s+CPU: (\d+)\s+COMMAND: \"(.*)\"\n", r.stdout)
    assert m, r.stdout
    return int(m.group(1)), int(m.group(3)), m.group(4), r.stdout


# Where a kernel stack of a running task ends: user-mode registers at an
# entry (a syscall, an interrupt, an exception), or an idle task's start.
ENTRY = re.compile(r"^\s+(RIP: 0033:|#\d+ (entry_SYSCALL_64\w*|asm_\w+|ret_from_fork\w*|"
                   r"secondary_startup_64\w*|start_secondary|x86_64_start_\w+)\+)", re.M)


def _check_frames(out, cpu, complete):
    """The VMCB's place first (a kernel symbol, or user mode), then named
    frames; complete: the unwind reached an entry, with no "bt:" stop."""
    m = re.search(rf"^    running on CPU {cpu} \(its VMCB: the state at its last #VMEXIT"
                  r"(?:, all registers from L1's KVM)?\): "
                  r"RIP (\S+) RSP [0-9a-f]{16} EFLAGS [0-9a-f]+( \(user mode\))?$", out, re.M)
    assert m, out
    user = m.group(2) is not None
    assert user or re.fullmatch(r"\w+\+0x[0-9a-f]+/0x[0-9a-f]+", m.group(1)), out
    if complete and not user:
        assert "    bt: " not in out, out
        assert ENTRY.search(out), out


def test_bt_cpu_names_the_spinners(g):
    _in_l2_everywhere(g)
    in_user = all(r["RIP"] < USER_TOP for r in g.cpu_regs)
    spinner = {s["cpu"]: s["pid"] for s in g.l2linux["spins"]}
    for cpu in (0, 1):
        pid, on, comm, out = _bt_cpu(g, cpu)
        assert on == cpu, out
        if in_user:  # L2 runs user code on both CPUs: only the spinners do
            assert (pid, comm) == (spinner[cpu], "sh"), (spinner, out)
        _check_frames(out, cpu, complete=False)
    # no third CPU
    r = oracle.memsrv(test_l2linux._nested(g) + ["bt", "--cpu", "2"])
    assert r.returncode != 0 and "no CPU 2: the kernel has 2" in r.stderr, r.stderr


def _stop_with_one_vcpu_out_of_l2(g, attempts=60):
    """Resumes and stops the guest until some L1 vCPU is not in L2; returns
    the L2 CPUs whose VMCB is current then (no vCPU runs them in L2): those
    whose saved CR3 is not the one an in-L2 vCPU shows. The run between
    stops grows (each stop risks QEMU's TCG bugs, notes/qemu.md s.7); a
    guest those broke is booted again (g.revive_if_broken)."""
    run = 0.02
    for _ in range(attempts):
        if g.frozen or g.l2_death():
            if not g.revive_if_broken():
                pytest.fail(f"{g.name} broke and was booted again too often: "
                            f"{g.l2_death() or 'frozen'}")
        g.qmp.cmd("cont")
        time.sleep(run)
        run = min(run * 1.25, 0.3)
        g._stop()
        if g.frozen:
            continue
        g._read_registers()
        live = [i for i in range(g.smp) if g.in_l2linux(i)]
        if len(live) == g.smp or g.l2_death():
            continue
        truth, vmcbs, _levels = _vcpu_truth(g)
        # (bit 12 too: with PTI user and kernel CR3 differ there)
        live_cr3 = {g.cpu_regs[i]["CR3"] & ~0x1fff for i in live}
        current = [truth[v["gpa"]] for v in vmcbs if (v["cr3"] & ~0x1fff) not in live_cr3]
        if len(current) >= g.smp - len(live):
            return current
    return []


def test_bt_cpu_unwinds_a_current_vmcb(g):
    try:
        current = _stop_with_one_vcpu_out_of_l2(g)
        assert current, f"no stop with a vCPU out of L2 in 60 tries: {g._where_now()}"
        for cpu in current:
            _pid, on, _comm, out = _bt_cpu(g, cpu)
            assert on == cpu, out
            _check_frames(out, cpu, complete=True)
    finally:
        if g.qmp is not None:
            g._settle()  # back in L2 on both vCPUs, for the other tests


@pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb not installed")
def test_proxy_shows_two_threads_in_l2(g):
    _in_l2_everywhere(g)
    v, levels = test_l2linux._truth(g)
    text = oracle.symbol(g, "_text")
    slide = g.l2linux["kallsyms"]["_text"] - text
    vmlinux = os.path.join(g.kernel_dir, "vmlinux")
    target = (f"target remote | {oracle.MEMSRV} gdbproxy --stdio --qemu {g.gdb_address} "
              f"--ram {g.ram} --ncr3 {v['ncr3']:#x} --npt-levels {levels}")
    cmds = ["info threads"]
    for t in (1, 2):
        cmds += [f"thread {t}", "p/x $cr3", "p/x $rsp", "x/2gx $rsp", "p linux_banner"]
    cmd = ["gdb", "-batch", "-nx", "-ex", f"symbol-file {vmlinux} -o {slide:#x}", "-ex", target,
           "-ex", "set print elements 0"]
    for c in cmds:
        cmd += ["-ex", c]
    cmd += ["-ex", "disconnect"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    threads = re.findall(r"^\*?\s+(\d)\s+Thread 1\.(\d) \(CPU#(\d) \[\w+\], (L\d)", r.stdout, re.M)
    assert [(t, lv) for t, _tid, _cpu, lv in threads] == [("1", "L2"), ("2", "L2")], out
    version = g.l2linux["version"]
    banners = re.findall(r'^\$\d+ = 0x[0-9a-f]+ <linux_banner> "(.*)\\n"$', r.stdout, re.M)
    assert banners == [version, version], out
    # Each thread's memory through its own CR3: its user stack's words, as
    # walked here from that vCPU's CR3 (QEMU's registers) through the NPT.
    cr3s = [int(x, 16) for x in re.findall(r"^\$\d+ = (0x[0-9a-f]+)$", r.stdout, re.M)][0::2]
    stacks = re.findall(r"^0x[0-9a-f]+:\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)$", r.stdout, re.M)
    assert cr3s == [g.cpu_regs[i]["CR3"] for i in range(2)], out
    assert len(stacks) == 2, out
    ram = oracle.RamFile(g.ram, g.layout_regions())
    try:
        _npt, walk2d = oracle.nested_walker(ram, v["ncr3"], levels)
        for i in range(2):
            rsp = g.cpu_regs[i]["RSP"]
            phys = walk2d(g.cpu_regs[i]["CR3"], rsp, 4)
            assert phys is not None, (i, hex(rsp))
            phys8 = walk2d(g.cpu_regs[i]["CR3"], rsp + 8, 4)
            want = (_u64(ram, phys), _u64(ram, phys8))
            assert tuple(int(w, 16) for w in stacks[i]) == want, (i, out)
    finally:
        ram.close()
