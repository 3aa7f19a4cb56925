"""Real services for tests: the machine's Redis, and Redis servers a test starts for itself.

A test that needs a service skips with a message saying how to start it, except under CI
(``CI=true``), where a missing service fails the run instead of skipping it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

REDIS_URL = os.environ.get("SESSIONWARE_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI") == "true"


def unavailable(message: str) -> None:
    if IN_CI:
        pytest.fail(f"{message} (CI=true: services must run)")
    pytest.skip(message)


def require_port(host: str, port: int, what: str, how: str) -> None:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        unavailable(f"{what} is not reachable on {host}:{port}; start it with: {how}")


def require_redis() -> str:
    require_port(
        "127.0.0.1",
        6379,
        "Redis",
        "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no",
    )
    return REDIS_URL


POSTGRES_URL = os.environ.get(
    "SESSIONWARE_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("SESSIONWARE_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")


def require_postgres() -> str:
    require_port(
        "127.0.0.1",
        5432,
        "PostgreSQL",
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    )
    return POSTGRES_URL


def require_mysql() -> str:
    require_port(
        "127.0.0.1",
        3306,
        "MariaDB",
        "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
    )
    return MYSQL_URL


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed; install it with: apt-get install {package}")
        raise AssertionError("unreachable")
    return path


def free_port(*, with_bus: bool = False) -> int:
    """A free loopback port (and port + 10000 free too, for a Redis Cluster bus)."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if not with_bus:
            return port
        if port + 10000 < 65536:
            try:
                with socket.socket() as bus:
                    bus.bind(("127.0.0.1", port + 10000))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port pair")


class RedisServer:
    """A redis-server of the test's own: loopback, its own port and data directory."""

    def __init__(self, directory: Path, *extra: str, port: int | None = None) -> None:
        self.binary = require_binary("redis-server", "redis-server")
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port(with_bus="--cluster-enabled" in extra)
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--daemonize",
                "no",
                "--protected-mode",
                "no",
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(64).startswith((b"+PONG", b"-NOAUTH")):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def pause(self) -> None:
        """SIGSTOP: the server holds its connections and answers nothing (a stall, not a close)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: no shutdown save, no goodbye; what was fsynced is all that survives."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


class TcpProxy:
    """A loopback TCP proxy to a server, that a test stops (every connection cut, new ones
    refused) and starts again on the same port: an outage without touching the shared server."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._replies, args=(upstream, client), daemon=True).start()

    def _replies(self, source: socket.socket, sink: socket.socket) -> None:
        """What the server sends back (a subclass may tamper with it)."""
        self._pump(source, sink)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for end in sockets:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()


class FaultyProxy(TcpProxy):
    """A ``TcpProxy`` that injects faults into what the server sends back, each into the next
    reply on whichever connection answers: ``"cut"`` forwards part of a reply and closes the
    connection (dropped mid-batch), ``"garble"`` sends bytes that are no protocol instead,
    ``"stall"`` holds the reply for ``stall`` seconds (past the client's timeout) and then
    closes the connection."""

    def __init__(self, target_port: int, *, stall: float = 1.5) -> None:
        super().__init__(target_port)
        self.stall = stall
        self.faults: list[str] = []
        """Faults to inject, in order, each into the next reply."""
        self.injected: dict[str, int] = {"cut": 0, "garble": 0, "stall": 0}
        self._fault_lock = threading.Lock()

    def inject(self, fault: str) -> None:
        with self._fault_lock:
            self.faults.append(fault)

    def _take_fault(self) -> str | None:
        with self._fault_lock:
            fault = self.faults.pop(0) if self.faults else None
        if fault is not None:
            self.injected[fault] += 1
        return fault

    def _replies(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                fault = self._take_fault()
                if fault is None:
                    sink.sendall(data)
                    continue
                if fault == "garble":  # and the stream goes on, misaligned
                    sink.sendall(b"?\x00garbled\xff\r\n" + data[::-1])
                    continue
                if fault == "cut":
                    sink.sendall(data[: max(1, len(data) // 2)])
                else:
                    time.sleep(self.stall)
                break
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
