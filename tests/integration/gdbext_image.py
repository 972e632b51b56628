"""A small synthetic guest for the GDB-extension tests (plain Python, no QEMU):

- a raw RAM image (what QEMU's memory-backend-file holds), 4 MiB at GPA 0;
- L1 4-level page tables at CR3 0x1000 mapping KBASE.. page by page onto
  scrambled physical pages;
- an Intel EPT (4-level, WB) mapping L2-physical pages 0..L2_PAGES-1 onto
  scrambled physical pages, and L2 4-level page tables (in L2-physical
  memory, reached through the EPT) mapping L2VA.. onto L2-physical pages;
- an ELF core whose PT_LOADs give GDB the same bytes: physical addresses
  identically, KBASE.. at their L1 virtual addresses, so that GDB's own `x`
  is the oracle for `nx`; the L2 virtual range is deliberately not in it;
- an ELF executable with symbols over KBASE (for <sym+off> and expressions).

Every value lands in the image through explicit tables, so the expected
bytes of every address are known to the test.
"""

import os
import random
import struct
import subprocess

RAM_SIZE = 4 << 20
CR3 = 0x1000
KBASE = 0xFFFFFFFF81000000
K_PAGES = 16
EPT_ROOT = 0x10000
EPTP = EPT_ROOT | (3 << 3) | 6  # 4-level walk, write-back
L2_PAGES = 64
L2_CR3 = 0x1000  # an L2-physical address
L2VA = 0x5A5A00042000
L2VA_PAGES = 4
MARKER = b"NESTED-L2-MARKER-6789\0"

P, RW, US, PS = 1, 2, 4, 0x80
EPT_RWX = 7
EPT_WB = 6 << 3


class Image:
    def __init__(self, seed=1234):
        self.rng = random.Random(seed)
        self.ram = bytearray(RAM_SIZE)
        self.next_table = 0x20000  # physical pages handed out for tables
        self.kpages = []  # physical page of each KBASE page
        self.l2phys = {}  # L2-physical page number -> physical address
        self.l2va_pages = []  # L2-physical page of each L2VA page

    def u64(self, addr, value):
        struct.pack_into("<Q", self.ram, addr, value)

    def table(self):
        a = self.next_table
        self.next_table += 0x1000
        return a

    # -- L1 paging over physical -------------------------------------------
    def map4k(self, root, va, pa, flags=P | RW):
        """Maps one 4 KiB page in 4-level tables rooted at physical `root`."""
        t = root
        for shift in (39, 30, 21):
            idx = (va >> shift) & 511
            e = struct.unpack_from("<Q", self.ram, t + idx * 8)[0]
            if not e & P:
                e = self.table() | P | RW | US
                self.u64(t + idx * 8, e)
            t = e & 0x000FFFFFFFFFF000
        self.u64(t + ((va >> 12) & 511) * 8, pa | flags)

    def build(self):
        # Physical data pages for the kernel range: scrambled, so reads that
        # cross pages prove the walk, not contiguity.
        phys_pool = list(range(0x100000, 0x200000, 0x1000))
        self.rng.shuffle(phys_pool)
        for i in range(K_PAGES):
            pa = phys_pool.pop()
            self.kpages.append(pa)
            self.map4k(CR3, KBASE + i * 0x1000, pa)
        # Fill every non-table page with data: random words, some text.
        for pa in range(0x100000, RAM_SIZE, 0x1000):
            page = bytearray(self.rng.getrandbits(8) for _ in range(0x1000))
            text = b"Linux version 6.1.0 nested test image\0abc\tdef\n\x01\x7f\0"
            page[0x100 : 0x100 + len(text)] = text
            page[0x200:0x208] = struct.pack("<Q", KBASE + 0x1234)  # a pointer for x/a
            page[0x300:0x310] = struct.pack("<dd", 3.25, -1.5e300)
            self.ram[pa : pa + 0x1000] = page
        # EPT: L2-physical page j -> a scrambled physical page at 3 MiB+.
        pool2 = list(range(0x300000, 0x300000 + L2_PAGES * 0x1000, 0x1000))
        self.rng.shuffle(pool2)
        for j in range(L2_PAGES):
            self.l2phys[j] = pool2[j]
            self.ept_map(j * 0x1000, pool2[j])
        # L2 page tables live in L2-physical pages 1.. (through the EPT).
        for j in range(1, 8):
            pa = self.l2phys[j]
            self.ram[pa : pa + 0x1000] = bytes(0x1000)
        self.l2_next = 2  # L2 page 1 is the L2 PML4 (L2_CR3 0x1000)
        for k in range(L2VA_PAGES):
            j = 0x20 + 3 * k  # not contiguous either
            self.l2va_pages.append(j)
            self.l2_map4k(L2VA + k * 0x1000, j * 0x1000)
        pa = self.l2phys[self.l2va_pages[0]]
        self.ram[pa : pa + len(MARKER)] = MARKER
        return self

    def ept_map(self, gpa, pa):
        t = EPT_ROOT
        for shift in (39, 30, 21):
            idx = (gpa >> shift) & 511
            e = struct.unpack_from("<Q", self.ram, t + idx * 8)[0]
            if not e & 7:
                e = self.table() | EPT_RWX
                self.u64(t + idx * 8, e)
            t = e & 0x000FFFFFFFFFF000
        self.u64(t + ((gpa >> 12) & 511) * 8, pa | EPT_RWX | EPT_WB)

    def l2_map4k(self, va, l2pa):
        """4-level L2 tables: every table address is L2-physical."""
        t = L2_CR3
        for shift in (39, 30, 21):
            idx = (va >> shift) & 511
            slot = self.l2phys[t >> 12] + (t & 0xFFF) + idx * 8
            e = struct.unpack_from("<Q", self.ram, slot)[0]
            if not e & P:
                e = (self.l2_next << 12) | P | RW | US
                self.l2_next += 1
                self.u64(slot, e)
            t = e & 0x000FFFFFFFFFF000
        slot = self.l2phys[t >> 12] + ((va >> 12) & 511) * 8
        self.u64(slot, l2pa | P | RW | US)

    # -- ground truth -------------------------------------------------------
    def k_phys(self, va):
        return self.kpages[(va - KBASE) >> 12] + (va & 0xFFF)

    def l2_phys(self, va):
        j = self.l2va_pages[(va - L2VA) >> 12]
        return self.l2phys[j] + (va & 0xFFF)

    # -- files ---------------------------------------------------------------
    def write(self, directory):
        os.makedirs(directory, exist_ok=True)
        ram = os.path.join(directory, "guest.ram")
        with open(ram, "wb") as f:
            f.write(self.ram)
        core = os.path.join(directory, "guest.core")
        loads = [(0, 0, RAM_SIZE)]  # (vaddr, paddr, size): physical, identity
        for i, pa in enumerate(self.kpages):
            loads.append((KBASE + i * 0x1000, pa, 0x1000))
        write_core(core, self.ram, loads)
        return ram, core


