"""Views latency: publish -> person fact on `link.person` -> profile served by the API, and -> on
`views.person_profile`, through the workers docker-compose.yml deploys (enforcer; linker; audit and
views), each its own process.

Used by `benchmarks/throughput.py` (phase v). On a fresh broker, registry and database, events of
a population the worker has never seen are published at a steady rate, stamped with their publish
time. A consumer on `link.person` sees each person fact (the linker's output: event id, the
recipient's person token); the first fact of a token is a person the views have not met, so the API
answers 404 for it until the fact is applied and 200 after: a small pool polls
`/api/persons/<token>` (with a token for that recipient, as `sharebus auth token` would mint) for a
sample of such first facts and takes the first 200 as "served". A consumer on
`views.person_profile` times the first emission of each token (the views emit on a timer).

Only first facts are timed: a later fact of a known person changes counts the API shows, and
telling which fact a count includes would need the contribution keys the API does not show.
The polling is bounded (`CONCURRENT` tokens every `POLL_S`) so it loads the worker lightly.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Producer

from benchmarks._common import Child, Encoded, Stack, log, percentile, reframe, spawn, tail_consumer
from streams.identity import LocalIssuer
from streams.settings import Settings

CONCURRENT = 8  # tokens polled at once
POLL_S = 0.02  # between two requests for one token
GIVE_UP_S = 20.0  # a token not served after this long counts as this long (and is reported)


class Served:
    """Polls the API for first facts' tokens until each is served; times publish -> served."""

    def __init__(self, child: Child, issuer: LocalIssuer) -> None:
        assert child.url is not None
        self.url = child.url
        self.issuer = issuer
        self.headers: dict[str, dict[str, str]] = {}
        self.pool = ThreadPoolExecutor(CONCURRENT, thread_name_prefix="served")
        self.busy = threading.Semaphore(CONCURRENT)
        self.times: list[float] = []
        self.not_served = 0
        self.local = threading.local()

    def _headers(self, recipient: str) -> dict[str, str]:
        h = self.headers.get(recipient)
        if h is None:
            token = self.issuer.mint("benchmark", recipient=recipient, tier="individual", roles=["ops"])
            h = self.headers[recipient] = {"Authorization": f"Bearer {token}"}
        return h

    def offer(self, token: str, recipient: str, published: float) -> None:
        """Time this token if a poller is free (a sample, so the API is not flooded)."""
        if not self.busy.acquire(blocking=False):
            return
        headers = self._headers(recipient)
        self.pool.submit(self._poll, token, headers, published)

    def _poll(self, token: str, headers: dict[str, str], published: float) -> None:
        try:
            client = getattr(self.local, "client", None)
            if client is None:
                client = self.local.client = httpx.Client(timeout=5.0, trust_env=False)
            deadline = time.time() + GIVE_UP_S
            while time.time() < deadline:
                r = client.get(f"{self.url}/api/persons/{token}", headers=headers)
                if r.status_code == 200:
                    self.times.append(time.time() - published)
                    return
                if r.status_code != 404:
                    raise RuntimeError(f"/api/persons answered {r.status_code}: {r.text[:200]}")
                time.sleep(POLL_S)
            self.not_served += 1
            self.times.append(GIVE_UP_S)
        finally:
            self.busy.release()

    def close(self) -> None:
        self.pool.shutdown(wait=True)


# As docker-compose.yml deploys them: each worker its own process (and core), one role set each.
DEPLOYMENT = (("enforcer", "enforcer"), ("linker", "linker"), ("views", "audit,views"))


def views_latency(
    stack: Stack,
    prepare_topics: Any,
    events: Sequence[Encoded],
    rate: float,
    log_dir: Path,
) -> dict[str, Any]:
    """Publish `events` at `rate` into the deployed workers; p50/p99 of each views stage in ms."""
    with stack.bus("v") as bus:
        settings = bus.settings
        assert settings is not None
        prepare_topics(settings)
        framed = reframe(settings, events)
        view_keys_path = _derive_view_keys(settings)
        children: dict[str, Child] = {}
        try:
            for name, roles in DEPLOYMENT:
                update: dict[str, Any] = {
                    "consumer_group": "bench-views",
                    "data_dir": settings.data_dir / name,
                }
                if name == "linker":  # as compose: the derived person-view keys, no master key
                    update["view_keys_path"] = view_keys_path
                s = settings.model_copy(update=update)
                if name == "views":  # the API's issuer key lives in its worker's data directory
                    issuer = LocalIssuer.from_settings(s)
                argv = [sys.executable, "-m", "sharebus.main", "worker", "--roles", roles]
                children[name] = spawn(f"views-{name}", argv, s, log_dir, web=True)
            for child in children.values():
                child.wait_ready(timeout=180)
            return _measure(settings, issuer, children["views"], framed, rate, list(children.values()))
        finally:
            for child in children.values():
                child.stop()


