"""The schema catalogue: every event type (`streams.avro.event_types`) and the partners publishing them.

`load_catalogue` reads a schemas directory once (cached until a file in it changes): each
`<event_type>.avsc`, and `partners.yaml`, which names each partner, its sector and the event types
it may publish. Both are checked at load, so a bad file fails at start with its name, never per event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from streams import topics
from streams.avro.event_types import BUS_SECTOR, SECTORS, EventType, load_event_type
from streams.errors import ConfigurationError
from streams.files import read_yaml

__all__ = ["Catalogue", "Partner", "load_catalogue"]

_PARTNER_ID = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Partner:
    """An organisation that publishes events; `event_types` is all it may publish."""

    id: str
    name: str
    sector: str
    event_types: frozenset[str]


@dataclass(frozen=True, eq=False)
class Catalogue:
    """Event types and partners loaded from one schemas directory."""

    schemas_dir: Path
    event_types: Mapping[str, EventType]
    partners: Mapping[str, Partner]

    def event_type(self, name: str) -> EventType:
        try:
            return self.event_types[name]
        except KeyError:
            raise ConfigurationError(f"unknown event type {name!r} (not in {self.schemas_dir})") from None

    def partner(self, id: str) -> Partner:
        try:
            return self.partners[id]
        except KeyError:
            raise ConfigurationError(
                f"unknown partner {id!r} (not in {self.schemas_dir / 'partners.yaml'})"
            ) from None

    def raw_topics(self) -> list[tuple[str, str, str]]:
        """(partner, event_type, topic) for every event type each partner publishes."""
        return [
            (p.id, et, topics.raw(p.id, et))
            for p in sorted(self.partners.values(), key=lambda p: p.id)
            for et in sorted(p.event_types)
        ]

    def partners_for(self, event_type: str) -> list[str]:
        """Ids of the partners that publish `event_type`."""
        return sorted(p.id for p in self.partners.values() if event_type in p.event_types)


# --- loading ------------------------------------------------------------------------------------


def load_catalogue(schemas_dir: Path | None = None) -> Catalogue:
    """Load and check `schemas_dir` (default: settings.schemas_dir); cached until a file changes."""
    if schemas_dir is None:
        from streams.settings import get_settings

        schemas_dir = get_settings().schemas_dir
    path = Path(schemas_dir).resolve()
    if not path.is_dir():
        raise ConfigurationError(f"schemas directory {path} does not exist")
    return _load_cached(path, _fingerprint(path))


def _fingerprint(path: Path) -> tuple[tuple[str, int, int], ...]:
    files = sorted([*path.glob("*.avsc"), path / "partners.yaml"])
    return tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files if f.exists())


@lru_cache(maxsize=16)
def _load_cached(path: Path, fingerprint: tuple[tuple[str, int, int], ...]) -> Catalogue:
    event_types = {}
    for file in sorted(path.glob("*.avsc")):
        if file.stem.startswith("sharingbus."):
            continue  # shared named types, checked through the event types that use them
        et = load_event_type(path, file)
        event_types[et.name] = et
    if not event_types:
        raise ConfigurationError(f"{path}: no event type schemas (*.avsc)")
    partners = _load_partners(path / "partners.yaml", event_types)
    return Catalogue(path, event_types, partners)


def _load_partners(file: Path, event_types: Mapping[str, EventType]) -> dict[str, Partner]:
    raw = read_yaml(file)
    if not isinstance(raw, dict) or not isinstance(raw.get("partners"), dict):
        raise ConfigurationError(f"{file}: expected a 'partners' mapping of partner id -> details")
    partners = {}
    for pid, spec in raw["partners"].items():
        where = f"{file}: partners.{pid}"
        if not isinstance(pid, str) or not _PARTNER_ID.match(pid):
            raise ConfigurationError(
                f"{where}: id must match {_PARTNER_ID.pattern} (no dots: it is in topic names)"
            )
        if not isinstance(spec, dict):
            raise ConfigurationError(f"{where}: expected a mapping")
        unknown = set(spec) - {"name", "sector", "event_types"}
        if unknown:
            raise ConfigurationError(f"{where}: unknown keys {sorted(unknown)}")
        sector = spec.get("sector")
        if sector not in SECTORS:
            raise ConfigurationError(f"{where}.sector: must be one of {SECTORS}")
        types = spec.get("event_types") or []
        for et in types:
            if et not in event_types:
                raise ConfigurationError(f"{where}.event_types: unknown event type {et!r}")
            if event_types[et].sector not in (sector, BUS_SECTOR):
                raise ConfigurationError(f"{where}.event_types: {et} is not a {sector} event type")
        partners[pid] = Partner(pid, str(spec.get("name") or pid), sector, frozenset(types))
    return partners
