"""`sharebus demo`: broker, registry, a worker with every agent and simulated partners, on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import typer

from sharebus.common import announce, fail, wait_for_stop
from streams.errors import SharingBusError
from streams.identity import LocalIssuer
from streams.settings import Settings, get_settings


def _start_worker(
    settings: Settings, log_path: Path, timeout: float = 180.0
) -> tuple[subprocess.Popen[str], str]:
    """`sharebus worker` as a child process; returns once it printed its `web:` address."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARINGBUS_")}
    env.update(settings.to_env())
    env["PYTHONUNBUFFERED"] = "1"
    log = log_path.open("a")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sharebus.main", "worker"],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=env,
        start_new_session=True,
    )
    log.close()
    found: list[str] = []
    ready = threading.Event()

    def pump(stream: IO[str]) -> None:
        for line in stream:
            if line.startswith("web: ") and not found:
                found.append(line.split(": ", 1)[1].strip())
                ready.set()

    assert proc.stdout is not None
    threading.Thread(target=pump, args=(proc.stdout,), daemon=True).start()
    deadline = time.monotonic() + timeout
    while not ready.wait(0.5):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SharingBusError(f"the worker did not start; see {log_path}")
    return proc, found[0]


def _stop(proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


DEMO_RECIPIENT = "vru_analysts"  # the individual-tier recipient the agreements grant the person view
DEMO_LINK_TTL = 8 * 3600  # a working day; the session cookie expires with the token


def _login_link(settings: Settings, web: str) -> str:
    """A dashboard sign-in link for the demo's analyst, signed by the embedded issuer.

    The token rides in the fragment (`#token=`), which browsers never send to a server.
    """
    from sharebus.auth import mint_checked

    token = mint_checked(
        settings,
        "demo:analyst",
        recipient=DEMO_RECIPIENT,
        tier="individual",
        ttl_seconds=max(settings.auth_token_ttl_seconds, DEMO_LINK_TTL),
    )
    return f"{web}/login#token={token}"


def demo(
    duration: float = typer.Option(0, help="Stop after S seconds (0: run until Ctrl-C)"),
    rate: float = typer.Option(20.0, help="Simulated events per second"),
    seed: int = typer.Option(1, help="Simulation seed"),
    people: int = typer.Option(3000, help="Simulated population"),
    web_port: int = typer.Option(6066, help="Worker web port (0: a free port)"),
) -> None:
    """Everything on the embedded default: broker, registry, worker, simulated partners."""
    from streams.kafka.broker import EmbeddedBroker, free_port
    from streams.pg import ensure_database
    from streams.privacy.keys import KeyRing
    from streams.publish.simulate import Simulation, run
    from streams.registry import EmbeddedRegistry

    base = get_settings()
    data_dir = base.data_dir / "demo"
    data_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        broker = EmbeddedBroker(log_path=data_dir / "broker.log").start()
    except SharingBusError as exc:
        fail(str(exc))
    registry = None
    worker = None
    stop = threading.Event()
    publisher: threading.Thread | None = None
    try:
        announce("broker", broker.bootstrap)
        # The demo's broker starts empty each time: the copy gives back the ids of earlier runs.
        registry = EmbeddedRegistry(broker.bootstrap, copy_path=data_dir / "registry.jsonl").start()
        announce("registry", registry.url)
        settings = base.model_copy(
            update={
                "bootstrap_servers": broker.bootstrap,
                "schema_registry_url": registry.url,
                "web_port": web_port or free_port(),
                "data_dir": data_dir,
                "keyring_path": base.keyring_path,
                # one issuer key for the demo and `sharebus auth token` run beside it
                "auth_local_key_path": LocalIssuer.key_path(base),
            }
        )
        ensure_database(settings.postgres_dsn)
        KeyRing.load_or_create(settings.keyring_path)
        worker, web = _start_worker(settings, data_dir / "worker.log")
        announce("web", web)
        announce("dashboard", _login_link(settings, web))
        announce("metrics", f"{web}/metrics")  # needs a token with role ops (sharebus auth token --role ops)
        simulation = Simulation(seed, people)
        publisher = threading.Thread(
            target=run,
            args=(settings, rate),
            kwargs={"simulation": simulation, "stop": stop, "truth_path": data_dir / "truth.jsonl"},
            daemon=True,
        )
        publisher.start()
        announce("partners", f"simulated, {rate:g} events/s, truth in {data_dir / 'truth.jsonl'}")
        remaining = duration - (time.monotonic() - started) if duration else None
        wait_for_stop(max(1.0, remaining) if remaining is not None else None)
    except SharingBusError as exc:
        fail(str(exc))
    finally:
        stop.set()
        if publisher is not None:
            publisher.join(30)
        if worker is not None:
            _stop(worker)
        if registry is not None:
            registry.stop()
        broker.stop()
    typer.echo("demo: stopped")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
