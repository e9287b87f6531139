"""Coercion of partner values into an event type's Avro shape, with every problem noted by path.

Partners send plain dicts, pydantic models and CSV cells: ISO strings (and UK dd/mm/yyyy) become
dates and times, naive times are read as Europe/London, "3" becomes 3 for ints, "Suspension" (or a
unique prefix such as "M" for MALE) becomes the enum symbol, "a;b" becomes a list for arrays. What
cannot be made safe is reported with its dotted path, never with personal data in the reason
(reasons reach logs and rejection reports).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from streams.avro.event_types import EventType

__all__ = ["LOCAL_TZ", "coercer", "plain"]

LOCAL_TZ = ZoneInfo("Europe/London")


def plain(value: Any) -> Any:
    """A pydantic model as its dict; anything else as it is."""
    dump = getattr(value, "model_dump", None)
    return dump() if callable(dump) else value


_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}
_DMY = re.compile(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?")
_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})")
_WORDY = re.compile(r"(\d{1,2})(?:st|nd|rd|th)?[ -]([A-Za-z]{3,9})\.?,?[ -](\d{4})")
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
    )
}
_EPOCH = date(1970, 1, 1)
_INT32 = (-(2**31), 2**31 - 1)


class _Bad(ValueError):
    """A value that cannot be coerced; the message reads after the value ("is not a date")."""


_COERCERS: dict[int, _Coercer] = {}


def coercer(et: EventType) -> _Coercer:
    """One per parsed schema: the walk's lookups are computed once, not per event."""
    c = _COERCERS.get(id(et.parsed))
    if c is None or c.parsed is not et.parsed:
        c = _COERCERS[id(et.parsed)] = _Coercer(et)
    return c


