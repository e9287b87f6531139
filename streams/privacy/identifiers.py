"""Normalise and validate person identifiers before they are tokenised.

Tokens are only as good as their inputs: "943 476 5919" and "9434765919" must give one token, and a
mistyped NHS number must be caught (check digit) rather than silently become a new person. Every
normaliser returns a canonical value or raises `InvalidIdentifier`; error reasons never repeat the
input, because the input is personal data and errors end up in logs and dead-letter topics.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from streams.errors import ValidationError

__all__ = [
    "NORMALISERS",
    "InvalidIdentifier",
    "nhs_check_digit",
    "normalise_dob",
    "normalise_local_id",
    "normalise_name",
    "normalise_nhs",
    "normalise_pnc",
    "normalise_postcode",
    "normalise_upn",
    "pnc_check_char",
    "postcode_area",
    "postcode_district",
    "postcode_outward",
    "postcode_sector",
    "upn_check_letter",
]


class InvalidIdentifier(ValidationError):
    """An identifier of `kind` failed validation; `reason` never contains the value itself."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(kind, reason)
        self.kind = kind


# The identifying fields of a `sharingbus.Subject`: what the vault keeps for the owner, what
# linkage tokens are computed from, and what a subject request may name.
SUBJECT_FIELDS = (
    "nhs_number",
    "upn",
    "pnc_id",
    "local_id",
    "given_name",
    "family_name",
    "date_of_birth",
    "postcode",
)


