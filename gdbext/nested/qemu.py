"""Parsing QEMU monitor output for the zero-configuration attach.

`monitor info memdev` names the memory backends, `monitor qom-get
/objects/ID mem-path` gives a backend's file (quoted), and `monitor info
mtree -f` gives the CPU's flat view, where the backend's RAM appears as
`START-END (prio P, ram): ID [@OFFSET]`. Pure functions, testable anywhere.
"""

import json
import re

_MTREE_LINE = re.compile(
    r"^\s*([0-9a-fA-F]+)-([0-9a-fA-F]+) \(prio -?\d+, ([a-z]+)\): (\S+)(?: @([0-9a-fA-F]+))?\s*$"
)


def memdev_ids(text):
    """Backend ids from `info memdev`, in order."""
    return re.findall(r"^memory backend: (\S+)", text, re.M)


def qom_string(text):
    """The string printed by `qom-get` ("/path" with JSON escapes)."""
    # Other lines may precede it (GDB's `set trace-commands on` echoes).
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith('"'):
            return json.loads(line)
    raise ValueError("qom-get did not print a string: %r" % text[:200])


def cpu_flatview(text):
    """The lines of the flat view that the CPU (cpu-memory-0) sees."""
    views = re.split(r"^FlatView #\d+\s*$", text, flags=re.M)
    for v in views:
        if re.search(r'^\s*AS "cpu-memory-0"', v, re.M):
            return v.splitlines()
    raise ValueError('no FlatView for AS "cpu-memory-0" in `info mtree -f` output')


def ram_regions(mtree_text, backend):
    """[(gpa, len, offset)] where the backend's RAM is mapped for the CPU,
    merged where QEMU's view only has holes of MMIO/ROM over RAM that the file
    still holds (the VGA window and the BIOS area below 1 MiB): two pieces
    whose gpa-offset is the same are one region of the file."""
    pieces = []
    for line in cpu_flatview(mtree_text):
        m = _MTREE_LINE.match(line)
        if not m or m.group(3) != "ram" or m.group(4) != backend:
            continue
        start, end = int(m.group(1), 16), int(m.group(2), 16)
        off = int(m.group(5), 16) if m.group(5) else 0
        pieces.append((start, end - start + 1, off))
    if not pieces:
        raise ValueError("memory backend %r is not mapped in the CPU's flat view" % backend)
    pieces.sort()
    merged = [list(pieces[0])]
    for gpa, length, off in pieces[1:]:
        last = merged[-1]
        if gpa - off == last[0] - last[2] and gpa >= last[0] + last[1]:
            last[1] = gpa + length - last[0]
        else:
            merged.append([gpa, length, off])
    return [tuple(r) for r in merged]


def map_spec(regions):
    """The --map text for regions: GPA:LEN@OFF,..."""
    return ",".join("0x%x:0x%x@0x%x" % r for r in regions)
