"""`/api/cohort` across every worker: each ranks its own partitions, the worker asked merges them.

Profiles are partitioned by person token, so one worker's table holds only part of the people: a
ranking of its own partitions alone is not the top N. The worker asked ranks
locally, asks every other worker holding profile partitions for its local top N (marked as routed,
so they answer locally), and keeps the N highest of the union, ordered as the local ranking is
(score descending, then token). The top N of a union is the top N of the per-part top Ns.

It answers 503 rather than a partial ranking when the workers' partitions do not cover every
partition (a rebalance in progress) or a worker does not answer: a cohort with people missing
would look complete.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import faust
from aiohttp import web
from faust.types import TP

from agents.web.auth import TOKEN

__all__ = ["cohort_across_workers", "merge_cohorts"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def merge_cohorts(parts: list[list[dict[str, Any]]], n: int) -> list[dict[str, Any]]:
    """The n highest-scored entries of all parts (a token appears in one part only)."""
    entries = [e for part in parts for e in part]
    return sorted(entries, key=lambda e: (-float(e["score"]), str(e["person_token"])))[:n]


def _size(request: web.Request) -> int:
    return min(max(int(request.query.get("n") or 20), 1), 100)


def _reply(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(body, separators=(",", ":"), default=str),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


def _peers(app: faust.App, table: Any, partitions: int) -> list[str] | None:
    """URLs of the other workers holding profile partitions; None unless all partitions are held."""
    topic = table.changelog_topic.get_topic_name()
    held = {p for p in range(partitions) if app.assignor.is_active(TP(topic, p))}
    me = str(app.conf.canonical_url).rstrip("/")
    peers = []
    for host, tps in app.router.table_metadata(table.name).items():
        url = str(host).rstrip("/")
        if url != me and tps.get(topic):
            peers.append(url)
            held |= set(tps[topic])
    return peers if held >= set(range(partitions)) else None


def cohort_across_workers(
    app: faust.App, local: Handler, profiles: Any, partitions: int, routed_header: str
) -> Handler:
    async def view(request: web.Request) -> web.StreamResponse:
        mine = await local(request)
        if request.headers.get(routed_header) or mine.status != 200 or not isinstance(mine, web.Response):
            return mine
        body = json.loads(mine.body if isinstance(mine.body, bytes) else b"{}")
        peers = _peers(app, profiles, partitions)
        if peers is None:
            return _reply({"error": "the workers are rebalancing; ask again shortly"}, 503)
        # the caller's verified token (header or session cookie), checked again by each peer
        headers = {routed_header: "1", "Authorization": f"Bearer {request[TOKEN]}", "Host": request.host}

        async def ask(url: str) -> list[dict[str, Any]]:
            timeout = aiohttp.ClientTimeout(total=5)
            async with app.http_client.get(url + request.path_qs, headers=headers, timeout=timeout) as resp:
                if resp.status != 200:
                    raise aiohttp.ClientError(f"{url} answered {resp.status}")
                cohort: list[dict[str, Any]] = (await resp.json())["cohort"]
                return cohort

        try:
            parts = await asyncio.gather(*(ask(url) for url in peers))
        except (aiohttp.ClientError, TimeoutError, KeyError, ValueError):
            return _reply({"error": "a worker holding part of the cohort is unavailable"}, 503)
        body["cohort"] = merge_cohorts([body["cohort"], *parts], _size(request))
        body["workers"] = 1 + len(peers)
        return _reply(body)

    return view
