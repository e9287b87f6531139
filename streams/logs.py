"""Structured logging for every Sharing Bus process, with personal data scrubbed as defence in depth.

Code must never log personal data; `PersonalDataFilter` is the safety net for when it does anyway
(an exception message quoting a bad value, a library echoing a record). It sits on the handler, so
it sees every record that reaches output, whichever logger emitted it.

`logging_config(settings)` is a `logging.config.dictConfig` dict, usable as Faust's
`logging_config` (set `worker_redirect_stdouts=False` too, or printed text arrives as WARNING lines).
Logs go to stderr: stdout carries the `<name>: <address>` lines scripts wait for.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
from datetime import UTC, datetime
from typing import Any

from streams.settings import Settings

# Order matters: longer, more specific shapes first so a UPN is not half-eaten by another pattern.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # UPN: a check letter, 11 digits, then a digit (or a letter for a temporary UPN).
    (re.compile(r"\b[A-Za-z]\d{11}[0-9A-Za-z]\b"), "[upn]"),
    # PNC ID: 2- or 4-digit year / serial / check letter, e.g. 98/1234567A, 2005/123A.
    (re.compile(r"\b(?:\d{2}|\d{4})/\d{1,7}[A-Za-z]\b"), "[pnc_id]"),
    # NHS number: 10 digits, optionally grouped 3-3-4 with spaces or dashes.
    (re.compile(r"(?<![\d-])\d{3}[ -]?\d{3}[ -]?\d{4}(?![\d-])"), "[nhs_number]"),
    # Full UK postcode (outward + inward); an outward code alone (a district) is not personal.
    (re.compile(r"\b[A-Za-z]{1,2}\d[A-Za-z\d]?\s?\d[A-Za-z]{2}\b"), "[postcode]"),
    # Dates that could be a date of birth: ISO (not a timestamp) and day/month/year forms.
    (re.compile(r"\b(?:18|19|20)\d{2}-[01]\d-[0-3]\d\b(?![T ]\d{2}:)"), "[date]"),
    (re.compile(r"\b[0-3]?\d[/.-][01]?\d[/.-](?:18|19|20)\d{2}\b"), "[date]"),
)

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def scrub(text: str) -> str:
    """Replace anything shaped like a personal identifier or a date of birth with a placeholder."""
    for pattern, placeholder in _PATTERNS:
        text = pattern.sub(placeholder, text)
    return text


def _scrub_value(value: Any) -> Any:
    """Scrub strings inside `extra` values; other objects are scrubbed as their `str()`."""
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):  # a 10-digit int may be an NHS number
        scrubbed = scrub(str(value))
        return value if scrubbed == str(value) else scrubbed
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {str(k): _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub_value(v) for v in value]
    return scrub(str(value))


class PersonalDataFilter(logging.Filter):
    """Scrubs the formatted message, `extra` string values and exception text of every record.

    The message is rendered once (msg % args) and the args dropped: an argument's `str()` may hold
    personal data that a template-only scrub would miss.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the record
            message = f"{record.msg!s} {record.args!r}"
        record.msg, record.args = scrub(message), None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRS:
                record.__dict__[key] = _scrub_value(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, any `extra` fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and key not in entry:
                entry[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def logging_config(settings: Settings) -> dict[str, Any]:
    """A dictConfig dict: one stderr handler, JSON or text, with the personal-data filter."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if settings.log_json else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"personal_data": {"()": f"{__name__}.PersonalDataFilter"}},
        "formatters": {"default": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": ["personal_data"],
            }
        },
        "root": {"level": settings.log_level.upper(), "handlers": ["default"]},
        # Chatty client libraries: their INFO lines are connection churn, not events.
        "loggers": {name: {"level": "WARNING"} for name in ("aiokafka", "kafka", "urllib3", "httpx")},
    }


def configure_logging(settings: Settings) -> None:
    """Apply `logging_config(settings)` to this process (CLI commands; Faust workers pass the dict)."""
    logging.config.dictConfig(logging_config(settings))
