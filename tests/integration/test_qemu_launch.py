"""scripts/qemu-launch on its own: the layout it writes from `info mtree -f`
must match QEMU's RAM-placement rules measured in notes/qemu.md (q35 and pc,
below and above the PCI hole), <ram>.qemu.json must describe the run, and
QEMU must not outlive the launcher (even when the launcher is SIGKILLed)."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

import guests
import qmp as qmplib

LAUNCH = os.path.join(guests.ROOT, "scripts", "qemu-launch")
G = 1 << 30
M = 1 << 20


def launch(d, machine, mem, *extra):
    ram = os.path.join(d, "r.ram")
    p = subprocess.Popen([sys.executable, LAUNCH, "--ram", ram, "--machine", machine,
                          "--mem", str(mem), "--stopped", "--gdb", "none", *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert "qemu-launch: ready" in line, (line, p.stderr.read() if p.poll() is not None else "")
    return p, ram


def stop(p):
    p.send_signal(signal.SIGTERM)
    return p.wait(20)


def expected(machine, mem):
    if machine == "q35":
        low = 0x80000000 if mem >= 0xb0000000 else mem
    else:  # pc (i440fx): 3.5 GiB split, 3 GiB when gigabyte-aligned
        low = 0xc0000000 if mem >= 0xe0000000 else mem
    out = [(0, low, 0)]
    if mem > low:
        out.append((1 << 32, mem - low, low))
    return out


@pytest.mark.parametrize("machine,mem", [("q35", 512 * M), ("q35", 2816 * M), ("q35", 4 * G),
                                         ("pc", 4 * G)])
def test_layout_matches_rule(machine, mem):
    with tempfile.TemporaryDirectory() as d:
        p, ram = launch(d, machine, mem)
        try:
            with open(ram + ".layout") as f:
                text = f.read()
            with open(ram + ".qemu.json") as f:
                info = json.load(f)
            assert os.path.getsize(ram) == mem
            with qmplib.QMP(info["qmp"]) as q:
                assert q.cmd("query-status")["running"] is False  # --stopped
        finally:
            rc = stop(p)
        assert qmplib.parse_layout(text) == expected(machine, mem), text
        assert info["machine"] == machine and info["mem_size"] == mem
        assert info["qemu_version"].startswith("7.") or info["qemu_version"]
        assert "-S" in info["cmdline"] and "vmcoreinfo" in info["cmdline"]
        assert rc == 128 + signal.SIGTERM
        assert not qmplib.pid_alive(info["pid"]) or _zombie(info["pid"])


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_qemu_dies_with_launcher():
    with tempfile.TemporaryDirectory() as d:
        p, ram = launch(d, "q35", 128 * M)
        with open(ram + ".qemu.json") as f:
            pid = json.load(f)["pid"]
        assert qmplib.pid_alive(pid)
        p.kill()  # SIGKILL: no handler runs; PR_SET_PDEATHSIG must do it
        p.wait()
        deadline = time.monotonic() + 10
        while qmplib.pid_alive(pid) and not _zombie(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not qmplib.pid_alive(pid) or _zombie(pid), f"QEMU {pid} outlived its launcher"
