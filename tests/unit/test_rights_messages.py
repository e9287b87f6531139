"""What the bus sends on a request's behalf: the wire format recipients and agents rely on."""

from __future__ import annotations

import json

from streams import topics
from streams.rights import messages
from streams.rights.model import HEADER_CORRECTS, HEADER_REQUEST_ID, HEADER_RETRACTS


def test_a_retraction_is_a_tombstone_keyed_like_the_original() -> None:
    out = messages.retraction("shared.vru_analysts.education.exclusion", "k1.tok", "e1", "r1")
    assert (out.topic, out.key, out.value) == ("shared.vru_analysts.education.exclusion", b"k1.tok", None)
    assert dict(out.headers or []) == {HEADER_RETRACTS: b"e1", HEADER_REQUEST_ID: b"r1"}
    # never the event id header: recipients de-duplicate on it and would drop the retraction
    assert "sharingbus.event_id" not in dict(out.headers or [])


def test_a_correction_carries_the_new_value_and_names_the_event() -> None:
    out = messages.correction("shared.x.education.exclusion", "k", b"\x00value", "e1", "r1")
    assert out.value == b"\x00value" and dict(out.headers or []) == {
        HEADER_CORRECTS: b"e1",
        HEADER_REQUEST_ID: b"r1",
    }


def test_the_output_key_falls_back_as_the_enforcer_keys() -> None:
    assert messages.output_key({"event_id": "e", "output_key": "k"}) == "k"
    assert messages.output_key({"event_id": "e", "subject_tokens": ["t1", "t2"]}) == "t1"
    assert messages.output_key({"event_id": "e", "subject_tokens": []}) == "e"


def test_views_retractions_are_one_per_person_token_keyed_by_it() -> None:
    outs = messages.views_retractions(
        [("e1", "p.a"), ("e2", "p.a"), ("e2", "p.b"), ("e3", None)], "r1", "erase"
    )
    common = {"kind": "retract", "request_id": "r1", "cause": "erase"}
    assert [(o.topic, o.key, json.loads(o.value or b"")) for o in outs] == [
        (topics.LINK_PERSON, b"p.a", common | {"event_ids": ["e1", "e2"], "person_token": "p.a"}),
        (topics.LINK_PERSON, b"p.b", common | {"event_ids": ["e2"], "person_token": "p.b"}),
        (topics.LINK_PERSON, b"e3", common | {"event_ids": ["e3"], "person_token": None}),
    ]


def test_link_records_go_to_the_linkers_one_partition() -> None:
    forget = messages.linker_forget(["p.a"], "r1")
    assert (forget.topic, forget.partition, forget.key) == (topics.LINK_IDENTIFIERS, 0, b"forget:r1")
    assert json.loads(forget.value or b"") == {"kind": "forget", "person_tokens": ["p.a"], "request_id": "r1"}
    relink = messages.relink({"event_id": "e1", "subject_index": 2, "tokens": {}})
    assert (relink.topic, relink.partition, relink.key) == (topics.LINK_IDENTIFIERS, 0, b"e1:2")
