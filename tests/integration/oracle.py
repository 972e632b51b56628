"""Helpers for the real-guest tests: running memsrv, gathering candidate
addresses, reading QEMU's answers, and parsing ELF dumps and RAM files
independently of memsrv (the oracles)."""

import mmap
import os
import random
import re
import struct
import subprocess

import guests
import qmp as qmplib

MEMSRV = os.environ.get("MEMSRV", os.path.join(guests.ROOT, "build", "memsrv"))
KERNEL_MAP = 0xffffffff80000000
TEXT_NOKASLR = 0xffffffff81000000


def memsrv(args, stdin=None, check=False):
    if not os.access(MEMSRV, os.X_OK):
        raise AssertionError(f"{MEMSRV} not built (run make, or set MEMSRV=path)")
    r = subprocess.run([MEMSRV] + [str(a) for a in args], input=stdin, capture_output=True,
                       text=True, timeout=600)
    if check and r.returncode != 0:
        raise AssertionError(f"memsrv {' '.join(map(str, args))} failed ({r.returncode}): "
                             f"{r.stderr.strip()}")
    return r


def paging_args(g, source=None):
    return (source or ["--ram", g.ram]) + ["--cr3", hex(g.cr3), "--levels", str(g.levels)]


def vtop_batch(args, addrs):
    """memsrv vtop --brief - over addrs -> {addr: ('ok', phys) | ('err', msg)}."""
    r = memsrv(args + ["vtop", "--brief", "-"], stdin="".join(f"{a:#x}\n" for a in addrs))
    out = {}
    for line in r.stdout.splitlines():
        m = re.fullmatch(r"0x([0-9a-f]+) (?:0x([0-9a-f]+)|error: (.*))", line)
        if not m:
            raise AssertionError(f"unparsable memsrv vtop --brief line {line!r}")
        a = int(m.group(1), 16)
        out[a] = ("ok", int(m.group(2), 16)) if m.group(2) else ("err", m.group(3))
    missing = [a for a in addrs if a not in out]
    if missing:
        raise AssertionError(f"memsrv gave no line for {len(missing)} addresses, e.g. "
                             f"{missing[0]:#x}; stderr: {r.stderr[-500:]}")
    return out


def qemu_gva2gpa(g, addrs):
    replies = g.hmp_many([f"gva2gpa {a:#x}" for a in addrs])
    return {a: qmplib.hmp_gva2gpa(r) for a, r in zip(addrs, replies)}


def in_layout(regions, gpa):
    return qmplib.gpa_to_offset(regions, gpa) is not None


def compare_translations(mem, qemu, regions):
    """Returns (counts, mismatches). QEMU's Unmapped must be a memsrv error
    that is not a "paging maps ... to G" (a walk failure); QEMU's G outside
    RAM must be memsrv's "paging maps A to G, but ... not in RAM"; else the
    physical addresses must be equal."""
    counts = {"mapped": 0, "unmapped": 0, "outside_ram": 0}
    bad = []
    for a, q in qemu.items():
        kind, val = mem[a]
        if q is None:
            counts["unmapped"] += 1
            if kind != "err" or "paging maps" in val:
                bad.append((a, "Unmapped", mem[a]))
        elif not in_layout(regions, q):
            counts["outside_ram"] += 1
            m = re.search(r"maps 0x[0-9a-f]+ to 0x([0-9a-f]+)", val) if kind == "err" else None
            if not m or int(m.group(1), 16) != q:
                bad.append((a, hex(q), mem[a]))
        else:
            counts["mapped"] += 1
            if kind != "ok" or val != q:
                bad.append((a, hex(q), mem[a]))
    return counts, bad


def fmt_bad(bad, n=8):
    return "; ".join(f"{a:#x}: qemu {q} memsrv {m}" for a, q, m in bad[:n])


# -- candidate addresses --------------------------------------------------------

def system_map(g):
    syms = []
    with open(os.path.join(g.kernel_dir, "System.map")) as f:
        for line in f:
            addr, typ, name = line.split()[:3]
            syms.append((int(addr, 16), typ, name))
    return syms


def symbol(g, name):
    for a, _t, n in system_map(g):
        if n == name:
            return a
    raise KeyError(name)


