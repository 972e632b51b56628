"""The GDB commands: `nested ...`, `nx`, and `break`/`tbreak` as hardware
breakpoints. Parsing and printing only; memory, walks and x/FMT output come
from the C module."""

import os
import re
import shlex
import time

import gdb

from . import breakargs, load_module, proxy, qemu, unwind

_memsrv = load_module()
MemsrvError = _memsrv.MemsrvError
MASK = (1 << 64) - 1
LA57 = 1 << 12
CR0_PG = 1 << 31
EFER_LMA = 1 << 10
HW_DEBUG_REGISTERS = 4


# What would fix a library error, in this extension's commands (the library
# says what is wrong; e.hint names the remedy in no front's words).
_HINTS = {
    "symbols": "nested symbols FILE (a vmlinux or System.map)",
    "dwarf": "nested symbols VMLINUX (with debug info)",
    "layout": "nested attach FILE --machine q35|pc or --map GPA:LEN@OFF,...",
    "writable": "nested attach ... --writable",
    "token": "nested attach --connect ADDRESS --token-file F",
}


def _fail(e):
    """A library error as GDB's error: its message, then what would fix it."""
    hint = _HINTS.get(getattr(e, "hint", None))
    return gdb.GdbError(str(e) + ("\n(hint: %s)" % hint if hint else ""))


def _int(value):
    return int(value) & MASK


def _eval_int(expr):
    try:
        return _int(gdb.parse_and_eval(expr))
    except gdb.error as e:
        raise gdb.GdbError("%s: %s" % (expr, e))


def _reg(name):
    """A register of the selected vCPU, or None (no target, no such register)."""
    try:
        v = gdb.parse_and_eval("$" + name)
        if v.type.code == gdb.TYPE_CODE_VOID:
            return None
        return _int(v)
    except (gdb.error, ValueError, OverflowError):
        return None


# A command with a complete method must not name a completer class: GDB
# would use the class and never call the method.
def _complete(text, word, options, rest=gdb.COMPLETE_NONE):
    """Tab completion: the typed token completes from `options` (flags and
    keywords such as none/auto) when it is a flag or a keyword matches;
    anything else goes to GDB's `rest` completer (files, expressions)."""
    token = "" if not text or text[-1].isspace() else text.split()[-1]
    # GDB breaks words at '-': complete the whole token, return the part
    # after `word`.
    cut = len(token) - len(word or "")
    found = [o[cut:] for o in options if o.startswith(token)]
    if token.startswith("-") or found or rest == gdb.COMPLETE_NONE:
        return found
    return rest


def _history_count():
    """How many lines the user has typed (GDB's command history), or None
    when there is no history to go by. Enter on an empty line repeats the
    last command without adding a line: that is how a repeat is told from
    the same command typed again."""
    try:
        out = gdb.execute("show commands", to_string=True)
    except gdb.error:
        return None
    numbers = re.findall(r"^\s*(\d+)\s", out, re.M)
    return int(numbers[-1]) if numbers else None


def _split(arg):
    try:
        return shlex.split(arg)
    except ValueError as e:
        raise gdb.GdbError(str(e))


