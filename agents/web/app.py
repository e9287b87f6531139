"""aiohttp routes for the views API and the dashboard page.

Standalone: `web.run_app(make_app(reader))`. In the worker, mount the same routes on Faust's aiohttp
server before it starts: `faust_app.web.web_app.add_routes(routes(reader))`.

API (JSON; every request is authenticated by `agents.web.auth`: the tier and recipient come from
the caller's verified token, see `agents.web.handlers`):
  GET /api/factors                 factor catalogue                         every tier
  GET /api/trends                  published weekly totals per factor      every tier
  GET /api/health                  pipeline health (exact counts: individual) every tier
  GET /api/areas?week=2026-W11     published area x factor table            area, individual
  GET /api/cohort?n=20             highest-scored person tokens             individual + person view
  GET /api/persons/{token}         one pseudonymous profile                 individual + person view
  GET /dashboard                   the live dashboard (static, served locally, no CDN)
  GET /login#token=...             dashboard sign-in: the token becomes an HttpOnly session cookie
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from agents.web import handlers
from agents.web.auth import GUARD, Guard, install, principal_of
from agents.web.handlers import Caller, Reply
from agents.web.reader import ViewsReader

__all__ = ["make_app", "routes"]

STATIC = Path(__file__).resolve().parent / "static"
_FILES = {
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
}
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
Handler = Callable[[web.Request], Reply]


def _json(reply: Reply) -> web.Response:
    return web.Response(
        text=json.dumps(reply.body, separators=(",", ":"), default=str),
        status=reply.status,
        content_type="application/json",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


def _api(fn: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def view(request: web.Request) -> web.StreamResponse:
        try:
            return _json(fn(request))
        except Exception:  # never leak internals; the worker's logs have the traceback
            request.app.logger.exception("views API error on %s", request.path)
            return _json(Reply(500, {"error": "internal error"}))

    return view


def routes(reader: ViewsReader) -> list[web.RouteDef]:
    """Every route of the views API and the dashboard, bound to `reader`."""

    def caller(request: web.Request) -> Caller:
        principal = principal_of(request)
        return Caller(principal, request.app[GUARD].may_see_persons(principal))

    async def dashboard(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "dashboard.html", headers=_PAGE_HEADERS)

    async def static(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in _FILES:
            raise web.HTTPNotFound()
        return web.FileResponse(STATIC / name, headers={**_PAGE_HEADERS, "Content-Type": _FILES[name]})

    return [
        web.get("/api/factors", _api(lambda r: handlers.factors(reader, caller(r)))),
        web.get("/api/trends", _api(lambda r: handlers.trends(reader, caller(r)))),
        web.get("/api/health", _api(lambda r: handlers.health(reader, caller(r)))),
        web.get("/api/areas", _api(lambda r: handlers.areas(reader, r.query.get("week"), caller(r)))),
        web.get("/api/cohort", _api(lambda r: handlers.cohort(reader, caller(r), r.query.get("n")))),
        web.get(
            "/api/persons/{token}", _api(lambda r: handlers.person(reader, r.match_info["token"], caller(r)))
        ),
        web.get("/dashboard", dashboard),
        web.get("/dashboard/static/{name}", static),
    ]


def make_app(reader: ViewsReader, guard: Guard) -> web.Application:
    """A standalone aiohttp application serving the views behind `guard` (tests, demos)."""
    app = web.Application()
    install(app, guard)
    app.add_routes(routes(reader))

    async def root(request: web.Request) -> web.Response:
        raise web.HTTPFound("/dashboard")

    app.router.add_get("/", root)
    return app
