"""`sharebus worker`: one Faust worker running the agents of its roles; `/metrics /health /ready /api`."""

from __future__ import annotations

import threading
import time

import httpx
import typer

from sharebus.common import announce, require_broker
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


def worker(
    web_port: int = typer.Option(None, help="Web port (default: SHARINGBUS_WEB_PORT)"),
    roles: str = typer.Option(
        None, help="Comma-separated subset of enforcer,audit,linker,views (default: SHARINGBUS_ROLES, all)"
    ),
) -> None:
    """Run one worker until SIGTERM/SIGINT."""
    from agents.worker import run
    from streams.logs import configure_logging
    from streams.settings import Settings

    settings = get_settings()
    if web_port is not None:
        settings = settings.model_copy(update={"web_port": web_port})
    if roles is not None:
        try:
            settings = Settings.model_validate({**settings.model_dump(), "roles": roles})
        except ValueError as exc:
            raise typer.BadParameter(str(exc).splitlines()[-1], param_hint="--roles") from exc
    require_broker(settings)
    configure_logging(settings)
    url = f"http://{settings.web_host}:{settings.web_port}"
    threading.Thread(target=_announce_when_up, args=(url,), daemon=True).start()
    run(settings)


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
