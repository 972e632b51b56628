"""Session fixtures for the real-guest tests (tests/integration/README.md): each guest
boots lazily, the first time a test asks for it, once per pytest session, and
is killed when the session ends (or the process dies). See guests.py."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guests  # noqa: E402


_booted = []


@pytest.fixture(autouse=True)
def _guests_stay_stopped():
    """Every guest must still be stopped after each test: the fixtures stand
    for one stopped moment. A test that resumed one (e.g. gdb `detach`, which
    resumes QEMU; use `disconnect`) gets an error here, and the guest is
    stopped again (its RAM has moved on, so later results may differ)."""
    yield
    resumed = []
    for g in _booted:
        if g.qmp is not None and g.running():
            g.qmp.cmd("stop")
            resumed.append(g.name)
    if resumed:
        pytest.fail(f"this test left {resumed} running (gdb detach resumes QEMU: use "
                    "disconnect, or QMP stop)", pytrace=False)


def _guest(name):
    g = guests.Guest(name, **guests.SCENARIOS[name])
    try:
        g.boot()
    except BaseException:
        g.close()
        raise
    _booted.append(g)
    return g


def _session_guest(name, boot):
    """A session fixture named `name`: booted by boot(name) on first use."""
    def fixture():
        g = boot(name)
        yield g
        g.close()
    fixture.__name__ = name
    return pytest.fixture(scope="session", name=name)(fixture)


guest5 = _session_guest("guest5", _guest)
guest4_4g = _session_guest("guest4_4g", _guest)
guest_kaslr = _session_guest("guest_kaslr", _guest)
guest_svm = _session_guest("guest_svm", _guest)
# Panicked after READY (sysrq c), stopped in panic's loop: guests.SCENARIOS.
guest_crash = _session_guest("guest_crash", _guest)


def _l2linux(name):
    g = guests.boot_l2linux(name)
    _booted.append(g)
    return g


# L1 (-cpu max: LA57, so KVM's NPT is 5-level) running a Debian Linux as L2
# under KVM, and the same with L1 at -cpu max,la57=off (4-level NPT);
# .l2linux holds what L2 printed (guests.parse_l2linux).
guest_l2linux = _session_guest("guest_l2linux", _l2linux)
guest_l2linux4 = _session_guest("guest_l2linux4", _l2linux)


@pytest.fixture(scope="session")
def guest_flood():
    """A guest to run: booted and stopped at READY like the others; its
    flood starts 3 s (guest time) after a test resumes it (g.qmp.cmd("cont")),
    so readers can be started first. Not in _booted: running is what it is
    for."""
    g = guests.Guest("guest_flood", **guests.SCENARIOS["guest_flood"])
    try:
        g.boot()
    except BaseException:
        g.close()
        raise
    yield g
    g.close()
