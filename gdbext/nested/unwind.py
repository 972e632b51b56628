"""A GDB frame unwinder for the Linux kernel (x86-64) backed by the
library's ORC unwinder (memsrv.h's ms_target_unwind_step, Space.unwind).

The kernel's entry code (entry_64.S) has no DWARF CFI on ORC kernels, so
GDB's own unwinder stops there or makes up frames. By default this one
claims only kernel frames GDB has no function debug info for (assembly:
ret_from_fork, entry_SYSCALL_64, interrupt entries) and leaves C code to
DWARF, which also recovers callee-saved registers for locals; with
all_frames it claims every kernel frame, as the kernel's own unwinder
walks them. Where the kernel's stack ends (its end marker, user mode's
pt_regs, or an unwind that fails) the caller's pc is 0, where GDB stops."""

import gdb
from gdb.unwinder import Unwinder

MASK = (1 << 64) - 1
KERNEL_HALF = 0xFFFF800000000000
GPRS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
EXACT_MAX = 65536


class _FrameId:
    def __init__(self, sp, pc):
        # GDB 13 takes gdb.Values here, not Python ints
        self.sp = gdb.Value(sp)
        self.pc = gdb.Value(pc)


def _read(pending, name):
    try:
        return int(pending.read_register(name)) & MASK
    except (gdb.error, ValueError, OverflowError):
        return None  # unavailable, or no such register


class OrcUnwinder(Unwinder):
    def __init__(self, space):
        """space() -> a _memsrv.Space where kernel addresses map (raises
        gdb.GdbError when there is none)."""
        super().__init__("nested-orc")
        self.space = space
        self.all_frames = False
        # (sp, pc) of the frames this unwinder made from pt_regs: their pc
        # is where the code was interrupted, not a return address
        self.exact = set()
        self.problem = None  # why the last claimed frame has no caller
        self.checked, self.ok = None, False  # the last Space asked about, and the answer

    def usable(self, space):
        """Whether the space holds a kernel with ORC tables: asked once per
        Space (a new one at every stop), so memory with no Linux in it is
        not searched again for every frame."""
        if self.checked is not space:
            self.checked, self.ok = space, False
            try:
                space.symbol("__start_orc_unwind_ip")
                self.ok = True
            except Exception as e:  # no kernel, no symbols: GDB's unwinders only
                self.problem = "no kernel with ORC tables: %s" % e
        return self.ok

    def claims(self, pc):
        if pc < KERNEL_HALF:
            return False
        if self.all_frames:
            return True
        try:
            block = gdb.block_for_pc(pc)
        except RuntimeError:
            block = None
        while block is not None:
            if block.function is not None:
                return False  # C: GDB's DWARF unwinder knows it
            block = block.superblock
        return True

    def __call__(self, pending):
        pc, sp = _read(pending, "rip"), _read(pending, "rsp")
        if pc is None or sp is None:
            return None
        if not self.claims(pc):
            return None
        try:
            space = self.space()
        except gdb.GdbError as e:
            self.problem = str(e)
            return None
        if not self.usable(space):
            return None
        exact = pending.level() == 0 or (sp, pc) in self.exact
        regs = None
        if exact:
            regs = {n: v for n in GPRS + ("cs", "ss", "eflags")
                    if (v := _read(pending, n)) is not None}
        try:
            step = space.unwind(pc, sp, _read(pending, "rbp"), exact=exact, regs=regs)
        except Exception as e:  # a library error ends this trace, not GDB's command
            self.problem = str(e)
            step = None
        if step is None or step[0]["rip"] < KERNEL_HALF:
            # The end: a zero return address, where GDB stops (as after
            # _start). User mode's registers (a syscall's or an interrupt's
            # pt_regs) would show one more frame, but GDB cannot go on from
            # it (its stack is another's, unmapped in the kernel's tables)
            # and says the stack is corrupt.
            step = {"rip": 0, "rsp": sp}, False
        caller, caller_exact = step
        # the id's sp must not go down from a frame to its caller (GDB stops
        # at "previous frame inner to this frame"): on a stack switch to a
        # lower one (user mode, a task's stack below its IRQ stack) keep ours
        info = pending.create_unwind_info(_FrameId(max(caller["rsp"], sp), pc))
        for name, value in caller.items():
            try:
                rtype = pending.read_register(name).type
                info.add_saved_register(name, gdb.Value(value).cast(rtype))
            except (gdb.error, ValueError):
                pass  # a register this architecture does not have
        if caller_exact:
            if len(self.exact) > EXACT_MAX:
                self.exact.clear()
            self.exact.add((caller["rsp"], caller["rip"]))
        return info


_unwinder = None


def install(space):
    """Registers the unwinder once (globally); returns it."""
    global _unwinder
    if _unwinder is None:
        _unwinder = OrcUnwinder(space)
        gdb.unwinder.register_unwinder(None, _unwinder, replace=True)
    _unwinder.space = space
    return _unwinder


def set_mode(mode):
    """'on' (frames without debug info), 'all' (every kernel frame) or 'off'."""
    if _unwinder is None:
        return
    _unwinder.enabled = mode != "off"
    _unwinder.all_frames = mode == "all"
    _unwinder.exact.clear()
    gdb.invalidate_cached_frames()


def mode():
    if _unwinder is None or not _unwinder.enabled:
        return "off"
    return "all" if _unwinder.all_frames else "on"
