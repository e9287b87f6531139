"""keep, drop and redact: the trivial operators, and their output types."""

from __future__ import annotations

from collections.abc import Callable

from streams.privacy.operators import Transform, get_operator, parse_params

from ._support import event_at


def test_keep(bind: Callable[..., Transform]) -> None:
    assert bind("keep", {}, "double")(51.5, event_at()) == 51.5
    date_type = {"type": "int", "logicalType": "date"}
    assert get_operator("keep").output_type(parse_params("keep", {}), date_type) == date_type


def test_drop_removes_the_field() -> None:
    assert get_operator("drop").output_type(parse_params("drop", {}), "string") is None


def test_redact_default_and_custom(bind: Callable[..., Transform]) -> None:
    assert bind("redact")("stabbed outside the chip shop", event_at()) == "[REDACTED]"
    assert bind("redact", {"replacement": "***"})("x", event_at()) == "***"
    op = get_operator("redact")
    assert op.output_type(parse_params("redact", {}), "string") == "string"
    assert op.output_type(parse_params("redact", {}), "long") == "string"


def test_redact_to_null(bind: Callable[..., Transform]) -> None:
    params = parse_params("redact", {"replacement": None})
    assert get_operator("redact").output_type(params, "string") == "null"
    assert bind("redact", {"replacement": None})("free text", event_at()) is None
