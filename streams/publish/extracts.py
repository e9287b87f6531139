"""Partner extracts (CSV or JSON Lines) to events, row by row, with a rejection report.

CSV columns name dotted field paths (`subject.nhs_number`, `location.postcode`); an optional
mapping file renames a partner's own columns (`NHS No: subject.nhs_number`; a list fills several
fields, null ignores the column). Empty cells are null, arrays of enums are `;`-separated. Arrays
of records (crime `people`) need JSON Lines. The file is streamed, so a million rows run in
bounded memory, and no bad row stops the run: every problem becomes one line of
`<file>.rejections.csv` (row, field, reason), where row is the line a spreadsheet shows
(header = 1) for CSV and the line number for JSON Lines.

What makes the whole file unreadable is found before anything is published (`ExtractReader.check`)
and said in one line with where: bytes that are not the file's encoding (UTF-8 unless
`encoding` says otherwise: spreadsheets on Windows save cp1252), a quoted cell that is never
closed (otherwise the rest of the file reads as one cell and every field looks missing), a file
with no rows.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from streams.avro import paths
from streams.avro.event_types import EventType
from streams.errors import ConfigurationError, ValidationError
from streams.files import read_yaml
from streams.publish.publisher import DeliveryError, EventInvalid, Publisher

__all__ = [
    "ExtractReader",
    "ExtractSummary",
    "RejectionReport",
    "Row",
    "csv_columns",
    "flatten",
    "load_mapping",
    "publish_extract",
    "rejections_path",
]

ColumnMapping = Mapping[str, tuple[str, ...]]


def load_mapping(path: Path) -> dict[str, tuple[str, ...]]:
    """`source column -> dotted path(s)` from YAML; ConfigurationError names the file and key."""
    raw = read_yaml(path, "mapping")
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{path}: expected a mapping of source column -> field path")
    out: dict[str, tuple[str, ...]] = {}
    for column, target in raw.items():
        if target is None:
            out[str(column)] = ()
        elif isinstance(target, str):
            out[str(column)] = (target,)
        elif isinstance(target, list) and all(isinstance(t, str) for t in target):
            out[str(column)] = tuple(target)
        else:
            raise ConfigurationError(f"{path}: {column}: expected a field path, a list of paths or null")
    return out


def csv_columns(event_type: EventType) -> list[str]:
    """Paths a CSV column can fill: leaves outside arrays of records."""
    nested = {path.split("[]")[0] for path in event_type.fields if "[]" in path}
    return [
        path
        for path, info in event_type.fields.items()
        if "[]" not in path
        and path not in nested
        and not (isinstance(info.avro_type, dict) and info.avro_type.get("type") == "record")
    ]


def flatten(
    event: Mapping[str, Any], columns: list[str], fmt: Callable[[str, Any], str] | None = None
) -> dict[str, str]:
    """The CSV row for `event` (the inverse of reading): dotted columns, arrays joined with `;`."""
    row = {}
    for column in columns:
        value = paths.getter(column)(event)
        if value is None:
            row[column] = ""
        elif fmt is not None:
            row[column] = fmt(column, value)
        elif isinstance(value, list):
            row[column] = ";".join(str(v) for v in value)
        elif isinstance(value, bool):
            row[column] = "true" if value else "false"
        elif hasattr(value, "isoformat"):
            row[column] = value.isoformat()
        else:
            row[column] = str(value)
    return row


def rejections_path(extract: Path) -> Path:
    return extract.with_name(extract.name + ".rejections.csv")


@dataclass
class Row:
    """One row turned into an event, or the problems that stopped it."""

    number: int
    event: dict[str, Any] | None
    problems: list[tuple[str, str]] = field(default_factory=list)


class _ByteCounter(io.RawIOBase):
    """Counts bytes read, so progress can be shown against the file size while streaming."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        self.count += n or 0
        return n or 0

    def close(self) -> None:
        self.raw.close()
        super().close()


