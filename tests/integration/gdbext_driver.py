"""Runs inside GDB (`gdb -batch -nx -x gdbext_driver.py`): executes the GDB
commands listed in the JSON file $GDBEXT_CMDS and writes, for each, its
output and its error (None when it succeeded) to $GDBEXT_OUT as JSON.
Output is captured through GDB's logging so that the lines a failing
command printed before its error are kept (as a terminal would show them).

GDB exits 0 when a script raises, so every failure of the driver itself
ends in an explicit `quit 1`."""

import json
import os
import sys
import traceback

import gdb


def run(cmd, log):
    open(log, "w").close()
    # Not to_string: that would undo the redirection when it returns.
    gdb.execute("set logging file " + log)
    gdb.execute("set logging overwrite on")
    gdb.execute("set logging redirect on")
    gdb.execute("set logging enabled on")
    err = None
    try:
        gdb.execute(cmd, from_tty=False)
    except gdb.error as e:
        err = str(e)
    finally:
        gdb.execute("set logging enabled off")
    with open(log) as f:
        return f.read(), err


def main():
    with open(os.environ["GDBEXT_CMDS"]) as f:
        cmds = json.load(f)
    out = os.environ["GDBEXT_OUT"]
    gdb.execute("set pagination off")
    gdb.execute("set width 0")
    gdb.execute("set height 0")
    gdb.execute("set confirm off")
    results = []
    for cmd in cmds:
        text, err = run(cmd, out + ".log")
        results.append({"cmd": cmd, "out": text, "err": err})
    with open(out, "w") as f:
        json.dump(results, f, indent=1)


try:
    main()
except BaseException:
    traceback.print_exc()
    sys.stdout.flush()
    gdb.execute("quit 1")
gdb.execute("quit 0")
