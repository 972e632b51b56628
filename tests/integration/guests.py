"""Real test guests for the integration tests: QEMU (TCG here) booting the
Debian kernel from scripts/fetch-kernel with the initramfs of
scripts/build-guest, on file-backed RAM, through scripts/qemu-launch.

A Guest is booted once, waits for "LAB: READY" on its serial log, is stopped
(QMP `stop`) and stays stopped until close(). The l2linux guests (a Debian
Linux nested under KVM inside the Debian L1, `build-guest l2linux`) wait for
L2's "l2lab: READY" instead, and parse L2's oracles into .l2linux. QEMU dies with the launcher and
the launcher with this process (PR_SET_PDEATHSIG), so a crashed pytest leaves
no guest behind; close() is also registered with atexit.
"""

import atexit
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import qmp as qmplib  # noqa: E402

CACHE = os.environ.get("NESTED_CACHE", os.path.expanduser("~/.cache/nested"))
REPORT_DIR = os.path.join(CACHE, "test-reports")
MiB = 1 << 20
GiB = 1 << 30
BANNER = b"Linux version "

# The fixtures of tests/integration/conftest.py (see tests/integration/README.md).
SCENARIOS = {
    "guest5": dict(machine="q35", mem=512 * MiB, cpu="max",
                   append="nokaslr lab.user=spin lab.sysrq=t"),
    "guest4_4g": dict(machine="q35", mem=4 * GiB, cpu="max,la57=off",
                      append="nokaslr lab.user=spin"),
    "guest_kaslr": dict(machine="q35", mem=512 * MiB, cpu="max",
                        append="lab.user=spin lab.sysrq=t"),
    # The crash-dump case: after READY the shell panics the kernel (sysrq c:
    # panic() in sysrq_handle_crash, its trace on the console); panic=0 (it
    # follows BASE_APPEND's panic=-1, and the last one counts) keeps the
    # dead kernel in panic's delay loop instead of rebooting. Ready when
    # the panic text is complete; stopped with the CPU in that loop.
    "guest_crash": dict(machine="q35", mem=256 * MiB, cpu="max", ready="---[ end Kernel panic",
                        append="nokaslr panic=0 lab.user=none lab.crash=1"),
    # Runs (not stopped) for memsrv dmesg --follow: 3 s after READY it floods
    # /dev/kmsg with numbered lines, so the ring wraps under the reader.
    "guest_flood": dict(machine="q35", mem=512 * MiB, cpu="max",
                        append="nokaslr lab.user=none lab.kmsgflood=20000"),
    # sysrq t: the oracle of memsrv bt through module code (KVM's threads)
    "guest_svm": dict(machine="q35", mem=1 * GiB, cpu="max",
                      append="nokaslr lab.kvm=1 lab.run=l2kvm lab.user=sleep lab.sysrq=t"),
    # L1 with LA57 (KVM's NPT is 5-level), and without (4-level NPT). The
    # 4-level one is also the SMP case (issue 16): L1 with 2 vCPUs running an
    # L2 with 2 vCPUs (one VMCB each), rather than a third L1 boot.
    "guest_l2linux": dict(machine="q35", mem=3 * GiB, cpu="max", image="l2linux",
                          append="nokaslr lab.kvm=1 lab.run=l2linux lab.user=none"),
    "guest_l2linux4": dict(machine="q35", mem=3 * GiB, cpu="max,la57=off", image="l2linux",
                           smp=2,
                           append="nokaslr lab.kvm=1 lab.run=l2linux lab.l2smp=2 lab.user=none"),
}
BASE_APPEND = "console=ttyS0 panic=-1"
# Where a CPU spins after panic() with panic=0: its loop of mdelay()s.
PANIC_LOOP = {"panic", "delay_tsc", "delay_loop", "delay_halt", "delay_halt_tpause",
              "delay_halt_mwaitx", "__delay", "__const_udelay", "__udelay",
              "touch_softlockup_watchdog", "no_blink"}


