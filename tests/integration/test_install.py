"""`make install` into a DESTDIR, used as a new user would: the installed
memsrv's --version and help, its manual page, an outside C program built
with `pkg-config --cflags --libs memsrv` against the installed header and
library, the installed nested.gdb sourced in GDB from another directory;
then `make uninstall` leaves nothing behind. No guest needed."""

import os
import re
import shutil
import subprocess

import pytest

import guests

ROOT = guests.ROOT
PREFIX = "/usr/local"

PROGRAM = r"""
#include <stdio.h>
#include <string.h>
#include <memsrv/memsrv.h>

int main(int argc, char **argv)
{
    struct ms_target_opts o = {0};
    o.ram = argv[1];
    o.map = "0:0x100000@0";
    struct ms_err err;
    struct ms_target *t;
    if (ms_target_open(&t, &o, &err)) {
        fprintf(stderr, "open: %s\n", err.msg);
        return 1;
    }
    ms_handle h;
    struct ms_stack s = {0};
    char buf[32] = {0};
    size_t done = 0;
    if (ms_target_space(t, &s, &h, &err) ||
        ms_target_read(t, h, 0x3000, buf, 16, &done, &err)) {
        fprintf(stderr, "read: %s\n", err.msg);
        return 1;
    }
    printf("memsrv %s read %zu: %s\n", ms_version(), done, buf);
    ms_target_close(t);
    return argc > 2;
}
"""


def make(*args):
    r = subprocess.run(["make", "-s", "-C", ROOT, *args], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return r


def tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, files in os.walk(root) for f in files)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    dest = tmp_path_factory.mktemp("destdir")
    make("install", f"PREFIX={PREFIX}", f"DESTDIR={dest}")
    yield dest
    shutil.rmtree(dest, ignore_errors=True)


def run(args, timeout=120, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)


def test_installed_files(installed):
    files = tree(installed)
    p = PREFIX.lstrip("/")
    for want in ["bin/memsrv", "include/memsrv/memsrv.h", "lib/libmemsrv.a",
                 "lib/pkgconfig/memsrv.pc", "share/man/man1/memsrv.1",
                 "share/nested/gdbext/nested.gdb", "share/nested/gdbext/nested/__init__.py",
                 "share/nested/gdbext/nested/commands.py"]:
        assert f"{p}/{want}" in files, files
    assert any(re.fullmatch(rf"{p}/share/nested/gdbext/nested/_memsrv\..*\.so", f)
               for f in files), files
    # Nothing of the build tree (tests, objects, caches) goes.
    assert not [f for f in files if "__pycache__" in f or f.endswith(".o")], files


def test_installed_memsrv_version_and_help(installed, tmp_path):
    memsrv = str(installed / PREFIX.lstrip("/") / "bin/memsrv")
    r = run([memsrv, "--version"], cwd=tmp_path)
    assert r.returncode == 0 and re.fullmatch(r"memsrv \d+\.\d+\.\d+\n", r.stdout), r
    header = (installed / PREFIX.lstrip("/") / "include/memsrv/memsrv.h").read_text()
    assert r.stdout.split()[1] in open(os.path.join(ROOT, "memsrv/target.c")).read()
    assert "ms_target_open" in header
    r = run([memsrv, "help", "vtop"], cwd=tmp_path)
    assert r.returncode == 0 and "--brief" in r.stdout and "usage: memsrv" in r.stdout, r
    assert run([memsrv, "vtop", "--help"], cwd=tmp_path).stdout == r.stdout
    r = run([memsrv, "help", "nosuch"], cwd=tmp_path)
    assert r.returncode == 2 and "vtop" in r.stderr, r


def test_manual_page_documents_every_command_and_option(installed):
    page = (installed / PREFIX.lstrip("/") / "share/man/man1/memsrv.1").read_text()
    text = page.replace("\\-", "-")
    usage = run([os.path.join(ROOT, "build/memsrv"), "--help"]).stdout
    commands = re.findall(r"^  ([a-z]+)[/ \n[]", usage.split("Commands:\n")[1].split("\n\n")[0],
                          re.M)
    assert len(commands) >= 10, commands
    for c in commands:
        assert re.search(rf"^\.SS {c}\b", text, re.M), c
    # Every option the program parses is documented (global options in
    # main.c, command options in cmd_*.c).
    src = ""
    for f in os.listdir(os.path.join(ROOT, "memsrv/cli")):
        src += open(os.path.join(ROOT, "memsrv/cli", f)).read()
    options = set(re.findall(r'strcmp\((?:a|argv\[\w+\]), "(--?[a-z][a-z0-9-]*)"\)', src))
    assert {"--ram", "--nested", "--brief", "--all", "--no-vmcoreinfo"} <= options, options
    for opt in sorted(options):
        assert re.search(rf"\\fB{re.escape(opt)}\\fR", text.replace("\\-", "-")), opt
    # man renders it without warnings.
    r = run(["man", "--warnings", "-l", "-"], input=page, env=dict(os.environ, MANWIDTH="80"))
    assert r.returncode == 0 and "vtop" in r.stdout, r.stderr
    assert "warning" not in r.stderr, r.stderr


