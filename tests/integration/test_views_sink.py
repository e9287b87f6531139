"""The PostgreSQL views sink against a real database (session database from `pg_dsn`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from streams.privacy.disclosure import SuppressedTable
from streams.views.area_counts import AreaCounts
from streams.views.profiles import Profile, apply_fact, rescore, retract
from streams.views.sink import MARGIN, ViewsSink
from streams.views.snapshots import DisclosureError

NOW = datetime(2026, 3, 15, tzinfo=UTC)
WEIGHTS = {"weapon_carrying": 3.0, "school_exclusion": 2.0}


@pytest.fixture
def sink(pg_dsn: str) -> Iterator[ViewsSink]:
    with ViewsSink(pg_dsn) as s:
        yield s


def _profile(token: str, *events: tuple[str, list[str]]) -> Profile:
    p = Profile(token)
    for i, (event_id, factors) in enumerate(events):
        fact = {
            "event_id": event_id,
            "subject_index": 0,
            "occurred_at": (NOW - timedelta(days=i)).isoformat(),
            "source_partner": "reading_schools",
            "factors": factors,
        }
        apply_fact(p, fact)
    rescore(p, NOW, WEIGHTS)
    return p


def _rows(dsn: str, sql: str, *args: object) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, args).fetchall()


def test_profiles_upsert_idempotently_and_drop_retracted_factors(sink: ViewsSink, pg_dsn: str) -> None:
    token = f"p.{uuid.uuid4().hex[:26]}"
    p = _profile(token, ("e1", ["weapon_carrying", "school_exclusion"]), ("e2", ["weapon_carrying"]))
    assert sink.upsert_profiles([p]) == 1
    sink.upsert_profiles([p])  # a replay changes nothing
    rows = _rows(
        pg_dsn, "SELECT factor, count, partners FROM person_factors WHERE person_token=%s ORDER BY 1", token
    )
    assert rows == [("school_exclusion", 1, ["reading_schools"]), ("weapon_carrying", 2, ["reading_schools"])]
    ((score, factors, explanation),) = _rows(
        pg_dsn, "SELECT score, factors, explanation FROM person_profiles WHERE person_token=%s", token
    )
    assert score == p.score and factors["weapon_carrying"]["count"] == 2
    assert explanation[0].startswith("weapon_carrying x2")

    retract(p, "e1")
    rescore(p, NOW, WEIGHTS)
    sink.upsert_profiles([p])
    rows = _rows(pg_dsn, "SELECT factor, count FROM person_factors WHERE person_token=%s", token)
    assert rows == [("weapon_carrying", 1)]


def test_delete_person(sink: ViewsSink, pg_dsn: str) -> None:
    token = f"p.{uuid.uuid4().hex[:26]}"
    other = f"p.{uuid.uuid4().hex[:26]}"
    sink.upsert_profiles(
        [_profile(token, ("e1", ["weapon_carrying"])), _profile(other, ("e2", ["weapon_carrying"]))]
    )
    assert sink.delete_person(token)
    assert not sink.delete_person(token)
    assert _rows(pg_dsn, "SELECT 1 FROM person_factors WHERE person_token=%s", token) == []
    assert _rows(pg_dsn, "SELECT 1 FROM person_profiles WHERE person_token=%s", other) == [(1,)]


def test_area_counts_store_only_published_values(sink: ViewsSink, pg_dsn: str) -> None:
    week = "2026-W11"
    label = f"{week}-{uuid.uuid4().hex[:8]}"  # the session database is shared: a week label of our own
    area = f"T{uuid.uuid4().hex[:6]}"
    facts = [
        {
            "event_id": f"{area}-{i}",
            "occurred_at": "2026-03-12T10:00:00Z",
            "factors": ["weapon_carrying"],
            "area": {"district": area if i < 3 else f"{area}B"},
        }
        for i in range(30)
    ]
    counts = AreaCounts.of(facts)
    table = counts.published(week, threshold=10, factors=["weapon_carrying", "school_exclusion"])
    n = sink.upsert_area_table(label, table)
    assert sink.upsert_area_table(label, table) == n
    stored = dict(
        ((a, f), (c, s))
        for a, f, c, s in _rows(
            pg_dsn, "SELECT area, factor, count, suppressed FROM area_counts WHERE week=%s", label
        )
    )
    assert len(stored) == n
    assert stored[(area, "weapon_carrying")] == (None, True)  # 3: never stored
    assert stored[(f"{area}B", "weapon_carrying")] == (None, True)  # complement of the 3
    assert stored[(area, "school_exclusion")] == (0, False)
    assert stored[(MARGIN, MARGIN)] == (30, False)
    assert 3 not in {c for c, _ in stored.values()} and 27 not in {c for c, _ in stored.values()}

    counts.retract(f"{area}-0")  # erasure: the table shrinks and stale rows go
    for i in range(3, 30):
        counts.retract(f"{area}-{i}")
    sink.upsert_area_table(label, counts.published(week, threshold=10))
    areas = {a for (a,) in _rows(pg_dsn, "SELECT DISTINCT area FROM area_counts WHERE week=%s", label)}
    assert areas == {area, MARGIN}


def test_a_truncated_profile_is_marked_in_postgresql(sink: ViewsSink, pg_dsn: str) -> None:
    token = f"p.{uuid.uuid4().hex[:26]}"
    p = _profile(token, ("e1", ["weapon_carrying"]))
    sink.upsert_profiles([p])
    assert _rows(pg_dsn, "SELECT truncated_at FROM person_profiles WHERE person_token=%s", token) == [(None,)]

    for i in range(3):  # with a cap of 2, the oldest two of four are forgotten
        fact = {
            "event_id": f"old{i}",
            "subject_index": 0,
            "occurred_at": (NOW - timedelta(days=30 + i)).isoformat(),
            "source_partner": "reading_schools",
            "factors": ["weapon_carrying"],
        }
        apply_fact(p, fact, cap=2)
    assert p.truncated_at == NOW - timedelta(days=31)
    sink.upsert_profiles([p])
    assert _rows(pg_dsn, "SELECT truncated_at FROM person_profiles WHERE person_token=%s", token) == [
        (NOW - timedelta(days=31),)
    ]


def test_a_person_profiles_table_from_before_truncated_at_gains_the_column() -> None:
    from tests.support.stack import create_database, drop_database

    dsn = create_database("sharingbus_test")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:  # the table as the first release made it
            conn.execute(
                "CREATE TABLE person_profiles (person_token text PRIMARY KEY,"
                " score double precision NOT NULL, factors jsonb NOT NULL,"
                " explanation jsonb NOT NULL DEFAULT '[]'::jsonb,"
                " updated_at timestamptz NOT NULL DEFAULT now())"
            )
            conn.execute(
                "INSERT INTO person_profiles (person_token, score, factors) VALUES ('p.old', 1, '{}')"
            )
        with ViewsSink(dsn) as sink:
            sink.upsert_profiles([_profile("p.new", ("e1", ["weapon_carrying"]))])
        assert _rows(dsn, "SELECT person_token, truncated_at FROM person_profiles ORDER BY 1") == [
            ("p.new", None),
            ("p.old", None),
        ]
    finally:
        drop_database(dsn)


def test_a_table_with_a_small_published_value_never_reaches_the_database(
    sink: ViewsSink, pg_dsn: str
) -> None:
    label = f"2026-W11-{uuid.uuid4().hex[:8]}"
    leaky = SuppressedTable(("RG1",), ("weapon_carrying",), ((3,),), (3,), (3,), 3, 10, 0)
    with pytest.raises(DisclosureError):
        sink.upsert_area_table(label, leaky)
    assert _rows(pg_dsn, "SELECT 1 FROM area_counts WHERE week=%s", label) == []