def _derive_view_keys(settings: Settings) -> Path:
    """What `sharebus keys derive-views` writes for the deployed linker."""
    from streams.linkage.view_tokens import view_keys
    from streams.privacy.keys import KeyRing
    from streams.rights import linkage_key_id

    assert settings.keyring_path is not None
    ring = KeyRing.load(settings.keyring_path)
    path = settings.data_dir / "view-keys.json"
    view_keys(ring, settings.agreements_dir, linkage_key_id(settings, ring)).save(path)
    return path


def _measure(
    settings: Settings,
    issuer: LocalIssuer,
    child: Child,
    events: Sequence[Encoded],
    rate: float,
    workers: Sequence[Child],
) -> dict[str, Any]:
    link = tail_consumer(settings, ["link.person"], **{"fetch.wait.max.ms": 10})
    # Facts gate when the API is first polled, so they are followed closely; emissions need not be.
    emitted = tail_consumer(
        settings, ["views.person_profile"], **{"fetch.wait.max.ms": settings.fetch_max_wait_ms}
    )
    link.consume(100, 1.0)  # resolve positions before publishing
    emitted.consume(100, 1.0)
    published: dict[str, float] = {}
    first_fact: dict[str, float] = {}  # token -> publish time of its first fact
    to_link: list[float] = []
    to_emitted: list[float] = []
    served = Served(child, issuer)
    done = threading.Event()

    def follow_link() -> None:
        while not done.is_set():
            for m in link.consume(1000, 0.05):
                if m.error() is not None:
                    continue
                doc = json.loads(m.value())
                token, sent = doc.get("person_token"), published.get(str(doc.get("event_id")))
                if doc.get("kind") != "fact" or not token or sent is None:
                    continue
                to_link.append(time.time() - sent)
                if token not in first_fact:
                    first_fact[token] = sent
                    served.offer(token, str(doc.get("recipient")), sent)

    def follow_emitted() -> None:
        seen: set[bytes] = set()
        while not done.is_set():
            for m in emitted.consume(1000, 0.05):
                key = m.key() if m.error() is None else None
                if key is None or key in seen:
                    continue
                seen.add(key)
                sent = first_fact.get(key.decode())
                if sent is not None:
                    to_emitted.append(time.time() - sent)

    threads = [threading.Thread(target=f, daemon=True) for f in (follow_link, follow_emitted)]
    for t in threads:
        t.start()
    producer = Producer(settings.kafka_config(**{"linger.ms": settings.publish_linger_ms, "acks": "all"}))
    start = time.monotonic()
    for i, e in enumerate(events):
        ahead = start + i / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        now = time.time()
        published[e.event_id] = now
        producer.produce(e.topic, key=e.key, value=e.value, timestamp=int(now * 1000))
        producer.poll(0)
    producer.flush(30)
    achieved = len(events) / (time.monotonic() - start)
    time.sleep(5.0)  # the last facts through the linker and the views, and one emission
    done.set()
    for t in threads:
        t.join(5)
    served.close()
    link.close()
    emitted.close()
    for worker in workers:
        if not worker.alive():
            raise RuntimeError(f"{worker.name} died:\n{worker.log_tail()}")

    def stats(values: list[float]) -> dict[str, float]:
        values = sorted(values)
        return {
            "n": len(values),
            "p50": percentile(values, 50) * 1000,
            "p99": percentile(values, 99) * 1000,
            "max": (values[-1] * 1000) if values else float("nan"),
        }

    result = {
        "rate": achieved,
        "link": stats(to_link),
        "served": stats(served.times),
        "emitted": stats(to_emitted),
        "not_served": served.not_served,
    }
    log(
        f"views latency at {achieved:,.0f} ev/s: publish->link.person p50 {result['link']['p50']:.0f} "
        f"p99 {result['link']['p99']:.0f} ms; ->profile served p50 {result['served']['p50']:.0f} "
        f"p99 {result['served']['p99']:.0f} ms ({result['served']['n']} persons, {served.not_served} "
        f"never served); ->views.person_profile p50 {result['emitted']['p50']:.0f} "
        f"p99 {result['emitted']['p99']:.0f} ms"
    )
    return result


def describe(result: dict[str, Any]) -> list[str]:
    lines = [
        f"  views latency at {result['rate']:,.0f} events/s (a new person's first fact; enforcer, linker and"
        " audit+views workers as deployed):"
    ]
    for key, label in (
        ("link", "publish -> fact on link.person"),
        ("served", "publish -> profile served (API)"),
        ("emitted", "publish -> views.person_profile"),
    ):
        v = result[key]
        lines.append(
            f"    {label:<32} p50 {v['p50']:7.1f}  p99 {v['p99']:7.1f}  max {v['max']:7.1f} ms  ({v['n']})"
        )
    if result["not_served"]:
        lines.append(f"    {result['not_served']} sampled persons were not served within {GIVE_UP_S:.0f} s")
    return lines
