"""Subject requests: what the bus accepts, and the command line's request building."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from streams.avro.catalogue import load_catalogue
from streams.publish.publisher import prepare_event
from streams.rights.model import (
    REQUEST_EVENT_TYPE,
    RequestRefused,
    build_request,
    check_path,
    parse_assignments,
    parse_request,
    parse_value,
)

PARTNER = "reading_schools"
EVENT = str(uuid.uuid4())


def _event(**fields: Any) -> dict[str, Any]:
    base = {
        "envelope": {"event_id": str(uuid.uuid4())},
        "kind": "ERASE",
        "event_ids": [EVENT],
        "subject": None,
        "corrections": {},
        "reason": "the data subject asked",
        "requester": f"{PARTNER}:dpo.smith",
    }
    return base | fields


def test_a_well_formed_request_parses() -> None:
    req = parse_request(PARTNER, _event(event_ids=[EVENT, EVENT.upper()]))
    assert (req.kind, req.partner, req.event_ids, req.subject) == ("erase", PARTNER, (EVENT,), None)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"kind": "UNKNOWN"}, "unknown request kind"),
        ({"requester": "dpo.smith"}, "'<partner>:<person>'"),
        ({"requester": "thames_valley_police:dpo.jones"}, "not a data owner of reading_schools"),
        ({"reason": "  "}, "needs a reason"),
        ({"event_ids": ["not-a-uuid"]}, "must be UUIDs"),
        ({"event_ids": [], "subject": {"gender": "MALE"}}, "names events"),
        ({"kind": "RECTIFY"}, "needs corrections"),
        ({"corrections": {"reason": '"OTHER"'}}, "only for rectify"),
        ({"kind": "RECTIFY", "corrections": {"envelope.source_partner": '"x"'}}, "cannot be corrected"),
    ],
)
def test_requests_that_cannot_be_acted_on_are_refused_with_a_reason(
    fields: dict[str, Any], reason: str
) -> None:
    with pytest.raises(RequestRefused, match=reason):
        parse_request(PARTNER, _event(**fields))


def test_a_person_alone_is_enough_and_only_identifiers_are_kept() -> None:
    req = parse_request(
        PARTNER, _event(event_ids=[], subject={"upn": "A1", "gender": "MALE", "nhs_number": None})
    )
    assert req.subject == {"upn": "A1"}


def test_corrections_are_json_and_bare_words_are_strings() -> None:
    req = parse_request(
        PARTNER,
        _event(kind="RECTIFY", corrections={"sessions": "6", "reason": "OFFENSIVE_WEAPON", "x": '"a"'}),
    )
    assert req.corrections == {"sessions": 6, "reason": "OFFENSIVE_WEAPON", "x": "a"}
    assert parse_value("null") is None and parse_value("not json") == "not json"


def test_paths_use_the_catalogues_array_form() -> None:
    assert check_path("people[2].subject.upn") == "people[].subject.upn"
    for bad in ("", ".a", "a.", "a..b", "envelope", "envelope.event_id"):
        with pytest.raises(RequestRefused):
            check_path(bad)


def test_the_cli_builds_a_request_the_publisher_and_the_bus_accept() -> None:
    body = build_request(
        "rectify",
        reason="wrong UPN",
        requester=f"{PARTNER}:dpo.smith",
        event_ids=[EVENT],
        identifiers=parse_assignments(["upn=A123"], "--identifier"),
        corrections=parse_assignments(["subject.upn=A999", "sessions=6"], "--correct"),
    )
    assert body["corrections"] == {"subject.upn": json.dumps("A999"), "sessions": "6"}
    record = prepare_event(load_catalogue(), PARTNER, REQUEST_EVENT_TYPE, body)
    req = parse_request(PARTNER, record)
    assert (req.kind, req.subject, req.corrections) == (
        "rectify",
        {"upn": "A123"},
        {"subject.upn": "A999", "sessions": 6},
    )


def test_assignments_and_identifier_kinds_are_checked() -> None:
    with pytest.raises(RequestRefused, match="KEY=VALUE"):
        parse_assignments(["upn"], "--identifier")
    with pytest.raises(RequestRefused, match="unknown identifier kind 'ssn'"):
        build_request("erase", reason="r", requester="p:q", identifiers={"ssn": "1"})