class Session:
    """Everything remembered between commands; flushed at every stop."""

    def __init__(self):
        self.mem = None
        self.origin = ""
        self.eptp = None
        self.ncr3 = None
        self.npt_levels = None  # explicit --levels for nCR3
        self.npt_src = "given"
        self.l1_levels = None  # seen in L1's CR4 at a stop in L1
        self.cr3 = None  # override
        self.cr3_levels = None
        self.mode = "auto"
        self.detected = None
        self.detect_note = ""
        self.hw = True
        self.xfmt = ("x", "w")
        self.last_count = 0
        self.next_addr = None
        self.spaces = {}
        self.pending_breaks = []  # hbreak lines waiting for a target
        self.symbols = None  # vmlinux or System.map for nested dmesg
        self.seen = {}  # level -> (cr3, levels, where from): the last stop in it, or a scan
        self.unwinder_mode = None  # what the user set with `nested unwinder`, else automatic

    # -- registers and roots -------------------------------------------------
    def vcpu(self):
        """cr3, cr4, pc, sp of the stopped vCPU; from a dump's notes when GDB
        has no registers (post-crash)."""
        try:
            th = gdb.selected_thread()
            running = th is not None and th.is_running()
        except gdb.error:
            running = False
        if running and self.cr3 is None:
            # Registers cannot be read: refuse rather than fall back to a
            # physical read the user did not ask for.
            raise gdb.GdbError(
                "nested: the target is running; interrupt it (or give `nested cr3 EXPR`)"
            )
        regs = {n: _reg(n) for n in ("cr3", "cr4", "pc", "sp")}
        if regs["cr3"] is None and self.mem is not None and not self.mem.remote:
            cpus = self.mem.cpus
            if cpus and cpus[0]["has_cr"]:
                c = cpus[0]
                regs = {"cr3": c["cr3"], "cr4": c["cr4"], "pc": c["rip"], "sp": c["rsp"]}
        return regs

    def second_stage(self):
        return self.eptp is not None or self.ncr3 is not None

    def npt_depth(self):
        if self.npt_levels:
            return self.npt_levels, self.npt_src
        if self.l1_levels:
            return self.l1_levels, "from L1's CR4.LA57"
        return 4, "assumed: give `nested ncr3 EXPR --levels 4|5`"

    def level(self):
        """The level being viewed: 'l1' or 'l2'."""
        if self.mode != "auto":
            return self.mode
        if not self.second_stage():
            return "l1"
        if self.detected is None:
            self.detect(quiet=True)
        return self.detected or "l2"

    def roots(self, level=None):
        """(cr3 or None, levels, where from) for the level viewed. The
        vCPU's CR3 belongs to the level it shows; for the other level the
        CR3 seen at the last stop there is used, or the user must give one."""
        if self.cr3 is not None:
            levels = self.cr3_levels
            if levels is None:
                cr4 = self.vcpu()["cr4"]
                levels = 5 if cr4 is not None and cr4 & LA57 else 4
            return self.cr3, levels, "override"
        regs = self.vcpu()
        level = level or self.level()
        if regs["cr3"] is None:
            return self.seen.get(level) or (None, 4, "none: physical")
        cr0, efer = _reg("cr0"), _reg("efer")
        if cr0 is not None and not cr0 & CR0_PG:
            return None, 4, "paging off (CR0.PG=0): physical"
        if efer is not None and cr0 is not None and not efer & EFER_LMA:
            raise gdb.GdbError(
                "nested: the vCPU uses 32-bit paging (CR0.PG=1, EFER.LMA=0), which memsrv does "
                "not walk; give `nested cr3 EXPR` for a long-mode CR3"
            )
        levels = 5 if regs["cr4"] is not None and regs["cr4"] & LA57 else 4
        if not self.second_stage() or self.detected in (None, level):
            return regs["cr3"], levels, "vCPU"
        seen = self.seen.get(level)
        if seen:
            return seen
        raise gdb.GdbError(
            "nested: the vCPU shows %s, so $cr3 is %s's; %s's CR3 has not been seen at a stop: "
            "give `nested cr3 EXPR`"
            % (self.level_name(self.detected), self.level_name(self.detected), self.level_name(level))
        )

    # -- spaces ---------------------------------------------------------------
    def need_mem(self):
        if self.mem is None:
            raise gdb.GdbError("nested: no memory attached; use `nested attach [FILE]` first")
        return self.mem

    def build(self, level, cr3, levels, kernel=False):
        mem = self.need_mem()
        kw = {}
        if kernel:
            kw["kernel"] = True
        elif cr3 is not None:
            kw["cr3"] = cr3
            kw["levels"] = levels
        if level == "l2":
            if self.eptp is not None:
                kw["eptp"] = self.eptp
            elif self.ncr3 is not None:
                kw["ncr3"] = self.ncr3
                kw["npt_levels"] = self.npt_depth()[0]
            else:
                raise gdb.GdbError(
                    "nested: L2 needs the second stage: `nested eptp EXPR` or `nested ncr3 EXPR`"
                )
        key = (level, tuple(sorted(kw.items())))
        sp = self.spaces.get(key)
        if sp is None:
            try:
                sp = mem.space(**kw)
            except MemsrvError as e:
                raise _fail(e)
            self.spaces[key] = sp
        return sp

    def space(self, level=None):
        level = level or self.level()
        cr3, levels, _ = self.roots(level)
        return self.build(level, cr3, levels)

    def kernel_space(self):
        """The kernel's own page tables of the level viewed (no CR3 needed).
        Called from GDB's unwinding: it must not read registers (that would
        unwind again), so an undetected level is not detected here."""
        if self.mode != "auto":
            level = self.mode
        else:
            level = self.detected or ("l2" if self.second_stage() else "l1")
        return self.build(level, None, None, kernel=True)

    def level_name(self, level=None):
        return "L2" if (level or self.level()) == "l2" else "L1"

    # -- stops -----------------------------------------------------------------
    def flush(self):
        self.spaces.clear()
        if self.mem is not None:
            self.mem.flush()

    def detect(self, quiet=False):
        """Which level the stopped vCPU shows: walk $pc and $sp through the L1
        and the L2 stacks with the vCPU's CR3 and count what lands on mapped
        memory (code executable, stack writable). A tie keeps the previous
        answer: QEMU gives no sign, so a consistent guess beats a flip."""
        regs = self.vcpu()
        if not self.second_stage() or regs["cr3"] is None:
            self.detected = "l1"
            self.detect_note = "no second stage set" if regs["cr3"] is not None else "no CR3"
            return self.detected
        levels = 5 if regs["cr4"] is not None and regs["cr4"] & LA57 else 4
        scores = {}
        for level in ("l1", "l2"):
            score = 0
            try:
                sp = self.build(level, regs["cr3"], levels)
            except gdb.GdbError:
                scores[level] = -1
                continue
            for name, need in (("pc", _memsrv.PERM_X), ("sp", _memsrv.PERM_W)):
                if regs[name] is None:
                    continue
                try:
                    perms = sp.translate(regs[name], trace=False)[3]
                    score += 2 if perms & need else 1
                except MemsrvError:
                    pass
            scores[level] = score
        if scores["l1"] == scores["l2"]:
            choice = self.detected or "l1"
            why = "tie, kept"
        else:
            choice = "l2" if scores["l2"] > scores["l1"] else "l1"
            why = "walks"
        if choice == "l1" and regs["cr4"] is not None:
            self.l1_levels = levels
        self.detected = choice
        self.seen[choice] = (regs["cr3"], levels, "seen at the last stop in %s" % self.level_name(choice))
        self.detect_note = "pc 0x%x; %s: L1 %d/4, L2 %d/4" % (
            regs["pc"] or 0,
            why,
            max(scores["l1"], 0),
            max(scores["l2"], 0),
        )
        if not quiet:
            gdb.write(
                "[nested] vCPU shows %s (%s)\n" % (self.level_name(choice), self.detect_note)
            )
        return choice


S = Session()


def _set_pending_breaks():
    """Hardware breakpoints asked for before GDB had a target (the exec
    target has no debug registers), set now that it has one."""
    pending, S.pending_breaks = S.pending_breaks, []
    for cmd in pending:
        try:
            gdb.execute(cmd)
        except gdb.error as e:
            gdb.write("nested: %s: %s\n" % (cmd, e))
    if pending:
        warn_hw()


def _on_stop(event):
    if S.pending_breaks:
        _set_pending_breaks()
    if S.mem is None:
        return
    try:
        S.flush()
        if S.second_stage():
            S.detect(quiet=S.mode != "auto")
        else:
            cr4 = _reg("cr4")
            if cr4 is not None:
                S.l1_levels = 5 if cr4 & LA57 else 4
            S.detected = "l1"
            if S.mode == "auto":
                gdb.write("[nested] vCPU shows L1 (no EPTP/nCR3 set, L2 not checked)\n")
    except Exception as e:  # a stop handler must never break the stop
        gdb.write("[nested] level detection failed: %s\n" % e)


# ---------------------------------------------------------------------------
# Addresses and symbols