def _text(kind: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and kind in ("nhs_number", "local_id"):
        return str(value)
    raise InvalidIdentifier(kind, f"expected text, got {type(value).__name__}")


# --- NHS number: 10 digits, modulus 11 check digit --------------------------------------------------

_NHS_SEPARATORS = str.maketrans("", "", " -\t")


def nhs_check_digit(first9: str) -> int | None:
    """Check digit for the first nine digits (weights 10..2); None when no valid number exists."""
    if len(first9) != 9 or not first9.isdigit():
        raise InvalidIdentifier("nhs_number", "check digit needs exactly 9 digits")
    check = 11 - sum(int(d) * w for d, w in zip(first9, range(10, 1, -1), strict=True)) % 11
    if check == 11:
        return 0
    return None if check == 10 else check


def normalise_nhs(value: Any) -> str:
    """'943 476 5919' / '943-476-5919' -> '9434765919'; the mod-11 check digit must match."""
    s = _text("nhs_number", value).strip().translate(_NHS_SEPARATORS)
    if len(s) != 10 or not s.isascii() or not s.isdigit():
        raise InvalidIdentifier("nhs_number", "must be 10 digits")
    if nhs_check_digit(s[:9]) != int(s[9]):
        raise InvalidIdentifier("nhs_number", "check digit does not match")
    return s


# --- UPN: check letter + LA(3) + establishment(4) + year(2) + serial(3) ---------------------------
# DfE (Common Basic Data Set / govtalk "Unique Pupil Number" 2.0): check letter index =
# sum(value * position) mod 23 over characters 2..13 (weights 2..13), read through the 23-letter
# alphabet below (no I, O, S). A temporary UPN ends in a letter from the same alphabet, whose value
# is its index in it (A=0 .. H=7, J=8 .. N=12, P=13 .. R=15, T=16 .. Z=22). Characters 2..12 are digits.

_UPN_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"
_UPN_RE = re.compile(r"[A-HJ-NP-RT-Z][0-9]{11}[0-9A-HJ-NP-RT-Z]")


def upn_check_letter(last12: str) -> str:
    """Check letter for the 12 characters after it (11 digits, then a digit or temporary letter)."""
    s = last12.upper()
    if len(s) != 12 or not s[:11].isdigit() or not (s[11].isdigit() or s[11] in _UPN_LETTERS):
        raise InvalidIdentifier("upn", "check letter needs 11 digits then a digit or letter")
    values = [int(c) if c.isdigit() else _UPN_LETTERS.index(c) for c in s]
    return _UPN_LETTERS[sum(v * w for v, w in zip(values, range(2, 14), strict=True)) % 23]


def normalise_upn(value: Any) -> str:
    """Upper-case, spaces removed; 13 characters with a correct check letter (temporary UPNs too)."""
    s = "".join(_text("upn", value).split()).upper()
    if not _UPN_RE.fullmatch(s):
        raise InvalidIdentifier("upn", "must be a check letter, 11 digits and a digit or letter")
    if upn_check_letter(s[1:]) != s[0]:
        raise InvalidIdentifier("upn", "check letter does not match")
    return s


# --- PNC ID: year / serial (up to 7 digits) + check letter ----------------------------------------

_PNC_LETTERS = "ZABCDEFGHJKLMNPQRTUVWXY"
_PNC_RE = re.compile(
    r"(?:(?P<yyyy>(?:19|20)[0-9]{2})|(?P<yy>[0-9]{2}))/(?P<serial>[0-9]{1,7})(?P<check>[A-Z])"
)
_PNC_COMPACT_RE = re.compile(r"(?P<yyyy>(?:19|20)[0-9]{2})(?P<serial>[0-9]{7})(?P<check>[A-Z])")


def pnc_check_char(body: str) -> str:
    """Check letter for 'YY' + 7-digit serial ('790163001'), or for 'YY/serial' / 'YYYY/serial'."""
    if "/" in body:
        year, _, serial = body.partition("/")
        body = year[-2:] + serial.zfill(7)
    if len(body) != 9 or not body.isdigit():
        raise InvalidIdentifier("pnc_id", "check letter needs a 2-digit year and a 7-digit serial")
    return _PNC_LETTERS[int(body) % 23]


def normalise_pnc(value: Any) -> str:
    """'1979/0163001B', '79/163001B', '19790163001B' -> '79/0163001B' (check letter verified)."""
    s = "".join(_text("pnc_id", value).split()).upper()
    m = _PNC_RE.fullmatch(s) or _PNC_COMPACT_RE.fullmatch(s)
    if m is None:
        raise InvalidIdentifier("pnc_id", "must look like YYYY/NNNNNNNA or YY/NNNNNNNA")
    yy = (m.group("yyyy") or m.group("yy"))[-2:]
    serial = m.group("serial").zfill(7)
    if pnc_check_char(yy + serial) != m.group("check"):
        raise InvalidIdentifier("pnc_id", "check letter does not match")
    return f"{yy}/{serial}{m.group('check')}"


# --- Local ids: partner-specific references (CRN, child id) ---------------------------------------


def normalise_local_id(value: Any) -> str:
    """Upper-case without whitespace; no structure is assumed, so only emptiness and length are checked."""
    s = "".join(_text("local_id", value).split()).upper()
    if not s:
        raise InvalidIdentifier("local_id", "is empty")
    if len(s) > 64:
        raise InvalidIdentifier("local_id", "is longer than 64 characters")
    return s


# --- Names ----------------------------------------------------------------------------------------
# Chosen rules (so that spellings seen across agencies meet): NFKD and drop combining marks
# ("Zoë" -> "zoe"), fold a few letters NFKD keeps ("ø" -> "o", "æ" -> "ae", "ß" -> "ss" via
# casefold), delete apostrophes ("O'Brien" -> "obrien"), turn every other non-letter (hyphen,
# dot, comma, digit) into a space ("Anne-Marie" -> "anne marie"), collapse whitespace.

_APOSTROPHES = dict.fromkeys(map(ord, "'’‘`´ʼ"), None)
_FOLDS = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"})


def normalise_name(value: Any) -> str:
    """Canonical name for matching: lower-case ASCII-ish letters separated by single spaces."""
    s = unicodedata.normalize("NFKD", _text("name", value))
    s = "".join(c for c in s if not unicodedata.combining(c)).casefold().translate(_FOLDS)
    s = "".join(c if c.isalpha() else " " for c in s.translate(_APOSTROPHES))
    s = " ".join(s.split())
    if not s:
        raise InvalidIdentifier("name", "has no letters")
    return s


# --- Dates of birth -------------------------------------------------------------------------------

_MONTHS = {
    m: i
    for i, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for m in names
}
_DOB_PATTERNS = [
    (re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ].*)?"), "ymd"),  # ISO date or datetime
    (re.compile(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})"), "dmy"),  # UK order, never US
    (re.compile(r"(\d{1,2})(?:st|nd|rd|th)?[ -]([A-Za-z]{3,9})\.?,?[ -](\d{4})"), "dMy"),
    (re.compile(r"(\d{4})(\d{2})(\d{2})"), "ymd"),
]


