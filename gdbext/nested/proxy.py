"""`nested proxy`: this GDB session, reconnected through `memsrv gdbproxy`,
so that GDB's own commands (x, p, ptype, bt, break, finish, lx-*) read the
nested guest through the second stage. Thin: the proxy does the work."""

import os
import shlex
import shutil

import gdb

HERE = os.path.dirname(os.path.abspath(__file__))


def memsrv_program():
    """The memsrv beside this package (source tree or install), else on PATH."""
    for path in (os.path.join(HERE, "..", "..", "build", "memsrv"),
                 os.path.join(HERE, "..", "..", "..", "..", "bin", "memsrv")):
        if os.access(path, os.X_OK):
            return os.path.realpath(path)
    found = shutil.which("memsrv")
    if not found:
        raise gdb.GdbError("nested proxy: no memsrv program (build the tree, or put it on PATH)")
    return found


def qemu_address():
    """Where this session's remote target is (QEMU's gdbstub)."""
    conn = gdb.selected_inferior().connection
    if conn is None or conn.type != "remote" or not conn.details:
        raise gdb.GdbError("nested proxy: connect to QEMU's gdbstub first "
                           "(`target remote HOST:PORT`)")
    if conn.details.startswith("|"):
        raise gdb.GdbError("nested proxy: this session already goes through a program (%s)"
                           % conn.details)
    return conn.details


def command_line(state, address, writable):
    """The proxy's command line for what `nested` knows."""
    mem = state.mem
    if mem is None or mem.remote:
        raise gdb.GdbError("nested proxy: attach the RAM file first (`nested attach`)")
    if mem.cpus:
        raise gdb.GdbError("nested proxy: %s is a dump; the proxy needs the live RAM file"
                           % mem.path)
    # The layout this session uses, whichever way it was found.
    layout = ",".join("0x%x:0x%x@0x%x" % (g, n, o) for g, n, o, _ in mem.regions)
    args = [memsrv_program(), "gdbproxy", "--stdio", "--qemu", address, "--ram", mem.path,
            "--map", layout]
    if state.eptp is not None:
        args += ["--eptp", "0x%x" % state.eptp]
    elif state.ncr3 is not None:
        args += ["--ncr3", "0x%x" % state.ncr3, "--npt-levels", str(state.npt_depth()[0])]
    else:  # the proxy finds it (and refuses when no candidate is clearly best)
        args += ["--nested", "auto"]
    if writable:
        args.append("--writable")
    cmd = " ".join(shlex.quote(a) for a in args)
    # GDB reads a `target remote |` program's stderr with one read() per byte
    # it receives from it (8 KiB of memory: ~3 ms instead of ~0.15 ms), until
    # that stderr closes. So the proxy writes its messages to GDB's own stderr
    # (the same terminal), and exec leaves no shell holding the pipe.
    gdb_stderr = "/proc/%d/fd/2" % os.getpid()
    try:
        os.close(os.open(gdb_stderr, os.O_WRONLY | os.O_APPEND))
    except OSError:
        return cmd  # e.g. GDB's stderr is a socket: keep the slow way
    return "exec %s 2>>%s" % (cmd, gdb_stderr)


class Proxy(gdb.Command):
    """Reconnect GDB through memsrv gdbproxy: nested proxy [--writable] [--no-cache]

GDB's own commands then read the nested guest: at every stop the proxy
tells L1 from L2, serves L2 memory through the 2-D walk from the RAM file
and turns software breakpoints in L2 into hardware ones. Uses the RAM file,
its layout and the second stage `nested` has (none: the proxy finds it, as
`memsrv gdbproxy --nested auto`). GDB's data cache is turned on
for memory (`mem ... cache`, 4 KiB lines): x and p then read a line per
packet instead of an item per packet; it is dropped at every resume.
--no-cache leaves it off (needed to watch MMIO)."""

    def __init__(self, state):
        super().__init__("nested proxy", gdb.COMMAND_RUNNING)
        self.state = state

    def complete(self, text, word):
        from .commands import _complete  # commands imports this module

        return _complete(text, word, ("--writable", "--no-cache"))

    def invoke(self, arg, from_tty):
        self.dont_repeat()
        words = arg.split()
        bad = [w for w in words if w not in ("--writable", "--no-cache")]
        if bad:
            raise gdb.GdbError("nested proxy [--writable] [--no-cache]: unknown %s" % bad[0])
        address = qemu_address()
        cmd = command_line(self.state, address, "--writable" in words)
        gdb.execute("disconnect", to_string=True)
        try:
            gdb.execute("target remote | " + cmd, from_tty)
        except gdb.error as e:
            gdb.execute("target remote " + address, to_string=True)
            raise gdb.GdbError("nested proxy: %s (reconnected to %s)" % (e, address))
        if "--no-cache" not in words:
            gdb.execute("mem 0 0xffffffffffffffff rw cache", to_string=True)
            gdb.execute("set dcache line-size 4096", to_string=True)
        gdb.write("nested: GDB now talks to QEMU through memsrv gdbproxy (%s)\n" % cmd)
