"""A small QEMU for the GDB-extension tests that need the guest held at its
first instruction (-S): `b start_kernel` must be set before the kernel runs.
File-backed RAM, gdbstub on a UNIX socket, HMP through QMP. The kernel comes
from the fetch-kernel cache; no initramfs is needed (the tests stop at
start_kernel)."""

import glob
import json
import os
import socket
import subprocess
import time


def kernel_dir():
    cache = os.environ.get("NESTED_CACHE", os.path.expanduser("~/.cache/nested"))
    dirs = sorted(glob.glob(os.path.join(cache, "linux-*")))
    for d in dirs:
        if os.path.exists(os.path.join(d, "vmlinuz")) and os.path.exists(os.path.join(d, "vmlinux")):
            return d
    raise RuntimeError("no kernel in %s: run scripts/fetch-kernel" % cache)


class Qmp:
    def __init__(self, path, timeout=30):
        deadline = time.time() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        self.file = self.sock.makefile("rwb")
        self._read()  # greeting
        self.command("qmp_capabilities")

    def _read(self):
        while True:
            line = self.file.readline()
            if not line:
                raise RuntimeError("QMP closed")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def command(self, name, **args):
        self.file.write(json.dumps({"execute": name, "arguments": args}).encode() + b"\n")
        self.file.flush()
        reply = self._read()
        if "error" in reply:
            raise RuntimeError("QMP %s: %s" % (name, reply["error"]))
        return reply.get("return")

    def hmp(self, cmd):
        return self.command("human-monitor-command", **{"command-line": cmd}).replace("\r", "")

    def close(self):
        self.sock.close()


class HeldGuest:
    """QEMU -S: .ram, .gdb_address, .kernel_dir, .hmp(cmd), .close()."""

    def __init__(self, workdir, mem="512M", cpu="max", append="console=ttyS0 nokaslr panic=-1"):
        self.kernel_dir = kernel_dir()
        self.ram = os.path.join(workdir, "held.ram")
        self.gdb_sock = os.path.join(workdir, "held.gdb")
        self.qmp_sock = os.path.join(workdir, "held.qmp")
        self.gdb_address = self.gdb_sock
        args = [
            "qemu-system-x86_64",
            "-machine", "q35,accel=tcg",
            "-cpu", cpu,
            "-smp", "1",
            "-m", mem,
            "-object", "memory-backend-file,id=pc.ram,share=on,mem-path=%s,size=%s" % (self.ram, mem),
            "-machine", "memory-backend=pc.ram",
            "-kernel", os.path.join(self.kernel_dir, "vmlinuz"),
            "-append", append,
            "-display", "none",
            "-no-reboot",
            "-serial", "file:" + os.path.join(workdir, "held.serial"),
            "-gdb", "unix:%s,server=on,wait=off" % self.gdb_sock,
            "-qmp", "unix:%s,server=on,wait=off" % self.qmp_sock,
            "-S",
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        try:
            self.qmp = Qmp(self.qmp_sock)
        except Exception:
            self.close()
            raise

    def hmp(self, cmd):
        return self.qmp.hmp(cmd)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for p in (self.ram, self.gdb_sock, self.qmp_sock):
            if os.path.exists(p):
                os.unlink(p)
