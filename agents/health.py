"""`/health`, `/ready` and `/metrics` on the worker's web server.

Faust answers `/` before table recovery ends, so readiness is ours: partitions assigned (to Faust's
consumer or to a batched one), no rebalance in progress, table recovery complete and the schema
registry reachable. A worker whose roles need no Faust subscription runs Faust without a consumer
(`agents.app.create_app(consume=False)`): then only the batched consumers' assignments count.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import faust
from faust.web import Request, Response, View
from prometheus_client import start_http_server

from streams import metrics
from streams.settings import Settings


class _Probe:
    """A blocking reachability probe, run off the event loop and cached for `ttl` seconds."""

    def __init__(self, probe: Callable[[], bool], ttl: float) -> None:
        self._probe = probe
        self._ttl = ttl
        self._ok = False
        self._checked_at = 0.0

    async def ok(self) -> bool:
        if time.monotonic() - self._checked_at > self._ttl:
            loop = asyncio.get_running_loop()
            try:
                self._ok = await loop.run_in_executor(None, self._probe)
            except Exception:
                self._ok = False
            self._checked_at = time.monotonic()
        return self._ok


class Readiness:
    """Readiness checks; the registry and broker probes are blocking calls, run off the loop."""

    def __init__(
        self,
        app: faust.App,
        registry_reachable: Callable[[], bool],
        ttl: float = 5.0,
        extra: dict[str, Callable[[], bool]] | None = None,
        broker_reachable: Callable[[], bool] | None = None,
        batched_assigned: Callable[[], int] | None = None,
        faust_consumer: bool = True,
    ) -> None:
        self.app = app
        self._extra = extra or {}
        self._batched_assigned = batched_assigned
        self._faust_consumer = faust_consumer
        self._registry = _Probe(registry_reachable, ttl)
        self._broker = _Probe(broker_reachable, ttl) if broker_reachable is not None else None

    async def registry_ok(self) -> bool:
        return await self._registry.ok()

    async def state(self) -> dict[str, Any]:
        app = self.app
        assigned = self._batched_assigned() if self._batched_assigned is not None else 0
        recovered = True
        if self._faust_consumer:
            assigned += len(app.consumer.assignment()) if app.consumer is not None else 0
            recovery = app.tables.recovery  # type: ignore[attr-defined]  # not on the ABC
            recovered = recovery.completed.is_set() and not recovery.in_recovery
        checks = {
            "partitions_assigned": assigned > 0,
            "not_rebalancing": not app.rebalancing,
            "recovery_complete": recovered,
            "registry_reachable": await self.registry_ok(),
        }
        if self._broker is not None:
            checks["broker_reachable"] = await self._broker.ok()
        checks.update({name: check() for name, check in self._extra.items()})
        ready = all(checks.values())
        metrics.READY.set(1 if ready else 0)
        return {"ready": ready, "checks": checks, "assigned_partitions": assigned}


def register(app: faust.App, readiness: Readiness) -> None:
    @app.page("/health")
    async def health(web: View, request: Request) -> Response:
        return web.json({"status": "ok"})

    @app.page("/ready")
    async def ready(web: View, request: Request) -> Response:
        state = await readiness.state()
        return web.json(state, status=200 if state["ready"] else 503)

    @app.page("/metrics")
    async def metrics_page(web: View, request: Request) -> Response:
        body, content_type = metrics.render_latest(request.headers.get("Accept"))
        return web.bytes(body, content_type=content_type.split(";")[0])


def serve_metrics_port(settings: Settings) -> None:
    """/metrics alone on `settings.metrics_port` (bound to the web host), without a token.

    For a scraper on a private network (compose, a pod's metrics port), so it needs no credential;
    everything else, /metrics on the web port included, stays behind the web server's guard.
    """
    if settings.metrics_port is not None:
        start_http_server(settings.metrics_port, settings.web_host, registry=metrics.collector_registry())
