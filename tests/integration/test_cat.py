"""memsrv cat: files read from the guest kernel's page cache, against what the
guests said of them before the stop. tests/guest/init writes random files on
the rootfs (/lab/rootfile) and on a tmpfs mounted for it (/mnt/labtmp/tmpfile,
2.5 MiB: three 1 MiB chunks) and prints "lab: file PATH size=N md5=HEX";
the Linux L2 writes /tmp/l2file on its tmpfs ("l2lab: file"). Files of the
initramfs (/init, /bin/busybox, and /bin/sh, a relative symlink to it) against the
image's own bytes on the host. With no vmlinux (the kernel's BTF), with its
DWARF, over a server, and through NPT into the L2. memsrv ls on the same
directories."""

import gzip
import hashlib
import mmap
import os
import re
import shutil
import struct
import subprocess

import pytest

import guests
from test_l2linux import FIXTURES, _nested
from test_linux import MEMSRV, vmlinux
from test_remote_linux import Server

PARTIAL = 3  # the exit status of a file with pages not in the page cache


def cat(*args, command="cat"):
    p = subprocess.run([MEMSRV, command, *args], capture_output=True, timeout=300)
    return p.stdout, p.stderr.decode("utf-8", "replace"), p.returncode


def ls(*args):
    """memsrv ls: {name: (mode text, size)}."""
    out, err, rc = cat(*args, command="ls")
    assert rc == 0, err
    rows = [ln.split(None, 2) for ln in out.decode().splitlines()]
    assert [r[2] for r in rows] == sorted(r[2] for r in rows), rows
    return {name: (mode, int(size)) for mode, size, name in rows}


def md5(data):
    return hashlib.md5(data).hexdigest()


