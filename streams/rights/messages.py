"""What a request makes the bus send: retractions and corrections to recipients, and the
bus-internal records that make the views and the linker forget.

Pure functions from values to `Output`s, so the wire format is tested without a broker.
Recipient records are keyed exactly like the original (`output_key` in its audit record), so a
recipient that keeps the latest value per key (a compacted copy, a table) is updated in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import orjson

from streams import topics
from streams.deadletter import Output
from streams.rights.model import HEADER_CORRECTS, HEADER_REQUEST_ID, HEADER_RETRACTS

__all__ = [
    "Cause",
    "correction",
    "linker_forget",
    "output_key",
    "relink",
    "retraction",
    "views_retractions",
]

Cause = Literal["erase", "rectify", "retention"]


def _json(doc: Mapping[str, Any]) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def output_key(record: Mapping[str, Any]) -> str:
    """The key a recipient received an event under (older audit records predate `output_key`)."""
    key = record.get("output_key")
    if key:
        return str(key)
    tokens = record.get("subject_tokens") or []
    return str(tokens[0]) if tokens else str(record["event_id"])


def retraction(topic: str, key: str, event_id: str, request_id: str) -> Output:
    """A tombstone for one shared event: value None, headers naming the event and the request."""
    headers = [(HEADER_RETRACTS, event_id.encode()), (HEADER_REQUEST_ID, request_id.encode())]
    return Output(topic, key.encode(), None, headers)


def correction(topic: str, key: str, value: bytes, event_id: str, request_id: str) -> Output:
    """The corrected record of one shared event, in the recipient's own (current) form."""
    headers = [(HEADER_CORRECTS, event_id.encode()), (HEADER_REQUEST_ID, request_id.encode())]
    return Output(topic, key.encode(), value, headers)


def views_retractions(
    links: Iterable[tuple[str, str | None]],
    request_id: str,
    cause: Cause,
    expand: Callable[[str], list[str]] | None = None,
) -> list[Output]:
    """`link.person` retractions, one per person token (keyed by it, as the views require).

    `links` are (event_id, person_token or None); events no person token holds (no identifiers)
    still get a retraction, keyed by the event id, so the area counts drop them. `expand` maps a
    linker token to the recipients' person-view tokens its profiles are kept under
    (`streams.linkage.view_tokens`); each of those gets the retraction, and so do the area counts.
    """
    by_token: dict[str | None, list[str]] = {}
    for event_id, token in links:
        targets: list[str | None] = [token]
        if token is not None and expand is not None:
            targets = [None, *expand(token)]
        for target in targets:
            ids = by_token.setdefault(target, [])
            if event_id not in ids:
                ids.append(event_id)
    out = []
    for token, event_ids in by_token.items():
        doc = {
            "kind": "retract",
            "event_ids": event_ids,
            "person_token": token,
            "request_id": request_id,
            "cause": cause,
        }
        out.append(Output(topics.LINK_PERSON, (token or event_ids[0]).encode(), _json(doc)))
    return out


def linker_forget(person_tokens: Sequence[str], request_id: str) -> Output:
    """Asks the linker (`Linker.forget_person`) to drop erased people's clusters: their tokens
    must not link new records to what was erased. One ordered partition, like every link record."""
    doc = {"kind": "forget", "person_tokens": list(person_tokens), "request_id": request_id}
    return Output(topics.LINK_IDENTIFIERS, f"forget:{request_id}".encode(), _json(doc), partition=0)


def relink(fact: Mapping[str, Any]) -> Output:
    """A corrected event's `link.identifiers` record, keyed as the enforcer keys it."""
    key = f"{fact['event_id']}:{fact['subject_index']}".encode()
    return Output(topics.LINK_IDENTIFIERS, key, _json(fact), partition=0)
