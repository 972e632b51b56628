"""Pure-Python parts of the GDB extension (no GDB): QEMU monitor output for
the zero-configuration attach, and the `break` line splitter used for
software breakpoints."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "gdbext"))

from nested import breakargs, qemu  # noqa: E402

# `info mtree -f` of QEMU 7.2, q35, 4 GiB (abridged: the CPU view and another).
MTREE_4G = """FlatView #0
 AS "cpu-smm-0", root: memory
 Root memory region: memory
  0000000000000000-000000000009ffff (prio 0, ram): pc.ram
  0000000000100000-000000007fffffff (prio 0, ram): pc.ram @0000000000100000

FlatView #1
 AS "memory", root: system
 AS "cpu-memory-0", root: system
 Root memory region: system
  0000000000000000-000000000009ffff (prio 0, ram): pc.ram
  00000000000a0000-00000000000bffff (prio 1, i/o): vga-lowmem
  00000000000c0000-00000000000dffff (prio 1, rom): pc.rom
  00000000000e0000-00000000000fffff (prio 0, rom): pc.bios @0000000000020000
  0000000000100000-000000007fffffff (prio 0, ram): pc.ram @0000000000100000
  00000000b0000000-00000000bfffffff (prio 0, i/o): pcie-mmcfg-mmio
  00000000fd000000-00000000fdffffff (prio 1, ram): vga.vram
  00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios
  0000000100000000-000000017fffffff (prio 0, ram): pc.ram @0000000080000000

FlatView #2
 AS "I/O", root: io
 Root memory region: io
  0000000000000000-0000000000000007 (prio 0, i/o): dma-chan
"""


def test_mtree_split_layout():
    regions = qemu.ram_regions(MTREE_4G, "pc.ram")
    # The hole below 1 MiB is bridged (the file holds those bytes); vga.vram
    # and the SMM view are not RAM of this backend.
    assert regions == [(0, 0x80000000, 0), (0x100000000, 0x80000000, 0x80000000)]
    assert qemu.map_spec(regions) == "0x0:0x80000000@0x0,0x100000000:0x80000000@0x80000000"


def test_mtree_errors():
    with pytest.raises(ValueError, match="not mapped"):
        qemu.ram_regions(MTREE_4G, "ram0")
    with pytest.raises(ValueError, match="cpu-memory-0"):
        qemu.ram_regions("FlatView #0\n AS \"I/O\", root: io\n", "pc.ram")


def test_memdev_and_qom():
    text = "memory backend: pc.ram\n  size:  536870912\n  share: true\nmemory backend: other\n"
    assert qemu.memdev_ids(text) == ["pc.ram", "other"]
    assert qemu.qom_string('"/tmp/a \\"b\\".ram"\n') == '/tmp/a "b".ram'
    assert qemu.qom_string('++monitor qom-get x\n"/x.ram"\n') == "/x.ram"
    with pytest.raises(ValueError):
        qemu.qom_string("Property 'mem-path' not found\n")


@pytest.mark.parametrize(
    "line,loc,cond,thread,force",
    [
        ("foo", "foo", None, None, False),
        ("foo if x > 1", "foo", "x > 1", None, False),
        ("prog.c:7 thread 2 if a == 'if b'", "prog.c:7", "a == 'if b'", "2", False),
        ("*foo+4", "*foo+4", None, None, False),
        ("-qualified ns::f if ok", "-qualified ns::f", "ok", None, False),
        ("'file with if.c':3", "'file with if.c':3", None, None, False),
        ("", "", None, None, False),
        ("if y", "", "y", None, False),
        ("f -force-condition if z", "f", "z", None, True),
        ("f thread 1.2", "f", None, "1.2", False),
    ],
)
def test_break_line_split(line, loc, cond, thread, force):
    a = breakargs.parse(line)
    assert (a.location, a.condition, a.thread, a.force) == (loc, cond, thread, force)


@pytest.mark.parametrize("line", ["foo if", "foo thread", "foo thread x", "foo thread 1 junk"])
def test_break_line_errors(line):
    with pytest.raises(ValueError):
        breakargs.parse(line)
