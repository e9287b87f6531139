"""`LeakScanner`: finds `Secrets` in text, decoded records and raw bytes, and reports masked `Leak`s."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from streams.privacy.leakscan.patterns import (
    COORD,
    DATE_PATTERNS,
    NAME_WORD,
    NAME_WORDS,
    NHS,
    POSTCODE,
    WORD,
    ascii_form,
    dates_in,
    fold,
    mask,
    mask_context,
)
from streams.privacy.leakscan.truth import Secrets


@dataclass(frozen=True)
class Leak:
    """One secret found somewhere it must not be (`secret` and `context` are masked)."""

    where: str
    kind: str
    secret: str
    context: str = ""

    def __str__(self) -> str:
        return f"{self.where}: {self.kind} {self.secret}" + (f" in {self.context}" if self.context else "")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _leaves(node: Any) -> Iterator[Any]:
    if isinstance(node, Mapping):
        for k, v in node.items():
            yield k
            yield from _leaves(v)
    elif isinstance(node, list | tuple):
        for item in node:
            yield from _leaves(item)
    else:
        yield node


class LeakScanner:
    """Finds `Secrets` in text and structured values; returns masked `Leak`s, never raises on input."""

    def __init__(self, secrets: Secrets) -> None:
        self.secrets = secrets
        self._free_text = sorted(secrets.free_text, key=len, reverse=True)

    def scan_text(self, where: str, text: str) -> list[Leak]:
        s = self.secrets
        leaks: list[Leak] = []

        def found(kind: str, secret: str, start: int, end: int) -> None:
            context = (
                text[max(0, start - 20) : start] + "[" + mask(text[start:end]) + "]" + text[end : end + 20]
            )
            leaks.append(Leak(where, kind, mask(secret), mask_context(context)))

        for m in NHS.finditer(text):
            digits = "".join(m.groups())
            if digits in s.identifiers:
                found("nhs_number", digits, m.start(), m.end())
        for m in WORD.finditer(text):
            word = m.group().upper()
            if not word.isdigit() and word in s.identifiers:
                found("identifier", word, m.start(), m.end())
        for m in POSTCODE.finditer(text):
            pc = f"{m.group(1)} {m.group(2)}".upper()
            if pc in s.postcodes:
                found("postcode", pc, m.start(), m.end())
        if s.dates_of_birth:
            for pattern, _ in DATE_PATTERNS:
                for m in pattern.finditer(text):
                    for d in dates_in(m.group()):
                        if d in s.dates_of_birth:
                            found("date_of_birth", d.isoformat(), m.start(), m.end())
                            break
        if s.name_pairs:
            words = [(w.group().casefold(), w.start(), w.end()) for w in NAME_WORD.finditer(text)]
            for i in range(len(words) - 1):
                for n in range(2, min(NAME_WORDS, len(words) - i) + 1):
                    window = words[i : i + n]
                    name = " ".join(w for w, _, _ in window)
                    if name in s.name_pairs or ascii_form(name) in s.name_pairs:
                        found("name", name, window[0][1], window[-1][2])
                        break
        if self._free_text:
            folded = fold(text)
            for ft in self._free_text:
                i = folded.find(ft)
                if i >= 0:
                    found("free_text", ft, i, i + len(ft))
        if s.coordinates:
            for m in COORD.finditer(text):
                try:
                    value = round(float(m.group()), 6)
                except ValueError:
                    continue
                if value in s.coordinates:
                    found("coordinates", m.group(), m.start(), m.end())
        return leaks

    def scan_value(self, where: str, value: Any) -> list[Leak]:
        """A decoded record or JSON document: its text, and every string leaf that is a name."""
        plain = _jsonable(value)
        leaks = self.scan_text(where, json.dumps(plain, ensure_ascii=False, sort_keys=True))
        parts = self.secrets.name_parts
        if parts:
            for leaf in _leaves(plain):
                if isinstance(leaf, str) and len(leaf) <= 64:
                    folded = fold(leaf.strip())
                    if folded in parts or ascii_form(folded) in parts:
                        leaks.append(Leak(where, "name", mask(leaf), "a whole string value"))
        return leaks

    def scan_bytes(
        self, where: str, data: bytes | None, decode: Callable[[bytes], Any] | None = None
    ) -> list[Leak]:
        """Bytes from a topic or a socket: decoded with `decode` when it can, else JSON, else text."""
        if not data:
            return []
        if decode is not None:
            try:
                return self.scan_value(where, decode(data))
            except Exception:  # not this format: fall through to JSON and text
                pass
        text = data.decode("utf-8", "replace")
        try:
            return self.scan_value(where, json.loads(text))
        except ValueError:
            return self.scan_text(where, text)