def tlb_pages(g):
    """[(va, pa)] from `info tlb` (current CR3)."""
    out = []
    for line in g.hmp("info tlb").splitlines():
        m = re.match(r"^([0-9a-f]{16}): ([0-9a-f]{16}) ", line)
        if m:
            out.append((int(m.group(1), 16), int(m.group(2), 16)))
    return out


def kaslr_slide(g, tlb):
    """The kernel image's virtual slide: the lowest mapped VA of the kernel
    image map (cleanup_highmap unmaps everything below _text), checked by
    reading linux_banner through QEMU."""
    image = [va for va, _ in tlb if KERNEL_MAP <= va < 0xffffffffc0000000]
    if not image:
        raise AssertionError("info tlb shows no kernel image mapping")
    slide = min(image) - symbol(g, "_text")
    banner = symbol(g, "linux_banner") + slide
    got = qmplib.hmp_x_bytes(g.hmp(f"x/2gx {banner:#x}"))
    if not got or not got.startswith(b"Linux ve"):
        raise AssertionError(f"slide {slide:#x}: linux_banner reads {got!r}")
    return slide


def candidates(g, seed=1, n_syms=2500, n_random=400):
    """Kernel text/data symbols (System.map, slid), every page `info tlb`
    lists (at a random offset inside the page), random direct-map addresses,
    and random canonical addresses (mostly unmapped)."""
    rnd = random.Random(seed)
    tlb = tlb_pages(g)
    slide = kaslr_slide(g, tlb)
    syms = [a + slide for a, t, _ in system_map(g) if a >= KERNEL_MAP and t in "TtDdBbRr"]
    rnd.shuffle(syms)
    picked = {"symbols": syms[:n_syms]}
    picked["tlb"] = [va + rnd.randrange(0, 4096, 8) for va, _ in tlb]
    pob = qmplib.hmp_x_bytes(g.hmp(f"x/1gx {symbol(g, 'page_offset_base') + slide:#x}"))
    page_offset = int.from_bytes(pob, "little")
    regions = g.layout_regions()
    dm = []
    for _ in range(n_random):
        gpa_start, length, _off = rnd.choice(regions)
        dm.append(page_offset + gpa_start + rnd.randrange(length))
    picked["direct_map"] = dm
    bits = 56 if g.levels == 5 else 47
    noise = []
    for _ in range(n_random):
        a = rnd.getrandbits(bits)
        if rnd.random() < 0.5:
            a |= ((1 << 64) - 1) ^ ((1 << bits) - 1)  # upper half, sign-extended
        noise.append(a)
    picked["random"] = noise
    return picked, {"slide": slide, "page_offset_base": page_offset, "tlb": tlb}


def unique(groups):
    seen = set()
    out = []
    for lst in groups.values():
        for a in lst:
            if a not in seen:
                seen.add(a)
                out.append(a)
    return out


# -- memsrv x output ------------------------------------------------------------

def parse_x_gx(text):
    """GDB-style `x/Ngx` output -> bytes. Lines "ADDR [<sym>]:\\tWORD WORD"."""
    data = bytearray()
    for line in text.splitlines():
        if ":" not in line:
            continue
        for w in line.split(":", 1)[1].split():
            data += int(w, 16).to_bytes(8, "little")
    return bytes(data)


# -- files read without memsrv --------------------------------------------------

class RamFile:
    def __init__(self, path, regions):
        self.f = open(path, "rb")
        self.m = mmap.mmap(self.f.fileno(), 0, prot=mmap.PROT_READ)
        self.regions = regions

    def read(self, gpa, n):
        off = qmplib.gpa_to_offset(self.regions, gpa)
        if off is None:
            return None
        return self.m[off:off + n]

    def close(self):
        self.m.close()
        self.f.close()


