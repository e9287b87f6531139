"""PostgreSQL sink for the views, for analysts and BI tools.

Only what may leave the bus is written: pseudonymous profiles (person tokens, factors, advisory
scores with their explanation) and area counts AFTER suppression (`count` is NULL where suppressed;
raw small counts never reach the database). Margins are stored under the area/factor `ALL`. The
worker writes only the frozen snapshots of closed weeks (`streams.views.snapshots`), the same tables
the topic and the API carry, and every table is checked (`check_published`) before it is written.

Every write is an idempotent batched upsert (`INSERT ... ON CONFLICT DO UPDATE`, psycopg 3
`executemany`) in one transaction, and rows that no longer exist (a factor retracted by erasure, an
area that emptied) are deleted in the same transaction, so replays converge to the same tables.
The calls block: from an asyncio/Faust agent run them in an executor (`loop.run_in_executor`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from streams.errors import SharingBusError
from streams.pg import managed
from streams.privacy.disclosure import SuppressedTable
from streams.views.profiles import Profile
from streams.views.snapshots import check_published

__all__ = ["DDL", "MARGIN", "ViewsSink"]

MARGIN = "ALL"

DDL = """
CREATE TABLE IF NOT EXISTS person_profiles (
    person_token text PRIMARY KEY,
    score double precision NOT NULL,
    factors jsonb NOT NULL,
    explanation jsonb NOT NULL DEFAULT '[]'::jsonb,
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- Set once a profile keeps only its newest events (streams.views.profiles.MAX_CONTRIBUTIONS): events at
-- or before this time may be missing from its counts. ALTER, not CREATE: a table made without it gains it.
ALTER TABLE person_profiles ADD COLUMN IF NOT EXISTS truncated_at timestamptz NULL;
CREATE TABLE IF NOT EXISTS person_factors (
    person_token text NOT NULL,
    factor text NOT NULL,
    first_seen timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    count integer NOT NULL,
    partners text[] NOT NULL,
    PRIMARY KEY (person_token, factor)
);
CREATE TABLE IF NOT EXISTS area_counts (
    area text NOT NULL,
    week text NOT NULL,
    factor text NOT NULL,
    count integer NULL,
    suppressed boolean NOT NULL,
    PRIMARY KEY (area, week, factor),
    CHECK (suppressed = (count IS NULL))
);
CREATE INDEX IF NOT EXISTS area_counts_week ON area_counts (week);
"""

_UPSERT_PROFILE = """
INSERT INTO person_profiles (person_token, score, factors, explanation, truncated_at, updated_at)
VALUES (%s, %s, %s, %s, %s, now())
ON CONFLICT (person_token) DO UPDATE
SET score = EXCLUDED.score, factors = EXCLUDED.factors, explanation = EXCLUDED.explanation,
    truncated_at = EXCLUDED.truncated_at, updated_at = now()
WHERE (person_profiles.score, person_profiles.factors, person_profiles.explanation,
       person_profiles.truncated_at)
      IS DISTINCT FROM (EXCLUDED.score, EXCLUDED.factors, EXCLUDED.explanation, EXCLUDED.truncated_at)
"""

_UPSERT_FACTOR = """
INSERT INTO person_factors (person_token, factor, first_seen, last_seen, count, partners)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (person_token, factor) DO UPDATE
SET first_seen = EXCLUDED.first_seen, last_seen = EXCLUDED.last_seen, count = EXCLUDED.count,
    partners = EXCLUDED.partners
"""

_UPSERT_AREA = """
INSERT INTO area_counts (area, week, factor, count, suppressed) VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (area, week, factor) DO UPDATE
SET count = EXCLUDED.count, suppressed = EXCLUDED.suppressed
WHERE (area_counts.count, area_counts.suppressed) IS DISTINCT FROM (EXCLUDED.count, EXCLUDED.suppressed)
"""


def area_rows(week: str, table: SuppressedTable) -> list[tuple[str, str, str, int | None, bool]]:
    """(area, week, factor, count, suppressed) for every cell and margin of a published table."""
    rows = []
    for r, area in enumerate(table.rows):
        for c, factor in enumerate(table.cols):
            rows.append((area, factor, table.cells[r][c]))
        rows.append((area, MARGIN, table.row_totals[r]))
    for c, factor in enumerate(table.cols):
        rows.append((MARGIN, factor, table.col_totals[c]))
    rows.append((MARGIN, MARGIN, table.total))
    return [(a, week, f, v, v is None) for a, f, v in rows]


class ViewsSink:
    """Writes the views to PostgreSQL; creates its tables on first connect."""

    def __init__(self, dsn: str, connect_timeout: int = 10) -> None:
        self._dsn = dsn
        self._timeout = connect_timeout
        self._conn: psycopg.Connection[Any] | None = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            try:
                conn = psycopg.connect(self._dsn, connect_timeout=self._timeout, autocommit=True)
            except psycopg.OperationalError as exc:
                raise SharingBusError(f"views sink: cannot connect to PostgreSQL: {exc}".strip()) from None
            with conn.transaction():  # the lock serialises workers creating the tables at once
                if not managed(conn):  # else `sharebus db init` made them (this role may not)
                    conn.execute("SELECT pg_advisory_xact_lock(hashtext('sharingbus.views_sink'))")
                    conn.execute(DDL)
            self._conn = conn
        return self._conn

    def upsert_profiles(self, profiles: Iterable[Profile]) -> int:
        """Write profiles and their factor rows; factors a profile no longer has are deleted."""
        batch = list(profiles)
        if not batch:
            return 0
        conn = self._connection()
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                _UPSERT_PROFILE,
                [
                    (
                        p.person_token,
                        p.score,
                        Jsonb(p.summary()["factors"]),
                        Jsonb(p.explanation),
                        p.truncated_at,
                    )
                    for p in batch
                ],
            )
            cur.executemany(
                _UPSERT_FACTOR,
                [
                    (p.person_token, f, s.first_seen, s.last_seen, s.count, list(s.partners))
                    for p in batch
                    for f, s in p.factors.items()
                ],
            )
            cur.executemany(
                "DELETE FROM person_factors WHERE person_token = %s AND NOT (factor = ANY(%s))",
                [(p.person_token, sorted(p.factors)) for p in batch],
            )
        return len(batch)

    def upsert_area_table(self, week: str, table: SuppressedTable) -> int:
        """Write one week's published table; cells that are no longer in it are deleted."""
        check_published(table)  # a small number never reaches the database, whatever the caller did
        rows = area_rows(week, table)
        conn = self._connection()
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(_UPSERT_AREA, rows)
            cur.execute(
                "DELETE FROM area_counts WHERE week = %s AND NOT ((area || chr(31) || factor) = ANY(%s))",
                (week, [f"{a}\x1f{f}" for a, _, f, _, _ in rows]),
            )
        return len(rows)

    def delete_person(self, person_token: str) -> bool:
        """Erase a person's profile rows (erasure, or the old token after a linker merge)."""
        conn = self._connection()
        with conn.transaction():
            conn.execute("DELETE FROM person_factors WHERE person_token = %s", (person_token,))
            cur = conn.execute("DELETE FROM person_profiles WHERE person_token = %s", (person_token,))
            return cur.rowcount > 0

    def delete_people(self, person_tokens: Sequence[str]) -> int:
        conn = self._connection()
        with conn.transaction():
            conn.execute("DELETE FROM person_factors WHERE person_token = ANY(%s)", (list(person_tokens),))
            cur = conn.execute(
                "DELETE FROM person_profiles WHERE person_token = ANY(%s)", (list(person_tokens),)
            )
            return cur.rowcount

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> ViewsSink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
