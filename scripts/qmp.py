"""A small QMP client (Python 3 standard library only), shared by
scripts/qemu-launch and the integration tests.

QEMU 7.2 facts this code relies on (notes/qemu.md):
- HMP text comes back through `human-monitor-command` with "\\r\\n" line
  endings; `hmp()` strips the "\\r".
- HMP errors ("Unmapped", "Cannot access memory", "unknown command") are
  successful QMP returns, so callers must parse the text.
- `info mtree -f` lists FlatViews; the CPU's is the one naming
  AS "cpu-memory-0", and RAM lines read
  `0000000000100000-000000001fffffff (prio 0, ram): pc.ram @0000000000100000`.
"""

import json
import os
import re
import socket
import time


class QMPError(Exception):
    """A QMP error reply, or a broken connection."""


class QMP:
    """One QMP connection over a UNIX socket. Events are queued in .events."""

    def __init__(self, path, timeout=60.0, connect_timeout=30.0):
        self.path = path
        self.events = []
        self._buf = b""
        deadline = time.monotonic() + connect_timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                if time.monotonic() > deadline:
                    raise QMPError(f"cannot connect to QMP socket {path}")
                time.sleep(0.05)
        s.settimeout(timeout)
        self.sock = s
        greeting = self._read_msg()
        if "QMP" not in greeting:
            raise QMPError(f"unexpected QMP greeting: {greeting!r}")
        self.greeting = greeting["QMP"]
        self.cmd("qmp_capabilities")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _read_msg(self):
        while b"\n" not in self._buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise QMPError(f"QMP connection {self.path} closed by QEMU")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        line = line.strip()
        if not line:
            return self._read_msg()
        return json.loads(line)

    def cmd(self, execute, **arguments):
        """Runs one QMP command and returns its "return" value."""
        msg = {"execute": execute}
        if arguments:
            msg["arguments"] = {k.replace("_", "-"): v for k, v in arguments.items()}
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read_msg()
            if "event" in reply:
                self.events.append(reply)
                continue
            if "error" in reply:
                err = reply["error"]
                raise QMPError(f"{execute}: {err.get('class')}: {err.get('desc')}")
            return reply.get("return")

    def hmp(self, command):
        """Runs one HMP command; returns its text with "\\r" removed."""
        return self.cmd("human-monitor-command", command_line=command).replace("\r", "")

    def hmp_many(self, commands):
        """Runs many HMP commands, pipelined over this connection (QMP answers
        in order), and returns the texts in the same order."""
        out = []
        window = 256  # keep the socket buffers from filling up
        commands = list(commands)
        for start in range(0, len(commands), window):
            part = commands[start:start + window]
            data = b"".join(
                json.dumps({"execute": "human-monitor-command",
                            "arguments": {"command-line": c}}).encode() + b"\n"
                for c in part)
            self.sock.sendall(data)
            got = 0
            while got < len(part):
                reply = self._read_msg()
                if "event" in reply:
                    self.events.append(reply)
                    continue
                if "error" in reply:
                    raise QMPError(f"HMP {part[got]!r}: {reply['error']}")
                out.append(reply["return"].replace("\r", ""))
                got += 1
        return out

    def wait_event(self, name, timeout=60.0):
        """Waits for (and removes from the queue) the first event `name`."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev.get("event") == name:
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise QMPError(f"timed out waiting for QMP event {name}")
            old = self.sock.gettimeout()
            self.sock.settimeout(left)
            try:
                self.events.append(self._read_msg())
            except socket.timeout:
                pass
            finally:
                self.sock.settimeout(old)

    def version(self):
        v = self.greeting["version"]["qemu"]
        return f"{v['major']}.{v['minor']}.{v['micro']}"


_MTREE_LINE = re.compile(
    r"^\s*([0-9a-f]+)-([0-9a-f]+) \(prio -?\d+, ([a-z_]+)\): (\S+)(?: @([0-9a-f]+))?")


def layout_from_mtree(text, ram_name="pc.ram", address_space="cpu-memory-0", fill_pam=True):
    """Parses `info mtree -f` and returns [(gpa, len, file_offset)], sorted and
    merged, for the RAM memory region `ram_name` in the FlatView used by
    `address_space`. A line without "@off" starts at offset 0 of the region."""
    regions = []
    in_view = False
    found_view = False
    for line in text.splitlines():
        if line.startswith("FlatView #"):
            in_view = False
            continue
        m = re.match(r'^\s*AS "([^"]+)"', line)
        if m:
            if m.group(1) == address_space:
                in_view = found_view = True
            continue
        if not in_view:
            continue
        m = _MTREE_LINE.match(line)
        if not m or m.group(4) != ram_name:
            continue
        if m.group(3) not in ("ram", "romd", "rom"):
            continue
        start, last = int(m.group(1), 16), int(m.group(2), 16)
        off = int(m.group(5), 16) if m.group(5) else 0
        regions.append((start, last - start + 1, off))
    if not found_view:
        raise ValueError(f'no FlatView for AS "{address_space}" in info mtree -f')
    regions.sort()
    if fill_pam:
        # At reset (QEMU -S) the PAM window 0xc0000-0xfffff reads from the
        # BIOS ROM, so `info mtree -f` shows no pc.ram there; once the
        # firmware has shadowed itself, that window is pc.ram at the same
        # offset (plain dump-guest-memory of a booted guest includes it).
        # Fill a gap inside the window when both sides share gpa == offset.
        filled = []
        for gpa, length, off in regions:
            if filled:
                pg, pl, po = filled[-1]
                end = pg + pl
                if (0xa0000 <= end < gpa <= 0x100000 and pg - po == gpa - off == 0):
                    filled.append((end, gpa - end, end))
            filled.append((gpa, length, off))
        regions = filled
    merged = []
    for gpa, length, off in regions:
        if merged:
            pg, pl, po = merged[-1]
            if pg + pl == gpa and po + pl == off:
                merged[-1] = (pg, pl + length, po)
                continue
        merged.append((gpa, length, off))
    return merged


def format_layout(regions, comment_lines=()):
    """The text of memsrv's layout file: '#' comments, "gpa len offset" lines."""
    out = [f"# {c}" for c in comment_lines]
    out.append("# gpa len offset (hex); one line per region of the RAM file")
    for gpa, length, off in regions:
        out.append(f"0x{gpa:x} 0x{length:x} 0x{off:x}")
    return "\n".join(out) + "\n"


