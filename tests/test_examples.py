"""examples/: every echo server run as a user runs it, as a subprocess on
loopback, talked to with plain blocking sockets and ssl (and once through
examples/echo_client.py), then stopped with a signal.

Every wait is bounded (TIMEOUT); a server left running is killed at teardown.
"""
import hashlib
import importlib.util
import os
import queue
import re
import select
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TIMEOUT = 10.0
MiB = 1024 * 1024
# "listening on 127.0.0.1:PORT (LOOP)", "[::1]:PORT" or a unix socket's path
LISTENING = re.compile(r"^listening on (?:\[(?P<v6>[^\]]+)\]:|(?P<v4>[\d.]+):)?"
                       r"(?P<rest>\S+) \((?P<loop>[^)]*)\)$")


class Example:
    """One example script running as a subprocess.  Its stdout lines arrive
    through a queue (read by a thread), its stderr goes to a file."""

    def __init__(self, tmp_path, script, *args, umask=-1):
        self.stderr_file = tmp_path / f"{script}.{os.urandom(4).hex()}.stderr"
        with open(self.stderr_file, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(EXAMPLES / script), *args],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                text=True, umask=umask, cwd=tmp_path)
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def stderr(self):
        return self.stderr_file.read_text()

    def line(self):
        """The next stdout line; fails after TIMEOUT or at EOF."""
        try:
            line = self.lines.get(timeout=TIMEOUT)
        except queue.Empty:
            pytest.fail(f"no output within {TIMEOUT} s; stderr: {self.stderr()!r}")
        if line is None:
            pytest.fail(f"exited ({self.proc.wait(TIMEOUT)}) early; stderr: {self.stderr()!r}")
        return line

    def listening(self, loop="wfcloop"):
        """Read up to the "listening on" line: return its address, a
        (host, port) pair or a unix socket path, and check the loop named."""
        self.before = []
        while not (line := self.line()).startswith("listening on "):
            self.before.append(line)
        m = LISTENING.match(line)
        assert m, line
        assert m["loop"].partition(",")[0] == loop, line
        self.loop = m["loop"]
        host = m["v4"] or m["v6"]
        return (host, int(m["rest"])) if host else m["rest"]

    def wait(self):
        """Wait for the exit (TIMEOUT at most); return the exit code."""
        try:
            return self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"still running {TIMEOUT} s on; stderr: {self.stderr()!r}")

    def stop(self, sig=signal.SIGINT):
        """Send ``sig``; assert a clean exit: code 0, nothing on stderr."""
        self.proc.send_signal(sig)
        assert self.wait() == 0, self.stderr()
        assert self.stderr() == ""
        self.reader.join(TIMEOUT)
        assert self.lines.get_nowait() is None  # nothing more was printed

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(TIMEOUT)
        self.reader.join(TIMEOUT)  # EOF now
        self.proc.stdout.close()


@pytest.fixture
def example(tmp_path):
    """example(script, *args, umask=-1): start an example; killed at teardown."""
    started = []

    def start(script, *args, umask=-1):
        started.append(Example(tmp_path, script, *args, umask=umask))
        return started[-1]

    yield start
    for ex in started:
        ex.kill()


def run_client(*args):
    """Run echo_client.py to completion; return (exit code, stdout, stderr)."""
    done = subprocess.run([sys.executable, str(EXAMPLES / "echo_client.py"), *args],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=2 * TIMEOUT)
    return done.returncode, done.stdout, done.stderr


# -- talking to the servers ------------------------------------------------

def recv_exactly(sock, n):
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(min(n - len(data), 256 * 1024))
        if not chunk:
            raise EOFError(f"EOF after {len(data)} of {n} bytes")
        data += chunk
    return bytes(data)


def echo(sock, data):
    """Send ``data`` from a thread while reading its echo here: a server with
    flow control stops reading while nobody reads the echo."""
    failed = []

    def send():
        try:
            sock.sendall(data)
        except OSError as exc:
            failed.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        return recv_exactly(sock, len(data))
    finally:
        sender.join(TIMEOUT)
        assert not sender.is_alive() and not failed, failed


def echo_in_turns(sock, data, chunk=64 * 1024):
    """Echo ``data`` a chunk at a time (for SSL sockets, which one thread uses)."""
    out = bytearray()
    for i in range(0, len(data), chunk):
        sock.sendall(data[i:i + chunk])
        out += recv_exactly(sock, len(data[i:i + chunk]))
    return bytes(out)


def connect(addr):
    return socket.create_connection(addr, timeout=TIMEOUT)


