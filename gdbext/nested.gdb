# nested: GDB support for nested guests. Load with `source /path/to/gdbext/nested.gdb`
# (from any working directory). Then `help nested`.
python
def _nested_load():
    import os, sys
    # GDB keeps the script it is sourcing open: find this file among our
    # descriptors to learn the directory beside it (GDB tells Python nothing
    # else about a sourced .gdb file). NESTED_GDBEXT overrides.
    here = os.environ.get("NESTED_GDBEXT")
    if not here:
        found = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink("/proc/self/fd/" + fd)
            except OSError:
                continue
            d = os.path.dirname(target)
            if target.endswith(".gdb") and os.path.isfile(os.path.join(d, "nested", "__init__.py")):
                found.append((int(fd), d))
        if found:
            here = max(found)[1]  # the most recently opened
    if not here or not os.path.isdir(os.path.join(here, "nested")):
        raise gdb.GdbError("nested: cannot find the directory of nested.gdb; "
                           "set NESTED_GDBEXT=/path/to/gdbext")
    if here not in sys.path:
        sys.path.insert(0, here)
    try:
        import nested
        nested.register()
    except ImportError as e:
        raise gdb.GdbError(str(e))
_nested_load()
del _nested_load
end
