"""The clerical review queue: pairs the linker was unsure of, and what a reviewer decided.

The linker never links a pair whose match weight falls in the review band (or that competes with
an equally good candidate); it queues the question here, in PostgreSQL, with the explanation (which
comparisons agreed, and the weight of each). A data owner, authenticated, answers with `sharebus linkage
review accept|reject`: the answer is audited here (`linkage_review_audit`, one row per action, refusals
included) and sent to the linker as a `review_decision` record on `link.identifiers`, in stream
order, so replaying the stream replays the decision. Accepting merges the two people (views move
the profiles, as for any merge); rejecting keeps them apart for good: the linker will neither
link them automatically nor ask again.

Only person tokens, weights and level names are stored: no identifier, no keyed token.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from streams.errors import SharingBusError
from streams.linkage.outcome import Review
from streams.pg import managed

__all__ = ["SCHEMA", "ReviewError", "ReviewRow", "ReviewStore", "decision_record"]

MIN_REASON = 10

SCHEMA = """
CREATE TABLE IF NOT EXISTS linkage_reviews (
    id text PRIMARY KEY,
    person_a text NOT NULL,
    person_b text NOT NULL,
    weight double precision NOT NULL,
    explanation jsonb NOT NULL,
    event_id text NOT NULL,
    queued_at timestamptz NOT NULL DEFAULT now(),
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'accepted', 'rejected')),
    decided_by text,
    decided_at timestamptz,
    reason text
);
CREATE INDEX IF NOT EXISTS linkage_reviews_pending ON linkage_reviews (queued_at) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS linkage_review_audit (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    review_id text NOT NULL,
    action text NOT NULL,
    reviewer text NOT NULL,
    reason text NOT NULL,
    outcome text NOT NULL
);
REVOKE ALL ON linkage_reviews, linkage_review_audit FROM PUBLIC;
"""


class ReviewError(SharingBusError):
    """A decision that cannot be taken (unknown review, already decided, bad reviewer or reason)."""


@dataclass(frozen=True)
class ReviewRow:
    id: str
    person_a: str
    person_b: str
    weight: float
    explanation: dict[str, Any]
    event_id: str
    queued_at: datetime
    status: str
    decided_by: str | None
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "person_a": self.person_a,
            "person_b": self.person_b,
            "weight": self.weight,
            "explanation": self.explanation,
            "event_id": self.event_id,
            "queued_at": self.queued_at.isoformat(),
            "status": self.status,
            "decided_by": self.decided_by,
            "reason": self.reason,
        }


_COLUMNS = "id, person_a, person_b, weight, explanation, event_id, queued_at, status, decided_by, reason"


def decision_record(row: ReviewRow, accept: bool, reviewer: str) -> bytes:
    """The `link.identifiers` value that tells the linker the answer (`Linker.decide`)."""
    doc = {
        "kind": "review_decision",
        "review_id": row.id,
        "a": row.person_a,
        "b": row.person_b,
        "accept": accept,
        "reviewer": reviewer,
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


class ReviewStore:
    """PostgreSQL tables of the queue; each call opens a short connection except `queue`'s."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        with self._connect() as conn:
            if not managed(conn):  # else `sharebus db init` made them (this role may not)
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('sharingbus.linkage_reviews'))")
                conn.execute(SCHEMA)  # type: ignore[arg-type]  # static SQL

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self._dsn, connect_timeout=10)

    def queue(self, reviews: Iterable[tuple[Review, str]]) -> int:
        """Add (review, event id) pairs; a question already asked is not asked again (idempotent)."""
        rows = [(r.id, r.a, r.b, r.weight, Jsonb(r.explanation), event_id) for r, event_id in reviews]
        if not rows:
            return 0
        with self._connect() as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO linkage_reviews (id, person_a, person_b, weight, explanation, event_id) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                rows,
            )
            return cur.rowcount

    def pending(self, limit: int = 100) -> list[ReviewRow]:
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM linkage_reviews WHERE status = 'pending' "  # type: ignore[arg-type]
                "ORDER BY queued_at, id LIMIT %s",
                (limit,),
            ).fetchall()
        return [ReviewRow(*r) for r in rows]

    def get(self, review_id: str) -> ReviewRow | None:
        with self._connect() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM linkage_reviews WHERE id = %s",  # type: ignore[arg-type]
                (review_id,),
            ).fetchone()
        return ReviewRow(*row) if row else None

    def audit_log(self, review_id: str) -> list[tuple[str, str, str, str]]:
        """(action, reviewer, reason, outcome) of every action on a review, oldest first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT action, reviewer, reason, outcome FROM linkage_review_audit "
                "WHERE review_id = %s ORDER BY id",
                (review_id,),
            ).fetchall()
        return [(a, r, why, o) for a, r, why, o in rows]

    @contextmanager
    def deciding(self, review_id: str, accept: bool, reviewer: str, reason: str) -> Iterator[ReviewRow]:
        """Lock a pending review, yield it (send the decision to the linker inside), then record it.

        Refusals are audited too and raise `ReviewError`. If the body raises (the decision could
        not be delivered), nothing is recorded and the review stays pending: asking again is safe,
        because the linker applies a decision about the same pair only once.
        """
        action = "accept" if accept else "reject"
        with self._connect() as conn:
            problem = _check(reviewer, reason)
            row = None
            if problem is None:
                found = conn.execute(
                    f"SELECT {_COLUMNS} FROM linkage_reviews WHERE id = %s FOR UPDATE",  # type: ignore[arg-type]
                    (review_id,),
                ).fetchone()
                row = ReviewRow(*found) if found else None
                if row is None:
                    problem = f"no review {review_id}"
                elif row.status != "pending":
                    problem = f"review {review_id} was already {row.status} by {row.decided_by}"
            if problem is not None or row is None:
                _audit(conn, review_id, action, reviewer, reason, f"refused: {problem}")
                conn.commit()
                raise ReviewError(str(problem))
            yield row
            conn.execute(
                "UPDATE linkage_reviews SET status = %s, decided_by = %s, decided_at = now(), reason = %s "
                "WHERE id = %s",
                ("accepted" if accept else "rejected", reviewer, reason, review_id),
            )
            _audit(conn, review_id, action, reviewer, reason, "done")


def _check(reviewer: str, reason: str) -> str | None:
    if not reviewer.strip():
        return "a decision needs a reviewer"
    if len(reason.strip()) < MIN_REASON:
        return f"give a reason of at least {MIN_REASON} characters (it is audited)"
    return None


def _audit(
    conn: psycopg.Connection[Any], review_id: str, action: str, reviewer: str, reason: str, outcome: str
) -> None:
    conn.execute(
        "INSERT INTO linkage_review_audit (review_id, action, reviewer, reason, outcome) "
        "VALUES (%s, %s, %s, %s, %s)",
        (review_id, action, reviewer, reason, outcome),
    )