def report(line):
    """Appends one line to the cache's test report (boot times, counts)."""
    os.makedirs(REPORT_DIR, exist_ok=True)
    with open(os.path.join(REPORT_DIR, "integration.txt"), "a") as f:
        f.write(time.strftime("%Y-%m-%d %H:%M:%S ") + f"[{os.getpid()}] " + line + "\n")


def _pdeathsig():
    ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)


def build_guest(image=None):
    """Runs scripts/build-guest [image]; returns (guest dir, kernel dir)."""
    cmd = [os.path.join(ROOT, "scripts", "build-guest")] + ([image] if image else [])
    out = subprocess.run(cmd, check=True, capture_output=True,
                         text=True).stdout.strip().splitlines()[-1]
    return out, os.path.realpath(os.path.join(out, "kernel-dir"))


def _parse_kv(text):
    d = {}
    for k, v in re.findall(r"(\w+)=(\S+)", text):
        if re.fullmatch(r"0x[0-9a-fA-F]+", v):
            d[k] = int(v, 16)
        elif re.fullmatch(r"-?\d+", v):
            d[k] = int(v)
        else:
            d[k] = v
    return d


class L2Died(RuntimeError):
    """The nested Linux died (its QEMU exited, or it panicked): worth one retry
    (notes/qemu.md s.7: L2 under KVM in a TCG L1 sometimes loses its GS base)."""


# __START_KERNEL: where an x86-64 kernel's _text is unslid (L1's, nokaslr).
UNSLID_TEXT = 0xffffffff81000000

# What a dead L2 leaves on L1's console.
L2_DEATH = re.compile(r"lab: l2 qemu exited rc=\d+|Kernel panic - not syncing.*|"
                      r"BUG: \w+ stack guard page was hit|PANIC: double fault.*")


def parse_l2linux(log):
    """The "l2lab: " lines of tests/guest/l2init from L1's serial log."""
    lines = [ln.rstrip("\r") for ln in log.split("\n")]
    tagged = {}
    for ln in lines:
        m = re.match(r"l2lab: (\w+) ?(.*)", ln)
        if m:
            tagged.setdefault(m.group(1), []).append(m.group(2))
    out = {"lines": tagged}
    out["marker"] = tagged["marker"][0] if "marker" in tagged else None
    out["version"] = tagged["version"][0] if "version" in tagged else None
    out["kallsyms"] = {}
    for ln in tagged.get("kallsyms", []):
        addr, _kind, name = ln.split()
        out["kallsyms"][name] = int(addr, 16)
    out["modules"] = tagged.get("modules", [])
    out["ps"] = tagged.get("ps", [])
    out["maps"] = tagged.get("maps", [])
    out["sysrq"] = tagged.get("sysrq", [])
    out["dmesg"] = tagged.get("dmesg", [])
    out["file"] = _parse_kv(tagged["file"][0]) if "file" in tagged else None
    if out["file"]:
        out["file"]["path"] = tagged["file"][0].split()[0]
    out["user"] = _parse_kv(tagged["user"][0]) if "user" in tagged else None
    # one spinner per L2 CPU: [{"pid": N, "cpu": C}, ...]; "spin" is the first
    out["spins"] = [_parse_kv(s) for s in tagged.get("spin", [])]
    out["spin"] = out["spins"][0] if out["spins"] else None
    out["cpus"] = _parse_kv(tagged["cpus"][0]) if "cpus" in tagged else None
    return out


