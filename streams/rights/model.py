"""A data subject request as the bus understands it, checked before anything acts on it.

Requests are events (`bus.subject_request`, published by the controller that owns the events to
its own raw topic), so they travel, replay and are audited like everything else. Parsing is pure:
a request that cannot be acted on is refused with a reason that names no personal data.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from streams.avro import paths
from streams.errors import SharingBusError
from streams.privacy.identifiers import SUBJECT_FIELDS

__all__ = [
    "HEADER_CORRECTS",
    "HEADER_REQUEST_ID",
    "HEADER_RETRACTS",
    "IDENTIFIER_KINDS",
    "KINDS",
    "REQUEST_EVENT_TYPE",
    "Kind",
    "RequestRefused",
    "SubjectRequest",
    "build_request",
    "parse_assignments",
    "parse_request",
    "parse_value",
]

REQUEST_EVENT_TYPE = "bus.subject_request"
Kind = Literal["rectify", "erase", "restrict", "unrestrict"]
KINDS: tuple[Kind, ...] = ("rectify", "erase", "restrict", "unrestrict")
# Headers of what the bus sends recipients on a request's behalf. Never `sharingbus.event_id`:
# recipients de-duplicate on it and would drop a retraction or correction as a replay.
HEADER_RETRACTS = "sharingbus.retracts"
HEADER_CORRECTS = "sharingbus.corrects"
HEADER_REQUEST_ID = "sharingbus.request_id"
IDENTIFIER_KINDS = SUBJECT_FIELDS
_REQUESTER = re.compile(r"(?P<partner>[a-z][a-z0-9_]*):(?P<person>\S.*)")


class RequestRefused(SharingBusError):
    """The request (or one event of it) cannot be acted on; `reason` is audited, so it holds no PII."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SubjectRequest:
    """A checked request: who asks, what for, about which events or which person."""

    request_id: str
    partner: str
    kind: Kind
    requester: str
    reason: str
    event_ids: tuple[str, ...] = ()
    subject: Mapping[str, Any] | None = None  # identifiers only, None values dropped
    corrections: Mapping[str, Any] = field(default_factory=dict)  # dotted path -> decoded JSON value
    recorded_at: datetime | None = None


def parse_value(text: str) -> Any:
    """A correction's value: JSON text; a bare word that is not JSON is taken as a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def check_path(path: str) -> str:
    """The path with array indices as `[]` (the catalogue's form); refuses envelope fields."""
    if not path or path.startswith(".") or path.endswith(".") or ".." in path:
        raise RequestRefused(f"correction path {path[:80]!r} is not a dotted field path")
    if path == "envelope" or path.startswith("envelope."):
        raise RequestRefused("the envelope (event id, type, partner, times) cannot be corrected")
    return paths.catalogue_form(path)


def parse_request(partner: str, event: Mapping[str, Any]) -> SubjectRequest:
    """Check a decoded `bus.subject_request` published by `partner`; RequestRefused says why not."""
    envelope = event.get("envelope") or {}
    request_id = str(envelope.get("event_id", ""))
    kind = str(event.get("kind") or "").lower()
    if kind not in KINDS:
        raise RequestRefused(f"unknown request kind {kind[:20]!r} (expected {', '.join(KINDS)})")
    requester = str(event.get("requester") or "")
    match = _REQUESTER.fullmatch(requester)
    if match is None:
        raise RequestRefused("requester must be '<partner>:<person>'")
    if match.group("partner") != partner:
        raise RequestRefused(f"requester is not a data owner of {partner}")
    reason = str(event.get("reason") or "").strip()
    if not reason:
        raise RequestRefused("a request needs a reason")
    event_ids: list[str] = []
    for raw in event.get("event_ids") or ():
        try:
            event_ids.append(str(uuid.UUID(str(raw))))
        except ValueError:
            raise RequestRefused("event_ids must be UUIDs") from None
    subject_in = event.get("subject") or {}
    subject = {k: subject_in[k] for k in IDENTIFIER_KINDS if subject_in.get(k) not in (None, "")}
    if not event_ids and not subject:
        raise RequestRefused("a request names events (event_ids) or a person (subject identifiers)")
    corrections: dict[str, Any] = {}
    for path, text in (event.get("corrections") or {}).items():
        check_path(str(path))
        corrections[str(path)] = parse_value(str(text))
    if kind == "rectify" and not corrections:
        raise RequestRefused("a rectification needs corrections")
    if kind != "rectify" and corrections:
        raise RequestRefused(f"corrections are only for rectify, not {kind}")
    recorded = envelope.get("recorded_at")
    return SubjectRequest(
        request_id=request_id,
        partner=partner,
        kind=kind,  # type: ignore[arg-type]  # checked against KINDS above
        requester=requester,
        reason=reason,
        event_ids=tuple(dict.fromkeys(event_ids)),
        subject=subject or None,
        corrections=corrections,
        recorded_at=recorded if isinstance(recorded, datetime) else None,
    )


def parse_assignments(items: list[str], what: str) -> dict[str, str]:
    """`["KIND=VALUE", ...]` from the command line; RequestRefused naming the bad item."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RequestRefused(f"{what} must be KEY=VALUE, got {item.split('=')[0][:40]!r}")
        out[key.strip()] = value
    return out


def build_request(
    kind: str,
    *,
    reason: str,
    requester: str,
    event_ids: list[str] | None = None,
    identifiers: Mapping[str, str] | None = None,
    corrections: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The `bus.subject_request` event body a controller publishes (the Publisher completes it).

    Correction values are JSON text on the wire; a value that is not JSON is sent as a string.
    """
    unknown = sorted(set(identifiers or {}) - set(IDENTIFIER_KINDS))
    if unknown:
        raise RequestRefused(f"unknown identifier kind {unknown[0]!r} (known: {', '.join(IDENTIFIER_KINDS)})")
    texts = {}
    for path, value in (corrections or {}).items():
        check_path(path)
        texts[path] = json.dumps(parse_value(value))
    return {
        "envelope": {"occurred_at": datetime.now().astimezone()},
        "subject": dict(identifiers) if identifiers else None,
        "kind": kind,
        "event_ids": list(event_ids or []),
        "corrections": texts,
        "reason": reason,
        "requester": requester,
    }
