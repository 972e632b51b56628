"""Run inside GDB (gdb -x gdb_frames.py) after `target remote`: prints every
thread's frames as lines "FRAME <tid> <level> <type> <pc> <name>", for the
tests to compare with the kernel's own traces. Types are GDB's
(NORMAL_FRAME, INLINE_FRAME, TAILCALL_FRAME, ...): the kernel's traces know
only real calls."""

import gdb

TYPES = {getattr(gdb, n): n for n in dir(gdb) if n.endswith("_FRAME")}

for th in gdb.selected_inferior().threads():
    th.switch()
    tid = th.ptid[1]
    try:
        f = gdb.newest_frame()
    except gdb.error as e:
        print("NOFRAME %d %s" % (tid, e))
        continue
    level = 0
    while f is not None and level < 200:
        try:
            name = f.name() or "??"
            print("FRAME %d %d %s 0x%x %s" % (tid, level, TYPES.get(f.type(), "?"), f.pc(), name))
            f = f.older()
        except gdb.error as e:
            print("STOP %d %s" % (tid, e))
            break
        level += 1
