"""The field-path grammar (streams.avro.paths): reading never raises, assigning refuses clearly."""

from __future__ import annotations

from typing import Any

import pytest

from streams.avro import paths

EVENT: dict[str, Any] = {
    "subject": {"nhs_number": "9434765919", "address": {"postcode": "LS1 4AP"}},
    "people": [
        {"role": "suspect", "subject": {"upn": "A1"}},
        {"role": "victim", "subject": None},
        {"role": "witness"},
    ],
    "tags": ["a", "b"],
    "note": "text",
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("note", "text"),
        ("subject.nhs_number", "9434765919"),
        ("subject.address.postcode", "LS1 4AP"),
        ("subject.missing", None),
        ("missing.nhs_number", None),
        ("note.length", None),  # a step through a plain value reads as absent
        ("subject.address.postcode.outward", None),
    ],
)
def test_getter_reads_one_value_or_none(path: str, expected: Any) -> None:
    assert paths.getter(path)(EVENT) == expected


def test_getter_on_a_non_record_root_reads_none() -> None:
    assert paths.getter("role")(None) is None
    assert paths.getter("a.b")("text") is None


def test_getter_refuses_a_fan_out_path() -> None:
    with pytest.raises(paths.PathError, match="fanout"):
        paths.getter("people[].role")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("people[].role", ["suspect", "victim", "witness"]),
        ("people[].subject.upn", ["A1", None, None]),
        ("tags[]", ["a", "b"]),
        ("missing[].role", []),
        ("note[]", []),  # not an array: nothing to fan out over
        ("subject.nhs_number", ["9434765919"]),
        ("subject.missing", [None]),
    ],
)
def test_fanout_lists_one_value_per_item(path: str, expected: list[Any]) -> None:
    assert paths.fanout(path)(EVENT) == expected
    assert paths.values(EVENT, path) == expected


def test_catalogue_form_writes_indices_as_fan_out() -> None:
    assert paths.catalogue_form("people[2].subject.upn") == "people[].subject.upn"
    assert paths.catalogue_form("subject.upn") == "subject.upn"


def test_assign_sets_creates_and_indexes() -> None:
    event: dict[str, Any] = {"people": [{"role": "a"}, {"role": "b"}], "subject": None}
    paths.assign(event, "people[1].role", "victim")
    paths.assign(event, "subject.upn", "A1")
    paths.assign(event, "top", 3)
    paths.assign(event, "people[0]", {"role": "c"})
    assert event == {"people": [{"role": "c"}, {"role": "victim"}], "subject": {"upn": "A1"}, "top": 3}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("people[5].role", "no item 5 in people"),
        ("subject[0].upn", "no item 0 in subject"),
        ("note.length", "goes through a value"),
        ("people[x].role", "not a dotted field path"),
        ("", "not a dotted field path"),
    ],
)
def test_assign_refuses_what_the_event_cannot_hold(path: str, message: str) -> None:
    event: dict[str, Any] = {"people": [{"role": "a"}], "subject": {"upn": "A1"}, "note": "x"}
    before = repr(event)
    with pytest.raises(paths.PathError, match=message):
        paths.assign(event, path, 1)
    assert repr(event) == before