def assert_dropped(sock):
    """The server ended this connection: EOF or a reset."""
    try:
        assert sock.recv(1) == b""
    except (ConnectionResetError, ssl.SSLError):  # SSLEOFError: EOF without close_notify
        pass


def assert_refused(addr):
    with pytest.raises(ConnectionRefusedError):
        connect(addr).close()


MESSAGES = [b"hello", b"\x00", b"two\r\nlines\n", os.urandom(MiB)]
TCP_SERVERS = ["echo_protocol.py", "echo_streams.py", "echo_sock.py", "echo_buffered.py"]


# -- TCP servers ---------------------------------------------------------------

@pytest.mark.parametrize("pollers,sig", [(0, signal.SIGINT), (2, signal.SIGTERM)],
                         ids=["pollers=0-SIGINT", "pollers=2-SIGTERM"])
@pytest.mark.parametrize("script", TCP_SERVERS)
def test_tcp_server_echoes(example, script, pollers, sig):
    server = example(script, "--port", "0", "--pollers", str(pollers))
    addr = server.listening()
    assert addr[0] == "127.0.0.1" and addr[1] != 0  # loopback by default
    assert server.loop == f"wfcloop, {pollers} pollers"
    with connect(addr) as a, connect(addr) as idle:
        # Two clients at once: b is served while a stays connected.
        with connect(addr) as b:
            assert echo(b, b"b first") == b"b first"
            for message in MESSAGES:
                assert echo(a, message) == message
            assert echo(b, b"b again") == b"b again"
            # EOF from the client: the server echoes what is left, then closes.
            a.sendall(b"last words")
            a.shutdown(socket.SHUT_WR)
            assert recv_exactly(a, 10) == b"last words"
            assert a.recv(1) == b""
        # A signal stops the server with a client still connected.
        assert echo(idle, b"still here") == b"still here"
        server.stop(sig)
        assert_dropped(idle)
    assert_refused(addr)


@pytest.mark.parametrize("script", TCP_SERVERS)
def test_tcp_server_applies_backpressure(example, script):
    """A client that sends without reading its echo is stopped by full
    socket buffers, not buffered without bound in the server; then it gets
    every byte back, in order."""
    server = example(script, "--port", "0", "--pollers", "2")
    block = os.urandom(MiB + 1)  # odd size: chunks do not line up with it
    cap = 64 * MiB
    sent_hash, received_hash = hashlib.sha256(), hashlib.sha256()
    with connect(server.listening()) as sock:
        sock.setblocking(False)
        sent = 0
        while sent < cap:
            if not select.select([], [sock], [], 0.3)[1]:
                break  # stalled: the server stopped reading
            try:
                n = sock.send(block[sent % len(block):][:256 * 1024])
            except BlockingIOError:
                continue
            sent_hash.update(block[sent % len(block):][:n])
            sent += n
        assert sent < cap, "the server kept reading a client that does not read"
        sock.settimeout(TIMEOUT)
        received = 0
        while received < sent:
            chunk = sock.recv(MiB)
            assert chunk, f"EOF after {received} of {sent} bytes"
            received_hash.update(chunk)
            received += len(chunk)
        assert received_hash.digest() == sent_hash.digest()
    server.stop()


# -- unix socket -----------------------------------------------------------------

@pytest.mark.parametrize("pollers,umask", [(0, 0o077), (2, 0o002)])
def test_unix_server(example, tmp_path, pollers, umask):
    path = str(tmp_path / "echo.sock")
    server = example("echo_unix.py", "--path", path, "--pollers", str(pollers), umask=umask)
    assert server.listening() == path
    mode = os.stat(path).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o777 & ~umask  # the user's umask, no chmod
    with socket.socket(socket.AF_UNIX) as sock, socket.socket(socket.AF_UNIX) as idle:
        sock.settimeout(TIMEOUT)
        sock.connect(path)
        idle.settimeout(TIMEOUT)
        idle.connect(path)
        for message in MESSAGES:
            assert echo(sock, message) == message
        server.stop()
        assert_dropped(idle)
    assert not os.path.exists(path)  # removed on close


