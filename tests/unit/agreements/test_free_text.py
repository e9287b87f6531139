"""Free text is denied by default: a string with no enum and no validated format is never shared as is.

The attack (issue 17, finding 4): a partner types "Robbery of Jordan SMITH dob 17/05/2010 NHS
9434765919" into `offence_description`, or a name and full postcode into `location.lsoa_code`;
untagged, both reached recipients verbatim.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streams.agreements import AgreementSet, check_agreements, compile_plans
from streams.agreements.model import Agreement
from streams.avro.catalogue import Catalogue
from streams.errors import ConfigurationError
from streams.privacy.keys import KeyRing

from .conftest import EXAMPLES, TODAY, base_agreement

ET = "event_types.police.crime_recorded.fields"
ATTACK = "Robbery of Jordan SMITH dob 17/05/2010 NHS 9434765919"


def _errors(d: Path, catalogue: Catalogue) -> list[str]:
    _, issues = check_agreements(d, catalogue, today=TODAY)
    return [str(i) for i in issues if i.severity == "error"]


@pytest.mark.parametrize(
    "field",
    ["offence_description", "crime_reference"],  # tagged free text; an untagged string
)
def test_the_checker_refuses_to_keep_a_string_without_enum_or_format(
    field: str, catalogue: Catalogue, agreement_dir: Callable[..., Path]
) -> None:
    doc = base_agreement()
    doc["event_types"]["police.crime_recorded"]["fields"][field] = "keep"
    errors = _errors(agreement_dir({"test.yaml": doc}), catalogue)
    assert any(f"{ET}.{field}: {field}: " in e and "free text" in e for e in errors), errors


def test_formatted_strings_and_transformed_free_text_may_be_shared(
    catalogue: Catalogue, agreement_dir: Callable[..., Path]
) -> None:
    doc = base_agreement()
    doc["event_types"]["police.crime_recorded"]["fields"].update(
        {
            "location.lsoa_code": "keep",  # format lsoa_code
            "offence_code": "keep",  # format offence_code
            "crime_reference": "redact",
            "offence_description": "drop",
        }
    )
    assert _errors(agreement_dir({"test.yaml": doc}), catalogue) == []


def test_the_compiler_refuses_free_text_even_when_the_checks_were_skipped(
    catalogue: Catalogue, keyring: KeyRing, examples: AgreementSet
) -> None:
    doc: dict[str, Any] = base_agreement()
    doc["event_types"]["police.crime_recorded"]["fields"]["offence_description"] = "keep"
    hand_built = AgreementSet(
        directory=EXAMPLES,
        agreements=(Agreement.model_validate(doc),),
        recipients=examples.recipients,
        version="hand-built",
    )
    with pytest.raises(ConfigurationError, match=r"offence_description: .*free text"):
        compile_plans(hand_built, catalogue, keyring)


def test_no_example_agreement_shares_free_text(
    planset: Any, make_event: Callable[..., dict[str, Any]]
) -> None:
    """Every string a demo recipient receives is an enum, a format, a token or a generalisation."""
    for plan in planset:
        event = make_event(plan.event_type)
        for path in ("offence_description", "location.description", "crime_reference"):
            head, _, tail = path.partition(".")
            if tail and isinstance(event.get(head), dict):
                event[head][tail] = ATTACK
            elif not tail and head in event:
                event[head] = ATTACK
        decision = plan.apply(event)
        assert ATTACK not in repr(decision.output), plan
