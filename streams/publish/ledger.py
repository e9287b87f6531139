"""What a partner has published, field by field, so a corrected row becomes a rectification.

A row published again with the same record key has the same event id (`record_ids`). If its
content is unchanged, it is sent again and every stage of the bus drops it as a duplicate. If a
field changed, it is a correction of a record recipients already hold: sending it as an event
would be dropped the same way, so the publisher asks for a rectification instead (a
`bus.subject_request` of kind rectify naming the event and the changed fields), which the bus
handles like any controller's request (docs/subject-rights.md): each recipient gets the corrected
event in its own form, the views and the linker follow.

The ledger keeps, per event id, a keyed digest of each field (never the values: it is a file on
the partner's machine, and the digests are keyed with the record id key so they cannot be
confirmed by guessing). One SQLite file per partner under `settings.data_dir/published/`. It only
knows what was published from where it lives: a row corrected from another machine, or after the
file is lost, is sent as an event and recipients keep the version they had.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from streams.errors import ConfigurationError
from streams.publish.record_ids import RecordIds

__all__ = ["PublishLedger", "changed_fields", "field_values", "jsonable"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS published (
    event_id   TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    fields     TEXT NOT NULL
)
"""
ENVELOPE_TIME = "envelope.occurred_at"


def jsonable(value: Any) -> Any:
    """A prepared value as JSON: dates and times as ISO 8601 (the publisher reads them back)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def field_values(record: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted path -> value of every field a rectification can correct, plus `envelope.occurred_at`.

    Records are walked into (a correction of `subject.upn` names only that field); arrays and
    absent records are one value each.
    """
    out: dict[str, Any] = {ENVELOPE_TIME: (record.get("envelope") or {}).get("occurred_at")}

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for name, value in node.items():
            path = f"{prefix}{name}"
            if isinstance(value, Mapping):
                walk(value, f"{path}.")
            else:
                out[path] = value

    walk({k: v for k, v in record.items() if k != "envelope"}, "")
    return out


def changed_fields(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """Paths whose digest differs or that only the newer record has, in its order; then paths only
    the older one had, unless a record above them is now one value (a subject that became null)."""
    gone = [p for p in before if p not in after and not any(p.startswith(f"{q}.") for q in after)]
    return [p for p in after if before.get(p) != after[p]] + gone


class PublishLedger:
    """Per event id, the digests of what was last delivered; thread-safe."""

    def __init__(self, path: Path, ids: RecordIds) -> None:
        self.path = path
        self._ids = ids
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False)
            self._db.execute(_SCHEMA)
            self._db.commit()
        except (OSError, sqlite3.Error) as exc:
            raise ConfigurationError(f"{path}: cannot open the publish ledger ({exc})") from None
        self._pending: dict[str, tuple[str, dict[str, str]]] = {}

    @classmethod
    def for_partner(cls, data_dir: Path, partner: str, ids: RecordIds) -> PublishLedger:
        return cls(data_dir / "published" / f"{partner}.sqlite", ids)

    def digests(self, record: Mapping[str, Any]) -> dict[str, str]:
        return {
            path: self._ids.digest(json.dumps(jsonable(value), sort_keys=True, ensure_ascii=False))
            for path, value in field_values(record).items()
        }

    def get(self, event_id: str) -> dict[str, str] | None:
        """The digests last delivered (or handed to the producer in this run) for `event_id`."""
        with self._lock:
            pending = self._pending.get(event_id)
            if pending is not None:
                return pending[1]
            row = self._db.execute("SELECT fields FROM published WHERE event_id = ?", (event_id,)).fetchone()
        return dict(json.loads(row[0])) if row else None

    def put(self, event_id: str, event_type: str, digests: dict[str, str]) -> None:
        """Remember a delivered version (written to the file by `commit`)."""
        with self._lock:
            self._pending[event_id] = (event_type, digests)

    def forget_pending(self, event_id: str) -> None:
        """A delivery failed: the next run sends the row again."""
        with self._lock:
            self._pending.pop(event_id, None)

    def commit(self) -> None:
        with self._lock:
            rows = [(e, t, json.dumps(d, sort_keys=True)) for e, (t, d) in self._pending.items()]
            self._pending.clear()
            self._db.executemany(
                "INSERT INTO published (event_id, event_type, fields) VALUES (?, ?, ?) "
                "ON CONFLICT (event_id) "
                "DO UPDATE SET event_type = excluded.event_type, fields = excluded.fields",
                rows,
            )
            self._db.commit()

    def close(self) -> None:
        self.commit()
        with self._lock:
            self._db.close()