def test_unix_server_replaces_a_stale_socket_but_not_a_live_one(example, tmp_path):
    path = str(tmp_path / "echo.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)  # left behind, as by a server that was killed
    stale.close()
    first = example("echo_unix.py", "--path", path)
    assert first.listening() == path

    second = example("echo_unix.py", "--path", path)
    assert second.wait() == 1
    assert f"a server is listening on {path}" in second.stderr()
    assert "Traceback" not in second.stderr()

    with socket.socket(socket.AF_UNIX) as sock:  # the first one still serves
        sock.settimeout(TIMEOUT)
        sock.connect(path)
        assert echo(sock, b"still mine") == b"still mine"
    first.stop()
    assert not os.path.exists(path)


# -- UDP ---------------------------------------------------------------------------

@pytest.mark.parametrize("pollers", [0, 2])
def test_udp_server(example, pollers):
    server = example("echo_udp.py", "--port", "0", "--pollers", str(pollers))
    addr = server.listening()
    assert addr[0] == "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
        a.settimeout(TIMEOUT)
        b.settimeout(TIMEOUT)
        for message in [b"ping", os.urandom(60000), b"\x00"]:
            a.sendto(message, addr)
            b.sendto(message[::-1], addr)
            assert a.recvfrom(65536) == (message, addr)
            assert b.recvfrom(65536) == (message[::-1], addr)
        # An empty datagram: echoed from Python 3.13 on (asyncio's sendto()
        # drops empty data before), and the server carries on.
        a.sendto(b"", addr)
        a.sendto(b"after", addr)
        if sys.version_info >= (3, 13):
            assert a.recvfrom(65536) == (b"", addr)
        assert a.recvfrom(65536) == (b"after", addr)
    server.stop()


def test_udp_server_rcvbuf(example):
    """--rcvbuf: a burst of ten 65507 B datagrams (more than the kernel's
    default receive buffer holds) all come back."""
    try:
        with open("/proc/sys/net/core/rmem_max") as f:
            rmem_max = int(f.read())
    except (OSError, ValueError):
        rmem_max = 0
    if rmem_max < 2 * 1024 * 1024:
        pytest.skip("net.core.rmem_max is below 2 MiB: SO_RCVBUF is capped under the burst")
    server = example("echo_udp.py", "--port", "0", "--rcvbuf", str(2 * 1024 * 1024))
    addr = server.listening()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2 * 1024 * 1024)
        a.settimeout(TIMEOUT)
        burst = [bytes([i]) * 65507 for i in range(10)]
        for message in burst:
            a.sendto(message, addr)
        assert sorted(a.recvfrom(65536)[0] for _ in burst) == burst
    server.stop()


# -- TLS -----------------------------------------------------------------------------

def tls_connect(addr, context, hostname):
    return context.wrap_socket(connect(addr), server_hostname=hostname)