def eval_address(expr):
    """An address from any GDB expression, as `x` takes it: a pointer or an
    integer by value, an array or a function by its address."""
    try:
        v = gdb.parse_and_eval(expr)
        t = v.type.strip_typedefs()
        if t.code in (gdb.TYPE_CODE_REF, gdb.TYPE_CODE_RVALUE_REF):
            v = v.referenced_value()
            t = v.type.strip_typedefs()
        if t.code in (gdb.TYPE_CODE_ARRAY, gdb.TYPE_CODE_FUNC):
            if v.address is None:
                raise gdb.GdbError("Attempt to take address of value not located in memory.")
            return _int(v.address)
        if t.code in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION):
            raise gdb.GdbError("Invalid cast.")
        return _int(v)
    except gdb.error as e:
        raise gdb.GdbError(str(e))


def symbolize(addr):
    """'sym+off' for addr as GDB prints it in <...>, or None."""
    try:
        text = gdb.format_address(addr)
    except (gdb.error, AttributeError, ValueError, OverflowError):
        return None
    m = re.search(r" <(.+)>$", text)
    return m.group(1) if m else None


# ---------------------------------------------------------------------------
# Commands


class Nested(gdb.Command):
    """Nested-guest memory: read, translate and dump through EPT/NPT from QEMU's RAM file.

Attach the guest RAM (`nested attach`, zero-config when connected to QEMU),
give the second stage (`nested eptp EXPR` for Intel EPT, `nested ncr3 EXPR`
for AMD NPT), then use `nx/FMT ADDR` like `x`, `nested vtop`, `nested ptdump`,
`nested p`. At every stop caches are flushed and the level the vCPU shows
(L1 or L2) is worked out and printed; `nested mode` overrides it.
`break`/`tbreak` (and b, br, ...) make hardware breakpoints; see `nested hw`.

Also: nx (help nx), and the short names nvtop, nptdump, np. Subcommands and
their options complete with Tab."""

    def __init__(self):
        super().__init__("nested", gdb.COMMAND_DATA, gdb.COMPLETE_COMMAND, True)

    def invoke(self, arg, from_tty):
        if arg.strip():
            raise gdb.GdbError('Undefined nested command: "%s".  Try "help nested".' % arg.strip())
        gdb.execute("help nested", from_tty)


class Attach(gdb.Command):
    """Open the guest RAM: nested attach [FILE] [--machine q35|pc] [--map SPEC] [--writable] [--proxy]
               nested attach --connect SOCKET|tcp:HOST:PORT [--token-file F]

FILE is QEMU's memory-backend-file (raw) or a dump-guest-memory ELF file.
With no FILE, while connected to QEMU's gdbstub, the RAM file and its layout
come from QEMU itself (`monitor qom-get /objects/ID mem-path`, `monitor info
mtree -f`). For a raw file the layout is --map GPA:LEN@OFF,... if given, else
FILE.layout if it exists, else QEMU's rule for --machine (default q35).

--connect uses a running `memsrv serve` instead (its UNIX socket, or TCP with
the token in --token-file), so that several GDB sessions share one server and
its caches; the server owns the RAM file, its layout, whether writes are
allowed and the kernel symbols (`memsrv serve --vmlinux F`). nested scan needs
the file itself.

--proxy: everything in one step, for a session connected to QEMU: the RAM file
(from QEMU unless FILE), then `nested proxy` with the second stage given by
`nested ncr3`/`nested eptp`/`nested scan` if one was, else found by the proxy
itself (`memsrv gdbproxy --nested auto`, which refuses when no candidate is
clearly best). GDB's own commands then read the nested guest."""

    def __init__(self):
        super().__init__("nested attach", gdb.COMMAND_DATA)

    def complete(self, text, word):
        return _complete(text, word, ("--machine", "--map", "--writable", "--connect",
                                      "--token-file", "--proxy"), gdb.COMPLETE_FILENAME)

    def invoke(self, arg, from_tty):
        self.dont_repeat()
        words = _split(arg)
        path = machine = spec = None
        writable = proxy = False
        opts = {}
        i = 0
        while i < len(words):
            w = words[i]
            if w in ("--connect", "--token-file") and i + 1 < len(words):
                opts[w] = words[i + 1]
                i += 2
            elif w in ("--machine", "--map") and i + 1 < len(words):
                if w == "--machine":
                    machine = words[i + 1]
                else:
                    spec = words[i + 1]
                i += 2
            elif w == "--writable":
                writable = True
                i += 1
            elif w == "--proxy":
                proxy = True
                i += 1
            elif w.startswith("-"):
                raise gdb.GdbError("nested attach: unknown option %s" % w)
            elif path is None:
                path = w
                i += 1
            else:
                raise gdb.GdbError("nested attach: one FILE only")
        if "--connect" in opts:
            if proxy:
                raise gdb.GdbError("nested attach --proxy needs the RAM file itself, not a server")
            if path is not None or machine or spec or writable:
                raise gdb.GdbError(
                    "nested attach --connect: the server owns the memory; drop FILE, --machine, "
                    "--map and --writable (start `memsrv serve --writable` to allow writes)"
                )
            self.connect(opts["--connect"], opts.get("--token-file"))
            return
        if "--token-file" in opts:
            raise gdb.GdbError("nested attach: --token-file goes with --connect")
        origin = ""
        if path is None:
            path, spec, origin = self.from_qemu()
        path = os.path.expanduser(path)
        try:
            with open(path, "rb") as f:
                is_elf = f.read(4) == b"\x7fELF"
        except OSError as e:
            raise gdb.GdbError("nested attach: %s" % e)
        try:
            if is_elf:
                mem = _memsrv.open_dump(path, writable=writable, symbols=S.symbols)
                origin = origin or "ELF dump"
            else:
                mem = _memsrv.open(path, machine=machine, map=spec, writable=writable,
                                   symbols=S.symbols)
                origin = origin or ("--map" if spec else "layout file or %s rule" % (machine or "q35"))
        except MemsrvError as e:
            raise _fail(e)
        self.use(mem, origin)
        _auto_unwinder()
        regions = ", ".join(
            "0x%x-0x%x@0x%x" % (gpa, gpa + n - 1, off) for gpa, n, off, _ in mem.regions
        )
        gdb.write(
            "nested: attached %s (%d MiB; %s; layout: %s)\n"
            % (path, mem.size >> 20, regions, origin)
        )
        if proxy:
            gdb.execute("nested proxy" + (" --writable" if writable else ""), from_tty)

    @staticmethod
    def use(mem, origin):
        if S.mem is not None:
            S.spaces.clear()
            S.mem.close()
        S.mem = mem
        S.origin = origin
        S.detected = None
        S.seen = {}
        # A fresh open has no stale cache; a server's FLUSH would also drop
        # what it caches for the other sessions.
        S.spaces.clear()

    def connect(self, address, token_file):
        token = None
        if token_file:
            # As `memsrv --token-file`: the first line, without its newline.
            try:
                with open(os.path.expanduser(token_file)) as f:
                    token = f.readline().rstrip("\r\n")
            except OSError as e:
                raise gdb.GdbError("nested attach: cannot read token file: %s" % e)
            if not token:
                raise gdb.GdbError("nested attach: token file %s is empty" % token_file)
        if not address.startswith("tcp:"):
            address = os.path.expanduser(address)
        try:
            mem = _memsrv.connect(address, token)
        except MemsrvError as e:
            raise _fail(e)
        self.use(mem, "memsrv at %s" % address)
        _auto_unwinder()
        gdb.write(
            "nested: attached to memsrv at %s (%d MiB served, %s)\n"
            % (address, mem.size >> 20, "writable" if mem.writable else "read-only")
        )

    @staticmethod
    def from_qemu():
        try:
            memdev = gdb.execute("monitor info memdev", to_string=True)
            mtree = gdb.execute("monitor info mtree -f", to_string=True)
        except gdb.error as e:
            raise gdb.GdbError(
                "nested attach: no FILE given and QEMU's monitor is not reachable (%s); "
                "give the RAM file: nested attach FILE" % e
            )
        ids = qemu.memdev_ids(memdev)
        if not ids:
            raise gdb.GdbError(
                "nested attach: QEMU has no memory backend (start it with -object "
                "memory-backend-file,id=pc.ram,share=on,mem-path=FILE -machine memory-backend=pc.ram)"
            )
        errors = []
        for ident in ids:
            try:
                regions = qemu.ram_regions(mtree, ident)
                out = gdb.execute("monitor qom-get /objects/%s mem-path" % ident, to_string=True)
                path = qemu.qom_string(out)
            except (ValueError, gdb.error) as e:
                errors.append("%s: %s" % (ident, e))
                continue
            return path, qemu.map_spec(regions), "from QEMU (backend %s, info mtree -f)" % ident
        raise gdb.GdbError("nested attach: no file-backed RAM found: " + "; ".join(errors))


