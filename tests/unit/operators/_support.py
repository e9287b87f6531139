"""Constants and helpers the operator tests import (fixtures live in conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

KEY = bytes(range(32))


def event_at(when: datetime = datetime(2026, 3, 15, 12, 0, tzinfo=UTC), **rest: Any) -> dict[str, Any]:
    return {"envelope": {"occurred_at": when, "event_id": "e1"}, **rest}
