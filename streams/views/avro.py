"""Avro values of the two published view topics, in the Confluent wire format.

The schemas live in `schemas/views/` (a subdirectory, so the event catalogue, which reads only
`schemas/*.avsc`, never mistakes them for event types). They are registered under TopicNameStrategy
subjects on first use; ids are cached by `SchemaCache`, so only the first emission blocks on the
registry (and emission runs in a thread anyway).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastavro import parse_schema

from streams import topics
from streams.avro import serde
from streams.avro.serde import SchemaCache
from streams.privacy.disclosure import SuppressedTable
from streams.settings import ROOT
from streams.views.area_stage import row_key
from streams.views.profiles import Profile
from streams.views.sink import MARGIN

__all__ = ["SCHEMA_DIR", "ViewSchemas", "area_records", "profile_record"]

SCHEMA_DIR = ROOT / "schemas" / "views"


def _load(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMA_DIR / f"{name}.avsc").read_text(encoding="utf-8"))
    return schema


class ViewSchemas:
    """Encoders for `views.person_profile` and `views.area_counts` values (schema ids from the registry)."""

    def __init__(self, registry: SchemaCache, profile_topic: str, area_topic: str) -> None:
        self._registry = registry
        self.profile_schema = _load(topics.VIEWS_PERSON_PROFILE)
        self.area_schema = _load(topics.VIEWS_AREA_COUNTS)
        self._parsed = {
            profile_topic: (self.profile_schema, parse_schema(self.profile_schema)),
            area_topic: (self.area_schema, parse_schema(self.area_schema)),
        }

    def encode(self, topic: str, record: Mapping[str, Any]) -> bytes:
        schema, parsed = self._parsed[topic]
        schema_id = self._registry.id_for(topics.value_subject(topic), schema)
        return serde.encode(parsed, schema_id, record)


def profile_record(profile: Profile) -> dict[str, Any]:
    """The published profile: token, advisory score, explanation, factors; no contribution hashes."""
    return {
        "person_token": profile.person_token,
        "score": float(profile.score),
        "scored_at": profile.scored_at,
        "truncated_at": profile.truncated_at,
        "explanation": list(profile.explanation),
        "factors": [
            {
                "factor": name,
                "first_seen": stats.first_seen,
                "last_seen": stats.last_seen,
                "count": stats.count,
                "partners": list(stats.partners),
            }
            for name, stats in sorted(profile.factors.items())
        ],
    }


def area_records(week: str, table: SuppressedTable, level: str) -> dict[str, dict[str, Any]]:
    """One record per area row of a published week, plus the `ALL` row of column and grand totals."""

    def record(area: str, values: tuple[int | None, ...], total: int | None) -> dict[str, Any]:
        return {
            "area": area,
            "week": week,
            "level": level,
            "counts": [{"factor": f, "count": v} for f, v in zip(table.cols, values, strict=True)],
            "total": total,
            "threshold": table.threshold,
            "round_to": table.round_to,
            "zeros_hidden": table.zeros_hidden,
        }

    out = {
        row_key(area, week): record(area, table.cells[i], table.row_totals[i])
        for i, area in enumerate(table.rows)
    }
    out[row_key(MARGIN, week)] = record(MARGIN, table.col_totals, table.total)
    return out
