"""memsrv lsmod against the guests' own /proc/modules, printed before the
stop: L1 of guest_svm (lab.kvm=1 loads irqbypass, kvm and kvm-amd, and
tests/guest/init prints /proc/modules as "lab: modules" lines), and the real
Linux L2 of the l2linux fixtures through --ncr3 (tests/guest/l2init prints
"l2lab: modules" lines). struct module's layout from the kernel's own BTF
(no vmlinux), and from the -dbg vmlinux's DWARF: the same lines."""

import re

import pytest

from test_l2linux import FIXTURES, _nested
from test_linux import memsrv, vmlinux
from test_remote_linux import Server


def lsmod(*args):
    out, err, _ = memsrv(*args, "lsmod", "--stats")
    return out.splitlines(), err


def test_lsmod_l1(guest_svm, tmp_path):
    g = guest_svm
    names = [ln.split()[0] for ln in g.modules]
    assert {"kvm_amd", "kvm", "irqbypass", "qemu_fw_cfg"} <= set(names), g.modules
    mine, err = lsmod("--ram", g.ram)
    assert "types: BTF" in err, err
    # every field as the guest printed it: name, size, refcount, users
    # ("kvm_amd," on kvm), state, base, in the kernel's order
    assert mine == g.modules
    with_dwarf, err = lsmod("--ram", g.ram, "--vmlinux", vmlinux(g))
    assert "types: DWARF" in err, err
    assert with_dwarf == mine
    # over a server (MODULES): the same lines, and module symbols too
    srv = Server(g.ram, str(tmp_path / "s.sock"))
    try:
        remote, err = lsmod("--connect", srv.sock)
        assert remote == mine and "types: BTF" in err, err
        name, addr, mod = g.modsyms[0]
        out, _, _ = memsrv("--connect", srv.sock, "sym", name, hex(addr + 1))
        assert out.splitlines() == [f"0x{addr:016x} {name}",
                                    f"0x{addr + 1:016x} {name}+0x1 [{mod}]"], out
        # x names module code over a server too; a plain number (no symbol
        # file, no --cr3) is guest-physical: never named with kernel symbols
        out, _, _ = memsrv("--connect", srv.sock, "x/2i", name)
        assert re.match(rf"   0x{addr:x} <{name} \[{mod}\]>:\t", out), out
        out, _, _ = memsrv("--connect", srv.sock, "x/2xg", f"{name}+8")
        assert out.startswith(f"0x{addr + 8:x} <{name}+8 [{mod}]>:"), out
        out, _, _ = memsrv("--connect", srv.sock, "x/2xg", "0x1000")
        assert out.startswith("0x1000:"), out
    finally:
        srv.stop()


def test_module_symbols(guest_svm):
    """The guest's own /proc/kallsyms lines for three module symbols: the
    name gives the address, the address (and one inside) the name and
    module; x/i names the module's code the same way."""
    g = guest_svm
    assert {n for n, _, _ in g.modsyms} == {"msr_interception", "kvm_init",
                                            "irq_bypass_register_producer"}, g.modsyms
    for name, addr, mod in g.modsyms:
        out, _, _ = memsrv("--ram", g.ram, "sym", name, hex(addr), hex(addr + 4))
        assert out.splitlines() == [f"0x{addr:016x} {name}",
                                    f"0x{addr:016x} {name} [{mod}]",
                                    f"0x{addr + 4:016x} {name}+0x4 [{mod}]"], out
    name, addr, mod = next(s for s in g.modsyms if s[0] == "msr_interception")
    out, _, _ = memsrv("--ram", g.ram, "x/2i", name)
    assert re.match(rf"   0x{addr:x} <{name} \[{mod}\]>:\t", out), out


@pytest.fixture(params=FIXTURES)
def l2g(request):
    return request.getfixturevalue(request.param)


def test_lsmod_l2_through_npt(l2g):
    want = l2g.l2linux["modules"]
    assert any(ln.startswith("irqbypass ") for ln in want), want
    mine, err = lsmod(*_nested(l2g))
    assert "types: BTF" in err, err
    assert mine == want


def test_lsmod_l1_of_l2linux(l2g):
    """L1 printed /proc/modules before its QEMU opened /dev/kvm: /dev/kvm, the
    VM and every vCPU hold a reference on kvm_amd (kvm_init makes it the
    owner of kvm's file operations), so its refcount grew since; everything
    else is as printed."""
    mine, _ = lsmod("--ram", l2g.ram)
    want = l2g.modules
    assert len(mine) == len(want) and len(want) >= 4, (mine, want)
    for m, w in zip(mine, want):
        m, w = m.split(), w.split()
        if w[0] == "kvm_amd":
            assert int(m[2]) >= int(w[2]), (m, w)
            m[2] = w[2]
        assert m == w
