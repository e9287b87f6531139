"""Event ids derived from what identifies a partner's record, so a row published twice is one event.

`event_id = HMAC-SHA256(record id key, partner, event type, record key values)`, cut to 128 bits
and written as a UUID (version 8, RFC 9562's custom layout). The record key is declared per event
type in the catalogue (`record_key` in the `.avsc`, e.g. school URN + UPN + start date of an
exclusion). The same row, from an overlapping daily extract, a retry or a backfill, therefore
gets the same id, and every stage that de-duplicates by `event_id` drops the repeat.

Keyed, never a plain hash (uuid5): record keys include identifiers (a UPN, a CRN) and dates from
small spaces, and event ids reach recipients; an unkeyed hash of them could be confirmed by
enumeration (the reason tokens are keyed, DESIGN.md). The key is the publishing partner's own
secret, kept apart from the bus's key ring (`settings.record_id_key_path`, created on first use;
every system that publishes for a partner must share it, and losing it gives re-published rows new
ids). Values are taken after coercion, so "03/03/2025" and "2025-03-03" key alike; identifiers are
compared upper-case without spaces.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from streams.avro import paths
from streams.avro.event_types import EventType
from streams.errors import ConfigurationError

__all__ = ["RecordIds", "key_values"]

_DOMAIN = "sharingbus.record/1"  # changes only if the derivation does: ids would change with it


def key_values(event_type: EventType, record: Mapping[str, Any]) -> list[tuple[str, Any]] | None:
    """(path, canonical value) per record key field of `record`; None if any is empty."""
    out: list[tuple[str, Any]] = []
    for path in event_type.record_key:
        value = paths.getter(path)(record)
        canonical = _canonical(value, any(t.startswith("identifier:") for t in event_type.fields[path].tags))
        if canonical is None:
            return None
        out.append((path, canonical))
    return out


def _canonical(value: Any, identifier: bool) -> Any:
    if value is None:
        return None
    if isinstance(value, datetime):  # timestamp-millis: the precision the bus keeps
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(aware.timestamp() * 1000)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool | int | float):
        return value
    text = " ".join(str(value).split())
    if identifier:
        text = text.replace(" ", "").upper()
    return text or None


class RecordIds:
    """Derives event ids with one partner-side secret key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ConfigurationError("record id key must be at least 16 bytes")
        self._key = key

    @classmethod
    def load_or_create(cls, path: Path) -> RecordIds:
        """The key in `path` (base64), created with 32 random bytes (mode 0600) if missing."""
        if not path.exists():
            _create(path)
        try:
            text = path.read_text(encoding="ascii").strip()
            return cls(base64.b64decode(text, validate=True))
        except OSError as exc:
            raise ConfigurationError(f"{path}: cannot read the record id key ({exc.strerror})") from None
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise ConfigurationError(
                f"{path}: not a record id key (one line of base64); restore it from backup, or "
                "delete it to start a new one (re-published rows then get new ids)"
            ) from None

    def event_id(self, partner: str, event_type: EventType, record: Mapping[str, Any]) -> str | None:
        """The record's event id, or None when a record key field is empty (no stable identity)."""
        values = key_values(event_type, record)
        if values is None:
            return None
        text = json.dumps(
            [_DOMAIN, partner, event_type.name, values], ensure_ascii=False, separators=(",", ":")
        )
        digest = bytearray(hmac.new(self._key, text.encode(), hashlib.sha256).digest()[:16])
        digest[6] = (digest[6] & 0x0F) | 0x80  # version 8
        digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 9562 variant
        return str(uuid.UUID(bytes=bytes(digest)))

    def digest(self, text: str) -> str:
        """A keyed digest of a field value, for the publish ledger (never a plain hash of data)."""
        return hmac.new(self._key, b"field\x00" + text.encode(), hashlib.sha256).hexdigest()[:32]


def _create(path: Path) -> None:
    """Write a new key atomically: a concurrent creator's key wins, never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
