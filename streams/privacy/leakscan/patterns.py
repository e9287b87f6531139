"""What a leak looks like in text: identifier, postcode, date, name and coordinate patterns, and masking.

Every identifier pattern needs a boundary that is not a letter or a digit, so a base32 token
("k1.abc234...") can never contain a match. Dates are read in every common format a value could
have been rewritten into; an ambiguous form gives every date it could mean.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
    )
}
_MONTH_RE = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"

# Identifiers and words: a boundary is anything that is not a letter or a digit, so a base32 token
# ("k1.abc234...") can never contain a match.
WORD = re.compile(r"[A-Za-z0-9/]+")
NHS = re.compile(r"(?<![A-Za-z0-9])(\d{3})[ \-]?(\d{3})[ \-]?(\d{4})(?![A-Za-z0-9])")
POSTCODE = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{1,2}\d[A-Za-z\d]?)[ \t]*(\d[A-Za-z]{2})(?![A-Za-z0-9])")
COORD = re.compile(r"(?<![\d.])-?\d{1,3}\.\d{4,}")
NAME_WORD = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*")

DATE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
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


def fold(text: str) -> str:
    """Case-folded, accents kept (names are compared as published, and as their ASCII forms)."""
    return unicodedata.normalize("NFC", text).casefold()


def ascii_form(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def compact(value: str) -> str:
    return re.sub(r"[\s\-]", "", value).upper()


def normal_postcode(value: str) -> str | None:
    compact = re.sub(r"\s", "", value).upper()
    if not re.fullmatch(r"[A-Z]{1,2}\d[A-Z\d]?\d[A-Z]{2}", compact):
        return None
    return f"{compact[:-3]} {compact[-3:]}"


def as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        for candidate in dates_in(value):
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


def dates_in(text: str) -> Iterator[date]:
    """Every date some common format could be reading in `text` (ambiguous forms give several)."""
    for pattern, kind in DATE_PATTERNS:
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


def mask_context(context: str) -> str:
    """Context around a match, with every other digit run and word masked as well."""
    return re.sub(r"\d{4,}", lambda m: mask(m.group()), context.replace("\n", " "))