class Guest:
    def __init__(self, name, machine, mem, cpu, append, image=None, ready=None,
                 smp=1, boot_timeout=None):
        self.name = name
        self.image = image
        self.ready_line = ready or ("l2lab: READY" if image == "l2linux" else "LAB: READY")
        self.frozen = False
        self.revivals = 0
        self.machine = machine
        self.mem_size = mem
        self.cpu = cpu
        self.smp = smp
        self.append = f"{BASE_APPEND} {append}"
        # two TCG vCPUs share this machine's 2 busy cores: slower to boot
        self.boot_timeout = boot_timeout or (180 if smp == 1 else 300)
        self.proc = None
        self.qmp = None
        self._dumps = {}
        self.workdir = tempfile.mkdtemp(prefix=f"nested-{name}-")
        self.ram = os.path.join(self.workdir, "guest.ram")
        self.layout = self.ram + ".layout"
        self.serial_path = self.ram + ".serial.log"
        atexit.register(self.close)

    # -- life cycle ---------------------------------------------------------
    def boot(self):
        guest_dir, self.kernel_dir = build_guest(self.image)
        cmd = [sys.executable, os.path.join(ROOT, "scripts", "qemu-launch"),
               "--ram", self.ram, "--mem", str(self.mem_size), "--machine", self.machine,
               "--cpu", self.cpu, "--smp", str(self.smp), "--accel", "tcg",
               "--gdb", "tcp::auto",
               "--kernel", os.path.join(self.kernel_dir, "vmlinuz"),
               "--initrd", os.path.join(guest_dir, "initramfs.cpio.gz"),
               "--append", self.append]
        t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, preexec_fn=_pdeathsig)
        line = self.proc.stdout.readline()
        if "qemu-launch: ready" not in line:
            err = self.proc.stderr.read() if self.proc.poll() is not None else ""
            self.close()
            raise RuntimeError(f"{self.name}: qemu-launch failed: {line}{err}")
        with open(self.ram + ".qemu.json") as f:
            self.info = json.load(f)
        self.gdb_address = self.info["gdb"]
        self.qemu_pid = self.info["pid"]
        self.qmp = qmplib.QMP(self.info["qmp"], timeout=300)
        deadline = t0 + self.boot_timeout
        while self.ready_line not in self.serial():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name}: QEMU exited during boot; serial log:\n"
                                   + self.serial()[-3000:])
            self._check_l2_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: no {self.ready_line!r} within "
                                   f"{self.boot_timeout} s; serial log:\n" + self.serial()[-3000:])
            time.sleep(0.05)
        self.boot_seconds = time.monotonic() - t0
        self._stop()
        self._check_l2_alive()
        log = self.serial()
        errors = re.findall(r"lab: error .*", log)
        if errors:
            raise RuntimeError(f"{self.name}: the guest's /init reported: {errors}")
        self.markers = re.findall(r"lab: marker (\S+)", log)
        # L1's /proc/modules (lab.kvm=1); L2's own are "l2lab: modules" lines
        self.modules = [ln.rstrip("\r") for ln in
                        re.findall(r"(?<!l2)lab: modules (.*)", log)]
        # userpat's pid and /proc/PID/maps (tests/guest/init); L2's are "l2lab: maps"
        m = re.search(r"(?<!l2)lab: mapspid (\d+)", log)
        self.maps_pid = int(m.group(1)) if m else None
        self.maps = [ln.rstrip("\r") for ln in re.findall(r"(?<!l2)lab: maps (.*)", log)]
        m = re.search(r"lab: maps2pid (\d+)", log)
        self.maps2_pid = int(m.group(1)) if m else None
        self.maps2 = [ln.rstrip("\r") for ln in re.findall(r"lab: maps2 (.*)", log)]
        # (name, address, module) of module symbols in L1's /proc/kallsyms
        self.modsyms = [(n, int(a, 16), m) for a, n, m in
                        re.findall(r"lab: modsym ([0-9a-f]+) \w (\w+)\s+\[(\w+)\]", log)]
        # Files the guest wrote for memsrv cat: path -> {"size": N, "md5": HEX}
        self.files = {p: {"size": int(n), "md5": h} for p, n, h in
                      re.findall(r"(?<!l2)lab: file (\S+) size=(\d+) md5=([0-9a-f]+)", log)}
        self.user = None
        m = re.search(r"lab: userpat (pid=.*)", log)
        if m:
            self.user = _parse_kv(m.group(1))
            self.user["phys"] = [int(p, 16) for _i, p in
                                 re.findall(r"lab: userpat page=(\d+) va=\S+ phys=0x([0-9a-f]+)", log)]
        self.l2 = None
        m = re.search(r"lab: l2 truth (.*)", log)
        if m:
            self.l2 = _parse_kv(m.group(1))
            self.l2["tables"] = {int(g, 16): int(p, 16) for g, p in re.findall(
                r"lab: l2 table l2gpa=0x([0-9a-f]+) l1phys=0x([0-9a-f]+)", log)}
        self.l2linux = parse_l2linux(log) if self.image == "l2linux" else None
        if self.frozen:
            self.stop_attempts = 0
            self.in_wanted_place = False
            self.cr3 = self.cr4 = self.levels = None
        else:
            self.stop_attempts = self._settle()
        cr = (f"CR3={self.cr3:#x} CR4={self.cr4:#x} levels={self.levels}" if not self.frozen
              else "frozen with SIGSTOP: QMP stop hung")
        report(f"boot {self.name}: {self.boot_seconds:.2f} s to {self.ready_line} "
               f"({self.machine}, {self.mem_size // MiB} MiB, -cpu {self.cpu}, -smp {self.smp}, "
               f"{cr}, stopped {'' if self.in_wanted_place else 'NOT '}where wanted "
               f"after {self.stop_attempts} attempt(s))")
        return self

    def _check_l2_alive(self):
        if self.image != "l2linux":
            return
        m = L2_DEATH.search(self.serial())
        if m:
            raise L2Died(f"{self.name}: the nested Linux died ({m.group(0).strip()}); serial log:\n"
                         + self.serial()[-3000:])

    def _stop(self, timeout=30):
        """QMP stop, bounded: with a Linux L2 running, QEMU's stop sometimes
        never returns (its vCPU thread never pauses, notes/qemu.md s.7). Then
        SIGSTOP freezes QEMU, and with it the RAM file; QMP is closed (QEMU
        no longer answers) and .frozen says so."""
        self.qmp.sock.settimeout(timeout)
        try:
            self.qmp.cmd("stop")
            status = self.qmp.cmd("query-status")
        except (OSError, qmplib.QMPError) as e:
            report(f"stop {self.name}: QMP stop failed ({e!r}); SIGSTOP to QEMU {self.qemu_pid}")
            os.kill(self.qemu_pid, signal.SIGSTOP)
            self.qmp.close()
            self.qmp = None
            self.frozen = True
            return
        finally:
            if self.qmp is not None:
                self.qmp.sock.settimeout(300)
        if status.get("running"):
            raise RuntimeError(f"{self.name}: VM still running after stop: {status}")

    def quit(self):
        """Ends QEMU, keeping the RAM file and its layout (tests of the file
        alone); the guest is closed as far as QMP and gdb go."""
        if self.qmp is not None:
            self.qmp.close()
            self.qmp = None
        if self.proc is not None and self.proc.poll() is None:
            pid = getattr(self, "qemu_pid", None)
            if pid and qmplib.pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
            self.proc.wait(30)

    def running_qemu(self):
        pid = getattr(self, "qemu_pid", None)
        return bool(pid) and qmplib.pid_alive(pid)

    def _read_registers(self):
        """Every vCPU's registers into .cpu_regs; .regs, .cr3, .cr4 and
        .levels are vCPU 0's."""
        self.cpu_regs = []
        for i in range(self.smp):
            text = self.qmp.cmd("human-monitor-command", command_line="info registers",
                                cpu_index=i).replace("\r", "")
            if i == 0:
                self.registers_text = text
            self.cpu_regs.append(qmplib.parse_registers(text))
        self.regs = self.cpu_regs[0]
        self.cr3 = self.regs["CR3"]
        self.cr4 = self.regs["CR4"]
        self.levels = 5 if self.cr4 & (1 << 12) else 4

    def _l2linux_walkers(self):
        """(walk through L2, walk through L1, L2's banner, L1's banner), made
        once: L2's from the VMCB (oracle.scan_vmcbs) whose nCR3 and saved CR3
        reach L2's linux_banner (where L2's kallsyms put it) at the NPT depth
        L1's -cpu implies; L1's from its own System.map (nokaslr)."""
        if getattr(self, "_l2walk", None):
            return self._l2walk
        import oracle  # it imports this module
        regions = self.layout_regions()
        vmcbs, _hsaves = oracle.scan_vmcbs(self.ram, regions)
        ram = oracle.RamFile(self.ram, regions)
        l1_levels = 4 if "la57=off" in self.cpu else 5
        banner2 = self.l2linux["kallsyms"]["linux_banner"]
        walk2d = None
        for v in vmcbs:
            _npt, w = oracle.nested_walker(ram, v["ncr3"], l1_levels)
            phys = w(v["cr3"], banner2, 4)
            if phys is not None and ram.read(phys, len(BANNER)) == BANNER:
                walk2d = w
                break
        if walk2d is None:
            ram.close()
            raise RuntimeError(f"{self.name}: no VMCB reaches L2's linux_banner: {vmcbs}")

        def l1_u64(gpa):
            b = ram.read(gpa, 8)
            return None if b is None else int.from_bytes(b, "little")

        def walk1(cr3, va):
            return oracle.walk(l1_u64, cr3, va, l1_levels)

        self._l2walk = (walk2d, walk1, banner2, oracle.symbol(self, "linux_banner"), ram)
        return self._l2walk

    def in_l2linux(self, cpu=0):
        """vCPU `cpu` runs the nested Linux: its CR3 maps L2's linux_banner
        through the NPT and not L1's through L1's tables. (Not EFER.SVME:
        KVM sets it in L2's VMCB too, as VMRUN requires; not CR3 against the
        VMCB's copy: that is from the last #VMEXIT, and L2's CR3 changes
        with its processes.)"""
        walk2d, walk1, banner2, banner1, ram = self._l2linux_walkers()
        cr3 = self.cpu_regs[cpu]["CR3"]
        levels = 5 if self.cpu_regs[cpu]["CR4"] & (1 << 12) else 4

        def reads(phys):
            return phys is not None and ram.read(phys, len(BANNER)) == BANNER
        return reads(walk2d(cr3, banner2, levels)) and not reads(walk1(cr3, banner1))

    def _where_wanted(self):
        """The stop should catch the vCPU where the tests want it: inside
        userpat (its CR3 loaded, so user pages translate) for a spinning
        userpat; inside L2 for the nested guest, on every vCPU (QEMU then
        shows L2's state with no sign of it, which is the case the tools
        must handle)."""
        if self.l2:
            return self.cr3 == self.l2["cr3"] and not self.cr4 & (1 << 12)
        if self.l2linux:
            return all(self.in_l2linux(i) for i in range(self.smp))
        if "lab.crash=1" in self.append:
            return self._rip_symbol() in PANIC_LOOP
        if self.user and self.user.get("mode") == "spin":
            gpa = qmplib.hmp_gva2gpa(self.hmp(f"gva2gpa {self.user['va']:#x}"))
            return gpa == self.user["phys"][0]
        return True

    def _rip_symbol(self):
        """The kernel symbol at or below the vCPU's RIP (System.map; the
        crash guest has no KASLR), or None."""
        rip = int(re.search(r"\bRIP=([0-9a-f]+)", self.registers_text).group(1), 16)
        best = None
        with open(os.path.join(self.kernel_dir, "System.map")) as f:
            for line in f:
                addr, _t, name = line.split()[:3]
                a = int(addr, 16)
                if a <= rip and (best is None or a > best[0]):
                    best = (a, name)
        return best and best[1]

    def _settle(self, attempts=40, budget=30.0):
        """Reads the registers; when the vCPU is not where wanted, lets the
        guest run a while and stops it again, until `attempts` stops and
        `budget` seconds are both spent. Returns the attempts used. The run
        between stops grows from 20 ms to 0.5 s: a nested Linux busy in L1
        for a second or more (its serial output exits to L1's QEMU byte by
        byte) is waited out rather than sampled 40 times in one second.
        A stop that hangs freezes QEMU (_stop): then it gives up, not where
        wanted."""
        deadline = time.monotonic() + budget
        run = 0.02
        i = 0
        while True:
            i += 1
            self._read_registers()
            if self._where_wanted():
                self.in_wanted_place = True
                return i
            if i >= attempts and time.monotonic() >= deadline:
                break
            self.qmp.cmd("cont")
            time.sleep(run)
            run = min(run * 1.25, 0.5)
            self._stop()
            if self.frozen:
                self.in_wanted_place = False
                return i
        self.in_wanted_place = False
        return i

    def require_wanted_place(self, msg):
        """in_wanted_place_again(), asserted; skipped when QEMU's QMP stop hung
        and the guest is frozen by SIGSTOP (QEMU under TCG, notes/qemu.md
        section 7): a frozen guest can no longer be stopped elsewhere."""
        import pytest
        ok = self.in_wanted_place_again()
        if not ok and self.revive_if_broken(f"not where wanted: {self._where_now()}"):
            ok = self.in_wanted_place
        if not ok and self.frozen:
            pytest.skip(f"{self.name}: QEMU's QMP stop hung; the guest is frozen by SIGSTOP")
        assert ok, f"{msg}: {self._where_now()}"

    def _where_now(self):
        """Each vCPU's RIP and CR3 at the last stop (and, for a nested Linux,
        whether it runs L2): for a failure message."""
        out = []
        for i, r in enumerate(getattr(self, "cpu_regs", [])):
            where = f" in {'L2' if self.in_l2linux(i) else 'L1'}" if self.l2linux else ""
            out.append(f"vCPU {i}: RIP {r['RIP']:#x} CR3 {r['CR3']:#x}{where}")
        return "; ".join(out) or "no registers read"

    def keep_serial(self):
        """A copy of the serial log in the report directory; its path."""
        kept = os.path.join(REPORT_DIR, f"{self.name}-{time.strftime('%Y%m%d-%H%M%S')}.serial")
        os.makedirs(REPORT_DIR, exist_ok=True)
        shutil.copyfile(self.serial_path, kept)
        return kept

    def l2_death(self):
        """The line of the serial log that says the nested Linux died, or None."""
        if self.image != "l2linux":
            return None
        m = L2_DEATH.search(self.serial())
        return m.group(0).strip() if m else None

    def revive_if_broken(self, otherwise=None, most=2):
        """A nested-Linux guest that QEMU under TCG broke is booted again in
        place, at most `most` times a session: its QMP stop hung and it is
        frozen; or L2 died (stopping and resuming it many times sometimes
        loses L2's GS base: "ENTRY_TRAMPOLINE stack guard page was hit",
        notes/qemu.md s.7); or, given `otherwise` (why), it could not be
        stopped where the tests need it. The report says why and keeps the
        old serial log. Returns whether it was booted again."""
        why = ("its QMP stop hung (frozen by SIGSTOP)" if self.frozen
               else self.l2_death() or otherwise)
        if not why or self.image != "l2linux" or self.revivals >= most:
            return False
        report(f"{self.name}: {why}: booting it again (serial log kept: {self.keep_serial()})")
        revivals = self.revivals + 1
        self.close()
        atexit.unregister(self.close)
        fresh = boot_l2linux(self.name)
        atexit.unregister(fresh.close)
        self.__dict__.clear()  # the old guest's oracles and caches with it
        self.__dict__.update(fresh.__dict__)
        self.revivals = revivals
        atexit.register(self.close)
        return True

    def in_wanted_place_again(self):
        """Stops the guest where the tests want it again, if it is not (a
        test that resumed it left it where its own stop landed: with two
        vCPUs, one may be in L1 while GDB's thread is in L2). Returns
        whether it is there now."""
        if self.frozen or self.qmp is None:
            return self.in_wanted_place
        self._read_registers()
        if self._where_wanted():
            self.in_wanted_place = True
        else:
            self._settle()
        return self.in_wanted_place

    def close(self):
        if getattr(self, "_l2walk", None):
            self._l2walk[4].close()
            self._l2walk = None
        if self.qmp is not None:
            self.qmp.close()
            self.qmp = None
        if self.frozen and qmplib.pid_alive(self.qemu_pid):
            os.kill(self.qemu_pid, signal.SIGKILL)  # SIGTERM waits for a SIGCONT
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            # QEMU should be gone with the launcher; make sure.
            pid = getattr(self, "qemu_pid", None)
            if pid and qmplib.pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc = None
        if self.workdir and os.environ.get("NESTED_KEEP_GUESTS") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    # -- oracles ------------------------------------------------------------
    def hmp(self, command):
        return self.qmp.hmp(command)

    def hmp_many(self, commands):
        return self.qmp.hmp_many(commands)

    def serial(self):
        try:
            with open(self.serial_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def dump(self, paging=False):
        """A dump-guest-memory ELF of this stopped moment (made once each):
        plain, or with paging=True QEMU's -p (virtual addresses)."""
        if self._dumps.get(paging) is None:
            path = os.path.join(self.workdir, "guest.%s.elf" % ("paging" if paging else "dump"))
            t0 = time.monotonic()
            self.qmp.cmd("dump-guest-memory", paging=paging, protocol=f"file:{path}")
            deadline = time.monotonic() + 300
            while True:
                st = self.qmp.cmd("query-dump")
                if st.get("status") == "completed":
                    break
                if st.get("status") == "failed":
                    raise RuntimeError(f"{self.name}: dump-guest-memory failed: {st}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name}: dump-guest-memory timed out: {st}")
                time.sleep(0.05)
            report(f"dump {self.name}: {os.path.getsize(path)} bytes in "
                   f"{time.monotonic() - t0:.2f} s")
            self._dumps[paging] = path
        return self._dumps[paging]

    def running(self):
        return bool(self.qmp.cmd("query-status").get("running"))

    def gdb_batch(self, *commands, vmlinux=False, timeout=120):
        """Runs `gdb -batch` connected to this guest's gdbstub and returns the
        CompletedProcess. Ends with `disconnect`, never `detach`: in QEMU 7.2
        a gdb detach resumes the VM (checked), which would move the guest
        away from the stopped moment every other test relies on."""
        cmd = ["gdb", "-batch", "-nx"]
        if vmlinux:
            cmd.append(os.path.join(self.kernel_dir, "vmlinux"))
        else:
            cmd += ["-ex", "set architecture i386:x86-64"]
        cmd += ["-ex", f"target remote {self.gdb_address}"]
        for c in commands:
            cmd += ["-ex", c]
        cmd += ["-ex", "disconnect"]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)

    def layout_regions(self):
        with open(self.layout) as f:
            return qmplib.parse_layout(f.read())


def boot(name):
    return Guest(name, **SCENARIOS[name]).boot()


def boot_l2linux(name):
    """Boots an l2linux guest, once more if its nested Linux died, or KASLR
    left it unslid (1 boot in about 480: the tests tell L2's addresses from
    L1's, which runs unslid, nokaslr)."""
    for attempt in (1, 2):
        g = Guest(name, **SCENARIOS[name])
        try:
            g.boot()
            unslid = g.l2linux["kallsyms"].get("_text") == UNSLID_TEXT
            if (g.in_wanted_place and not unslid) or attempt == 2:
                return g
            why = "L2's KASLR left it unslid" if unslid else f"not where wanted: {g._where_now()}"
            report(f"boot {name}: attempt {attempt}: {why} (serial log kept: {g.keep_serial()})")
            g.close()
        except L2Died as e:
            g.close()
            report(f"boot {name}: attempt {attempt}: {str(e).splitlines()[0]}")
            if attempt == 2:
                raise
        except BaseException:
            g.close()
            raise