def _auto_unwinder():
    """Attached to memory: kernel frames GDB cannot unwind go to the ORC
    unwinder, unless the user turned it off."""
    if S.unwinder_mode is None:
        unwind.install(S.kernel_space)
        unwind.set_mode("on")


class Unwinder(gdb.Command):
    """The kernel's ORC unwinder for GDB's backtraces: nested unwinder [on|all|off]

GDB's DWARF unwinder stops in the kernel's entry code (entry_64.S has no CFI),
so `bt` ends in ret_from_fork or entry_SYSCALL_64 with made-up frames after
it. With `on` (the default once memory is attached) kernel frames without
debug info are unwound with the kernel's ORC tables through the attached
memory (the kernel's own page tables of the level viewed), C frames stay
with DWARF (it recovers the registers locals live in); `all` unwinds every
kernel frame with ORC, as the kernel's own traces do; `off` leaves GDB alone.
With no argument, says which is in use."""

    def __init__(self):
        super().__init__("nested unwinder", gdb.COMMAND_STACK)

    def complete(self, text, word):
        return _complete(text, word, ("on", "all", "off"))

    def invoke(self, arg, from_tty):
        arg = arg.strip()
        if arg not in ("", "on", "all", "off"):
            raise gdb.GdbError("usage: nested unwinder [on|all|off]")
        if arg:
            S.unwinder_mode = arg
            unwind.install(S.kernel_space)
            unwind.set_mode(arg)
        u = unwind.install(S.kernel_space) if S.mem is not None else None
        gdb.write("nested: ORC unwinder %s%s\n" % (
            unwind.mode(),
            "" if S.mem is not None else " (no memory attached yet: nested attach FILE)"))
        if u is not None and u.problem and unwind.mode() != "off":
            gdb.write("nested: the last trace ended with: %s\n" % u.problem)


class Detach(gdb.Command):
    """Close the attached guest RAM."""

    def __init__(self):
        super().__init__("nested detach", gdb.COMMAND_DATA, gdb.COMPLETE_NONE)

    def invoke(self, arg, from_tty):
        if S.mem is not None:
            S.spaces.clear()
            S.mem.close()
            S.mem = None
            gdb.write("nested: detached\n")


class _Value(gdb.Command):
    """Base for eptp/ncr3/cr3: a value from any GDB expression, or `none`."""

    def __init__(self, name):
        super().__init__("nested " + name, gdb.COMMAND_DATA)

    @staticmethod
    def levels_opt(words):
        """Pops `--levels N` from words; returns N or None."""
        for i, w in enumerate(words):
            if w == "--levels" or w.startswith("--levels="):
                val = w.split("=", 1)[1] if "=" in w else (words[i + 1] if i + 1 < len(words) else "")
                if val not in ("4", "5"):
                    raise gdb.GdbError("--levels must be 4 or 5")
                del words[i : i + (1 if "=" in w else 2)]
                return int(val)
        return None


class Eptp(_Value):
    """Set the EPT pointer (Intel): nested eptp EXPR | none

EXPR is any GDB expression (a number, $reg, a hypervisor variable). The walk
length (4 or 5) comes from EPTP bits 5:3."""

    def __init__(self):
        super().__init__("eptp")

    def complete(self, text, word):
        return _complete(text, word, ("none",), gdb.COMPLETE_EXPRESSION)

    def invoke(self, arg, from_tty):
        arg = arg.strip()
        if not arg:
            gdb.write("eptp: %s\n" % ("none" if S.eptp is None else "0x%x" % S.eptp))
            return
        S.eptp = None if arg == "none" else _eval_int(arg)
        if S.eptp is not None:
            S.ncr3 = None
        S.spaces.clear()
        S.detected = None
        gdb.write("nested: eptp %s\n" % ("none" if S.eptp is None else "0x%x" % S.eptp))