@pytest.mark.parametrize("pollers", [0, 2])
def test_tls_server(example, pollers):
    server = example("echo_tls.py", "--port", "0", "--pollers", str(pollers))
    addr = server.listening()
    assert addr[0] == "127.0.0.1"
    [line] = server.before
    assert line.startswith("certificate ")
    cert = Path(line.split(" ", 1)[1])
    assert cert.is_file()
    key = cert.parent / "key.pem"
    assert stat.S_IMODE(os.stat(cert.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(key).st_mode) & 0o077 == 0

    # Not trusted by default: it is self-signed.
    with pytest.raises(ssl.SSLCertVerificationError, match="self.signed"):
        tls_connect(addr, ssl.create_default_context(), "127.0.0.1")

    context = ssl.create_default_context(cafile=str(cert))
    context.verify_flags |= ssl.VERIFY_X509_STRICT  # Python 3.13's default
    with tls_connect(addr, context, "127.0.0.1") as sock:
        assert sock.version() == "TLSv1.3"
        for message in MESSAGES:
            assert echo_in_turns(sock, message) == message
    # TLS 1.2, and the certificate's other name.
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with tls_connect(addr, context, "localhost") as sock, \
            tls_connect(addr, context, "localhost") as idle:
        assert sock.version() == "TLSv1.2"
        assert echo_in_turns(sock, b"over TLS 1.2") == b"over TLS 1.2"
        # ... but not a name the certificate does not have.
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
            tls_connect(addr, context, "example.com")
        server.stop()
        assert_dropped(idle)
    assert not cert.exists() and not cert.parent.exists()  # deleted on exit


# -- echo_client.py ---------------------------------------------------------------------

def test_echo_client_over_tcp_unix_udp(example, tmp_path):
    tcp = example("echo_streams.py", "--port", "0")
    udp = example("echo_udp.py", "--port", "0")
    path = str(tmp_path / "echo.sock")
    unix = example("echo_unix.py", "--path", path)
    tcp_port, udp_port = tcp.listening()[1], udp.listening()[1]
    unix.listening()
    for args, summary in [
        (["--port", str(tcp_port), "--size", str(MiB), "--count", "3"],
         f"ok: 3 messages of {MiB} bytes echoed byte-exact over tcp in "),
        (["--transport", "unix", "--path", path, "--size", "100000", "--count", "20"],
         "ok: 20 messages of 100000 bytes echoed byte-exact over unix in "),
        (["--transport", "udp", "--port", str(udp_port), "--size", "1000"],
         "ok: 10 messages of 1000 bytes echoed byte-exact over udp in "),
    ]:
        code, out, err = run_client(*args)
        assert (code, err) == (0, ""), out
        assert out.startswith(summary), out
    for server in (tcp, udp, unix):
        server.stop()
    # Nobody there any more: one error line, exit code 1.
    code, out, err = run_client("--port", str(tcp_port))
    assert code == 1 and "Connect call failed" in err and "Traceback" not in err, (out, err)


def test_echo_client_over_tls_verifies_the_certificate(example):
    server = example("echo_tls.py", "--port", "0")
    port = str(server.listening()[1])
    cert = server.before[0].split(" ", 1)[1]
    code, out, err = run_client("--transport", "tls", "--port", port)
    assert code == 1 and out == "", out
    assert re.match(r"error: self.signed certificate; --cafile CERT trusts", err), err
    code, out, err = run_client("--transport", "tls", "--port", port, "--cafile", cert,
                                "--size", str(MiB), "--count", "2")
    assert (code, err) == (0, ""), out
    assert out.startswith(f"ok: 2 messages of {MiB} bytes echoed byte-exact over tls (TLSv1.3) in ")
    code, out, err = run_client("--transport", "tls", "--port", port, "--insecure",
                                "--tls-version", "1.2", "--server-hostname", "wrong.example")
    assert (code, err) == (0, ""), out
    assert " over tls (TLSv1.2) in " in out
    server.stop()


def test_echo_client_reports_a_wrong_or_missing_echo():
    """echo_client.py against a broken "echo" server: one connection gets a
    byte flipped, the next is closed half-way through."""
    def serve(listener):
        for corrupt in (True, False):
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                data = recv_exactly(conn, 100)
                if corrupt:
                    conn.sendall(data[:50] + bytes([data[50] ^ 1]) + data[51:])
                    conn.recv(1)  # the client's EOF
                else:
                    conn.sendall(data[:30])

    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)
        thread = threading.Thread(target=serve, args=(listener,), daemon=True)
        thread.start()
        port = str(listener.getsockname()[1])
        code, out, err = run_client("--port", port, "--count", "1", "--size", "100")
        assert (code, out) == (1, "")
        assert err == "error: message 0: sent 100 bytes, the echo (100 bytes) differs\n"
        code, out, err = run_client("--port", port, "--count", "1", "--size", "100")
        assert (code, out) == (1, "")
        assert err == "error: the server closed the connection 30 bytes into an echo of 100\n"
        thread.join(TIMEOUT)
        assert not thread.is_alive()


# -- --loop and errors -------------------------------------------------------------------

def test_loop_asyncio(example):
    server = example("echo_streams.py", "--port", "0", "--loop", "asyncio")
    addr = server.listening(loop="asyncio")
    with connect(addr) as sock:
        assert echo(sock, MESSAGES[-1]) == MESSAGES[-1]
    code, out, err = run_client("--port", str(addr[1]), "--loop", "asyncio")
    assert (code, err) == (0, "") and out.startswith("ok: 10 messages"), out
    server.stop()


def test_loop_uvloop(example):
    server = example("echo_protocol.py", "--port", "0", "--loop", "uvloop")
    if importlib.util.find_spec("uvloop") is None:
        assert server.wait() == 2
        err = server.stderr()
        assert "--loop uvloop needs the uvloop package: pip install uvloop" in err
        assert "Traceback" not in err
        return
    addr = server.listening(loop="uvloop")
    with connect(addr) as sock:
        assert echo(sock, MESSAGES[-1]) == MESSAGES[-1]
    server.stop()


def test_pollers_only_with_wfcloop(example):
    server = example("echo_udp.py", "--port", "0", "--loop", "asyncio", "--pollers", "2")
    assert server.wait() == 2
    assert "--pollers only applies to --loop wfcloop" in server.stderr()


def test_port_in_use_is_one_error_line(example):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        server = example("echo_protocol.py", "--port", str(taken.getsockname()[1]))
        assert server.wait() == 1
    err = server.stderr()
    assert "address already in use" in err and "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
