"""Helpers every command shares: one-line errors, address announcements, waiting for a signal."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import NoReturn, Protocol, TypeVar

import typer

from streams.errors import BrokerError, SharingBusError
from streams.settings import Settings


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear error line and exit non-zero."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def announce(name: str, address: str) -> None:
    """`<name>: <address>` on its own line, flushed, so scripts can wait for it."""
    sys.stdout.write(f"{name}: {address}\n")
    sys.stdout.flush()


def wait_for_stop(timeout: float | None = None) -> None:
    """Block until SIGINT/SIGTERM (or `timeout` seconds)."""
    stop = threading.Event()

    def _handler(signum: int, frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        stop.wait(timeout)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


BROKER_WAIT_SECONDS = 10.0


class _Service(Protocol):
    def stop(self) -> None: ...


S = TypeVar("S", bound=_Service)


def serve(name: str, start: Callable[[], S], address: Callable[[S], str]) -> None:
    """Start a local service, announce `<name>: <address>`, run until a signal, then stop it.

    A service that cannot start (port taken, no broker) is one error line and exit status 1.
    """
    try:
        service = start()
    except SharingBusError as exc:
        fail(str(exc))
    try:
        announce(name, address(service))
        wait_for_stop()
    finally:
        service.stop()


def require_broker(settings: Settings, bootstrap: str | None = None) -> None:
    """Fail in one line, before any client floods stderr with librdkafka's retries, without Kafka."""
    from streams.kafka.broker import wait_for_metadata

    servers = bootstrap or settings.bootstrap_servers
    try:
        wait_for_metadata(servers, BROKER_WAIT_SECONDS, kafka_config=settings.kafka_config())
    except BrokerError:
        fail(
            f"no Kafka broker answered at {servers} within {BROKER_WAIT_SECONDS:g} s: start one with"
            " `sharebus broker`, or set SHARINGBUS_BOOTSTRAP_SERVERS to yours"
        )