class Ncr3(_Value):
    """Set the AMD nested CR3: nested ncr3 EXPR [--levels 4|5] | none

The NPT depth follows L1's CR4.LA57: give --levels, or it is taken from the
vCPU's CR4 at a stop in L1 (4 is assumed until then)."""

    def __init__(self):
        super().__init__("ncr3")

    def complete(self, text, word):
        return _complete(text, word, ("--levels", "none"), gdb.COMPLETE_EXPRESSION)

    def invoke(self, arg, from_tty):
        words = arg.split()
        levels = self.levels_opt(words)
        expr = " ".join(words)
        if not expr:
            if levels:
                S.npt_levels, S.npt_src = levels, "given"
            gdb.write(
                "ncr3: %s, %d levels (%s)\n"
                % ((("none" if S.ncr3 is None else "0x%x" % S.ncr3),) + S.npt_depth())
            )
            return
        S.ncr3 = None if expr == "none" else _eval_int(expr)
        if levels:
            S.npt_levels, S.npt_src = levels, "given"
        if S.ncr3 is not None:
            S.eptp = None
        S.spaces.clear()
        S.detected = None
        if S.ncr3 is None:
            gdb.write("nested: ncr3 none\n")
        else:
            gdb.write("nested: ncr3 0x%x, NPT %d levels (%s)\n" % ((S.ncr3,) + S.npt_depth()))


class Cr3(_Value):
    """Override the CR3 of the level viewed: nested cr3 EXPR [--levels 4|5] | auto

By default CR3 (and the depth, from CR4.LA57) is the stopped vCPU's, re-read at
every stop; with a dump file and no live target, the dump's first vCPU."""

    def __init__(self):
        super().__init__("cr3")

    def complete(self, text, word):
        return _complete(text, word, ("--levels", "auto"), gdb.COMPLETE_EXPRESSION)

    def invoke(self, arg, from_tty):
        words = arg.split()
        levels = self.levels_opt(words)
        expr = " ".join(words)
        if expr in ("", "auto"):
            if expr == "auto":
                S.cr3 = S.cr3_levels = None
            cr3, lv, src = S.roots()
            gdb.write("cr3: %s, %d levels (%s)\n" % ("none" if cr3 is None else "0x%x" % cr3, lv, src))
            return
        S.cr3 = _eval_int(expr)
        S.cr3_levels = levels
        S.spaces.clear()
        cr3, lv, src = S.roots()
        gdb.write("nested: cr3 0x%x, %d levels (override)\n" % (cr3, lv))


class Mode(gdb.Command):
    """Which level to view: nested mode auto|l1|l2

auto (default) decides at every stop whether the vCPU shows L1 or L2 by
walking $pc and $sp through both; l1/l2 force it."""

    def __init__(self):
        super().__init__("nested mode", gdb.COMMAND_DATA)

    def complete(self, text, word):
        return _complete(text, word, ("auto", "l1", "l2"))

    def invoke(self, arg, from_tty):
        arg = arg.strip().lower()
        if arg == "":
            gdb.write("mode: %s, viewing %s\n" % (S.mode, S.level_name()))
            return
        if arg not in ("auto", "l1", "l2"):
            raise gdb.GdbError("nested mode: auto, l1 or l2")
        S.mode = arg
        if arg == "auto" and S.mem is not None and S.second_stage():
            S.detect()
        gdb.write("nested: mode %s, viewing %s\n" % (arg, S.level_name()))


class Info(gdb.Command):
    """Show what nested is attached to and how addresses are translated."""

    def __init__(self):
        super().__init__("nested info", gdb.COMMAND_STATUS, gdb.COMPLETE_NONE)

    def invoke(self, arg, from_tty):
        if S.mem is None:
            gdb.write("memory: not attached\n")
        elif S.mem.remote:
            try:
                st = S.mem.stats
                server = "%d requests, %d cache hits, %d walks" % (
                    st["requests"], st["hits"], st["walks"])
            except MemsrvError as e:
                server = str(e)
            gdb.write(
                "memory: %d MiB served by memsrv at %s (%s; server: %s)\n"
                % (S.mem.size >> 20, S.mem.path, "writable" if S.mem.writable else "read-only",
                   server)
            )
        else:
            gdb.write("memory: %s (%d MiB, layout: %s)\n" % (S.mem.path, S.mem.size >> 20, S.origin))
            for gpa, n, off, src in S.mem.regions:
                gdb.write("  GPA 0x%x-0x%x at file offset 0x%x\n" % (gpa, gpa + n - 1, off))
        if S.eptp is not None:
            gdb.write("second stage: EPT, eptp 0x%x\n" % S.eptp)
        elif S.ncr3 is not None:
            gdb.write("second stage: NPT, ncr3 0x%x, %d levels (%s)\n" % ((S.ncr3,) + S.npt_depth()))
        else:
            gdb.write("second stage: none (nested eptp/ncr3)\n")
        cr3, lv, src = S.roots()
        gdb.write("cr3: %s, %d levels (%s)\n" % ("none" if cr3 is None else "0x%x" % cr3, lv, src))
        gdb.write("mode: %s; viewing %s" % (S.mode, S.level_name()))
        if S.mode == "auto" and S.detect_note:
            gdb.write(" (%s)" % S.detect_note)
        gdb.write("\nbreak/tbreak: %s\n" % ("hardware" if S.hw else "software"))
        for cmd in S.pending_breaks:
            gdb.write("waiting for a target: %s\n" % cmd)
        if S.mem is not None:
            try:
                gdb.write("space: %s\n" % S.space().describe())
            except gdb.GdbError as e:
                gdb.write("space: %s\n" % e)