class _Coercer:
    """Walks a parsed schema and a value together, fixing what is safe and noting the rest."""

    def __init__(self, et: EventType) -> None:
        self.parsed = et.parsed
        self.named: Mapping[str, Any] = et.parsed.get("__named_schemas", {})
        self.fields = et.fields
        self._names: dict[int, frozenset[str]] = {}

    def _describe(self, v: Any, path: str) -> str:
        """The value as shown in a reason: never for personal data (reasons reach logs and reports)."""
        info = self.fields.get(re.sub(r"\[\d+\]", "[]", path))
        if info is not None and any(t.startswith("pii:") for t in info.tags):
            return "the value"
        return repr(v)

    def value(self, t: Any, v: Any, path: str, problems: list[tuple[str, str]]) -> Any:
        if isinstance(t, str) and t in self.named:
            t = self.named[t]
        if isinstance(t, list):
            return self._union(t, v, path, problems)
        kind = t if isinstance(t, str) else t["type"]
        logical = None if isinstance(t, str) else t.get("logicalType")
        try:
            if kind == "record":
                return self._record(t, v, path, problems)
            if kind == "array":
                return self._array(t, v, path, problems)
            if kind == "map":
                return self._map(t, v, path, problems)
            if v is None:
                raise ValueError("must not be empty" if kind != "null" else "")
            if logical is None and kind == "string" and isinstance(v, str):
                return v  # the common case, first
            if kind == "enum":
                return _enum(t, v)
            if logical == "timestamp-millis":
                return _timestamp(v)
            if logical == "date":
                return _date(v)
            if logical == "uuid":
                try:
                    return str(uuid.UUID(str(v)))
                except ValueError:
                    raise _Bad("is not a UUID") from None
            return _primitive(kind, v)
        except _Bad as exc:
            problems.append((path or "(event)", f"{self._describe(v, path)} {exc}"))
            return None
        except (ValueError, TypeError, OverflowError) as exc:
            problems.append((path or "(event)", str(exc) or "invalid value"))
            return None

    def _union(self, t: list[Any], v: Any, path: str, problems: list[tuple[str, str]]) -> Any:
        if v is None or v == "":
            if "null" in t:
                return None
            problems.append((path, "must not be empty"))
            return None
        branches = [b for b in t if b != "null"]
        if len(branches) == 1:
            return self.value(branches[0], v, path, problems)
        for b in branches:  # wider unions: the first branch that takes the value
            attempt: list[tuple[str, str]] = []
            out = self.value(b, v, path, attempt)
            if not attempt:
                return out
        problems.append((path, "matches no branch of the union"))
        return None

    def _record(self, t: Mapping[str, Any], v: Any, path: str, problems: list[tuple[str, str]]) -> Any:
        v = plain(v)
        if not isinstance(v, Mapping):
            raise TypeError(f"must be a record (mapping), not {type(v).__name__}")
        known = self._names.get(id(t))
        if known is None:
            known = self._names[id(t)] = frozenset(f["name"] for f in t["fields"])
        if not known.issuperset(v):
            for extra in sorted(set(v) - known):
                problems.append((_join(path, str(extra)), "unknown field"))
        out = {}
        for f in t["fields"]:
            fpath = _join(path, f["name"])
            if f["name"] in v:
                out[f["name"]] = self.value(f["type"], v[f["name"]], fpath, problems)
            elif "default" in f:
                d = f["default"]
                out[f["name"]] = list(d) if isinstance(d, list) else d
            elif isinstance(f["type"], list) and "null" in f["type"]:
                out[f["name"]] = None
            else:
                problems.append((fpath, "required field missing"))
        return out

    def _array(self, t: Mapping[str, Any], v: Any, path: str, problems: list[tuple[str, str]]) -> Any:
        if isinstance(v, str):  # CSV cells: "GANGS;GOING_MISSING"
            v = [p.strip() for p in v.split(";") if p.strip()]
        if not isinstance(v, list | tuple):
            raise TypeError(f"must be a list, not {type(v).__name__}")
        return [self.value(t["items"], item, f"{path}[{i}]", problems) for i, item in enumerate(v)]

    def _map(self, t: Mapping[str, Any], v: Any, path: str, problems: list[tuple[str, str]]) -> Any:
        if not isinstance(v, Mapping):
            raise TypeError(f"must be a mapping, not {type(v).__name__}")
        return {str(k): self.value(t["values"], item, f"{path}{{{k}}}", problems) for k, item in v.items()}


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _enum(t: Mapping[str, Any], v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError(f"must be one of the symbols, not {type(v).__name__}")
    if v in t["symbols"]:
        return v
    symbol = re.sub(r"[\s\-/]+", "_", v.strip()).upper()
    if symbol not in t["symbols"]:  # a unique prefix is enough: "M" -> MALE, "Perm" -> PERMANENT
        matches = [s for s in t["symbols"] if symbol and s.startswith(symbol)]
        symbol = matches[0] if len(matches) == 1 else symbol
    if symbol not in t["symbols"]:
        shown = ", ".join(t["symbols"][:12]) + (", ..." if len(t["symbols"]) > 12 else "")
        raise _Bad(f"is not one of {shown}")
    return symbol


def _primitive(kind: str, v: Any) -> Any:
    if kind == "string":
        if isinstance(v, str):
            return v
        if isinstance(v, int) and not isinstance(v, bool):
            return str(v)  # NHS numbers read as numbers from JSON
        raise TypeError(f"must be text, not {type(v).__name__}")
    if kind == "boolean":
        if isinstance(v, bool):
            return v
        text = str(v).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise _Bad("is not true/false")
    if kind in ("int", "long"):
        if isinstance(v, bool):
            raise TypeError("must be a whole number, not true/false")
        try:
            n = float(v.strip()) if isinstance(v, str) else v
        except ValueError:
            n = None
        if not isinstance(n, int | float) or n != int(n):
            raise _Bad("is not a whole number")
        n = int(n)
        if kind == "int" and not _INT32[0] <= n <= _INT32[1]:
            raise ValueError(f"{n} is out of range for an int")
        return n
    if kind in ("float", "double"):
        if isinstance(v, bool):
            raise TypeError("must be a number, not true/false")
        try:
            return float(v.strip()) if isinstance(v, str) else float(v)
        except ValueError:
            raise _Bad("is not a number") from None
    if kind == "null":
        raise ValueError("must be empty")
    if kind == "bytes":
        if isinstance(v, bytes):
            return v
        raise TypeError(f"must be bytes, not {type(v).__name__}")
    raise TypeError(f"unsupported Avro type {kind}")


def _timestamp(v: Any) -> datetime:
    if isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=LOCAL_TZ)
    if isinstance(v, date):
        return datetime(v.year, v.month, v.day, tzinfo=LOCAL_TZ)
    if isinstance(v, int | float) and not isinstance(v, bool):
        return datetime.fromtimestamp(v / 1000, UTC)  # epoch milliseconds
    if not isinstance(v, str):
        raise TypeError(f"must be a date-time, not {type(v).__name__}")
    text = v.strip()
    m = _DMY.fullmatch(text)
    try:
        if m:
            d, mo, y, hh, mm, ss = m.groups()
            dt = datetime(int(y), int(mo), int(d), int(hh or 0), int(mm or 0), int(ss or 0))
        else:
            dt = datetime.fromisoformat(text)
    except ValueError:
        raise _Bad("is not a date-time (ISO 8601 or dd/mm/yyyy hh:mm)") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=LOCAL_TZ)


def _date(v: Any) -> date:
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return _EPOCH + timedelta(days=v)  # Avro's own representation
    if not isinstance(v, str):
        raise TypeError(f"must be a date, not {type(v).__name__}")
    text = v.strip()
    m = _DMY.fullmatch(text) or _COMPACT.fullmatch(text)
    wordy = _WORDY.fullmatch(text)
    try:
        if wordy:  # "3 Mar 2009", "3rd March 2009"
            month = _MONTHS.get(wordy.group(2)[:3].lower(), 0)
            return date(int(wordy.group(3)), month, int(wordy.group(1)))
        if m and len(m.group(1)) == 4:
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        if m:
            return date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
        return date.fromisoformat(text[:10]) if len(text) >= 10 else date.fromisoformat(text)
    except ValueError:
        raise _Bad("is not a date (YYYY-MM-DD or dd/mm/yyyy)") from None
