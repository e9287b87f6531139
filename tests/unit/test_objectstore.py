"""The embedded broker's S3 store honours the preconditions Tansu's watermarks depend on."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streams.kafka.objectstore import Store, etag, make_app

Scenario = Callable[[TestClient], Awaitable[None]]


def _run(root: Path, scenario: Scenario) -> None:
    async def main() -> None:
        async with TestClient(TestServer(make_app(root))) as client:
            await scenario(client)

    asyncio.run(main())


def test_create_only_put_refuses_an_existing_object_and_keeps_it(tmp_path: Path) -> None:
    async def scenario(client: TestClient) -> None:
        first = await client.put("/b/w/watermark.json", data=b'{"high":25}', headers={"If-None-Match": "*"})
        assert first.status == 200
        again = await client.put("/b/w/watermark.json", data=b'{"high":3}', headers={"If-None-Match": "*"})
        assert again.status == 412
        assert await (await client.get("/b/w/watermark.json")).read() == b'{"high":25}'

    _run(tmp_path, scenario)


def test_update_needs_the_current_etag(tmp_path: Path) -> None:
    async def scenario(client: TestClient) -> None:
        put = await client.put("/b/k", data=b"v1")
        stale = put.headers["ETag"]
        assert stale == etag(b"v1")
        assert (await client.put("/b/k", data=b"v2", headers={"If-Match": stale})).status == 200
        assert (await client.put("/b/k", data=b"v3", headers={"If-Match": stale})).status == 412
        assert (await client.put("/b/missing", data=b"x", headers={"If-Match": stale})).status == 412
        got = await client.get("/b/k")
        assert await got.read() == b"v2"
        assert (await client.get("/b/k", headers={"If-None-Match": got.headers["ETag"]})).status == 304

    _run(tmp_path, scenario)


def test_listing_pages_by_prefix_and_sees_writes_and_deletes_at_once(tmp_path: Path) -> None:
    async def scenario(client: TestClient) -> None:
        for offset in range(5):
            await client.put(f"/b/p/records/{offset:020}.batch", data=b"x" * offset)
        await client.put("/b/other/records/x.batch", data=b"y")

        async def keys(**query: str) -> str:
            return await (await client.get("/b", params={"list-type": "2", **query})).text()

        body = await keys(prefix="p/records/", **{"max-keys": "3"})
        assert body.count("<Key>") == 3 and "<IsTruncated>true</IsTruncated>" in body
        rest = await keys(prefix="p/records/", **{"continuation-token": f"p/records/{2:020}.batch"})
        assert rest.count("<Key>") == 2 and "other" not in rest
        await client.post(
            "/b?delete", data=f"<Delete><Object><Key>p/records/{0:020}.batch</Key></Object></Delete>"
        )
        await client.put(f"/b/p/records/{5:020}.batch", data=b"z")
        after = await keys(prefix="p/records/")
        assert f"{0:020}.batch" not in after and f"{5:020}.batch" in after and after.count("<Key>") == 5

    _run(tmp_path, scenario)


def test_keys_cannot_escape_the_directory(tmp_path: Path) -> None:
    store = Store(tmp_path / "root")
    for key in ("a/../../../escaped", "..", "a/./b", ""):
        with pytest.raises(web.HTTPBadRequest):
            store.path("b", key)
    assert store.path("b", "a/b/c").is_relative_to(tmp_path / "root" / "b")
