"""Text for walk traces and page-table dumps. Only printing: the walks
themselves are the library's (Space.translate / Space.enumerate)."""

KIND_NAMES = {0: "phys", 1: "paging", 2: "NPT", 3: "EPT"}
LEVEL_NAMES = {5: "PML5E", 4: "PML4E", 3: "PDPTE", 2: "PDE", 1: "PTE"}
PERM_R, PERM_W, PERM_X, PERM_U = 1, 2, 4, 8
ADDR_MASK = 0x000FFFFFFFFFF000


def perms_text(perms):
    return "".join(
        c if perms & bit else "-"
        for c, bit in (("r", PERM_R), ("w", PERM_W), ("x", PERM_X), ("u", PERM_U))
    )


def size_text(n):
    for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return "%d%s" % (n >> shift, unit)
    return "%d" % n


def _paging_flags(value, level):
    """x86-64 (and AMD NPT, same format) entry bits."""
    names = []
    for bit, name in ((0, "P"), (1, "RW"), (2, "US"), (3, "PWT"), (4, "PCD"), (5, "A")):
        if value >> bit & 1:
            names.append(name)
    leafable = level in (2, 3)
    if level == 1 or (leafable and value >> 7 & 1):
        if value >> 6 & 1:
            names.append("D")
        if leafable:
            names.append("PS")
        if value >> 8 & 1:
            names.append("G")
    if value >> 63 & 1:
        names.append("NX")
    return names


_EPT_MT = {0: "UC", 1: "WC", 4: "WT", 5: "WP", 6: "WB"}


def _ept_flags(value, level):
    names = []
    for bit, name in ((0, "R"), (1, "W"), (2, "X")):
        if value >> bit & 1:
            names.append(name)
    leaf = level == 1 or (level in (2, 3) and value >> 7 & 1)
    if leaf:
        names.append(_EPT_MT.get(value >> 3 & 7, "MT%d" % (value >> 3 & 7)))
        if value >> 6 & 1:
            names.append("IPAT")
        if level != 1:
            names.append("PS")
    if value >> 8 & 1:
        names.append("A")
    if leaf and value >> 9 & 1:
        names.append("D")
    if value >> 10 & 1:
        names.append("XU")
    if value >> 63 & 1:
        names.append("SVE")
    return names


def entry_flags(kind, level, value):
    if kind == 3:
        return _ept_flags(value, level)
    return _paging_flags(value, level)


def present(kind, value):
    return bool(value & 7) if kind == 3 else bool(value & 1)


def trace_lines(trace, stack):
    """One line per table entry, indented by dimension: kind, level[index],
    where it was read, the value, the address it points to and its flags.
    stack is Space.stack (top first): each dimension's first line names its
    root (CR3, EPTP or nCR3)."""
    lines = []
    seen = set()
    for depth, kind, level, index, entry_addr, entry_phys, value in trace:
        dim = KIND_NAMES.get(kind, str(kind))
        name = LEVEL_NAMES.get(level, "L%d" % level)
        where = "@0x%x" % entry_addr
        if entry_phys != entry_addr:
            where += " (phys 0x%x)" % entry_phys
        flags = " ".join(entry_flags(kind, level, value)) if present(kind, value) else "not present"
        root = ""
        if depth not in seen and depth < len(stack):
            root = "  [root 0x%x]" % stack[depth][1]
        seen.add(depth)
        lines.append(
            "%s%-6s %-5s[%3d] %-30s = 0x%016x %s%s"
            % ("  " * (depth + 1), dim, name, index, where, value, flags, root)
        )
    return lines


def range_line(addr, size, lower, perms, lower_name):
    return "0x%016x-0x%016x %6s -> %s 0x%x-0x%x %s" % (
        addr,
        addr + size - 1,
        size_text(size),
        lower_name,
        lower,
        lower + size - 1,
        perms_text(perms),
    )