class Scan(gdb.Command):
    """Find the nested guest's roots in RAM: nested scan [--all]

Runs the library's discovery (ms_discover): AMD VMCBs (nCR3, L2's CR3) and
host-save areas (L1's CR3 and CR4, whose LA57 sets the NPT depth), KVM vmcs12
pages (EPTP, L2's CR3), and EPT-shaped trees; each with a score and its
evidence. The best VMCB or vmcs12 sets the second stage (nCR3 or EPTP); L1's
and L2's CR3 found with them are remembered for viewing a level the vCPU
does not show. A VMCB holds the state of the last #VMEXIT, a host-save area
that of the last VMRUN. --all lists every candidate (default: the top 8)."""

    def __init__(self):
        super().__init__("nested scan", gdb.COMMAND_DATA)

    def complete(self, text, word):
        return _complete(text, word, ("--all",))

    def invoke(self, arg, from_tty):
        self.dont_repeat()
        mem = S.need_mem()
        if not hasattr(mem, "discover"):
            raise gdb.GdbError(
                "nested scan: this build of memsrv has no discover module (memsrv/discover.c); "
                "give the second stage with `nested ncr3 EXPR --levels N` or `nested eptp EXPR`"
            )
        try:
            cands = mem.discover()
        except MemsrvError as e:
            raise _fail(e)
        shown = cands if arg.strip() == "--all" else cands[:8]
        for c in shown:
            gdb.write(
                "%-8s at GPA 0x%x: root 0x%x (%s levels) CR3 0x%x RIP 0x%x score %d: %s\n"
                % (c["kind"], c["gpa"], c["root"], c["root_levels"] or "?", c["cr3"], c["rip"],
                   c["score"], c["evidence"])
            )
        if len(cands) > len(shown):
            gdb.write("(%d more: nested scan --all)\n" % (len(cands) - len(shown)))
        best = next((c for c in cands if c["kind"] in ("VMCB", "vmcs12")), None)
        if best is None:
            gdb.write("nested: no VMCB or vmcs12 found; choose a root with `nested eptp` or "
                      "`nested ncr3`\n")
            return
        hsave = next((c for c in cands if c["kind"] == "HSAVE"), None)
        if best["kind"] == "VMCB":
            S.ncr3, S.eptp = best["root"], None
            if best["root_levels"]:
                S.npt_levels = best["root_levels"]
                S.npt_src = "discover: VMCB at 0x%x" % best["gpa"]
            if hsave is not None:
                lv = 5 if hsave["cr4"] & LA57 else 4
                S.seen["l1"] = (hsave["cr3"], lv, "host-save area at 0x%x" % hsave["gpa"])
        else:
            S.eptp, S.ncr3 = best["root"], None
        S.seen["l2"] = (best["cr3"], 5 if best["cr4"] & LA57 else 4,
                        "%s at 0x%x" % (best["kind"], best["gpa"]))
        S.spaces.clear()
        S.detected = None
        if S.ncr3 is not None:
            gdb.write("nested: ncr3 0x%x, NPT %d levels (%s)\n" % ((S.ncr3,) + S.npt_depth()))
        else:
            gdb.write("nested: eptp 0x%x (from the vmcs12 at 0x%x)\n" % (S.eptp, best["gpa"]))


class Symbols(gdb.Command):
    """Name the kernel's symbol file for nested dmesg: nested symbols FILE | none

A vmlinux or System.map of the kernel in the level viewed (without one,
nested dmesg finds the kernel through VMCOREINFO in its memory). Not with
`nested attach --connect`: the server has its own (`memsrv serve --vmlinux F`)."""

    def __init__(self):
        super().__init__("nested symbols", gdb.COMMAND_DATA)

    def complete(self, text, word):
        return _complete(text, word, ("none",), gdb.COMPLETE_FILENAME)

    def invoke(self, arg, from_tty):
        arg = arg.strip()
        if not arg:
            gdb.write("symbols: %s\n" % (S.symbols or "none (VMCOREINFO)"))
            return
        if arg == "none":
            path = None
        else:
            path = os.path.expanduser(arg)
            if not os.path.isfile(path):
                raise gdb.GdbError("nested symbols: %s: no such file" % path)
        if S.mem is not None:
            try:
                S.mem.set_symbols(path or "")
            except MemsrvError as e:
                raise _fail(e)
        S.symbols = path
        gdb.write("nested: symbols %s\n" % (S.symbols or "none"))


class Dmesg(gdb.Command):
    """Print the kernel log of the Linux in the level viewed: nested dmesg [-n N | -f]

Read from nested memory by the library (the printk ring found through
VMCOREINFO, or through `nested symbols FILE`); -n N prints the last N lines;
-f follows the log of a running guest (`continue &` first) until Ctrl-C,
printing "-- N records lost --" where the ring dropped records unread."""

    def __init__(self):
        super().__init__("nested dmesg", gdb.COMMAND_DATA)

    def complete(self, text, word):
        return _complete(text, word, ("-n",))

    def invoke(self, arg, from_tty):
        self.dont_repeat()
        words = arg.split()
        last = None
        if words == ["-f"]:
            return self.follow()
        if words[:1] == ["-n"] and len(words) == 2 and words[1].isdigit():
            last = int(words[1])
        elif words:
            raise gdb.GdbError("nested dmesg [-n N | -f]")
        sp = S.space()
        try:
            text = sp.dmesg()
        except MemsrvError as e:
            raise _fail(e)
        if last is not None:
            lines = text.splitlines(True)
            text = "".join(lines[-last:]) if last else ""
        gdb.write(text)

    def follow(self, interval=0.1):
        sp = S.space()
        cursor = None
        try:
            while True:
                try:
                    S.mem.flush()
                    text, _lost, cursor = sp.dmesg_next(cursor)
                except MemsrvError as e:
                    raise _fail(e)
                if text:
                    gdb.write(text)
                    gdb.flush()
                time.sleep(interval)
        except KeyboardInterrupt:
            return


class Flush(gdb.Command):
    """Drop every cached translation (done automatically at each stop)."""

    def __init__(self):
        super().__init__("nested flush", gdb.COMMAND_DATA, gdb.COMPLETE_NONE)

    def invoke(self, arg, from_tty):
        S.flush()


