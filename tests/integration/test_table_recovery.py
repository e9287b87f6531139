"""Faust table recovery after batched writes: every key comes back (agents/recovery_fix.py)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from confluent_kafka import Producer

from streams.kafka.admin import TopicSpec, ensure_topics
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.settings import Settings

APP = Path(__file__).with_name("table_app.py")
ROOT = APP.parent.parent.parent


def _start(
    bootstrap: str, source: str, app_id: str, fix: bool, log: Path
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, str(APP), bootstrap, source, app_id, str(port), "1" if fix else "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    return proc, f"http://127.0.0.1:{port}/size"


def _wait_size(proc: subprocess.Popen[bytes], url: str, want: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    size = -1
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            body = httpx.get(url, timeout=2).json()
            size = body["size"]
            if body["recovered"] and size >= want:
                return int(size)
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    return size


def test_table_recovers_every_key_after_batched_writes(
    broker: EmbeddedBroker, settings: Settings, tmp_path: Path
) -> None:
    source = f"table-src-{uuid.uuid4().hex[:8]}"
    ensure_topics(settings, [TopicSpec(source, 4)])
    app_id = f"tablefix-{uuid.uuid4().hex[:8]}"
    keys = 20_000
    proc, url = _start(broker.bootstrap, source, app_id, True, tmp_path / "first.log")
    try:
        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 100})
        for i in range(keys):
            producer.produce(source, key=f"key-{i}".encode(), value=b"v")
        producer.flush()
        assert _wait_size(proc, url, keys, 120) == keys, (tmp_path / "first.log").read_text()[-3000:]
    finally:
        proc.kill()
        proc.wait()
    proc, url = _start(broker.bootstrap, source, app_id, True, tmp_path / "second.log")
    try:
        recovered = _wait_size(proc, url, keys, 120)
        assert recovered == keys, (tmp_path / "second.log").read_text()[-3000:]
    finally:
        proc.kill()
        proc.wait()
