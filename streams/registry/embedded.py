"""`EmbeddedRegistry`: the registry on its own asyncio loop in a background thread.

A thread of its own lets the same object serve inside pytest, inside `sharebus registry` and inside
`sharebus demo`, whatever the caller's own loop (or lack of one) is doing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from streams import topics
from streams.registry.copy import RecordCopy
from streams.registry.errors import RegistryStartError
from streams.registry.server import build_app
from streams.registry.service import RegistryService
from streams.registry.store import SchemaStore


class EmbeddedRegistry:
    """`with EmbeddedRegistry(bootstrap) as reg: reg.url` — a Confluent-compatible registry.

    `kafka_config` (e.g. `Settings.kafka_config()`) replaces the plain bootstrap when the broker
    needs security settings. `topic` is where schemas persist (Confluent's `kafkastore.topic`);
    give each registry its own, as one topic has one writer. `copy_path` keeps a copy of the
    topic's records outside the broker (`streams.registry.copy`): an empty topic is re-seeded
    from it with the same ids, so the registry survives a broker that kept nothing.
    """

    def __init__(
        self,
        bootstrap: str,
        port: int = 0,
        host: str = "127.0.0.1",
        kafka_config: dict[str, Any] | None = None,
        topic: str = topics.SCHEMAS,
        copy_path: Path | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.copy_path = copy_path
        self.host = host
        self.port = port
        self.topic = topic
        self.kafka_config = dict(kafka_config) if kafka_config else {"bootstrap.servers": bootstrap}
        self._store: SchemaStore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> EmbeddedRegistry:
        """Replay the schemas topic, serve HTTP, and return once the server answers."""
        if self._thread is not None:
            return self
        copy = RecordCopy(self.copy_path) if self.copy_path is not None else None
        store = SchemaStore(self.kafka_config, self.topic, timeout=timeout, copy=copy).open()
        app = build_app(RegistryService(store))
        loop = asyncio.new_event_loop()
        bound: concurrent.futures.Future[int] = concurrent.futures.Future()
        thread = threading.Thread(
            target=self._serve, args=(loop, app, bound), name="sharingbus-registry", daemon=True
        )
        self._store, self._loop, self._thread = store, loop, thread
        thread.start()
        try:
            self.port = bound.result(timeout)
            self._wait_until_answering(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _serve(
        self, loop: asyncio.AbstractEventLoop, app: web.Application, bound: concurrent.futures.Future[int]
    ) -> None:
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
        try:
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, self.host, self.port).start())
            bound.set_result(int(runner.addresses[0][1]))
        except OSError as exc:
            bound.set_exception(
                RegistryStartError(f"registry could not listen on {self.host}:{self.port}: {exc}")
            )
        else:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def _wait_until_answering(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
        while time.monotonic() < deadline:
            try:
                with opener.open(self.url + "/", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError) as exc:
                last = exc
            time.sleep(0.05)
        raise RegistryStartError(f"registry at {self.url} did not answer within {timeout}s: {last}")

    def stop(self) -> None:
        """Stop serving (in-flight requests get a few seconds) and release the producer."""
        loop, thread, store = self._loop, self._thread, self._store
        self._loop = self._thread = self._store = None
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(15)
        if store is not None:
            store.close()

    def __enter__(self) -> EmbeddedRegistry:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