class ExtractReader:
    """Iterates the rows of a CSV or JSON Lines extract as events (checks the header up front)."""

    def __init__(
        self,
        path: Path,
        event_type: EventType,
        mapping: ColumnMapping | None = None,
        encoding: str = "utf-8",
    ) -> None:
        self.path = path
        self.event_type = event_type
        self.mapping = dict(mapping or {})
        try:
            name = codecs.lookup(encoding).name
        except LookupError:
            raise ConfigurationError(f"unknown encoding {encoding!r} (e.g. utf-8, cp1252, latin-1)") from None
        self.encoding = "utf-8-sig" if name == "utf-8" else name  # a UTF-8 byte order mark is skipped
        self._shown_encoding = encoding
        self.format = "jsonl" if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else "csv"
        try:
            self.size = path.stat().st_size
        except OSError as exc:
            raise ConfigurationError(f"{path}: cannot read extract ({exc.strerror})") from None
        self._counter: _ByteCounter | None = None
        self._fields = set(event_type.fields)
        self._csv_fields = set(csv_columns(event_type))

    @property
    def bytes_read(self) -> int:
        return self._counter.count if self._counter else 0

    def check(self) -> int:
        """Rows in the file; ConfigurationError, naming the line, if the file cannot be read as a whole."""
        self._check_encoding()
        with self.path.open(encoding=self.encoding, newline="") as text:
            if self.format == "jsonl":
                rows = sum(1 for line in text if line.strip())
            else:
                reader = csv.reader(text, strict=True)
                rows, start = -1, 1
                try:
                    for _ in reader:
                        rows += 1
                        start = reader.line_num + 1
                except csv.Error as exc:
                    raise ConfigurationError(_csv_problem(self.path, start, str(exc))) from None
                if rows < 0:
                    raise ConfigurationError(f"{self.path}: the file is empty (no header, no rows)")
        if rows == 0:
            what = "has a header but no rows" if self.format == "csv" else "has no rows"
            raise ConfigurationError(f"{self.path}: {what}: nothing to publish")
        return rows

    def _check_encoding(self) -> None:
        decoder = codecs.getincrementaldecoder(self.encoding)(errors="strict")
        line, done = 1, False
        with self.path.open("rb") as raw:
            while not done:
                chunk = raw.read(1 << 20)
                done = not chunk
                try:
                    decoder.decode(chunk, final=done)
                except UnicodeDecodeError as exc:
                    where = line + chunk.count(b"\n", 0, max(0, exc.start))
                    bad = (
                        exc.object[exc.start : exc.start + 1].hex() if isinstance(exc.object, bytes) else "?"
                    )
                    raise ConfigurationError(
                        f"{self.path}: line {where} is not valid {self._shown_encoding} (byte 0x{bad}): "
                        "give the file's encoding, e.g. --encoding cp1252 for a spreadsheet saved on Windows"
                    ) from None
                line += chunk.count(b"\n")

    def __iter__(self) -> Iterator[Row]:
        self._counter = _ByteCounter(self.path.open("rb"))
        text = io.TextIOWrapper(io.BufferedReader(self._counter), encoding=self.encoding, newline="")
        with text:
            yield from self._csv(text) if self.format == "csv" else self._jsonl(text)

    def _targets(self, column: str) -> tuple[str, ...]:
        return self.mapping.get(column, (column,))

    def _csv(self, text: IO[str]) -> Iterator[Row]:
        reader = csv.DictReader(text, strict=True)
        columns = reader.fieldnames or []
        for column in columns:
            for target in self._targets(column):
                if target not in self._csv_fields:
                    hint = (
                        " (arrays of records need JSON Lines)" if target.split(".")[0] in self._fields else ""
                    )
                    raise ConfigurationError(
                        f"{self.path}: column {column!r} maps to {target!r}, "
                        f"not a field of {self.event_type.name}{hint}"
                    )
        for number, cells in enumerate(reader, start=2):
            event: dict[str, Any] = {}
            problems = []
            if None in cells:  # more cells than header columns
                problems.append(("(row)", f"{len(cells[None])} cell(s) beyond the header's columns"))
            for column in columns:
                value = cells.get(column)
                if value is None or not value.strip():
                    continue
                for target in self._targets(column):
                    _set(event, target, value.strip())
            yield Row(number, None if problems else event, problems)

    def _jsonl(self, text: IO[str]) -> Iterator[Row]:
        for number, line in enumerate(text, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield Row(number, None, [("(row)", f"invalid JSON: {exc.msg} at column {exc.colno}")])
                continue
            if not isinstance(obj, dict):
                yield Row(number, None, [("(row)", "a JSON Lines row must be an object")])
                continue
            event: dict[str, Any] = {}
            for key, value in obj.items():
                for target in self._targets(key):
                    _set(event, target, value)
            yield Row(number, event)


def _csv_problem(path: Path, line: int, message: str) -> str:
    if "unexpected end of data" in message:
        return (
            f'{path}: line {line}: a quoted cell is never closed (a " with no matching "), '
            "so the rest of the file would read as one cell: fix the quoting and publish again"
        )
    return f"{path}: line {line}: not valid CSV ({message}): fix the quoting and publish again"


def _set(event: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = event
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
        node[parts[-1]].update(value)
    else:
        node[parts[-1]] = value


class RejectionReport:
    """`row,field,reason` CSV, created on the first rejection (an old report is removed at start)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: set[int] = set()
        self.lines = 0
        self._fh: IO[str] | None = None
        self._writer: Any = None
        path.unlink(missing_ok=True)

    def add(self, row: int, problems: list[tuple[str, str]]) -> None:
        if self._writer is None:
            self._fh = self.path.open("w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._fh)
            self._writer.writerow(["row", "field", "reason"])
        for field_path, reason in problems:
            self._writer.writerow([row, field_path, reason])
            self.lines += 1
        self.rows.add(row)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()

    def __enter__(self) -> RejectionReport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class ExtractSummary:
    """`without_key`: rows published with a random id because a record key field was empty
    (publishing them again makes new events); `corrected`: rows sent as rectifications of events
    published before (counted in `published` too)."""

    rows: int = 0
    published: int = 0
    rejected: int = 0
    without_key: int = 0
    corrected: int = 0
    report: Path | None = None


def publish_extract(
    publisher: Publisher,
    event_type: str,
    path: Path,
    mapping: ColumnMapping | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    encoding: str = "utf-8",
) -> ExtractSummary:
    """Publish every good row, report every bad one; `on_progress(bytes_read, size)` per row.

    ConfigurationError, before anything is sent, when the file cannot be read as a whole.
    """
    reader = ExtractReader(path, publisher.catalogue.event_type(event_type), mapping, encoding)
    reader.check()
    summary = ExtractSummary()
    with RejectionReport(rejections_path(path)) as report:

        def delivered_for(number: int) -> Callable[[str, str | None], None]:
            def delivered(event_id: str, error: str | None) -> None:
                if error is None:
                    summary.published += 1
                else:
                    report.add(number, [("(delivery)", f"event {event_id} not delivered: {error}")])

            return delivered

        for row in reader:
            summary.rows += 1
            if row.event is None:
                report.add(row.number, row.problems)
            else:
                try:
                    sent = publisher.publish(event_type, row.event, on_delivery=delivered_for(row.number))
                    summary.without_key += sent.id_source == "random"
                    summary.corrected += sent.corrects is not None
                except EventInvalid as exc:
                    report.add(row.number, exc.problems)
                except ValidationError as exc:
                    report.add(row.number, [(exc.field, exc.reason)])
            if on_progress is not None:
                on_progress(reader.bytes_read, reader.size)
        try:
            publisher.flush()
        except DeliveryError as exc:  # failed deliveries were reported by their callbacks
            unreported = [reason for event_id, reason in exc.failures if event_id == "?"]
            if unreported:
                report.add(0, [("(delivery)", reason) for reason in unreported])
        summary.rejected = len(report.rows)
        summary.report = report.path if report.lines else None
    return summary
