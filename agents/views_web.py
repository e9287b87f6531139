"""The views over HTTP: the `agents.web` routes mounted on Faust's web server over `TableViewsReader`.

Requests for a person token or for the area tables that this worker does not own are proxied to the
worker that does (owner of the key's changelog partition in Faust's assignment; the partition of a
token is CRC32 % partitions, librdkafka's default partitioner, which produced it). `/api/cohort`
ranks every worker's partitions, merged by the worker asked (`agents.views_cohort`).
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable
from typing import Any, cast

import aiohttp
import faust
from aiohttp import web
from faust.types import TP

from agents.views_cohort import cohort_across_workers
from agents.views_reader import TableViewsReader
from agents.web import routes
from agents.web.auth import TOKEN
from streams.views.state import AREA_PARTITION

__all__ = ["ROUTED_HEADER", "SERVED_BY_HEADER", "mount_web", "token_partition"]

ROUTED_HEADER = "X-SharingBus-Routed"  # set on proxied requests: answer locally, never route again
SERVED_BY_HEADER = "X-SharingBus-Served-By"  # on proxied responses: the worker that answered
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def token_partition(token: str, partitions: int) -> int:
    """Partition of a person token: librdkafka's default partitioner (CRC32), as the linker produced it."""
    return zlib.crc32(token.encode()) % partitions


def _owner(app: faust.App, table: Any, partition: int) -> str | None:
    """URL of the worker actively holding `partition` of `table`; None for this worker or unknown."""
    topic = table.changelog_topic.get_topic_name()
    if app.assignor.is_active(TP(topic, partition)):
        return None
    me = str(app.conf.canonical_url).rstrip("/")
    for host, tps in app.router.table_metadata(table.name).items():
        if partition in tps.get(topic, ()):
            return None if str(host).rstrip("/") == me else str(host)
    return None


def _routed(app: faust.App, handler: Handler, owner: Callable[[web.Request], str | None]) -> Handler:
    async def view(request: web.Request) -> web.StreamResponse:
        target = None if request.headers.get(ROUTED_HEADER) else owner(request)
        if target is None:
            return await handler(request)
        # The owner verifies the caller's token itself; Host is the one the caller's request passed.
        headers = {ROUTED_HEADER: "1", "Authorization": f"Bearer {request[TOKEN]}", "Host": request.host}
        try:
            async with app.http_client.get(
                target.rstrip("/") + request.path_qs, headers=headers, timeout=aiohttp.ClientTimeout(total=5)
            ) as resp:
                body = await resp.read()
                return web.Response(
                    body=body,
                    status=resp.status,
                    content_type=resp.content_type,
                    headers={
                        "Cache-Control": "no-store",
                        "X-Content-Type-Options": "nosniff",
                        SERVED_BY_HEADER: target,
                    },
                )
        except (aiohttp.ClientError, TimeoutError):
            return web.json_response({"error": "the worker holding this view is unavailable"}, status=503)

    return view


def mount_web(app: faust.App, reader: TableViewsReader, profiles: Any, areas: Any, partitions: int) -> None:
    """Mount `agents.web` on Faust's aiohttp app (before it starts), routing keyed views to their owner."""

    def person_owner(request: web.Request) -> str | None:
        return _owner(app, profiles, token_partition(request.match_info.get("token", ""), partitions))

    def area_owner(request: web.Request) -> str | None:
        return _owner(app, areas, AREA_PARTITION)

    owners = {"/api/persons/{token}": person_owner, "/api/areas": area_owner, "/api/trends": area_owner}
    mounted = []
    for route in routes(reader):
        owner = owners.get(route.path)
        if route.path == "/api/cohort":  # every worker's partitions, merged by the worker asked
            merged = cohort_across_workers(
                app, cast(Handler, route.handler), profiles, partitions, ROUTED_HEADER
            )
            route = web.RouteDef(route.method, route.path, merged, route.kwargs)
        elif owner is not None:
            handler = cast(Handler, route.handler)
            route = web.RouteDef(route.method, route.path, _routed(app, handler, owner), route.kwargs)
        mounted.append(route)
    cast(Any, app.web).web_app.add_routes(mounted)