def write_core(path, ram, loads):
    """An ET_CORE ELF64 with one PT_LOAD per (vaddr, paddr, size); the data
    of each is the RAM at paddr. No notes: GDB warns it has no registers."""
    ehsize, phsize = 64, 56
    phoff = ehsize
    data_off = phoff + phsize * len(loads)
    data_off = (data_off + 0xFFF) & ~0xFFF
    out = bytearray()
    out += b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    out += struct.pack("<HHIQQQIHHHHHH", 4, 62, 1, 0, phoff, 0, 0, ehsize, phsize, len(loads), 64, 0, 0)
    blobs = []
    off = data_off
    for vaddr, paddr, size in loads:
        out += struct.pack("<IIQQQQQQ", 1, 6, off, vaddr, paddr, size, size, 0x1000)
        blobs.append((off, bytes(ram[paddr : paddr + size])))
        off += size
    out += bytes(data_off - len(out))
    for o, b in blobs:
        assert len(out) == o
        out += b
    with open(path, "wb") as f:
        f.write(out)


def write_symbols(directory):
    """An x86-64 ELF with symbols over KBASE (so GDB has an architecture,
    symbols for expressions and <sym+off>)."""
    src = os.path.join(directory, "syms.S")
    obj = os.path.join(directory, "syms.o")
    elf = os.path.join(directory, "syms.elf")
    with open(src, "w") as f:
        f.write(
            ".text\n.globl kstart\nkstart:\n.zero 0x1000\n"
            ".globl kmiddle\nkmiddle:\n.zero 0x2000\n"
            ".data\n.globl kdata\nkdata:\n.zero 0x100\n"
        )
    subprocess.run(["gcc", "-c", src, "-o", obj], check=True)
    subprocess.run(
        ["ld", "-o", elf, "-Ttext=0x%x" % KBASE, "-Tdata=0x%x" % (KBASE + 0x8000), "-e", "kstart", obj],
        check=True,
    )
    return elf


def write_qemu_dump(path, ram, rip, rsp, cr3, cr4=0x20):
    """A dump-guest-memory-style ELF: one identity PT_LOAD and a "QEMU" note
    (QEMUCPUState, 0x1b8 bytes) carrying the registers, as QEMU writes for
    whichever level the vCPU was in."""
    regs = [0] * 18  # rax..r15, rip, rflags
    regs[6], regs[16], regs[17] = rsp, rip, 0x2
    state = struct.pack("<II", 1, 0x1B8) + struct.pack("<18Q", *regs)
    state += bytes(24 * 10)  # cs ds es fs gs ss ldt tr gdt idt
    state += struct.pack("<5Q", 0x80050033, 0, 0, cr3, cr4) + struct.pack("<Q", 0)
    assert len(state) == 0x1B8
    note = struct.pack("<III", 5, len(state), 0) + b"QEMU\0\0\0\0" + state
    ehsize, phsize = 64, 56
    note_off = ehsize + 2 * phsize
    data_off = (note_off + len(note) + 0xFFF) & ~0xFFF
    out = bytearray(b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8))
    out += struct.pack("<HHIQQQIHHHHHH", 4, 62, 1, 0, ehsize, 0, 0, ehsize, phsize, 2, 64, 0, 0)
    out += struct.pack("<IIQQQQQQ", 4, 0, note_off, 0, 0, len(note), len(note), 0)
    out += struct.pack("<IIQQQQQQ", 1, 6, data_off, 0, 0, len(ram), len(ram), 0x1000)
    out += note
    out += bytes(data_off - len(out))
    out += ram
    with open(path, "wb") as f:
        f.write(out)


if __name__ == "__main__":
    import sys

    out = sys.argv[1] if len(sys.argv) > 1 else "."
    image = Image().build()
    ram, core = image.write(out)
    elf = write_symbols(out)
    print("ram %s core %s symbols %s" % (ram, core, elf))
    print("L1: cr3 0x%x (4-level) maps 0x%x.. ; L2: eptp 0x%x, cr3 0x%x, marker at 0x%x -> phys 0x%x"
          % (CR3, KBASE, EPTP, L2_CR3, L2VA, image.l2_phys(L2VA)))