def test_pkg_config_program(installed, tmp_path):
    lib = installed / PREFIX.lstrip("/") / "lib"
    env = dict(os.environ, PKG_CONFIG_PATH=str(lib / "pkgconfig"),
               PKG_CONFIG_SYSROOT_DIR=str(installed))
    r = run(["pkg-config", "--cflags", "--libs", "memsrv"], env=env)
    assert r.returncode == 0, r.stderr
    flags = r.stdout.split()
    assert f"-I{installed}{PREFIX}/include" in flags and "-lmemsrv" in flags, flags
    src = tmp_path / "prog.c"
    src.write_text(PROGRAM)
    # Outside the source tree: only the installed header can be found.
    r = run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-o", str(tmp_path / "prog"),
             str(src), *flags], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ram = tmp_path / "ram"
    data = bytearray(0x100000)
    data[0x3000:0x3010] = b"INSTALLED-MARKER"
    ram.write_bytes(bytes(data))
    r = run([str(tmp_path / "prog"), str(ram)], cwd=tmp_path)
    version = run([os.path.join(ROOT, "build/memsrv"), "--version"]).stdout.split()[1]
    assert r.returncode == 0 and r.stdout == f"memsrv {version} read 16: INSTALLED-MARKER\n", r


def test_installed_gdbext_from_another_directory(installed, tmp_path):
    gdbext = installed / PREFIX.lstrip("/") / "share/nested/gdbext"
    ram = tmp_path / "ram"
    data = bytearray(0x100000)
    data[0x2000:0x2010] = b"GDBEXT-INSTALLED"
    ram.write_bytes(bytes(data))
    env = {k: v for k, v in os.environ.items() if k != "NESTED_GDBEXT"}
    r = run(["gdb", "-batch", "-nx", "-ex", f"source {gdbext}/nested.gdb",
             "-ex", f"nested attach {ram} --map 0:0x100000@0",
             "-ex", "nx/s 0x2000", "-ex", "help nested"],
            cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert "GDBEXT-INSTALLED" in r.stdout, r.stdout + r.stderr
    assert "nested attach" in r.stdout, r.stdout
    # The module came from the installed tree, not from the source tree.
    r = run(["gdb", "-batch", "-nx", "-ex", f"source {gdbext}/nested.gdb",
             "-ex", "python import nested; print(nested.__file__)"], cwd=tmp_path, env=env)
    assert r.stdout.strip() == f"{gdbext}/nested/__init__.py", r.stdout + r.stderr


def test_uninstall_leaves_nothing(tmp_path):
    dest = tmp_path / "d"
    make("install", f"PREFIX={PREFIX}", f"DESTDIR={dest}")
    # GDB importing the installed package may leave bytecode behind.
    gdbext = dest / PREFIX.lstrip("/") / "share/nested/gdbext"
    run(["gdb", "-batch", "-nx", "-ex", f"source {gdbext}/nested.gdb"], cwd=tmp_path)
    assert tree(dest)
    make("uninstall", f"PREFIX={PREFIX}", f"DESTDIR={dest}")
    assert tree(dest) == []
    left = sorted(os.path.relpath(os.path.join(d, x), dest)
                  for d, dirs, _ in os.walk(dest) for x in dirs)
    # Only the shared directories install created (bin, lib, ...) may stay.
    assert not [d for d in left if "nested" in d or "memsrv" in d], left


@pytest.mark.parametrize("option", ["--ram", "--dump", "--vmlinux", "--system-map"])
def test_cli_refuses_non_regular_inputs(tmp_path, option):
    """A FIFO (nobody writing), a directory, a socket or a device given as an
    input is refused at once (a FIFO used to block memsrv forever)."""
    import socket
    memsrv = os.path.join(ROOT, "build/memsrv")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    ram = tmp_path / "ram"
    ram.write_bytes(bytes(0x100000))
    for path, kind in [(fifo, "a FIFO"), (tmp_path, "a directory"),
                       (tmp_path / "sock", "a socket"), ("/dev/zero", "a character device")]:
        args = [option, str(path)]
        if option in ("--vmlinux", "--system-map"):
            args += ["--ram", str(ram), "--map", "0:0x100000@0"]
        r = run([memsrv, *args, "sym", "linux_banner"], timeout=10)
        assert r.returncode == 1, r
        assert f"memsrv: {path} is {kind}, not a regular file" in r.stderr, r.stderr
    sock.close()


def test_progress_on_terminal_only(tmp_path):
    """discover over a large RAM file shows progress on stderr when stderr is
    a terminal (then erases it), and nothing when it is not."""
    import pty
    memsrv = os.path.join(ROOT, "build/memsrv")
    ram = tmp_path / "big.ram"
    size = 8 << 30
    with open(ram, "wb") as f:
        f.truncate(size)  # sparse: reading it costs page walks, not disk
    args = [memsrv, "--ram", str(ram), "--map", f"0:{size:#x}@0", "discover"]
    piped = run(args, timeout=300)
    assert piped.returncode == 0 and "(nothing found)" in piped.stdout, piped
    assert piped.stderr == "", piped.stderr

    main, sub = pty.openpty()
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=sub)
    os.close(sub)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break  # EIO: the child closed its side
        if not chunk:
            break
        seen += chunk
    out, _ = p.communicate(timeout=300)
    os.close(main)
    assert p.returncode == 0 and b"(nothing found)" in out
    text = seen.decode()
    steps = [int(m) for m in re.findall(r"memsrv: discover +(\d+)% \(\d+ of 8192 MiB\)", text)]
    assert steps and steps == sorted(steps) and steps[-1] < 100, text[-500:]
    assert text.endswith("\r\x1b[K"), repr(text[-100:])  # the line is erased at the end
