"""`sharebus worker`: one Faust worker with every agent; `/metrics /health /ready /api` on its web port."""

from __future__ import annotations

import threading
import time

import httpx
import typer

from streams.cli.common import announce
from streams.settings import get_settings


def _announce_when_up(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                announce("web", url)
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)


def worker(web_port: int = typer.Option(None, help="Web port (default: SHARINGBUS_WEB_PORT)")) -> None:
    """Run one worker until SIGTERM/SIGINT."""
    from agents.worker import run
    from streams.logs import configure_logging

    settings = get_settings()
    if web_port is not None:
        settings = settings.model_copy(update={"web_port": web_port})
    configure_logging(settings)
    url = f"http://{settings.web_host}:{settings.web_port}"
    threading.Thread(target=_announce_when_up, args=(url,), daemon=True).start()
    run(settings)


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
