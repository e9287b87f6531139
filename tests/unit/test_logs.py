"""Logging: identifiers are scrubbed from every part of a record; JSON lines parse."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator

import pytest

from streams.logs import JsonFormatter, PersonalDataFilter, logging_config, scrub
from streams.settings import Settings

IDENTIFIERS = {
    "nhs_number": ["9434765919", "943 476 5919", "943-476-5919"],
    "upn": ["A123456789012", "H801200001001", "A12345678901B"],
    "pnc_id": ["98/1234567A", "2005/123Z"],
    "postcode": ["RG1 2AB", "rg12ab", "SW1A 1AA", "OX4 1GB"],
    "date": ["2009-03-14", "14/03/2009", "4.3.2009"],
}


@pytest.mark.parametrize(
    ("kind", "value"), [(kind, value) for kind, values in IDENTIFIERS.items() for value in values]
)
def test_scrub_replaces_identifier(kind: str, value: str) -> None:
    out = scrub(f"subject {value} was seen")
    assert value not in out
    assert out == f"subject [{kind}] was seen"


@pytest.mark.parametrize(
    "text",
    [
        "consumed 25 events from raw.tvp.police.crime_recorded partition 3 offset 12345",
        "event 123e4567-e89b-12d3-a456-426614174000 denied: no agreement",
        "district RG1 and sector OX4 are fine",  # outward codes alone are not personal
        "worker started at 2026-11-25T14:33:02+00:00",  # timestamps are not dates of birth
        "token k1.abcdefghijklmnopqrstuvwxyz shared",
    ],
)
def test_scrub_leaves_operational_text_alone(text: str) -> None:
    assert scrub(text) == text


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(PersonalDataFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.logs.captured")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_message_args_extra_and_exception_are_scrubbed(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.info("bad nhs %s for %s", "9434765919", {"postcode": "RG1 2AB"}, extra={"upn": "A123456789012"})
    logger.warning("dob", extra={"fields": {"dob": "2009-03-14", "nhs": 9434765919}, "count": 3})
    try:
        raise ValueError("invalid PNC 98/1234567A")
    except ValueError:
        logger.exception("decode failed")
    text = stream.getvalue()
    for secret in ("9434765919", "RG1 2AB", "A123456789012", "2009-03-14", "98/1234567A"):
        assert secret not in text
    first, second, third = _lines(stream)
    assert first["message"] == "bad nhs [nhs_number] for {'postcode': '[postcode]'}"
    assert first["upn"] == "[upn]" and first["level"] == "INFO" and first["logger"] == "test.logs.captured"
    assert second["fields"] == {"dob": "[date]", "nhs": "[nhs_number]"} and second["count"] == 3
    assert "ValueError: invalid PNC [pnc_id]" in str(third["exc"])


def test_logging_config_json_lines_parse_and_are_scrubbed(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        logging.config.dictConfig(logging_config(Settings(log_json=True, log_level="debug")))
        logging.getLogger("sharingbus.test").debug("linked %s", "943 476 5919")
        logging.getLogger("aiokafka").info("connection churn")  # quietened to WARNING
    finally:
        root.handlers[:], root.level = saved
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout is reserved for `<name>: <address>` lines
    lines = [json.loads(line) for line in captured.err.splitlines()]
    assert [line["message"] for line in lines] == ["linked [nhs_number]"]
    assert lines[0]["level"] == "DEBUG"


def test_logging_config_text_format(capsys: pytest.CaptureFixture[str]) -> None:
    config = logging_config(Settings(log_json=False))
    assert config["formatters"]["default"] == {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"}
    assert config["handlers"]["default"]["filters"] == ["personal_data"]
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        logging.config.dictConfig(config)
        logging.getLogger("sharingbus.test").info("postcode OX4 1GB")
    finally:
        root.handlers[:], root.level = saved
    assert capsys.readouterr().err.rstrip().endswith("INFO    sharingbus.test: postcode [postcode]")


def test_logging_config_is_fresh_each_call() -> None:
    """Faust/mode mutate the dict they are given (pop "merge"), so never share one."""
    settings = Settings()
    assert logging_config(settings) is not logging_config(settings)
