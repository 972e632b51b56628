"""Session fixtures for the real-guest tests (/work/contracts.md): each guest
boots lazily, the first time a test asks for it, once per pytest session, and
is killed when the session ends (or the process dies). See guests.py."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guests  # noqa: E402


def _guest(name):
    g = guests.Guest(name, **guests.SCENARIOS[name])
    try:
        g.boot()
    except BaseException:
        g.close()
        raise
    return g


@pytest.fixture(scope="session")
def guest5():
    g = _guest("guest5")
    yield g
    g.close()


@pytest.fixture(scope="session")
def guest4_4g():
    g = _guest("guest4_4g")
    yield g
    g.close()


@pytest.fixture(scope="session")
def guest_kaslr():
    g = _guest("guest_kaslr")
    yield g
    g.close()


@pytest.fixture(scope="session")
def guest_svm():
    g = _guest("guest_svm")
    yield g
    g.close()
