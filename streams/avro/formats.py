"""Validated string formats: what lets a string field be shared without counting as free text.

A schema field declares one with a custom attribute (`"format": "lsoa_code"`). A string that has
neither an enum nor a format can hold anything a partner typed, a name, a date of birth, an NHS
number, so agreements must drop or transform it (`streams.agreements.checks`). A format is only
worth that exemption if every value is checked against it: the publisher refuses a row whose value
does not match and the enforcer dead-letters such an event before any plan sees it. Reasons name
the field and the format, never the value (it may be exactly the free text being kept out).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from streams.avro import paths

if TYPE_CHECKING:
    from streams.avro.event_types import EventType

__all__ = ["FORMATS", "Format", "checker_for", "event_checker", "is_free_text"]


@dataclass(frozen=True)
class Format:
    """A closed shape a value must have: a pattern (full match), described for people."""

    name: str
    pattern: re.Pattern[str]
    description: str
    example: str

    def valid(self, value: str) -> bool:
        return self.pattern.fullmatch(value) is not None


# Home Office offence groups (police recorded crime tables), as probation and YJS systems name them.
_OFFENCE_GROUPS = (
    "Violence against the person",
    "Sexual offences",
    "Robbery",
    "Theft",
    "Theft offences",
    "Burglary",
    "Criminal damage and arson",
    "Drug offences",
    "Possession of weapons offences",
    "Public order offences",
    "Miscellaneous crimes against society",
    "Fraud offences",
    "Motoring offences",
)

FORMATS: Mapping[str, Format] = {
    f.name: f
    for f in (
        # ONS Lower layer Super Output Areas (2011 and 2021): E01 (England) or W01 (Wales) + 6 digits.
        Format("lsoa_code", re.compile(r"[EW]01[0-9]{6}"), "an ONS LSOA code", "E01016001"),
        # Home Office Counting Rules classification: class (1-3 digits, optional letter) / subclass.
        Format(
            "offence_code", re.compile(r"[0-9]{1,3}[A-Z]?/[0-9]{1,2}"), "a Home Office offence code", "8/1"
        ),
        # DfE Unique Reference Number of a school or provider: six digits, 100000 upwards.
        Format("school_urn", re.compile(r"[1-9][0-9]{5}"), "a six-digit school URN", "109001"),
        Format(
            "offence_group",
            re.compile("|".join(re.escape(g) for g in _OFFENCE_GROUPS), re.IGNORECASE),
            "a Home Office offence group",
            _OFFENCE_GROUPS[0],
        ),
    )
}


def is_free_text(avro_type: Any, field: Mapping[str, Any]) -> bool:
    """True for a string (or array of strings) field with no enum and no declared format.

    `avro_type` is the field's type with `["null", T]` reduced to T; `field` the field as written.
    """
    if isinstance(avro_type, dict) and avro_type.get("type") == "array":
        items = avro_type.get("items")
        if isinstance(items, list):
            items = next((b for b in items if b != "null"), None)
        return is_free_text(items, field)
    kind = avro_type.get("type") if isinstance(avro_type, dict) else avro_type
    logical = avro_type.get("logicalType") if isinstance(avro_type, dict) else None
    return kind == "string" and logical is None and field.get("format") not in FORMATS


Checker = Callable[[Mapping[str, Any]], list[tuple[str, str]]]


def event_checker(formatted: Mapping[str, str]) -> Checker:
    """A function listing (path, reason) for every value of `formatted` (path -> format name) that
    does not match; paths are dotted, `[]` for arrays of records, as the catalogue writes them."""
    checks = [(path, paths.fanout(path), FORMATS[name]) for path, name in formatted.items()]

    def check(event: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        for path, values_at, fmt in checks:
            for value in values_at(event):
                if value is None:  # a missing optional value has no format to match
                    continue
                if not isinstance(value, str) or not fmt.valid(value):
                    problems.append((path, f"not {fmt.description} (e.g. {fmt.example})"))
                    break
        return problems

    return check


@lru_cache(maxsize=512)
def checker_for(event_type: EventType) -> Checker:
    """The checker of one event type's formatted fields (built once per loaded event type)."""
    return event_checker(event_type.formatted)