class Nx(gdb.Command):
    """Examine nested-guest memory: nx/FMT ADDRESS (same grammar and output as x).

FMT is GDB's: count, format letter (x d u o t a c f s i z) and size letter
(b h w g), sticky like x's. ADDRESS is any GDB expression; the bytes come from
the RAM file through the level viewed (nested info), not from the target.
With no ADDRESS, or on Enter after nx (as x), continues after the last
address shown."""

    def __init__(self):
        super().__init__("nx", gdb.COMMAND_DATA, gdb.COMPLETE_EXPRESSION)
        self.typed = None  # (arg, history count) of the last nx typed at a terminal

    def invoke(self, arg, from_tty):
        # GDB repeats a command on Enter with its arguments; x continues
        # instead: so does nx, when the line is the repeat (no new history).
        count = _history_count() if from_tty else None
        repeat = count is not None and self.typed == (arg, count)
        self.typed = (arg, count) if count is not None else None
        if repeat:
            arg = ""
        m = re.match(r"\s*/(\S*)\s*(.*)$", arg, re.S)
        fmt, expr = (m.group(1), m.group(2)) if m else ("", arg)
        expr = expr.strip()
        if expr:
            addr = eval_address(expr)
        elif S.next_addr is not None:
            addr = S.next_addr
        else:
            raise gdb.GdbError("Argument required (starting display address).")
        if not fmt and not expr and S.last_count:
            fmt = str(S.last_count)  # as x: no format, no address: the last count
        try:
            S.last_count = _memsrv.parse_fmt(fmt, S.xfmt[0], S.xfmt[1])[0]
        except MemsrvError as e:
            raise _fail(e)
        sp = S.space()
        try:
            text, nxt, f, size, err = sp.x(
                fmt, addr, symbolize, format=S.xfmt[0], size=S.xfmt[1], full=True
            )
        except MemsrvError as e:
            raise _fail(e)
        S.xfmt = (f, size)
        S.next_addr = nxt
        if err is not None:
            # GDB leaves the partial line open and prints its error after it.
            if text.endswith("\n"):
                text = text[:-1]
            gdb.write(text)
            raise _fail(err)
        gdb.write(text)


class Vtop(gdb.Command):
    """Translate an address through every dimension: nested vtop EXPR [--l1|--l2]

Prints the final guest-physical address, the page size and permissions, and
every table entry read (L2's page tables, each through EPT/NPT, then the
address itself through EPT/NPT), decoded."""

    def __init__(self):
        super().__init__("nested vtop", gdb.COMMAND_DATA)

    def complete(self, text, word):
        return _complete(text, word, ("--l1", "--l2"), gdb.COMPLETE_EXPRESSION)

    def invoke(self, arg, from_tty):
        words = arg.split()
        level = None
        for opt in ("--l1", "--l2"):
            if opt in words:
                words.remove(opt)
                level = opt[2:]
        if not words:
            raise gdb.GdbError("nested vtop EXPR")
        addr = eval_address(" ".join(words))
        sp = S.space(level)
        try:
            gdb.write(sp.vtop(addr))
        except MemsrvError as e:
            gdb.write(getattr(e, "output", "") or "")
            raise _fail(e)


class Ptdump(gdb.Command):
    """Dump the page tables of the level viewed: nested ptdump [--user|--kernel] [START [END]]

Leaf mappings merged into ranges (contiguous addresses, contiguous lower
addresses, same permissions): VA range, size, lower range, r/w/x/u."""

    def __init__(self):
        super().__init__("nested ptdump", gdb.COMMAND_DATA)

    def complete(self, text, word):
        return _complete(text, word, ("--user", "--kernel", "--l1", "--l2"),
                         gdb.COMPLETE_EXPRESSION)

    def invoke(self, arg, from_tty):
        self.dont_repeat()
        words = _split(arg)
        level = None
        half = None
        rest = []
        for w in words:
            if w in ("--user", "--kernel"):
                half = w[2:]
            elif w in ("--l1", "--l2"):
                level = w[2:]
            else:
                rest.append(w)
        sp = S.space(level)
        if sp.kind != "paging":
            raise gdb.GdbError("nested ptdump: no CR3 (nested cr3 EXPR) for %s" % S.level_name(level))
        top = (1 << (56 if sp.levels == 5 else 47)) - 1
        start, end = 0, MASK
        if half == "user":
            end = top
        elif half == "kernel":
            start = MASK ^ top
        if rest:
            start = eval_address(rest[0])
        if len(rest) > 1:
            end = eval_address(rest[1])
        try:
            gdb.write(sp.ptdump(start, end))
        except MemsrvError as e:
            gdb.write(getattr(e, "output", "") or "")
            raise _fail(e)


class Print(gdb.Command):
    """Print a value from nested memory: nested p[/FMT] EXPR

EXPR of pointer type: the pointee is read from nested memory (the level
viewed) and printed with its type. EXPR naming an object (a symbol): its
bytes at its address. GDB's print formats (/x, /d, ...) apply."""

    def __init__(self):
        super().__init__("nested p", gdb.COMMAND_DATA, gdb.COMPLETE_EXPRESSION)

    def invoke(self, arg, from_tty):
        m = re.match(r"\s*/(\w+)\s*(.*)$", arg, re.S)
        fmt, expr = (m.group(1), m.group(2)) if m else (None, arg.strip())
        if not expr:
            raise gdb.GdbError("nested p EXPR")
        try:
            v = gdb.parse_and_eval(expr)
            t = v.type.strip_typedefs()
            if t.code == gdb.TYPE_CODE_PTR:
                vtype = t.target()
                addr = _int(v)
            elif v.address is not None:
                vtype = v.type
                addr = _int(v.address)
            else:
                raise gdb.GdbError("nested p: %s is neither a pointer nor an object in memory" % expr)
            size = vtype.sizeof
        except gdb.error as e:
            raise gdb.GdbError(str(e))
        if size <= 0:
            raise gdb.GdbError("nested p: type %s has no size" % vtype)
        try:
            data = S.space().read(addr, size)
        except MemsrvError as e:
            raise _fail(e)
        value = gdb.Value(data, vtype)
        kw = {"format": fmt} if fmt else {}
        text = value.format_string(**kw)
        try:
            num = gdb.add_history(value)
            gdb.write("$%d = %s\n" % (num, text))
        except (AttributeError, gdb.error):
            gdb.write("%s\n" % text)


# ---------------------------------------------------------------------------
# Breakpoints

_HW_TYPES = tuple(
    getattr(gdb, n)
    for n in (
        "BP_HARDWARE_BREAKPOINT",
        "BP_HARDWARE_WATCHPOINT",
        "BP_READ_WATCHPOINT",
        "BP_ACCESS_WATCHPOINT",
    )
    if hasattr(gdb, n)
)


