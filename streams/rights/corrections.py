"""Rectification: apply a request's corrections to the original event and check the result.

The corrected event goes through the same preparation as a freshly published one
(`streams.publish.publisher.prepare_event`), so a correction is coerced ("2010-03-01" becomes a date,
"suspension" the enum symbol) and refused if it would not be a valid event of its type.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from streams.avro import paths
from streams.avro.catalogue import Catalogue
from streams.errors import ValidationError
from streams.publish.publisher import EventInvalid, prepare_event
from streams.rights.model import RequestRefused, check_path

__all__ = ["apply_corrections", "merge_corrections"]


def merge_corrections(layers: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Earlier rectifications of an event, then this one: later values win, earlier ones persist.

    Each rectification starts from the raw original, so without this a second correction of
    another field would silently undo the first.
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    return merged


def apply_corrections(
    catalogue: Catalogue,
    partner: str,
    event_type: str,
    event: Mapping[str, Any],
    corrections: Mapping[str, Any],
) -> dict[str, Any]:
    """A copy of `event` with `corrections` applied, valid for its type; RequestRefused if not."""
    fields = catalogue.event_type(event_type).fields
    corrected = copy.deepcopy(dict(event))
    for path, value in corrections.items():
        if check_path(path) not in fields:
            raise RequestRefused(f"{event_type} has no field {path[:80]!r}")
        try:
            paths.assign(corrected, path, value)
        except paths.PathError as exc:
            raise RequestRefused(f"correction path {exc}") from None
    try:
        return prepare_event(catalogue, partner, event_type, corrected)
    except EventInvalid as exc:
        shown = "; ".join(f"{f}: {r}" for f, r in exc.problems[:3])
        raise RequestRefused(f"the corrected event is not a valid {event_type}: {shown}") from None
    except ValidationError as exc:
        raise RequestRefused(f"the corrected event is not a valid {event_type}: {exc}") from None
