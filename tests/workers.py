"""Run real Faust workers as subprocesses (as production does) and wait until they are ready.

Workers run `sharebus worker` with a 4 s consumer-group session (`TEST_SESSION`) instead of the
product's 10 s: on Tansu a group's first join waits about half the session timeout, and a worker
killed with -9 keeps its partitions until it expires (FAUST-NOTES.md suggests 2 s in tests; 4 s
leaves room for a loaded machine), so a worker consumes seconds sooner after it starts and after a
kill -9 its successor gets the partitions in seconds rather than after ~10 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from streams.identity import LocalIssuer
from streams.kafka.broker import free_port
from streams.settings import ROOT, Settings

ANALYST_RECIPIENT = "vru_analysts"  # individual tier; the agreements grant it the person view


def bearer(
    settings: Settings,
    *,
    recipient: str | None = None,
    tier: str | None = None,
    roles: Iterable[str] = (),
    subject: str = "test-harness",
) -> dict[str, str]:
    """An Authorization header with a token of the settings' embedded issuer (as the worker trusts)."""
    token = LocalIssuer.from_settings(settings).mint(
        subject,
        recipient=recipient,
        tier=tier,  # type: ignore[arg-type]
        roles=roles,
    )
    return {"Authorization": f"Bearer {token}"}


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path
    ops: dict[str, str] = field(default_factory=dict)  # Authorization for /metrics and /ready
    analyst: dict[str, str] = field(default_factory=dict)  # an individual-tier recipient with the person view

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/ready", headers=self.ops, timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}; log:\n{self.log()[-4000:]}")
            if self.ready():
                return
            time.sleep(0.3)
        raise TimeoutError(f"worker not ready after {timeout}s; log:\n{self.log()[-4000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def kill(self) -> None:
        """kill -9: no clean shutdown, no final commit."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


def discard(*workers: WorkerProcess) -> None:
    """End workers a test has finished with (teardown): kill -9, at once.

    A clean stop takes seconds per worker (more while a group rebalances) and nothing is asserted
    after it; tests that need a clean stop call `stop()` themselves.
    """
    for worker in workers:
        if worker.proc.poll() is None:
            worker.proc.send_signal(signal.SIGKILL)
    for worker in workers:
        worker.proc.wait(10)


TEST_SESSION = {"consumer_session_timeout_ms": 4000, "consumer_heartbeat_ms": 500}


def start_worker(
    settings: Settings,
    log_dir: Path,
    *,
    wait: bool = True,
    name: str = "worker",
    env: Mapping[str, str] | None = None,
) -> WorkerProcess:
    """`sharebus worker` with the given settings (on a free web port) in a child process; `env`
    adds variables that are not settings (PROMETHEUS_MULTIPROC_DIR)."""
    port = free_port()
    settings = settings.model_copy(update={"web_port": port, **TEST_SESSION})
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("SHARINGBUS_")}
    child_env.update(settings.to_env())
    child_env.update(env or {})
    child_env["PYTHONUNBUFFERED"] = "1"
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), child_env.get("PYTHONPATH")) if p)
    LocalIssuer.from_settings(settings)  # the issuer key exists before the worker reads it
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sharebus.main", "worker"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env,
            start_new_session=True,
        )
    worker = WorkerProcess(
        proc,
        f"http://127.0.0.1:{port}",
        log_path,
        ops=bearer(settings, roles=["ops"]),
        analyst=bearer(settings, recipient=ANALYST_RECIPIENT, tier="individual"),
    )
    if wait:
        worker.wait_ready()
    return worker
