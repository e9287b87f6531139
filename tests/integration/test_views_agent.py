"""The views agent in a real `sharebus worker`: link.person facts in, HTTP API, Avro topics, PostgreSQL.

The broker's topics are shared by the test session, so everything here is told apart by its own
person tokens, area codes and a week nobody else uses (suppression runs per week, so the published
table of that week holds only this test's facts). The workers run the views role alone: a worker
that also enforced and linked would turn the raw events other tests left on the shared broker into
facts, some in these weeks (test_publish simulates a fixed year, 2024-06 to 2025-06). The weeks
are long closed, so each is frozen and published once, 3 s after its last change (the tests'
`area_quiet_seconds`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any, cast

import httpx
import psycopg
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from agents.views_web import ROUTED_HEADER, SERVED_BY_HEADER, token_partition
from streams import topics
from streams.deadletter import header
from streams.kafka.admin import partition_counts
from streams.kafka.reader import read_to_end
from streams.kafka.topology import VIEWS_PROFILE_MOVES
from streams.privacy.keys import KeyRing
from streams.settings import Settings
from streams.views.area_stage import row_key
from streams.views.factors import load_factors
from streams.views.periods import next_week
from streams.views.sink import area_rows
from streams.views.snapshots import SnapshotPolicy, snapshot
from tests.support.stack import reader_config
from tests.workers import ANALYST_RECIPIENT, WorkerProcess, discard, start_worker

THRESHOLD = 3
PARTITIONS = 4  # of link.person, from the settings' topic_partitions (the worker creates it)
TVP, SCHOOLS, YJS = "thames_valley_police", "reading_schools", "reading_yjs"


def _token() -> str:
    return f"p.{uuid.uuid4().hex[:26]}"


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


_WEEKS_USED: set[int] = set()


class Scenario:
    """A unique week with three areas, two people (B merges into A), area-only facts and bad records."""

    def __init__(self) -> None:
        # A Wednesday of one of 70 closed weeks two to four years ago (recent enough to score above
        # 0.00), never one an earlier scenario of this session had, nor the week
        # after it, where late facts go: the tests share link.person, and a week's area table counts
        # every fact of that week.
        slot = uuid.uuid4().int % 70
        while slot in _WEEKS_USED:
            slot = (slot + 1) % 70
        _WEEKS_USED.add(slot)
        start = date.today() - timedelta(days=4 * 365)
        self.day = start - timedelta(days=start.weekday()) + timedelta(days=14 * slot + 2)
        self.week = f"{self.day.isocalendar()[0]}-W{self.day.isocalendar()[1]:02d}"
        uid = uuid.uuid4().hex[:8].upper()
        self.x, self.y, self.z = f"X{uid}", f"Y{uid}", f"Z{uid}"
        self.a, self.stranger = _token(), _token()
        self.b = next(
            t
            for t in iter(_token, "")
            if token_partition(t, PARTITIONS) != token_partition(self.a, PARTITIONS)
        )
        self.ids = {name: str(uuid.uuid4()) for name in ("a1", "a2", "a3", "b1", "b2", *map(str, range(9)))}
        self.hour = 0

    def fact(
        self, name: str, token: str | None, factors: list[str], area: str, partner: str, index: int = 0
    ) -> Any:
        self.hour += 1
        doc = {
            "kind": "fact",
            "event_id": self.ids[name],
            "subject_index": index,
            "person_token": token,
            "event_type": "test.event",
            "source_partner": partner,
            "occurred_at": datetime.combine(self.day, dtime(self.hour % 24), UTC).isoformat(),
            "role": None,
            "factors": factors,
            "area": {"lsoa": None, "district": area},
        }
        return (token or self.ids[name]).encode(), _dumps(doc)

    @staticmethod
    def viewed(records: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """Each person fact preceded by its twin in the analyst's person view (the same event, so
        the profile counts it once): a profile is shown only to the recipient whose view it is."""
        out = []
        for key, value in records:
            doc = json.loads(value) if value.startswith(b'{"') else {}
            if doc.get("kind") == "fact" and doc.get("person_token") and key == doc["person_token"].encode():
                out.append((key, _dumps({**doc, "recipient": ANALYST_RECIPIENT})))
            out.append((key, value))
        return out

    def records(self) -> list[tuple[bytes, bytes]]:
        a, b, x, y, z = self.a, self.b, self.x, self.y, self.z
        a1 = self.fact("a1", a, ["weapon_carrying"], x, TVP)
        recs = [
            a1,
            self.fact("a2", a, ["weapon_carrying", "school_exclusion"], x, SCHOOLS),
            a1,  # an exact duplicate
            self.fact("a1", a, ["weapon_carrying"], x, TVP, index=1),  # same event naming A twice
            self.fact("b1", b, ["school_exclusion"], y, TVP),
            self.fact("b2", b, ["gang_association"], x, YJS),
            *[self.fact(str(i), None, ["weapon_carrying"], x, TVP) for i in range(4)],
            self.fact("4", None, ["weapon_carrying"], y, TVP),
            *[self.fact(str(i), None, ["school_exclusion"], z, SCHOOLS) for i in range(5, 9)],
            (b.encode(), _dumps({"kind": "merge", "from": b, "into": a, "at": self.day.isoformat()})),
            (a.encode(), b"{not json"),
            (self.stranger.encode(), self.fact("a3", a, ["weapon_carrying"], x, TVP)[1]),  # wrong key
        ]
        self.hour = 0
        return recs

    def raw_counts(self) -> dict[str, dict[str, int]]:
        """Distinct people per area and factor, worked out by hand (A twice in X is one person)."""
        return {
            self.x: {"weapon_carrying": 5, "school_exclusion": 1, "gang_association": 1},
            self.y: {"school_exclusion": 1, "weapon_carrying": 1},
            self.z: {"school_exclusion": 4},
        }


def _produce(settings: Settings, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer(settings.kafka_config())
    for key, value in records:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(15) == 0


def _wait(
    what: str, check: Callable[[], Any], timeout: float = 30.0, worker: WorkerProcess | None = None
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (httpx.HTTPError, AssertionError, KeyError) as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}: {last!r}\n{worker.log()[-3000:] if worker else ''}")


def _get(worker: WorkerProcess, path: str) -> httpx.Response:
    return httpx.get(f"{worker.url}{path}", headers=worker.analyst, timeout=5.0)


def _latest(settings: Settings, topic: str, keys: set[str]) -> dict[str, Any]:
    """Last value per key of a compacted view topic (None: tombstone), decoded with the registry."""
    deserializer = AvroDeserializer(SchemaRegistryClient(settings.registry_config()))
    out: dict[str, Any] = {}
    for msg in read_to_end(reader_config(settings), topic, timeout=30.0):
        key = (msg.key() or b"").decode()
        if key in keys:
            value = msg.value()
            ctx = SerializationContext(topic, MessageField.VALUE)
            out[key] = deserializer(value, ctx) if value is not None else None
    return out


def _count(settings: Settings, topic: str, key: str) -> int:
    return sum(1 for m in read_to_end(reader_config(settings), topic) if m.key() == key.encode())


def _profile_from_topic(record: dict[str, Any]) -> dict[str, Any]:
    return {
        f["factor"]: {
            "first_seen": f["first_seen"].isoformat(),
            "last_seen": f["last_seen"].isoformat(),
            "count": f["count"],
            "partners": f["partners"],
        }
        for f in record["factors"]
    }


def test_views_agent_end_to_end(
    settings_factory: Callable[..., Settings], pg_dsn: str, tmp_path: Path
) -> None:
    settings = settings_factory(suppression_threshold=THRESHOLD, topic_partitions=PARTITIONS, roles="views")
    KeyRing.load_or_create(settings.keyring_path)
    s = Scenario()
    columns = [
        n for n, f in load_factors(settings.factors_path).factors.items() if not f.requires_linked_adult
    ]
    policy = SnapshotPolicy(threshold=THRESHOLD, round_to=settings.round_to)
    assert settings.round_to == 5  # rounding is on by default
    expected_table = snapshot(s.raw_counts(), columns, policy).to_dict()
    worker = start_worker(settings, tmp_path / "logs", name="views", wait=False)
    try:
        _produce(settings, topics.LINK_PERSON, s.viewed(s.records()))
        worker.wait_ready()

        # --- HTTP: profiles (duplicates not double counted, the merge moved B's factors) ---------------
        def merged() -> dict[str, Any] | None:
            r = _get(worker, f"/api/persons/{s.a}")
            body = r.json() if r.status_code == 200 else None
            return body if body and "gang_association" in body["factors"] else None

        person = _wait("A's merged profile", merged, worker=worker)
        assert {f: (v["count"], v["partners"]) for f, v in person["factors"].items()} == {
            "weapon_carrying": (2, [SCHOOLS, TVP]),
            "school_exclusion": (2, [SCHOOLS, TVP]),
            "gang_association": (1, [YJS]),
        }
        assert person["advisory"] is True and person["score"] > 0 and person["explanation"]
        assert _get(worker, f"/api/persons/{s.b}").status_code == 404
        assert _get(worker, f"/api/persons/{s.stranger}").status_code == 404

        # --- HTTP: the area table of the week is the frozen snapshot, nothing small (or zero) is shown ---
        areas = _wait(
            "the week's areas", lambda: (r := _get(worker, f"/api/areas?week={s.week}").json())["rows"] and r
        )
        assert areas["rows"] == sorted([s.x, s.y, s.z])
        assert {k: areas[k] for k in expected_table} == expected_table
        assert areas["cells"][areas["rows"].index(s.y)][areas["cols"].index("weapon_carrying")] is None
        shown = [v for row in areas["cells"] for v in row] + areas["row_totals"] + areas["col_totals"]
        assert all(v is None or v >= THRESHOLD for v in shown)
        assert any(v is not None and v >= THRESHOLD for v in shown)
        trend = dict(map(tuple, _get(worker, "/api/trends").json()["trends"]["weapon_carrying"]))
        assert trend[s.week] == areas["col_totals"][areas["cols"].index("weapon_carrying")]
        health = _get(worker, "/api/health").json()
        assert health["status"] == "ok" and health["facts_applied"] >= 15 and health["dead_letters"] >= 2

        # --- dead letters, with their reasons ---------------------------------------------------------
        dead = [
            m
            for m in read_to_end(reader_config(settings), topics.dlq("views"))
            if m.key() in (s.a.encode(), s.stranger.encode())
        ]
        assert sorted(header(cast(Any, m.headers()), "sharingbus.dlq.reason") or "" for m in dead) == [
            "decode_error",
            "validation",
        ]

        # --- topics: Avro, registered, the same as the API; B's old profile is a tombstone ----------------
        def profiles_emitted() -> dict[str, Any] | None:
            latest = _latest(settings, topics.VIEWS_PERSON_PROFILE, {s.a, s.b})
            a = latest.get(s.a)
            return latest if a and s.b in latest and _profile_from_topic(a) == person["factors"] else None

        latest = _wait("views.person_profile", profiles_emitted)
        assert latest[s.b] is None and latest[s.a]["score"] == person["score"]
        assert latest[s.a]["explanation"] == person["explanation"]
        row_keys = {row_key(a, s.week) for a in (*areas["rows"], "ALL")}
        area_topic = _wait(
            "views.area_counts",
            lambda: (got := _latest(settings, topics.VIEWS_AREA_COUNTS, row_keys)).keys() == row_keys and got,
        )
        for i, area in enumerate(areas["rows"]):
            record = area_topic[row_key(area, s.week)]
            assert [c["count"] for c in record["counts"]] == areas["cells"][i]
            assert record["total"] == areas["row_totals"][i] and record["threshold"] == THRESHOLD
        assert area_topic[row_key("ALL", s.week)]["total"] == areas["total"]

        # --- PostgreSQL: the same tables -----------------------------------------------------------------
        with psycopg.connect(pg_dsn) as conn:

            def sunk() -> bool:
                rows = conn.execute(
                    "SELECT area, week, factor, count, suppressed FROM area_counts WHERE week = %s", (s.week,)
                ).fetchall()
                return bool(rows)

            _wait("the PostgreSQL sink", sunk)
            pub = snapshot(s.raw_counts(), columns, policy)
            rows = conn.execute(
                "SELECT area, week, factor, count, suppressed FROM area_counts WHERE week = %s", (s.week,)
            ).fetchall()
            assert sorted(rows, key=str) == sorted(area_rows(s.week, pub), key=str)
            factors = conn.execute(
                "SELECT factor, count, partners FROM person_factors WHERE person_token = %s ORDER BY 1",
                (s.a,),
            ).fetchall()
            assert factors == sorted((f, v["count"], v["partners"]) for f, v in person["factors"].items())
            assert conn.execute(
                "SELECT score FROM person_profiles WHERE person_token = %s", (s.a,)
            ).fetchall() == [(person["score"],)]
            assert (
                conn.execute("SELECT 1 FROM person_profiles WHERE person_token = %s", (s.b,)).fetchall() == []
            )

        metrics = httpx.get(f"{worker.url}/metrics", headers=worker.ops, timeout=5.0).text
        assert 'sharingbus_table_entries{table="views_person_profiles"}' in metrics

        # --- the merge crossed partitions: B's profile travelled on the moves topic, keyed by A ----------
        moves = [
            json.loads(m.value() or b"") for m in read_to_end(reader_config(settings), VIEWS_PROFILE_MOVES)
        ]
        assert [m["into"] for m in moves if m["from"] == s.b and m["profile"]] == [s.a]
        assert partition_counts(settings)[topics.LINK_PERSON] == PARTITIONS

        # --- kill -9 and restart: the tables recover exactly, and replays still count nothing twice ----
        emitted_before = _count(settings, topics.VIEWS_PERSON_PROFILE, s.a)
        worker.kill()
        worker = start_worker(settings, tmp_path / "logs", name="views-restarted")
        assert _get(worker, f"/api/persons/{s.a}").json() == person
        assert _get(worker, f"/api/areas?week={s.week}").json() == areas
        assert _get(worker, f"/api/persons/{s.b}").status_code == 404
        # nothing is known to have been emitted after a restart: every recovered key is emitted again
        _wait("re-emission", lambda: _count(settings, topics.VIEWS_PERSON_PROFILE, s.a) > emitted_before)
        assert (
            _profile_from_topic(_latest(settings, topics.VIEWS_PERSON_PROFILE, {s.a})[s.a])
            == person["factors"]
        )
        replay = [r for r in s.records()[:6]]  # A's and B's facts again, after the merge
        _produce(
            settings,
            topics.LINK_PERSON,
            s.viewed([*replay, s.fact("a3", s.a, ["weapon_carrying"], s.x, TVP)]),
        )
        after = _wait(
            "the new fact",
            lambda: (
                (p := _get(worker, f"/api/persons/{s.a}").json())["factors"]["weapon_carrying"]["count"] == 3
                and p
            ),
            worker=worker,
        )
        assert {f: v["count"] for f, v in after["factors"].items()} == {
            "weapon_carrying": 3,
            "school_exclusion": 2,
            "gang_association": 1,
        }
        assert _get(worker, f"/api/persons/{s.b}").status_code == 404
        # The week is published: the new fact (and none of the replays) counts in the week after it,
        # which is frozen and published in its turn; the first week never changes on any output.
        later = next_week(s.week)
        expected_later = snapshot({s.x: {"weapon_carrying": 1}}, columns, policy).to_dict()

        def counted_later() -> bool:
            table = _get(worker, f"/api/areas?week={later}").json()
            return {k: table.get(k) for k in expected_later} == expected_later

        _wait("the new fact in the following week", counted_later, worker=worker)
        assert _get(worker, f"/api/areas?week={s.week}").json()["cells"] == areas["cells"]
        deserializer = AvroDeserializer(SchemaRegistryClient(settings.registry_config()))
        versions: dict[str, set[str]] = {}
        for msg in read_to_end(reader_config(settings), topics.VIEWS_AREA_COUNTS, timeout=30.0):
            key = (msg.key() or b"").decode()
            if key in row_keys:
                ctx = SerializationContext(topics.VIEWS_AREA_COUNTS, MessageField.VALUE)
                versions.setdefault(key, set()).add(
                    json.dumps(deserializer(msg.value(), ctx), sort_keys=True)
                )
        assert versions.keys() == row_keys and all(len(v) == 1 for v in versions.values()), versions
        with psycopg.connect(pg_dsn) as conn:
            rows = conn.execute(
                "SELECT area, week, factor, count, suppressed FROM area_counts WHERE week = %s", (s.week,)
            ).fetchall()
        assert sorted(rows, key=str) == sorted(area_rows(s.week, pub), key=str)
    finally:
        discard(worker)


def test_keyed_views_are_answered_by_the_owning_worker(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    """Two workers split the partitions; either answers for any token or the areas, proxying to the owner."""
    settings = settings_factory(suppression_threshold=THRESHOLD, topic_partitions=PARTITIONS, roles="views")
    KeyRing.load_or_create(settings.keyring_path)
    s = Scenario()
    tokens: dict[int, str] = {}
    while len(tokens) < PARTITIONS:  # one person on every partition
        token = _token()
        tokens.setdefault(token_partition(token, PARTITIONS), token)
    first = start_worker(settings, tmp_path / "logs", name="first", wait=False)
    second = start_worker(settings, tmp_path / "logs", name="second", wait=False)
    try:
        first.wait_ready()
        second.wait_ready()
        _wait("both workers ready after the rebalance", lambda: first.ready() and second.ready())
        facts = [s.fact(str(i), t, ["weapon_carrying"], s.x, TVP) for i, t in enumerate(tokens.values())]
        _produce(settings, topics.LINK_PERSON, s.viewed(facts))
        for token in tokens.values():

            def both(token: str = token) -> list[httpx.Response] | None:
                replies = [_get(w, f"/api/persons/{token}") for w in (first, second)]
                return replies if all(r.status_code == 200 for r in replies) else None

            replies = _wait(f"{token} on both workers", both)
            assert replies[0].json() == replies[1].json()
            assert replies[0].json()["factors"]["weapon_carrying"]["count"] == 1
            served_by = [r.headers.get(SERVED_BY_HEADER) for r in replies]
            # exactly one worker owns the token; the other proxied the request to it
            assert served_by == ([None, first.url] if served_by[0] is None else [second.url, None])
        _wait(
            "the areas",
            lambda: all(_get(w, f"/api/areas?week={s.week}").json()["rows"] for w in (first, second)),
        )
        areas = [_get(w, f"/api/areas?week={s.week}") for w in (first, second)]
        assert areas[0].json() == areas[1].json() and areas[0].json()["rows"] == [s.x]
        assert [r.headers.get(SERVED_BY_HEADER) is None for r in areas].count(True) == 1

        # --- one cohort across workers (finding 6): either worker ranks every partition ---------------
        local = [
            httpx.get(f"{w.url}/api/cohort?n=100", headers={**w.analyst, ROUTED_HEADER: "1"}, timeout=5.0)
            for w in (first, second)
        ]
        parts = [r.json()["cohort"] for r in local]  # each worker's own partitions only
        mine = [{e["person_token"] for e in part} & set(tokens.values()) for part in parts]
        assert mine[0] and mine[1] and not mine[0] & mine[1]  # our people are split between the two
        want = sorted((e for part in parts for e in part), key=lambda e: (-e["score"], e["person_token"]))
        cohorts = [_get(w, "/api/cohort?n=100").json() for w in (first, second)]
        assert cohorts[0]["cohort"] == cohorts[1]["cohort"] == want[:100]
        assert set(tokens.values()) <= {e["person_token"] for e in cohorts[0]["cohort"]} or len(want) > 100
    finally:
        discard(first, second)