def hw_in_use():
    return sum(1 for b in gdb.breakpoints() if b.enabled and b.type in _HW_TYPES)


def warn_hw():
    n = hw_in_use()
    if n > HW_DEBUG_REGISTERS:
        gdb.write(
            "warning: %d hardware breakpoints/watchpoints are enabled; x86 has %d debug "
            "registers, so under KVM or on hardware the extra ones will fail to insert "
            "(QEMU TCG emulates more). Disable some, or use `nested swbreak` for a software "
            "breakpoint.\n" % (n, HW_DEBUG_REGISTERS)
        )


def software_break(arg, temporary):
    """A software breakpoint through gdb.Breakpoint: the built-in `break` is
    unreachable once our Python `break` is registered (GDB has no way to
    unregister a command), so the line is split as GDB would split it."""
    try:
        a = breakargs.parse(arg)
    except ValueError as e:
        raise gdb.GdbError(str(e))
    spec = a.location
    if not spec:
        try:
            spec = "*0x%x" % _int(gdb.selected_frame().pc())
        except gdb.error:
            raise gdb.GdbError("No default breakpoint address now.")
    kw = {}
    if spec.startswith("-qualified "):
        spec = spec[len("-qualified ") :].strip()
        kw["qualified"] = True
    try:
        bp = gdb.Breakpoint(spec, type=gdb.BP_BREAKPOINT, temporary=temporary, **kw)
        if a.condition:
            bp.condition = a.condition
        if a.thread:
            num = a.thread
            if "." in num:
                inf, tid = (int(x) for x in num.split("."))
                th = [t for i in gdb.inferiors() if i.num == inf for t in i.threads() if t.num == tid]
            else:
                th = [t for t in gdb.selected_inferior().threads() if t.num == int(num)]
            if not th:
                bp.delete()
                raise gdb.GdbError("Unknown thread %s." % num)
            bp.thread = th[0].global_num
        if a.task:
            bp.task = int(a.task)
    except gdb.error as e:
        raise gdb.GdbError(str(e))
    return bp


def _has_target():
    """A live process/target (threads exist), as opposed to just an exec file."""
    try:
        return bool(gdb.selected_inferior().threads())
    except gdb.error:
        return False


class Break(gdb.Command):
    """Set a HARDWARE breakpoint (nested's `break`): same arguments as GDB's break.

The rest of the line goes verbatim to `hbreak` (locations, `if COND`,
`thread N`, -qualified): software breakpoints (int3) written into guest
memory break or are lost under nested virtualization and when the guest
rewrites its code; debug registers do not touch memory. More than 4 enabled
is warned about. `nested swbreak ARGS` sets a software breakpoint; `nested hw
off` makes break/tbreak software again (through gdb.Breakpoint)."""

    def __init__(self, name="break", hw_cmd="hbreak", temporary=False):
        self.hw_cmd = hw_cmd
        self.temporary = temporary
        super().__init__(name, gdb.COMMAND_BREAKPOINTS, gdb.COMPLETE_LOCATION)

    def invoke(self, arg, from_tty):
        self.dont_repeat()
        cmd = (self.hw_cmd + " " + arg).rstrip()
        if S.hw and not _has_target() and not arg.strip():
            raise gdb.GdbError("No default breakpoint address now.")
        if S.hw and not _has_target():
            # No debug registers before `target remote`: set it on connection.
            S.pending_breaks.append(cmd)
            gdb.write(
                "nested: no target yet; `%s` will be set when GDB connects (hardware "
                "breakpoints need the target)\n" % cmd
            )
        elif S.hw:
            try:
                gdb.execute(cmd, from_tty)
            except gdb.error as e:
                raise gdb.GdbError(str(e))
            warn_hw()
        else:
            software_break(arg, self.temporary)


class Tbreak(Break):
    """Set a temporary HARDWARE breakpoint (nested's `tbreak`): same arguments as GDB's tbreak.

The rest of the line goes verbatim to `thbreak`. See `help break`."""

    def __init__(self):
        super().__init__("tbreak", "thbreak", True)


class Swbreak(gdb.Command):
    """Set a software breakpoint: nested swbreak LOCATION [thread N] [if COND]

Made with gdb.Breakpoint (type BP_BREAKPOINT): GDB's built-in `break` is
replaced by nested's hardware `break`."""

    def __init__(self):
        super().__init__("nested swbreak", gdb.COMMAND_BREAKPOINTS, gdb.COMPLETE_LOCATION)

    def invoke(self, arg, from_tty):
        self.dont_repeat()
        software_break(arg, False)


class Hw(gdb.Command):
    """Whether break/tbreak make hardware breakpoints: nested hw on|off

on (default): `break`, `b`, ... run `hbreak`, `tbreak` runs `thbreak`.
off: they make software breakpoints, like GDB's built-in ones, through
gdb.Breakpoint (GDB cannot unregister a Python command, so the built-in
itself stays hidden); `hbreak`/`thbreak` are always available."""

    def __init__(self):
        super().__init__("nested hw", gdb.COMMAND_BREAKPOINTS)

    def complete(self, text, word):
        return _complete(text, word, ("on", "off"))

    def invoke(self, arg, from_tty):
        arg = arg.strip()
        if arg not in ("on", "off", ""):
            raise gdb.GdbError("nested hw on|off")
        if arg:
            S.hw = arg == "on"
        gdb.write(
            "nested: break/tbreak make %s breakpoints\n" % ("hardware" if S.hw else "software")
        )


_registered = False


def register():
    global _registered
    for cls in (Nested, Attach, Detach, Eptp, Ncr3, Cr3, Mode, Info, Flush, Scan, Nx, Vtop,
                Ptdump, Print, Break, Tbreak, Swbreak, Hw, Symbols, Dmesg, Unwinder):
        cls()
    proxy.Proxy(S)
    if not _registered:
        gdb.events.stop.connect(_on_stop)
        # Short names for the frequent ones (nx is already short).
        for alias, target in (("nvtop", "nested vtop"), ("nptdump", "nested ptdump"),
                              ("np", "nested p")):
            try:
                gdb.execute("alias %s = %s" % (alias, target), to_string=True)
            except gdb.error:
                pass  # a user command of that name exists: keep it
        _registered = True
    return S
