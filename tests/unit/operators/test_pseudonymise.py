"""pseudonymise: validate, normalise, then keyed token in the plan's (or overridden) domain."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from streams.errors import ConfigurationError
from streams.privacy.identifiers import InvalidIdentifier
from streams.privacy.keys import KeyRing
from streams.privacy.operators import Transform, get_operator, parse_params
from tests.support.tokens import expected_token

from ._support import KEY, event_at


def token(domain: str, kind: str, value: str, key: bytes = KEY, kid: str = "k1") -> str:
    return expected_token(key, kid, domain, kind, value)


DOMAIN = "recipient:vru_analysts"


@pytest.mark.parametrize(
    ("kind", "raw", "normalised"),
    [
        ("nhs_number", "943 476 5919", "9434765919"),
        ("upn", "b801200005001", "B801200005001"),
        ("pnc_id", "1979/0163001B", "79/0163001B"),
        ("local_id", " crn 123 ", "CRN123"),
        ("name", "O'Brien", "obrien"),
        ("date_of_birth", date(2010, 3, 4), "2010-03-04"),
        ("date_of_birth", "04/03/2010", "2010-03-04"),
        ("postcode", "rg12ab", "RG1 2AB"),
        ("value", " anything ", "anything"),
        ("value", 42, "42"),
    ],
)
def test_token_of_normalised_value(
    bind: Callable[..., Transform], kind: str, raw: object, normalised: str
) -> None:
    transform = bind("pseudonymise", {"identifier": kind})
    assert transform(raw, event_at()) == token(DOMAIN, kind, normalised)


def test_spellings_of_one_identifier_share_a_token(bind: Callable[..., Transform]) -> None:
    t = bind("pseudonymise", {"identifier": "nhs_number"})
    assert t("9434765919", {}) == t("943-476-5919", {}) == t(" 943 476 5919 ", {})


def test_invalid_identifier_raises(bind: Callable[..., Transform]) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        bind("pseudonymise", {"identifier": "nhs_number"})("9434765918", event_at())
    assert info.value.kind == "nhs_number" and "9434765918" not in str(info.value)


def test_domain_override_and_recipient_domains(bind: Callable[..., Transform]) -> None:
    own = bind("pseudonymise", {"identifier": "upn"})("B801200005001", {})
    other = bind("pseudonymise", {"identifier": "upn"}, domain="recipient:school_nurses")("B801200005001", {})
    purpose = bind("pseudonymise", {"identifier": "upn", "domain": "purpose:problem_profile"})(
        "B801200005001", {}
    )
    assert own != other != purpose != own
    assert purpose == token("purpose:problem_profile", "upn", "B801200005001")


def test_uses_active_key_at_bind_time(ctx_factory: Callable[..., object]) -> None:
    ring = KeyRing.from_secrets({"k1": KEY, "k2": bytes(range(1, 33))}, active="k2")
    params = parse_params("pseudonymise", {"identifier": "nhs_number"})
    t = get_operator("pseudonymise").bind(params, ctx_factory(keyring=ring))  # type: ignore[arg-type]
    assert t("9434765919", {}) == token(DOMAIN, "nhs_number", "9434765919", bytes(range(1, 33)), "k2")


def test_output_type() -> None:
    op, params = get_operator("pseudonymise"), parse_params("pseudonymise", {"identifier": "date_of_birth"})
    assert op.output_type(params, {"type": "int", "logicalType": "date"}) == "string"
    assert op.output_type(params, "string") == "string"
    with pytest.raises(ConfigurationError, match="pseudonymise"):
        op.output_type(params, {"type": "record", "name": "X", "fields": []})


def test_each_computed_pseudonym_is_counted_once(bind: Callable[..., Transform]) -> None:
    from streams import metrics

    counter = metrics.PSEUDONYMISATIONS.labels(kind="local_id")
    before = counter._value.get()
    t = bind("pseudonymise", {"identifier": "local_id"})
    t("CRN1", {})
    t("CRN1", {})  # the plan's memo answers the repeat: no second HMAC
    t("CRN2", {})
    assert counter._value.get() - before == 2
