"""The recipient-domain tokens a decision released, read with the one field-path grammar."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from streams.avro.paths import Fanout, fanout

_fanout: Any = lru_cache(maxsize=1024)(fanout)  # a plan's few paths, compiled once


def released_tokens(output: Mapping[str, Any], paths: Sequence[str]) -> list[str]:
    """Tokens at the plan's pseudonymised field paths (`subject.nhs_number`, `people[].subject.upn`):
    for subject access, and to key the output."""
    tokens: list[str] = []
    for path in paths:
        walk: Fanout = _fanout(path)
        tokens.extend(v for v in walk(output) if isinstance(v, str))
    return tokens
