"""The views app standalone (`agents.web.make_app`) behind a real guard, served from a thread.

The guard verifies tokens of an embedded issuer made in a temporary data dir, exactly as a worker
does by default; `person_readers` stands for the agreements' person-view grants.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from aiohttp import web

from agents.web import Guard, ViewsReader, make_app
from streams.identity import LocalIssuer, TokenVerifier
from streams.settings import Settings

PERSON_VIEW_RECIPIENT = "vru_analysts"


class ServerThread:
    """An aiohttp app served from its own event loop in a daemon thread."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner = web.AppRunner(app, access_log=None)
        self.url = ""
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())

    def __enter__(self) -> ServerThread:
        self._thread.start()
        assert self._ready.wait(10), "views app did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def guarded_app(
    data_dir: Path, reader: ViewsReader, person_readers: frozenset[str] = frozenset({PERSON_VIEW_RECIPIENT})
) -> tuple[web.Application, LocalIssuer]:
    """`make_app(reader, guard)` with the default settings' guard, and the issuer it trusts."""
    settings = Settings(data_dir=data_dir)
    issuer = LocalIssuer.from_settings(settings)
    guard = Guard(
        TokenVerifier.from_settings(settings),
        settings.allowed_hosts.split(","),
        person_readers=lambda: person_readers,
    )
    return make_app(reader, guard), issuer
