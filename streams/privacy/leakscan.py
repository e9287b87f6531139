"""Leak scanning: does anything that must never leave the bus appear where recipients can see it?

Build `Secrets` from what partners published (a simulation's truth file, the published events) and
scan what leaves the bus with a `LeakScanner`: shared and view topics (`scan_topics`), HTTP answers,
log files. Matching is by *meaning*, not by exact bytes, so a reformatted value is still caught:

- identifiers (NHS number, UPN, PNC ID, local ids): NHS numbers with or without spaces or dashes,
  the others case-insensitively as whole words;
- full postcodes with or without the space, in any case (an outward code or district alone is not
  personal and is not reported);
- dates of birth in any common format: ISO, day/month/year and month/day/year with `/`, `-` or `.`,
  two-digit years, `yyyymmdd`, `14 March 2008`, `14th Mar 2008`, `March 14, 2008`;
- names: a given name next to a family name (either order, any case, punctuation between), and any
  single string value that *is* a given or family name;
- free text (e.g. a location description naming someone), case-insensitively as a substring;
- exact coordinates (four or more decimals; a coordinate rounded to 3 decimals is not reported).

Tokens (`k1.xxxx`, `p.xxxx`) never match: every pattern requires a boundary that a base32 token
cannot provide. Reported leaks are masked (`Leak.secret` keeps two characters), so a report can be
logged or attached to a CI run without leaking in turn.

    secrets = Secrets.from_truth(sim.truth(), events=published_records, catalogue=catalogue)
    scanner = LeakScanner(secrets)
    report = scan_topics(settings.kafka_config(), scanner, ("shared.", "views."), registry)
    assert not report.leaks, report.summary()
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from streams.avro import paths

__all__ = ["Leak", "LeakScanner", "ScanReport", "Secrets", "mask", "scan_topics"]

_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
    )
}
_MONTH_RE = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"

# Identifiers and words: a boundary is anything that is not a letter or a digit, so a base32 token
# ("k1.abc234...") can never contain a match.
_WORD = re.compile(r"[A-Za-z0-9/]+")
_NHS = re.compile(r"(?<![A-Za-z0-9])(\d{3})[ \-]?(\d{3})[ \-]?(\d{4})(?![A-Za-z0-9])")
_POSTCODE = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{1,2}\d[A-Za-z\d]?)[ \t]*(\d[A-Za-z]{2})(?![A-Za-z0-9])")
_COORD = re.compile(r"(?<![\d.])-?\d{1,3}\.\d{4,}")
_NAME_WORD = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*")

_DATE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?<!\d)(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?!\d)"), "ymd"),
    (re.compile(r"(?<![\d/.\-])(\d{1,2})[-/.](\d{1,2})[-/.](\d{4}|\d{2})(?!\d)"), "dmy|mdy"),
    (re.compile(r"(?<![A-Za-z0-9])(\d{4})(\d{2})(\d{2})(?![A-Za-z0-9])"), "ymd|dmy8"),
    (re.compile(rf"(?<!\d)(\d{{1,2}})(?:st|nd|rd|th)?[ \-]+{_MONTH_RE},?[ \-]+(\d{{4}})(?!\d)", re.I), "dMy"),
    (
        re.compile(
            rf"(?<![A-Za-z]){_MONTH_RE}[ \-]+(\d{{1,2}})(?:st|nd|rd|th)?,?[ \-]+(\d{{4}})(?!\d)", re.I
        ),
        "Mdy",
    ),
)

MIN_FREE_TEXT = 8  # shorter free text ("Park") would match ordinary words
MIN_NAME = 2
NAME_WORDS = 4  # longest full name looked for, in words ("Anne Marie O'Brien" is 3)


def mask(value: str) -> str:
    """The first two characters and the length: enough to find the value, not to read it."""
    return f"{value[:2]}…({len(value)})"


def _fold(text: str) -> str:
    """Case-folded, accents kept (names are compared as published, and as their ASCII forms)."""
    return unicodedata.normalize("NFC", text).casefold()


def _ascii(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _compact(value: str) -> str:
    return re.sub(r"[\s\-]", "", value).upper()


def _postcode(value: str) -> str | None:
    compact = re.sub(r"\s", "", value).upper()
    if not re.fullmatch(r"[A-Z]{1,2}\d[A-Z\d]?\d[A-Z]{2}", compact):
        return None
    return f"{compact[:-3]} {compact[-3:]}"


def _as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        for candidate in _dates_in(value):
            return candidate
    return None


def _year(text: str) -> list[int]:
    y = int(text)
    if len(text) == 4:
        return [y]
    return [1900 + y, 2000 + y]


def _make_date(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def _dates_in(text: str) -> Iterator[date]:
    """Every date some common format could be reading in `text` (ambiguous forms give several)."""
    for pattern, kind in _DATE_PATTERNS:
        for m in pattern.finditer(text):
            g = m.groups()
            candidates: list[date | None] = []
            if kind == "ymd":
                candidates.append(_make_date(int(g[0]), int(g[1]), int(g[2])))
            elif kind == "dmy|mdy":
                for y in _year(g[2]):
                    candidates.append(_make_date(y, int(g[1]), int(g[0])))
                    candidates.append(_make_date(y, int(g[0]), int(g[1])))
            elif kind == "ymd|dmy8":
                candidates.append(_make_date(int(g[0]), int(g[1]), int(g[2])))
                digits = "".join(g)
                candidates.append(_make_date(int(digits[4:]), int(digits[2:4]), int(digits[:2])))
            elif kind == "dMy":
                candidates.append(_make_date(int(g[2]), _MONTHS[g[1][:3].lower()], int(g[0])))
            else:  # Mdy
                candidates.append(_make_date(int(g[2]), _MONTHS[g[0][:3].lower()], int(g[1])))
            yield from (c for c in candidates if c is not None)


@dataclass(frozen=True)
class Leak:
    """One secret found somewhere it must not be (`secret` and `context` are masked)."""

    where: str
    kind: str
    secret: str
    context: str = ""

    def __str__(self) -> str:
        return f"{self.where}: {self.kind} {self.secret}" + (f" in {self.context}" if self.context else "")


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
            self.identifiers.add(_compact(text))

    def add_postcode(self, value: Any) -> None:
        if isinstance(value, str):
            pc = _postcode(value)
            if pc is not None:
                self.postcodes.add(pc)

    def add_date_of_birth(self, value: Any) -> None:
        d = _as_date(value)
        if d is not None:
            self.dates_of_birth.add(d)

    def add_name(self, given: Any, family: Any) -> None:
        parts = [str(p).strip() for p in (given, family) if isinstance(p, str) and p.strip()]
        for part in parts:
            if len(part) >= MIN_NAME:
                self.name_parts.add(_fold(part))
                self.name_parts.add(_fold(_ascii(part)))
        if len(parts) == 2:
            for a, b in (parts, parts[::-1]):
                for form in (f"{a} {b}", _ascii(f"{a} {b}")):
                    self.name_pairs.add(" ".join(w.casefold() for w in _NAME_WORD.findall(form)))

    def add_free_text(self, value: Any) -> None:
        if isinstance(value, str) and len(value.strip()) >= MIN_FREE_TEXT:
            self.free_text.add(_fold(value.strip()))

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

        for m in _NHS.finditer(text):
            digits = "".join(m.groups())
            if digits in s.identifiers:
                found("nhs_number", digits, m.start(), m.end())
        for m in _WORD.finditer(text):
            word = m.group().upper()
            if not word.isdigit() and word in s.identifiers:
                found("identifier", word, m.start(), m.end())
        for m in _POSTCODE.finditer(text):
            pc = f"{m.group(1)} {m.group(2)}".upper()
            if pc in s.postcodes:
                found("postcode", pc, m.start(), m.end())
        if s.dates_of_birth:
            for pattern, _ in _DATE_PATTERNS:
                for m in pattern.finditer(text):
                    for d in _dates_in(m.group()):
                        if d in s.dates_of_birth:
                            found("date_of_birth", d.isoformat(), m.start(), m.end())
                            break
        if s.name_pairs:
            words = [(w.group().casefold(), w.start(), w.end()) for w in _NAME_WORD.finditer(text)]
            for i in range(len(words) - 1):
                for n in range(2, min(NAME_WORDS, len(words) - i) + 1):
                    window = words[i : i + n]
                    name = " ".join(w for w, _, _ in window)
                    if name in s.name_pairs or _ascii(name) in s.name_pairs:
                        found("name", name, window[0][1], window[-1][2])
                        break
        if self._free_text:
            folded = _fold(text)
            for ft in self._free_text:
                i = folded.find(ft)
                if i >= 0:
                    found("free_text", ft, i, i + len(ft))
        if s.coordinates:
            for m in _COORD.finditer(text):
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
                    folded = _fold(leaf.strip())
                    if folded in parts or _ascii(folded) in parts:
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


def mask_context(context: str) -> str:
    """Context around a match, with every other digit run and word masked as well."""
    return re.sub(r"\d{4,}", lambda m: mask(m.group()), context.replace("\n", " "))


@dataclass
class ScanReport:
    """What a scan read (records per source) and every leak it found."""

    scanned: Counter[str] = field(default_factory=Counter)
    leaks: list[Leak] = field(default_factory=list)

    def extend(self, where: str, leaks: Iterable[Leak], count: int = 1) -> None:
        self.scanned[where] += count
        self.leaks.extend(leaks)

    def summary(self, limit: int = 20) -> str:
        by_kind = Counter(leak.kind for leak in self.leaks)
        lines = [f"{len(self.leaks)} leaks ({dict(by_kind)}) in {sum(self.scanned.values())} items scanned"]
        lines += [str(leak) for leak in self.leaks[:limit]]
        return "\n".join(lines)


def scan_topics(
    kafka_config: dict[str, Any],
    scanner: LeakScanner,
    prefixes: Sequence[str] = ("shared.", "views."),
    registry: Any = None,
    timeout: float = 120.0,
) -> ScanReport:
    """Read every topic starting with one of `prefixes` to its end and scan keys, values and headers.

    Values in the registry wire format are decoded with `registry` (a `SchemaRegistryClient`), so
    a field is matched by its value, not by Avro bytes; anything else is read as JSON or text.
    """
    from confluent_kafka.admin import AdminClient

    from streams.avro.serde import SchemaCache, decode
    from streams.kafka.reader import read_to_end

    cache = SchemaCache(registry) if registry is not None else None

    def avro(data: bytes) -> Any:
        if cache is None or data[:1] != b"\x00":
            raise ValueError("not registry-framed")
        return decode(data, cache)[1]

    report = ScanReport()
    names = AdminClient(kafka_config).list_topics(timeout=15).topics
    for topic in sorted(t for t in names if t.startswith(tuple(prefixes))):
        report.scanned[topic] += 0
        for msg in read_to_end(kafka_config, topic, timeout=timeout):
            where = f"{topic}[{msg.partition()}]@{msg.offset()}"
            leaks = scanner.scan_bytes(where, msg.value(), avro)
            key = msg.key()
            if key:
                leaks += scanner.scan_text(where + " key", key.decode("utf-8", "replace"))
            headers: Any = msg.headers() or []
            for name, value in headers.items() if isinstance(headers, dict) else headers:
                if isinstance(value, bytes | str) and value:
                    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
                    leaks += scanner.scan_text(f"{where} header {name}", text)
            report.extend(topic, leaks)
    return report
