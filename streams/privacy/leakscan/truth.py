"""`Secrets`: everything that must never leave the bus, indexed for matching by meaning.

Built from what partners published (a simulation's truth rows, the published events and the
catalogue's free-text fields); the scanner (`streams.privacy.leakscan.scanner`) matches against it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from streams.avro import paths
from streams.privacy.leakscan.patterns import (
    MIN_FREE_TEXT,
    MIN_NAME,
    NAME_WORD,
    as_date,
    ascii_form,
    compact,
    fold,
    normal_postcode,
)


@dataclass
class Secrets:
    """Everything that must never leave the bus, indexed for matching (see the module docstring)."""

    identifiers: set[str] = field(default_factory=set)  # compact upper-case: NHS digits, UPN, PNC, local ids
    postcodes: set[str] = field(default_factory=set)  # "RG1 2AB"
    dates_of_birth: set[date] = field(default_factory=set)
    name_pairs: set[str] = field(default_factory=set)  # "given family" folded, both orders
    name_parts: set[str] = field(default_factory=set)  # single given/family names, folded
    free_text: set[str] = field(default_factory=set)  # folded
    coordinates: set[float] = field(default_factory=set)  # rounded to 6 decimals

    def __len__(self) -> int:
        return (
            len(self.identifiers)
            + len(self.postcodes)
            + len(self.dates_of_birth)
            + len(self.name_pairs)
            + len(self.name_parts)
            + len(self.free_text)
            + len(self.coordinates)
        )

    # --- building ---------------------------------------------------------------------------------
    def add_identifier(self, value: Any) -> None:
        if value is None:
            return
        text = str(value).strip()
        if len(text) >= 4:
            self.identifiers.add(compact(text))

    def add_postcode(self, value: Any) -> None:
        if isinstance(value, str):
            pc = normal_postcode(value)
            if pc is not None:
                self.postcodes.add(pc)

    def add_date_of_birth(self, value: Any) -> None:
        d = as_date(value)
        if d is not None:
            self.dates_of_birth.add(d)

    def add_name(self, given: Any, family: Any) -> None:
        parts = [str(p).strip() for p in (given, family) if isinstance(p, str) and p.strip()]
        for part in parts:
            if len(part) >= MIN_NAME:
                self.name_parts.add(fold(part))
                self.name_parts.add(fold(ascii_form(part)))
        if len(parts) == 2:
            for a, b in (parts, parts[::-1]):
                for form in (f"{a} {b}", ascii_form(f"{a} {b}")):
                    self.name_pairs.add(" ".join(w.casefold() for w in NAME_WORD.findall(form)))

    def add_free_text(self, value: Any) -> None:
        if isinstance(value, str) and len(value.strip()) >= MIN_FREE_TEXT:
            self.free_text.add(fold(value.strip()))

    def add_coordinate(self, value: Any) -> None:
        if isinstance(value, float) and value != round(value, 3):
            self.coordinates.add(round(value, 6))

    def add_subject(self, subject: Mapping[str, Any]) -> None:
        """A `Subject` record (or a truth row): identifiers, name, date of birth, postcode."""
        for kind in ("nhs_number", "upn", "pnc_id", "local_id"):
            self.add_identifier(subject.get(kind))
        local_ids = subject.get("local_ids")
        if isinstance(local_ids, Mapping):
            for value in local_ids.values():
                self.add_identifier(value)
        self.add_name(subject.get("given_name"), subject.get("family_name"))
        self.add_date_of_birth(subject.get("date_of_birth"))
        self.add_postcode(subject.get("postcode"))

    def add_location(self, location: Mapping[str, Any]) -> None:
        self.add_postcode(location.get("postcode"))
        self.add_free_text(location.get("description"))
        self.add_coordinate(location.get("latitude"))
        self.add_coordinate(location.get("longitude"))

    def add_truth_row(self, row: Mapping[str, Any]) -> None:
        """One row of a simulation truth file, with every variant a partner published."""
        self.add_subject(row)
        given, family = row.get("given_name"), row.get("family_name")
        for variant in row.get("variants") or ():
            value, fname = variant.get("value"), variant.get("field")
            if fname == "given_name":
                self.add_name(value, family)
            elif fname == "family_name":
                self.add_name(given, value)
            elif fname == "date_of_birth":
                self.add_date_of_birth(value)
            elif fname == "postcode":
                self.add_postcode(value)
            else:
                self.add_identifier(value)

    def add_event(
        self, event: Mapping[str, Any], tagged_paths: Mapping[str, frozenset[str]] | None = None
    ) -> None:
        """A published event: every subject and location in it, plus fields tagged pii:free_text or
        pii:direct in `tagged_paths` (dotted path -> tags, e.g. from the catalogue's `EventType.fields`)."""
        for node in _walk(event):
            if "given_name" in node or "nhs_number" in node or "date_of_birth" in node:
                self.add_subject(node)
            if "description" in node or "latitude" in node:
                self.add_location(node)
        for path, tags in (tagged_paths or {}).items():
            if "pii:free_text" in tags or (
                "pii:direct" in tags and not any(t.startswith("identifier:") for t in tags)
            ):
                for value in paths.values(event, path):
                    if isinstance(value, str):
                        if "pii:free_text" in tags:
                            self.add_free_text(value)
                        else:
                            self.add_identifier(value)

    @classmethod
    def from_truth(
        cls,
        truth: Iterable[Mapping[str, Any]],
        events: Iterable[tuple[str, Mapping[str, Any]]] = (),
        catalogue: Any = None,
    ) -> Secrets:
        """From truth rows and (event_type, event) pairs; `catalogue` adds tagged free-text fields."""
        secrets = cls()
        for row in truth:
            secrets.add_truth_row(row)
        for event_type, event in events:
            tagged: dict[str, frozenset[str]] = {}
            if catalogue is not None:
                tagged = {p: f.tags for p, f in catalogue.event_type(event_type).fields.items() if f.tags}
            secrets.add_event(event, tagged)
        return secrets


def _walk(node: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(node, Mapping):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list | tuple):
        for item in node:
            yield from _walk(item)
