"""The linker's vault writes wait while PostgreSQL is unavailable, and only then.

The waiting is `streams.pg.retry_while_down` (its own tests cover the loop). Here: a fault that is
not PostgreSQL being unavailable, a bug in the writing code, raises from the batch instead of
blocking the stream for ever; and a vault that fails with PostgreSQL's own error is retried until
it answers. The vault stands in for PostgreSQL only to make those two faults happen on cue.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import psycopg

from agents.linker import LinkerStage
from streams.deadletter import Output, RawRecord
from streams.linkage.linker import Linker


class _Vault:
    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = failures
        self.links: list[Any] = []

    def link_many(self, rows: Any) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.links.extend(rows)

    def merge_many(self, merges: Any) -> None:
        return None


def _record() -> RawRecord:
    doc = {
        "event_id": "e1",
        "subject_index": 0,
        "event_type": "education.exclusion",
        "source_partner": "reading_schools",
        "occurred_at": "2026-03-01T10:00:00+00:00",
        "role": None,
        "tokens": {"upn": "k1.someupn"},
        "invalid": [],
        "factors": [],
        "area": None,
    }
    return RawRecord("link.identifiers", 0, 0, None, json.dumps(doc).encode())


def _stage(vault: _Vault) -> LinkerStage:
    sent: list[Output] = []
    return LinkerStage(sent.extend, lambda: Linker.from_state({}), vault=vault, retry_backoff=0.001)  # type: ignore[arg-type]


def test_a_fault_outside_postgres_raises_instead_of_blocking() -> None:
    stage = _stage(_Vault([TypeError("a bug in the vault code")]))
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            stage.process([_record()])
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "the batch is still retrying a write that can never succeed"
    assert len(outcome) == 1 and isinstance(outcome[0], TypeError)


def test_postgres_unavailable_is_waited_out() -> None:
    vault = _Vault([psycopg.OperationalError("connection refused")] * 3)
    _stage(vault).process([_record()])
    assert [row[0] for row in vault.links] == ["e1"]
    assert not vault.failures