def parse_layout(text):
    """Inverse of format_layout (for tests and tools)."""
    regions = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        gpa, length, off = (int(x, 0) for x in line.split())
        regions.append((gpa, length, off))
    return regions


def gpa_to_offset(regions, gpa):
    """File offset of `gpa`, or None if no region holds it."""
    for start, length, off in regions:
        if start <= gpa < start + length:
            return off + (gpa - start)
    return None


_REG = re.compile(r"\b([A-Z][A-Z0-9]*)\s*=\s*([0-9a-f]+)\b")


def parse_registers(text):
    """`info registers` -> {"RAX": int, ..., "CR3": int, "CR4": int, "EFER": int}.
    Segment and descriptor-table lines are skipped (they hold several
    numbers); only NAME=value pairs are taken."""
    regs = {}
    for line in text.splitlines():
        if re.match(r"^(ES|CS|SS|DS|FS|GS|LDT|TR|GDT|IDT)\s*=", line):
            continue
        for name, val in _REG.findall(line):
            regs.setdefault(name, int(val, 16))
    return regs


def hmp_gva2gpa(reply):
    """`gva2gpa` reply -> int, or None for "Unmapped". Anything else raises."""
    reply = reply.strip()
    m = re.fullmatch(r"gpa: 0x([0-9a-f]+)", reply)
    if m:
        return int(m.group(1), 16)
    if reply == "Unmapped":
        return None
    raise QMPError(f"unexpected gva2gpa reply {reply!r}")


def hmp_x_bytes(reply, unit=8):
    """`x/Ngx` or `xp/Ngx` reply -> bytes (little-endian), or None when QEMU
    says "Cannot access memory"."""
    if "Cannot access memory" in reply:
        return None
    data = bytearray()
    for line in reply.splitlines():
        if not line.strip():
            continue
        _addr, _, rest = line.partition(":")
        for word in rest.split():
            data += int(word, 16).to_bytes(unit, "little")
    return bytes(data)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
