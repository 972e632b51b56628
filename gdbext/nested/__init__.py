"""nested: GDB commands for nested guests, over the memsrv library.

The walking, parsing and formatting all happen in the C module _memsrv
(gdbext/_memsrv.c over memsrv/); this package only parses command lines and
prints. `source gdbext/nested.gdb` loads it into GDB; the pure-Python parts
(qemu, decode, breakargs) and _memsrv also import under /usr/bin/python3.
"""

import glob
import os
import sys
import sysconfig

HERE = os.path.dirname(os.path.abspath(__file__))


class ModuleMissing(ImportError):
    pass


def load_module():
    """Imports the C module beside this file, or raises ModuleMissing with a
    message saying what to do (not built; built for another Python)."""
    # GDB links elfutils' libdw, whose dwarf_* functions share names with
    # libdwarf's: bound first, they would take the module's libdwarf calls
    # (a crash in the first DWARF read). RTLD_DEEPBIND makes the module and
    # its own libraries look in themselves first.
    flags = sys.getdlopenflags()
    sys.setdlopenflags(flags | getattr(os, "RTLD_DEEPBIND", 0))
    try:
        from . import _memsrv  # noqa: F401
        return _memsrv
    except ImportError as e:
        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        built = sorted(os.path.basename(p) for p in glob.glob(os.path.join(HERE, "_memsrv*.so")))
        if not built:
            raise ModuleMissing(
                "nested: the C module _memsrv%s is not built in %s; run `make` at the top of "
                "the source tree (it builds gdbext/ against GDB's own Python)" % (suffix, HERE)
            ) from e
        if "_memsrv" + suffix not in built:
            raise ModuleMissing(
                "nested: %s was built for another Python (this one is %s and needs _memsrv%s); "
                "rebuild with `make -C gdbext clean all BUILD=...` so that it asks GDB for its "
                "include directory" % (", ".join(built), sysconfig.get_python_version(), suffix)
            ) from e
        raise ModuleMissing("nested: cannot load %s: %s" % (os.path.join(HERE, built[0]), e)) from e
    finally:
        sys.setdlopenflags(flags)


def register():
    """Registers the GDB commands (only inside GDB)."""
    from . import commands

    return commands.register()
