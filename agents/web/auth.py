"""Who is asking, for every request of the worker's web server except `/health`.

A request carries a bearer token (`Authorization: Bearer ...`) or the dashboard's session cookie,
which holds the same kind of token: the login page takes the token from a link's fragment
(`/login#token=...`: never sent to a server, never in a log or a Referer), posts it once in an
Authorization header, and gets it back as an HttpOnly, SameSite=Strict cookie that expires with
the token. Every token is verified on every request (`streams.identity.TokenVerifier`), so any
worker answers any request and a removed recipient is refused at once.

- No credentials: 401; a refused token: 401 with one line saying why.
- The Host header must be in `SHARINGBUS_ALLOWED_HOSTS` (a DNS-rebinding page cannot read it).
- `/metrics` and `/ready` need the `ops` role; everything else a recipient and a tier from claims.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import jwt
from aiohttp import web

from streams.identity import AuthError, Principal, TokenVerifier
from streams.settings import Settings

__all__ = ["GUARD", "OPS_ROLE", "PRINCIPAL", "SESSION_COOKIE", "TOKEN", "Guard", "install", "principal_of"]

GUARD: web.AppKey[Guard] = web.AppKey("sharingbus_guard")
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("sharingbus_principal", Principal)
# the verified token, for forwarding a request to the worker owning the data
TOKEN: web.RequestKey[str] = web.RequestKey("sharingbus_token", str)
SESSION_COOKIE = "sharingbus_session"
OPS_ROLE = "ops"
OPS_PATHS = frozenset({"/metrics", "/ready"})
OPEN_PATHS = frozenset({"/health"})
LOGIN_PATHS = frozenset({"/login", "/login.js", "/logout"})
STATIC = Path(__file__).resolve().parent / "static"
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str, *, challenge: str | None = None) -> web.Response:
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    if challenge is not None:
        headers["WWW-Authenticate"] = challenge
    return web.Response(
        text=json.dumps({"error": message}), status=status, content_type="application/json", headers=headers
    )


def _unauthorised(message: str, *, refused: bool) -> web.Response:
    challenge = 'Bearer realm="sharingbus"'
    if refused:  # RFC 6750: say why, in one line
        challenge += f', error="invalid_token", error_description="{message.replace(chr(34), chr(39))}"'
    return _error(401, message, challenge=challenge)


def host_name(host: str) -> str:
    """`example.org:6066` -> `example.org`, `[::1]:6066` -> `[::1]` (lower case)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Guard:
    """The checks every request passes; one per web server."""

    def __init__(
        self,
        verifier: TokenVerifier,
        allowed_hosts: Iterable[str],
        person_readers: Callable[[], frozenset[str]] = frozenset,
    ) -> None:
        self.verifier = verifier
        self.allowed_hosts = frozenset(host_name(h) for h in allowed_hosts if h.strip())
        self._person_readers = person_readers

    @classmethod
    def from_settings(
        cls, settings: Settings, person_readers: Callable[[], frozenset[str]] = frozenset
    ) -> Guard:
        hosts = settings.allowed_hosts.split(",")
        return cls(TokenVerifier.from_settings(settings), hosts, person_readers)

    def host_allowed(self, host: str | None) -> bool:
        return host is not None and host_name(host) in self.allowed_hosts

    def may_see_persons(self, principal: Principal) -> bool:
        """Person-level answers only to an individual-tier recipient an agreement grants `person_profile`."""
        return principal.reaches("individual") and principal.recipient in self._person_readers()

    async def verify(self, token: str) -> Principal:
        if self.verifier.remote:  # a JWKS fetch must not stall the event loop
            return await asyncio.to_thread(self.verifier.verify, token)
        return self.verifier.verify(token)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        if not self.host_allowed(request.headers.get("Host")):
            return _error(400, f"host not allowed: {request.headers.get('Host', '')[:64]!r}")
        if request.path in LOGIN_PATHS:
            return await handler(request)
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return _unauthorised("Authorization must be: Bearer <token>", refused=True)
        else:
            token = request.cookies.get(SESSION_COOKIE, "")
            if not token:
                return _unauthorised("no credentials: send Authorization: Bearer <token>", refused=False)
        try:
            principal = await self.verify(token)
        except AuthError as exc:
            response = _unauthorised(str(exc), refused=True)
            if header is None:
                response.del_cookie(SESSION_COOKIE, path="/")
            return response
        if request.path in OPS_PATHS:
            if not principal.has_role(OPS_ROLE):
                return _error(403, f"needs role {OPS_ROLE}")
        elif principal.recipient is None or principal.tier is None:
            return _error(403, "the token names no recipient and tier")
        request[PRINCIPAL] = principal
        request[TOKEN] = token.strip()
        return await handler(request)


def principal_of(request: web.Request) -> Principal:
    """The verified caller (the guard ran before any handler that asks)."""
    return request[PRINCIPAL]


async def _login_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "login.html", headers=_PAGE_HEADERS)


async def _login_script(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "login.js", headers={**_PAGE_HEADERS, "Content-Type": "text/javascript"})


async def _login(request: web.Request) -> web.Response:
    """Exchange a bearer token (header only: a cross-site form cannot set one) for the session cookie."""
    guard = request.app[GUARD]
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _unauthorised("no credentials: send Authorization: Bearer <token>", refused=False)
    try:
        principal = await guard.verify(token)
    except AuthError as exc:
        return _unauthorised(str(exc), refused=True)
    if principal.recipient is None or principal.tier is None:
        return _error(403, "the token names no recipient and tier")
    expires = int(jwt.decode(token.strip(), options={"verify_signature": False})["exp"])
    response = web.Response(status=204, headers={"Cache-Control": "no-store"})
    response.set_cookie(
        SESSION_COOKIE,
        token.strip(),
        max_age=max(0, expires - int(time.time())),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https",
    )
    return response


async def _logout(request: web.Request) -> web.Response:
    response = web.Response(status=204, headers={"Cache-Control": "no-store"})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


def install(app: web.Application, guard: Guard) -> None:
    """Put `guard` in front of every route of `app` (before it starts) and add the login routes."""
    app[GUARD] = guard
    app.middlewares.append(guard.middleware)
    app.add_routes(
        [
            web.get("/login", _login_page),
            web.get("/login.js", _login_script),
            web.post("/login", _login),
            web.post("/logout", _logout),
        ]
    )
