"""`sharebus demo` on a fresh machine: starts everything, shares events, stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from streams.settings import Settings
from tests.workers import bearer


def test_demo_starts_shares_and_stops_cleanly(pg_dsn: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARINGBUS_")}
    env |= {
        "SHARINGBUS_POSTGRES_DSN": pg_dsn,
        "SHARINGBUS_DATA_DIR": str(tmp_path / "var"),
        "SHARINGBUS_KEYRING_PATH": str(tmp_path / "keyring.json"),
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sharebus.main",
            "demo",
            "--web-port",
            "0",
            "--rate",
            "40",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        lines: list[str] = []
        assert proc.stdout is not None
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
        reader.start()
        addresses: dict[str, str] = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "partners" not in addresses and proc.poll() is None:
            for line in list(lines):
                name, _, value = line.partition(": ")
                if name in ("broker", "registry", "web", "dashboard", "metrics", "partners"):
                    addresses[name] = value.strip()
            time.sleep(0.2)
        assert {"broker", "registry", "web", "dashboard", "partners"} <= addresses.keys(), "".join(lines)
        web = addresses["web"]
        link_base, _, fragment = addresses["dashboard"].partition("#token=")
        assert link_base == f"{web}/login" and fragment, addresses["dashboard"]
        analyst = {"Authorization": f"Bearer {fragment}"}
        assert httpx.get(f"{web}/api/health", timeout=5).status_code == 401
        assert httpx.get(f"{web}/api/health", headers=analyst, timeout=5).json()["tier"] == "individual"
        ops = bearer(Settings(data_dir=tmp_path / "var"), roles=["ops"])  # `sharebus auth token --role ops`
        produced = 0.0
        while time.monotonic() < deadline and produced == 0:
            body = httpx.get(f"{web}/metrics", headers=ops, timeout=5).text
            produced = sum(
                float(line.rsplit(" ", 1)[1])
                for line in body.splitlines()
                if line.startswith("sharingbus_events_produced_total{")
            )
            time.sleep(0.5)
        assert produced > 0, "the demo's simulated partners should reach a recipient"
        assert httpx.get(f"{web}/ready", headers=ops, timeout=5).status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0, "".join(lines)
        reader.join(5)
        assert lines[-1].strip() == "demo: stopped"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert (tmp_path / "var" / "demo" / "truth.jsonl").stat().st_size > 0
