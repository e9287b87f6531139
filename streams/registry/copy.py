"""A copy of the registry's `_schemas` records outside the broker, to re-seed an empty topic.

The embedded broker keeps nothing across a restart (in-memory Tansu): a registry started on a new,
empty broker would hand out ids from 1 again, and every event encoded with an earlier id would
decode with the wrong schema or not at all. So each record the broker acknowledged is appended
here too (one JSON line of the Kafka key and value, fsynced), and a registry that finds its topic
empty writes these records back, with the same subjects, versions and ids. A topic that has records
is authoritative: the copy is rewritten from it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

Pair = tuple[bytes, bytes | None]


class RecordCopy:
    """The (key, value) pairs of one registry topic, in the order they were written, in `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> list[Pair]:
        """Every pair in the file, oldest first (none if there is no file); a torn last line is dropped."""
        if not self.path.exists():
            return []
        pairs: list[Pair] = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                item = json.loads(line)
                value = item["value"]
                pairs.append((item["key"].encode(), None if value is None else value.encode()))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                log.warning("registry copy %s: skipping line %d: %s", self.path, number, exc)
        return pairs

    def append(self, pairs: Sequence[Pair]) -> None:
        """Add pairs and fsync them: the copy holds what the broker acknowledged before it is served."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(_lines(pairs))
            out.flush()
            os.fsync(out.fileno())

    def replace(self, pairs: Iterable[Pair]) -> None:
        """Make the copy exactly `pairs` (written aside, then renamed: never half a copy)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        aside = self.path.with_name(self.path.name + ".tmp")
        with aside.open("w", encoding="utf-8") as out:
            out.write(_lines(list(pairs)))
            out.flush()
            os.fsync(out.fileno())
        os.replace(aside, self.path)


def _lines(pairs: Sequence[Pair]) -> str:
    return "".join(
        json.dumps({"key": k.decode(), "value": None if v is None else v.decode()}, ensure_ascii=False) + "\n"
        for k, v in pairs
    )