def _parse_dob(s: str) -> date:
    for pattern, order in _DOB_PATTERNS:
        m = pattern.fullmatch(s)
        if m is None:
            continue
        a, b, c = m.groups()
        if order == "ymd":
            y, mo, d = int(a), int(b), int(c)
        elif order == "dmy":
            d, mo, y = int(a), int(b), int(c)
        else:
            d, y = int(a), int(c)
            mo = _MONTHS.get(b.lower(), 0)
        try:
            return date(y, mo, d)
        except ValueError:
            raise InvalidIdentifier("date_of_birth", "is not a real calendar date") from None
    raise InvalidIdentifier("date_of_birth", "unrecognised date format")


def normalise_dob(value: Any, *, today: date | None = None) -> date:
    """A `date` from a date/datetime or ISO, dd/mm/yyyy, dd-mm-yyyy, 'd Mon yyyy' or yyyymmdd text.

    Two-digit years and US month-first order are not accepted: both would guess. Future dates and
    ages over 120 are rejected as data-entry errors.
    """
    if isinstance(value, datetime):
        d = value.date()
    elif isinstance(value, date):
        d = value
    else:
        d = _parse_dob(_text("date_of_birth", value).strip())
    today = today or date.today()
    if d > today:
        raise InvalidIdentifier("date_of_birth", "is in the future")
    if (today.year - d.year - ((today.month, today.day) < (d.month, d.day))) > 120:
        raise InvalidIdentifier("date_of_birth", "gives an age over 120")
    return d


# --- Postcodes ------------------------------------------------------------------------------------
# Shape only (Royal Mail formats A9, A99, AA9, AA99, A9A, AA9A + 9AA, plus GIR 0AA); whether the
# postcode exists is not checked (that needs the ONS postcode directory).

_POSTCODE_RE = re.compile(r"([A-Z]{1,2}[0-9][0-9A-Z]?|GIR)([0-9][A-Z]{2})")


def normalise_postcode(value: Any) -> str:
    """'rg12ab' / 'RG1  2AB' -> 'RG1 2AB'."""
    s = "".join(_text("postcode", value).split()).upper()
    m = _POSTCODE_RE.fullmatch(s)
    if m is None or (m.group(1) == "GIR" and m.group(2) != "0AA"):
        raise InvalidIdentifier("postcode", "is not a UK postcode shape")
    return f"{m.group(1)} {m.group(2)}"


def postcode_outward(value: Any) -> str:
    """Outward code: 'RG1 2AB' -> 'RG1' (the most s.17A allows for depersonalised locations)."""
    return normalise_postcode(value).split(" ")[0]


def postcode_district(value: Any) -> str:
    """Postcode district, which is the outward code: 'RG1 2AB' -> 'RG1'."""
    return postcode_outward(value)


def postcode_sector(value: Any) -> str:
    """Postcode sector: 'RG1 2AB' -> 'RG1 2'."""
    return normalise_postcode(value)[:-2]


def postcode_area(value: Any) -> str:
    """Postcode area (leading letters): 'RG1 2AB' -> 'RG'."""
    pc = normalise_postcode(value)
    return pc[: 2 if pc[1].isalpha() else 1]


NORMALISERS: dict[str, Callable[[Any], Any]] = {
    "nhs_number": normalise_nhs,
    "upn": normalise_upn,
    "pnc_id": normalise_pnc,
    "local_id": normalise_local_id,
    "name": normalise_name,
    "date_of_birth": normalise_dob,
    "postcode": normalise_postcode,
}