class ElfDump:
    """PT_LOAD segments of a QEMU dump-guest-memory ELF, by p_paddr."""

    def __init__(self, path):
        self.f = open(path, "rb")
        self.m = mmap.mmap(self.f.fileno(), 0, prot=mmap.PROT_READ)
        if self.m[:4] != b"\x7fELF" or self.m[4] != 2:
            raise AssertionError(f"{path}: not an ELF64 file")
        phoff, = struct.unpack_from("<Q", self.m, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", self.m, 0x36)
        self.loads = []
        for i in range(phnum):
            p_type, _fl, off, vaddr, paddr, filesz, _memsz, _al = struct.unpack_from(
                "<IIQQQQQQ", self.m, phoff + i * phentsize)
            if p_type == 1:
                self.loads.append((paddr, filesz, off))

    def read(self, gpa, n):
        for paddr, size, off in self.loads:
            if paddr <= gpa and gpa + n <= paddr + size:
                return self.m[off + gpa - paddr: off + gpa - paddr + n]
        return None

    def close(self):
        self.m.close()
        self.f.close()


# -- VMCB / HSAVE scan (an oracle in Python, notes/qemu.md section 5) --------------

EFER_SVME = 1 << 12
VMCB_SAVE = 0x400


def scan_vmcbs(ram_path, regions):
    """Scans every page of the RAM file for an SVM VMCB and for the host-save
    area. VMCB: VMRUN intercept (u32@0x10 bit 0), NP_ENABLE (u64@0x90 bit 0),
    nested_cr3 (u64@0xb0) page-aligned and in RAM, save-area EFER (@0x4d0)
    with SVME. HSAVE: control area all zero, save-area EFER with SVME and
    LMA, CR0.PG set. Returns (vmcbs, hsaves): lists of dicts."""
    vmcbs, hsaves = [], []
    zero_ctl = bytes(0x400)
    with open(ram_path, "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
        for gpa0, length, off0 in regions:
            for off in range(off0, off0 + length, 4096):
                efer, = struct.unpack_from("<Q", m, off + 0x4d0)
                if not efer & EFER_SVME or efer >> 16:
                    continue
                cr4, cr3, cr0 = struct.unpack_from("<QQQ", m, off + 0x548)
                rip, = struct.unpack_from("<Q", m, off + 0x578)
                rsp, = struct.unpack_from("<Q", m, off + 0x5d8)
                save = dict(gpa=gpa0 + off - off0, efer=efer, cr0=cr0, cr3=cr3, cr4=cr4,
                            rip=rip, rsp=rsp)
                ctl = m[off:off + 0x400]
                if ctl == zero_ctl:
                    if cr0 & (1 << 31) and efer & (1 << 10):
                        hsaves.append(save)
                    continue
                icpt2, = struct.unpack_from("<I", m, off + 0x10)
                np_enable, = struct.unpack_from("<Q", m, off + 0x90)
                ncr3, = struct.unpack_from("<Q", m, off + 0xb0)
                asid, = struct.unpack_from("<I", m, off + 0x58)
                exitcode, = struct.unpack_from("<Q", m, off + 0x70)
                if not icpt2 & 1 or not np_enable & 1 or ncr3 & 0xfff or not ncr3:
                    continue
                if qmplib.gpa_to_offset(regions, ncr3) is None:
                    continue
                save.update(ncr3=ncr3, asid=asid, exitcode=exitcode)
                vmcbs.append(save)
    return vmcbs, hsaves


# -- an independent x86-64 / NPT walker (for the nested tests) ---------------------

ADDR_MASK = ((1 << 52) - 1) & ~0xfff


def walk(read_u64, root, addr, levels):
    """x86-64 long-mode walk (also AMD NPT, which uses the same format).
    read_u64(table_address) reads one entry at a lower-stage address.
    Returns the lower address, or None when not present."""
    table = root & ADDR_MASK
    for level in range(levels, 0, -1):
        shift = 12 + 9 * (level - 1)
        e = read_u64(table + 8 * ((addr >> shift) & 511))
        if e is None or not e & 1:
            return None
        if level == 1 or (level in (2, 3) and e & 0x80):
            base = e & ADDR_MASK & ~((1 << shift) - 1)
            return base | (addr & ((1 << shift) - 1))
        table = e & ADDR_MASK
    return None


def nested_walker(ram, ncr3, npt_levels):
    """Returns (npt(l2gpa) -> l1gpa, walk2d(cr3, gva, levels) -> l1gpa)."""
    def l1_u64(gpa):
        b = ram.read(gpa, 8)
        return None if b is None else int.from_bytes(b, "little")

    def npt(l2gpa):
        return walk(l1_u64, ncr3, l2gpa, npt_levels)

    def l2_u64(l2gpa):
        g = npt(l2gpa)
        return None if g is None else l1_u64(g)

    def walk2d(cr3, gva, levels=4):
        l2gpa = walk(l2_u64, cr3, gva, levels)
        return None if l2gpa is None else npt(l2gpa)

    return npt, walk2d
