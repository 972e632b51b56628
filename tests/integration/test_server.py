"""memsrv serve: permissions, authentication, hostile clients, many clients,
read-only by default; the CLI's --connect gives the same answers as local."""
import os
import random
import re
import socket
import stat
import struct
import subprocess
import tempfile
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MEMSRV = os.environ.get("MEMSRV", os.path.join(ROOT, "build", "memsrv"))
MAGIC, VERSION = 0x5652534D, 2
OP_HELLO, OP_READ, OP_WRITE = 1, 3, 7
SIZE = 4 << 20


def frame(op, rid, payload):
    return struct.pack("<IHHII", MAGIC, VERSION, op, rid, len(payload)) + payload


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def call(s, op, rid, payload):
    s.sendall(frame(op, rid, payload))
    magic, ver, rop, rrid, length = struct.unpack("<IHHII", recv_exact(s, 16))
    assert (magic, ver, rop, rrid) == (MAGIC, VERSION, op | 0x8000, rid)
    return recv_exact(s, length)


def hello(s, token=b""):
    return call(s, OP_HELLO, 1, struct.pack("<I", len(token)) + token)


def read_phys(s, rid, addr, n):
    body = call(s, OP_READ, rid, struct.pack("<IIQI", 0, 1, addr, n))
    status, = struct.unpack_from("<I", body, 0)
    assert status == 0
    item_status, done = struct.unpack_from("<II", body, 4)
    return item_status, body[12:12 + done]


@pytest.fixture(scope="module")
def image():
    d = tempfile.mkdtemp(prefix="memsrv-server-")
    path = os.path.join(d, "ram")
    data = bytes(random.Random(7).getrandbits(8) for _ in range(SIZE))
    with open(path, "wb") as f:
        f.write(data)
    yield d, path, data


def start(args):
    p = subprocess.Popen([MEMSRV, "serve"] + args, stderr=subprocess.PIPE, text=True)
    line = p.stderr.readline()
    assert "serving" in line, line
    p.serving_line = line
    return p


def stop(p):
    p.terminate()
    assert p.wait(timeout=10) == 0


def test_unix_socket_is_owner_only_and_serves(image):
    d, path, data = image
    sock = os.path.join(d, "s.sock")
    p = start(["--ram", path, "--map", f"0:{SIZE}@0", "--socket", sock])
    try:
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        out = subprocess.run([MEMSRV, "--connect", sock, "x/2gx", "0x1000"], capture_output=True,
                             text=True, check=True).stdout
        local = subprocess.run([MEMSRV, "--ram", path, "--map", f"0:{SIZE}@0", "x/2gx", "0x1000"],
                               capture_output=True, text=True, check=True).stdout
        assert out == local and out.startswith("0x1000:")
    finally:
        stop(p)
    assert not os.path.exists(sock), "socket removed on SIGTERM"


def test_tcp_needs_a_token(image):
    d, path, _ = image
    r = subprocess.run([MEMSRV, "serve", "--ram", path, "--listen", "127.0.0.1:0"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0 and "token" in r.stderr


def test_tcp_with_token(image):
    d, path, data = image
    tok = os.path.join(d, "token")
    with open(tok, "w") as f:
        f.write("s3cret\n")
    p = start(["--ram", path, "--map", f"0:{SIZE}@0", "--listen", "127.0.0.1:0",
               "--token-file", tok])
    try:
        port = int(re.search(r"\(port (\d+)\)", p.serving_line).group(1))
        with socket.create_connection(("127.0.0.1", port)) as s:
            with pytest.raises(ConnectionError):   # wrong token: dropped
                hello(s, b"wrong")
        with socket.create_connection(("127.0.0.1", port)) as s:
            with pytest.raises(ConnectionError):   # no HELLO: dropped
                read_phys(s, 2, 0, 8)
        with socket.create_connection(("127.0.0.1", port)) as s:
            assert struct.unpack_from("<I", hello(s, b"s3cret"))[0] == 0
            st, got = read_phys(s, 2, 0x2000, 64)
            assert st == 0 and got == data[0x2000:0x2040]
        r = subprocess.run([MEMSRV, "--connect", f"tcp:127.0.0.1:{port}", "--token-file", tok,
                            "vtop", "--brief", "0x3000"], capture_output=True, text=True)
        assert r.stdout.strip() == "0x3000 0x3000", r.stderr
    finally:
        stop(p)


def test_hostile_clients_and_many_good_ones(image):
    d, path, data = image
    sock = os.path.join(d, "h.sock")
    p = start(["--ram", path, "--map", f"0:{SIZE}@0", "--socket", sock])
    errors = []

    def good(n):
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(sock)
                hello(s)
                rng = random.Random(n)
                for i in range(200):
                    a = rng.randrange(0, SIZE - 256)
                    st, got = read_phys(s, 10 + i, a, 256)
                    if st != 0 or got != data[a:a + 256]:
                        errors.append((n, a))
                        return
                st, got = read_phys(s, 5, SIZE - 8, 64)   # runs off the end of RAM
                if st == 0 or got != data[SIZE - 8:]:
                    errors.append((n, "tail"))
        except Exception as e:  # noqa: BLE001 - any failure of a good client is the bug
            errors.append((n, repr(e)))

    def bad(kind):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(sock)
            if kind == "garbage":
                s.sendall(os.urandom(4096))
            elif kind == "oversized":
                s.sendall(struct.pack("<IHHII", MAGIC, VERSION, OP_READ, 1, 1 << 30))
            elif kind == "half":
                s.sendall(frame(OP_READ, 1, struct.pack("<IIQI", 0, 1, 0, 8))[:20])
            elif kind == "lying-count":
                s.sendall(frame(OP_READ, 1, struct.pack("<II", 0, 1 << 30)))
            elif kind == "write":
                hello(s)
                body = call(s, OP_WRITE, 3, struct.pack("<IQI", 0, 0, 4) + b"abcd")
                status, = struct.unpack_from("<I", body)
                if status == 0:
                    errors.append(("write accepted on a read-only server",))
                return
            time.sleep(0.05)

    try:
        threads = [threading.Thread(target=good, args=(n,)) for n in range(64)]
        threads += [threading.Thread(target=bad, args=(k,)) for k in
                    ["garbage", "oversized", "half", "lying-count", "write"] * 3]
        random.Random(1).shuffle(threads)
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors[:5]
        assert p.poll() is None, "server died"
        with open(path, "rb") as f:
            assert f.read(4) == data[:4], "read-only server changed the file"
    finally:
        stop(p)


def test_writable_server_writes(image):
    d, path, data = image
    sock = os.path.join(d, "w.sock")
    p = start(["--ram", path, "--map", f"0:{SIZE}@0", "--socket", sock, "--writable"])
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(sock)
            hello(s)
            body = call(s, OP_WRITE, 3, struct.pack("<IQI", 0, 0x100, 4) + b"WXYZ")
            assert struct.unpack_from("<I", body)[0] == 0
            assert read_phys(s, 4, 0x100, 4) == (0, b"WXYZ")
    finally:
        stop(p)
        with open(path, "r+b") as f:
            f.seek(0x100)
            f.write(data[0x100:0x104])