def initramfs(g):
    """{path: bytes} of the regular files and {path: target} of the symlinks
    in the guest's initramfs (cpio "newc")."""
    guest_dir, _ = guests.build_guest(g.image)
    with gzip.open(os.path.join(guest_dir, "initramfs.cpio.gz")) as f:
        data = f.read()
    files, links, pos = {}, {}, 0
    while pos + 110 <= len(data):
        assert data[pos:pos + 6] == b"070701", pos
        fields = [int(data[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name = data[pos + 110:pos + 110 + namesize - 1].decode()
        pos = (pos + 110 + namesize + 3) & ~3
        body = data[pos:pos + size]
        pos = (pos + size + 3) & ~3
        if name == "TRAILER!!!":
            break
        path = "/" + name.lstrip("./")
        if mode & 0o170000 == 0o100000:
            files[path] = body
        elif mode & 0o170000 == 0o120000:
            links[path] = body.decode()
    return files, links


@pytest.fixture(params=["guest5", "guest_kaslr"])
def guest(request):
    return request.getfixturevalue(request.param)


def check_files(g, *args):
    assert set(g.files) == {"/lab/rootfile", "/mnt/labtmp/tmpfile"}, g.files
    for path, want in g.files.items():
        out, err, rc = cat(path, *args)
        assert rc == 0, err
        assert len(out) == want["size"] and md5(out) == want["md5"], (path, len(out), err)
        assert err == "", err


def test_cat_files(guest):
    """The guest's random files, from the kernel's BTF: on the rootfs and
    across the tmpfs mount point; the same through "." and ".." (which go
    back up across the mount)."""
    check_files(guest, "--ram", guest.ram)
    out, err, rc = cat("/mnt/labtmp/../../lab/./rootfile", "--ram", guest.ram)
    assert rc == 0 and md5(out) == guest.files["/lab/rootfile"]["md5"], err
    out, err, rc = cat("/lab/../mnt/labtmp/./tmpfile", "--ram", guest.ram)
    assert rc == 0 and md5(out) == guest.files["/mnt/labtmp/tmpfile"]["md5"], err


def test_cat_dwarf(guest5):
    """The struct layouts from the -dbg vmlinux's DWARF: the same bytes."""
    check_files(guest5, "--ram", guest5.ram, "--vmlinux", vmlinux(guest5))


def test_cat_initramfs(guest):
    """Files the kernel unpacked from the initramfs, against the image on the
    host; the image's /bin/sh is a symlink to "busybox"."""
    files, links = initramfs(guest)
    for path in ("/init", "/bin/busybox"):
        out, err, rc = cat(path, "--ram", guest.ram)
        assert rc == 0, err
        assert out == files[path], (path, len(out), len(files[path]))
    assert links.get("/bin/sh") == "busybox", links  # a relative symlink
    out, err, rc = cat("/bin/sh", "--ram", guest.ram)
    assert rc == 0 and out == files["/bin/busybox"], err


def test_cat_errors(guest5):
    ram = ["--ram", guest5.ram]
    cases = {
        "/lab/nope": "/lab/nope: not in the dentry cache",
        "/lab": "/lab: is a directory",
        "/dev/null": "/dev/null: not a regular file",
        "/init/x": "/init: not a directory",
    }
    for path, msg in cases.items():
        out, err, rc = cat(path, *ram)
        assert rc == 1 and out == b"" and msg in err, (path, rc, err)
    out, err, rc = cat("lab/rootfile", *ram)
    assert rc == 2 and "usage: cat /PATH" in err, err


def test_cat_remote(guest5, tmp_path):
    """Over a server (FILE): the 2.5 MiB file in three chunks, and an error
    as the server words it."""
    srv = Server(guest5.ram, str(tmp_path / "s.sock"))
    try:
        check_files(guest5, "--connect", srv.sock)
        out, err, rc = cat("/lab", "--connect", srv.sock)
        assert rc == 1 and "/lab: is a directory" in err, err
    finally:
        srv.stop()


def test_ls(guest5, tmp_path):
    """Directories from the dentry cache: the guest's files with their sizes,
    the tmpfs mount point as its root, the initramfs' top level; the same
    over a server; a file is no directory."""
    g = guest5
    sizes = {p: f["size"] for p, f in g.files.items()}
    assert ls("/lab", "--ram", g.ram) == {"rootfile": ("-rw-r--r--", sizes["/lab/rootfile"])}
    assert ls("/mnt/labtmp", "--ram", g.ram) == {
        "tmpfile": ("-rw-r--r--", sizes["/mnt/labtmp/tmpfile"])}
    top = ls("/", "--ram", g.ram)
    assert {"bin", "dev", "init", "lab", "lib", "mnt", "proc", "sys", "tmp"} <= set(top), top
    assert top["init"][0] == "-rwxr-xr-x" and top["lab"][0].startswith("d"), top
    # /mnt/labtmp is a tmpfs root (mode 1777), not the rootfs directory under it
    assert ls("/mnt", "--ram", g.ram)["labtmp"][0] == "drwxrwxrwx"
    files, _ = initramfs(g)
    assert ls("/", "--ram", g.ram)["init"][1] == len(files["/init"])
    bins = ls("/bin", "--ram", g.ram)
    assert bins["busybox"] == ("-rwxr-xr-x", len(files["/bin/busybox"])) and \
        bins["sh"][0] == "lrwxrwxrwx", bins
    srv = Server(g.ram, str(tmp_path / "s.sock"))
    try:
        assert ls("/", "--connect", srv.sock) == top
        out, err, rc = cat("/init", "--connect", srv.sock, command="ls")
        assert rc == 1 and "/init: not a directory" in err, err
    finally:
        srv.stop()


def test_cat_partial(guest5, tmp_path):
    """A page the page cache does not hold, made so in a copy of the RAM: the
    struct page of /lab/rootfile's page 1 no longer names the file's
    address_space. cat writes zeros there, names the range on stderr and
    exits 3; every other byte is the file's."""
    g = guest5
    ram = str(tmp_path / "guest.ram")
    shutil.copyfile(g.ram, ram)
    shutil.copyfile(g.layout, ram + ".layout")
    want, _, rc = cat("/lab/rootfile", "--ram", ram)
    assert rc == 0 and md5(want) == g.files["/lab/rootfile"]["md5"]
    out, err, rc = cat("-i", "/lab", "--ram", ram, command="ls")
    assert rc == 0, err
    inode = int(out.split()[0], 16)
    ptype, err, rc = cat("struct inode", "--ram", ram, command="ptype/o")
    m = re.search(rb"/\*\s+(\d+)\s+\|\s+8 \*/\s+struct address_space \*i_mapping;", ptype)
    assert rc == 0 and m, ptype[:2000]
    x, err, rc = cat(hex(inode + int(m.group(1))), "--ram", ram, "--vmlinux", vmlinux(g),
                     command="x/gx")
    assert rc == 0, err
    mapping = int(x.split()[-1], 16)
    # struct page: mapping, then index (include/linux/mm_types.h)
    with open(ram, "r+b") as f:
        mem = mmap.mmap(f.fileno(), 0)
        try:
            needle = struct.pack("<QQ", mapping, 1)
            hits = []
            at = mem.find(needle)
            while at >= 0:
                hits.append(at)
                at = mem.find(needle, at + 1)
            assert len(hits) == 1, hits
            mem[hits[0]:hits[0] + 8] = bytes(8)
        finally:
            mem.close()
    out, err, rc = cat("/lab/rootfile", "--ram", ram)
    assert rc == PARTIAL, err
    assert len(out) == len(want) and out[4096:8192] == bytes(4096), err
    assert out[:4096] == want[:4096] and out[8192:] == want[8192:]
    assert "/lab/rootfile: bytes 4096-8191 (4096) not in the page cache: zeros" in err, err
    assert f"4096 of {len(want)} bytes not in the page cache (output partial)" in err, err


@pytest.fixture(params=FIXTURES)
def l2g(request):
    return request.getfixturevalue(request.param)


def test_cat_l2_through_npt(l2g):
    """The real Linux L2's /tmp/l2file (tmpfs), through L1's nested page
    tables (--ncr3): L2's kernel, its BTF and its guest-physical memory; and
    the same with --nested auto. L1's own files from the same RAM."""
    want = l2g.l2linux["file"]
    assert want and want["path"] == "/tmp/l2file", want
    for args in (_nested(l2g), ["--ram", l2g.ram, "--nested", "auto"]):
        out, err, rc = cat(want["path"], *args)
        assert rc == 0, err
        assert len(out) == want["size"] and md5(out) == str(want["md5"]), (len(out), err)
    check_files(l2g, "--ram", l2g.ram)
