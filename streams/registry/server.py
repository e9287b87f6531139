"""The HTTP face of the registry: Confluent's REST paths, content type and error bodies on aiohttp.

Handlers only translate HTTP to `RegistryService` calls; those may block on a Kafka write, so
they run in a worker thread and never stall the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from streams.registry import errors
from streams.registry.service import RegistryService

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
SERVICE_KEY: web.AppKey[RegistryService] = web.AppKey("registry_service", RegistryService)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(service: RegistryService) -> web.Application:
    """The aiohttp application serving `service` under Confluent's paths."""
    app = web.Application(middlewares=[_error_bodies])
    app[SERVICE_KEY] = service
    app.add_routes(
        [
            web.get("/", _root),
            web.get("/schemas/types", _schema_types),
            web.get("/schemas/ids/{id}", _schema_by_id),
            web.get("/schemas/ids/{id}/schema", _schema_text_by_id),
            web.get("/schemas/ids/{id}/subjects", _schema_subjects),
            web.get("/schemas/ids/{id}/versions", _schema_versions),
            web.get("/subjects", _subjects),
            web.post("/subjects/{subject}", _lookup),
            web.delete("/subjects/{subject}", _delete_subject),
            web.get("/subjects/{subject}/versions", _versions),
            web.post("/subjects/{subject}/versions", _register),
            web.get("/subjects/{subject}/versions/{version}", _get_version),
            web.get("/subjects/{subject}/versions/{version}/schema", _get_version_text),
            web.delete("/subjects/{subject}/versions/{version}", _delete_version),
            web.post("/compatibility/subjects/{subject}/versions", _compatibility),
            web.post("/compatibility/subjects/{subject}/versions/{version}", _compatibility),
            web.get("/config", _get_config),
            web.put("/config", _set_config),
            web.delete("/config", _delete_config),
            web.get("/config/{subject}", _get_config),
            web.put("/config/{subject}", _set_config),
            web.delete("/config/{subject}", _delete_config),
        ]
    )
    return app


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type=CONTENT_TYPE)


def _raw(text: str) -> web.Response:
    return web.Response(text=text, content_type=CONTENT_TYPE)


@web.middleware
async def _error_bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure answers Confluent's `{"error_code": N, "message": "..."}`."""
    try:
        return await handler(request)
    except errors.RegistryError as exc:
        return _json({"error_code": exc.error_code, "message": exc.message}, exc.http_status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _json({"error_code": exc.status, "message": f"HTTP {exc.status} {exc.reason}"}, exc.status)
    except Exception:
        log.exception("registry request %s %s failed", request.method, request.path)
        return _json({"error_code": 50001, "message": "Internal Server Error"}, 500)


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


def _svc(request: web.Request) -> RegistryService:
    return request.app[SERVICE_KEY]


def _flag(request: web.Request, *names: str) -> bool:
    """A boolean query parameter; clients send true/True/1 (several spellings for one flag)."""
    return any(request.query.get(n, "").strip().lower() in ("true", "1", "yes") for n in names)


def _schema_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    try:
        return int(raw)
    except ValueError:
        raise errors.schema_not_found(raw) from None


async def _body(request: web.Request) -> Any:
    text = await request.text()
    if not text.strip():
        raise errors.bad_request("the request has no body")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise errors.bad_request(f"the request body is not valid JSON: {exc}") from exc


async def _root(request: web.Request) -> web.Response:
    return _json({})


async def _schema_types(request: web.Request) -> web.Response:
    return _json(["AVRO"])


async def _schema_by_id(request: web.Request) -> web.Response:
    return _json(await _call(_svc(request).get_schema, _schema_id(request)))


async def _schema_text_by_id(request: web.Request) -> web.Response:
    return _raw(await _call(_svc(request).get_schema_text, _schema_id(request)))


async def _schema_subjects(request: web.Request) -> web.Response:
    svc = _svc(request)
    return _json(await _call(svc.schema_subjects, _schema_id(request), _flag(request, "deleted")))


async def _schema_versions(request: web.Request) -> web.Response:
    svc = _svc(request)
    return _json(await _call(svc.schema_versions, _schema_id(request), _flag(request, "deleted")))


async def _subjects(request: web.Request) -> web.Response:
    prefix = request.query.get("subjectPrefix", "")
    deleted, only = _flag(request, "deleted"), _flag(request, "deletedOnly", "deleted_only")
    return _json(await _call(_svc(request).subjects, prefix, deleted, only))


async def _lookup(request: web.Request) -> web.Response:
    subject, body = request.match_info["subject"], await _body(request)
    return _json(await _call(_svc(request).lookup, subject, body, _flag(request, "deleted")))


async def _delete_subject(request: web.Request) -> web.Response:
    subject, permanent = request.match_info["subject"], _flag(request, "permanent")
    return _json(await _call(_svc(request).delete_subject, subject, permanent))


async def _versions(request: web.Request) -> web.Response:
    subject = request.match_info["subject"]
    deleted, only = _flag(request, "deleted"), _flag(request, "deletedOnly", "deleted_only")
    return _json(await _call(_svc(request).versions, subject, deleted, only))


async def _register(request: web.Request) -> web.Response:
    subject, body = request.match_info["subject"], await _body(request)
    return _json(await _call(_svc(request).register, subject, body))


async def _get_version(request: web.Request) -> web.Response:
    subject, version = request.match_info["subject"], request.match_info["version"]
    return _json(await _call(_svc(request).get_version, subject, version, _flag(request, "deleted")))


async def _get_version_text(request: web.Request) -> web.Response:
    subject, version = request.match_info["subject"], request.match_info["version"]
    found = await _call(_svc(request).get_version, subject, version, _flag(request, "deleted"))
    return _raw(found["schema"])


async def _delete_version(request: web.Request) -> web.Response:
    subject, version = request.match_info["subject"], request.match_info["version"]
    permanent = _flag(request, "permanent")
    return _json(await _call(_svc(request).delete_version, subject, version, permanent))


async def _compatibility(request: web.Request) -> web.Response:
    subject, version = request.match_info["subject"], request.match_info.get("version")
    body = await _body(request)
    svc = _svc(request)
    return _json(await _call(svc.test_compatibility, subject, version, body, _flag(request, "verbose")))


async def _get_config(request: web.Request) -> web.Response:
    subject = request.match_info.get("subject")
    default_to_global = _flag(request, "defaultToGlobal")
    return _json(await _call(_svc(request).get_config, subject, default_to_global))


async def _set_config(request: web.Request) -> web.Response:
    subject, body = request.match_info.get("subject"), await _body(request)
    return _json(await _call(_svc(request).set_config, subject, body))


async def _delete_config(request: web.Request) -> web.Response:
    return _json(await _call(_svc(request).delete_config, request.match_info.get("subject")))
