"""What a newcomer meets first: each mistake is one line saying what is wrong and what to do, exit 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from streams.kafka.broker import EmbeddedBroker, free_port
from streams.privacy.keys import KeyRing


def _sharebus(*args: str, env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SHARINGBUS_")}
    return subprocess.run(
        [sys.executable, "-m", "sharebus.main", *args],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, "\n".join(lines[:20])
    assert lines[0].startswith("error: ")
    return lines[0]


def _keyring(tmp_path: Path) -> Path:
    path = tmp_path / "keyring.json"
    KeyRing.generate().save(path)
    return path


def test_registry_without_a_broker_says_so_in_one_line() -> None:
    line = _one_line(
        _sharebus("registry", "--port", "0", env={"SHARINGBUS_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"})
    )
    assert "no Kafka broker answered" in line and "sharebus broker" in line


def test_worker_without_a_broker_says_so_in_one_line(tmp_path: Path) -> None:
    env = {
        "SHARINGBUS_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "SHARINGBUS_KEYRING_PATH": str(_keyring(tmp_path)),
        "SHARINGBUS_DATA_DIR": str(tmp_path / "var"),
    }
    line = _one_line(_sharebus("worker", "--web-port", "0", env=env))
    assert "no Kafka broker answered" in line and "SHARINGBUS_BOOTSTRAP_SERVERS" in line


def test_worker_without_a_database_says_so_in_one_line(broker: EmbeddedBroker, tmp_path: Path) -> None:
    env = {
        "SHARINGBUS_BOOTSTRAP_SERVERS": broker.bootstrap,
        "SHARINGBUS_POSTGRES_DSN": f"postgresql://127.0.0.1:{free_port()}/nowhere",
        "SHARINGBUS_KEYRING_PATH": str(_keyring(tmp_path)),
        "SHARINGBUS_DATA_DIR": str(tmp_path / "var"),
        "SHARINGBUS_ROLES": "enforcer",
    }
    line = _one_line(_sharebus("worker", "--web-port", "0", env=env))
    assert "PostgreSQL (SHARINGBUS_POSTGRES_DSN) is not reachable" in line, line


def test_worker_without_a_key_ring_says_how_to_make_one(broker: EmbeddedBroker, tmp_path: Path) -> None:
    env = {
        "SHARINGBUS_BOOTSTRAP_SERVERS": broker.bootstrap,
        "SHARINGBUS_KEYRING_PATH": str(tmp_path / "missing.json"),
        "SHARINGBUS_DATA_DIR": str(tmp_path / "var"),
        "SHARINGBUS_ROLES": "enforcer",
    }
    line = _one_line(_sharebus("worker", "--web-port", "0", env=env))
    assert "missing.json" in line and "sharebus keys rotate" in line


def test_explain_on_an_incomplete_event_names_the_missing_field(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"envelope": {"event_type": "police.crime_recorded"}}))
    line = _one_line(_sharebus("agreements", "explain", "--recipient", "vru_analysts", str(event), env={}))
    assert "envelope.event_id is missing, expected uuid" in line.replace("sharingbus.Envelope", "envelope")
