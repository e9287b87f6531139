"""The linkage clusterer: validated identifiers first, name keys only when unambiguous, no conflicts."""

from __future__ import annotations

import json
import random
from typing import Any

from streams.linkage.clusters import person_token
from streams.linkage.linker import Linker, Merge
from streams.linkage.view_tokens import ViewTokens
from streams.privacy.keys import KeyRing


def rec(partner: str = "police", **tokens: str) -> dict[str, Any]:
    return {"event_id": "e", "subject_index": 0, "source_partner": partner, "tokens": tokens}


def test_records_without_tokens_get_no_person() -> None:
    assert Linker().add(rec()) == (None, [])


def test_same_identifier_links_and_token_is_deterministic() -> None:
    linker = Linker()
    p1, m1 = linker.add(rec(nhs_number="n1"))
    p2, m2 = linker.add(rec("health", nhs_number="n1", name_dob="x"))
    assert p1 == p2 == person_token("n1") and m1 == m2 == []
    assert p1 is not None and p1.startswith("p.") and len(p1) == 28


def test_name_key_bridges_sectors_and_merge_keeps_the_smaller_token() -> None:
    linker = Linker()
    a, _ = linker.add(rec("health", nhs_number="n1", name_dob_district="k"))
    b, _ = linker.add(rec("police", pnc_id="c1"))
    assert a != b
    merged, merges = linker.add(rec("police", pnc_id="c1", name_dob_district="k"))
    assert merged == min(a, b)  # type: ignore[type-var]
    assert merges == [Merge(max(a, b), merged)]  # type: ignore[type-var]
    assert linker.resolve(max(a, b)) == merged  # type: ignore[type-var]
    assert linker.add(rec("education", upn="u1", nhs_number="n1")) == (merged, [])


def test_different_nhs_numbers_never_merge() -> None:
    linker = Linker()
    a, _ = linker.add(rec("health", nhs_number="n1", name_dob="x"))
    b, merges = linker.add(rec("health", nhs_number="n2", name_dob="x"))
    assert a != b and merges == []
    c, merges = linker.add(rec("health", nhs_number="n1", upn="u1"))
    d, merges2 = linker.add(rec("education", nhs_number="n2", upn="u1"))
    assert c == a and d == b and merges == merges2 == []  # u1 stays with the first, no merge


def test_lower_ranked_identifier_cannot_pull_a_record_across_a_conflict() -> None:
    linker = Linker()
    a, _ = linker.add(rec(nhs_number="n1", upn="u1"))
    b, _ = linker.add(rec(nhs_number="n2", upn="u1"))  # u1 is a's, but n2 outranks it
    assert b != a


def test_ambiguous_name_key_links_nothing() -> None:
    linker = Linker()
    a, _ = linker.add(rec(nhs_number="n1", name_dob="x"))
    b, _ = linker.add(rec(nhs_number="n2", name_dob="x"))
    c, merges = linker.add(rec("schools", upn="u9", name_dob="x"))
    assert c not in (a, b) and merges == []


def test_unambiguous_name_key_links_a_record_without_identifiers() -> None:
    linker = Linker()
    a, _ = linker.add(rec(nhs_number="n1", name_dob="x", swapped_name_dob="s"))
    assert linker.add(rec("council", swapped_name_dob="s"))[0] == a


def test_local_ids_conflict_only_within_a_partner() -> None:
    linker = Linker()
    a, _ = linker.add(rec("council", local_id="l1", name_dob="x"))
    assert linker.add(rec("probation", local_id="l2", name_dob="x"))[0] == a
    assert linker.add(rec("council", local_id="l3", name_dob="x"))[0] != a


def test_one_record_can_merge_three_clusters() -> None:
    linker = Linker()
    ps = [linker.add(rec(**{kind: "t"}))[0] for kind in ("nhs_number", "upn", "pnc_id")]
    p, merges = linker.add(rec(nhs_number="t", upn="t", pnc_id="t"))
    assert p == min(ps)  # type: ignore[type-var]
    assert sorted(m.from_ for m in merges) == sorted(x for x in ps if x != p)  # type: ignore[type-var]
    assert all(m.into == p for m in merges)


def _stream(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    kinds = ["nhs_number", "upn", "pnc_id", "local_id", "name_dob_district", "name_dob", "swapped_name_dob"]
    out = []
    for _ in range(n):
        person = rng.randrange(60)
        chosen = rng.sample(kinds, rng.randint(1, 3))
        out.append(
            rec(rng.choice(["a", "b"]), **{k: f"{k}{person % (40 if 'name' in k else 60)}" for k in chosen})
        )
    return out


def test_state_round_trip_and_changelog_replay_give_the_same_answers() -> None:
    records = _stream(400, 7)
    whole = Linker()
    changelog: dict[str, Any] = {}
    resumed: Linker | None = None
    outputs, resumed_outputs = [], []
    for i, r in enumerate(records):
        outputs.append(whole.add(r))
        if i == 199:
            snapshot = json.loads(json.dumps(whole.to_state()))
            changelog.update(whole.drain_changes())
            assert {k: v for k, v in changelog.items() if v is not None} == snapshot
            resumed = Linker.from_state(changelog)
        if resumed is not None and i > 199:
            resumed_outputs.append(resumed.add(r))
    assert resumed_outputs == outputs[200:]
    assert resumed is not None and resumed.to_state() == whole.to_state()


def test_same_input_same_output() -> None:
    records = _stream(300, 3)
    a, b = Linker(), Linker()
    assert [a.add(r) for r in records] == [b.add(r) for r in records]


def test_forget_person_erases_the_cluster_and_its_aliases() -> None:
    linker = Linker()
    a, _ = linker.add(rec(nhs_number="n1", name_dob="x"))
    b, _ = linker.add(rec(pnc_id="c1"))
    p, _ = linker.add(rec(pnc_id="c1", name_dob="x"))
    erased = linker.forget_person(max(a, b))  # type: ignore[type-var]
    assert sorted(erased) == sorted([a, b])  # type: ignore[type-var]
    assert linker.resolve(p) is None and len(linker) == 0  # type: ignore[arg-type]
    assert linker.drain_changes()[p] is None  # type: ignore[index]
    fresh, merges = linker.add(rec(name_dob="x"))
    assert fresh is not None and merges == []


# --- the agent's batch stage, without Faust or a broker ----------------------------------------------


_VIEW_TOKENS = ViewTokens(KeyRing.from_secrets({"k1": b"v" * 32}, "k1"), "k1")


def _stage(changelog: dict[str, Any], sent: list[Any]) -> Any:
    from agents.linker import LINK_STATE, LinkerStage

    def send(outputs: list[Any]) -> None:
        for out in outputs:
            if out.topic == LINK_STATE:
                changelog[out.key.decode()] = json.loads(out.value) if out.value else None
            else:
                sent.append(out)

    return LinkerStage(send, lambda: Linker.from_state(changelog), vault=None, view_tokens=_VIEW_TOKENS)


def _raw(i: int, doc: dict[str, Any] | bytes) -> Any:
    from streams.deadletter import RawRecord

    value = (
        doc
        if isinstance(doc, bytes)
        else json.dumps({"event_id": f"e{i}", "subject_index": 0, **doc}).encode()
    )
    return RawRecord("link.identifiers", 0, i, f"e{i}:0".encode(), value)


def test_stage_emits_facts_merges_and_dead_letters() -> None:
    """Area facts carry no person token; each person view gets its own tokens, facts and merges."""
    changelog: dict[str, Any] = {}
    sent: list[Any] = []
    stage = _stage(changelog, sent)
    vru = {"vru": {"factors": ["weapon_carrying"], "occurred_at": "2026-03-01T00:00:00+00:00"}}
    views = {"profiles": vru, "view_recipients": ["vru"], "factors": ["weapon_carrying"]}
    stage.process(
        [
            _raw(
                0,
                {
                    "source_partner": "health",
                    "occurred_at": "t0",
                    "tokens": {"nhs_number": "n1", "name_dob": "x"},
                    **views,
                },
            ),
            _raw(1, {"source_partner": "police", "occurred_at": "t1", "tokens": {"pnc_id": "c1"}, **views}),
            _raw(
                2,
                {
                    "source_partner": "police",
                    "occurred_at": "t2",
                    "tokens": {"pnc_id": "c1", "name_dob": "x"},
                },
            ),
            _raw(
                3, {"source_partner": "health", "occurred_at": "t3", "tokens": {}, "invalid": ["nhs_number"]}
            ),
            _raw(4, b"not json"),
        ]
    )
    docs = [
        (out.topic, out.key, json.loads(out.value) if out.topic == "link.person" else None) for out in sent
    ]
    # nothing a view keeps is keyed by, or names, a `p.` token (the linkage evidence on the area
    # fact may: the views never pass it on)
    keyed = [out for out in sent if out.topic == "link.person" and b'"recipient"' in (out.value or b"")]
    assert keyed and b'"p.' not in b"".join(out.value or b"" for out in keyed)
    assert not any((out.key or b"").startswith(b"p.") for out in sent if out.topic == "link.person")
    area = [(k, d) for t, k, d in docs if d and d["kind"] == "fact" and not d.get("recipient")]
    assert [d["event_id"] for _, d in area] == ["e0", "e1", "e2", "e3"]
    assert [k for k, _ in area] == [b"e0", b"e1", b"e2", b"e3"]
    assert all(d["person_token"] is None and "tokens" not in d and "invalid" not in d for _, d in area)
    assert all("profiles" not in d and "view_recipients" not in d for _, d in area)
    person = [(k, d) for t, k, d in docs if d and d["kind"] == "fact" and d.get("recipient")]
    assert [d["event_id"] for _, d in person] == ["e0", "e1"]  # e2 was let into no person view
    assert all(k == d["person_token"].encode() and d["recipient"] == "vru" for k, d in person)
    assert all(d["occurred_at"] == "2026-03-01T00:00:00+00:00" for _, d in person)
    assert person[0][1]["person_token"] != person[1][1]["person_token"]  # two clusters until e2
    # e2 joins them, but names no recipient holding a person view: no view needs the merge
    assert [d for t, _, d in docs if d and d["kind"] == "merge"] == []
    assert docs[-1][0] == "dlq.linker"
    assert len(changelog) == 2 and list(changelog.values()).count(None) == 1


def test_merges_reach_every_person_view_in_its_tokens() -> None:
    changelog: dict[str, Any] = {}
    sent: list[Any] = []
    stage = _stage(changelog, sent)
    view_tokens = _VIEW_TOKENS
    ids = {"source_partner": "police", "occurred_at": "t", "view_recipients": ["a", "b"]}
    stage.process(
        [
            _raw(0, {**ids, "tokens": {"nhs_number": "n1", "name_dob": "x"}}),
            _raw(1, {**ids, "tokens": {"pnc_id": "c1"}}),
            _raw(2, {**ids, "tokens": {"pnc_id": "c1", "name_dob": "x"}}),
        ]
    )
    merges = [(out.key, json.loads(out.value)) for out in sent if b'"merge"' in (out.value or b"")]
    assert sorted(d["recipient"] for _, d in merges) == ["a", "b"]
    (p_from,) = [pt for pt, c in changelog.items() if c is None]  # the cluster merged away
    (survivor,) = [pt for pt, c in changelog.items() if c is not None]
    for key, d in merges:
        assert key == d["from"].encode()
        assert d["from"] == view_tokens.token(d["recipient"], p_from)
        assert d["into"] == view_tokens.token(d["recipient"], survivor)
        assert not d["from"].startswith("p.") and not d["into"].startswith("p.")


def test_stage_restart_replays_to_the_same_outputs() -> None:
    views = {"view_recipients": ["vru"]}
    batch1 = [
        _raw(0, {"source_partner": "h", "tokens": {"nhs_number": "n1", "name_dob": "x"}}),
        _raw(1, {"source_partner": "p", "tokens": {"pnc_id": "c1"}}),
    ]
    batch2 = [
        _raw(2, {"source_partner": "p", "tokens": {"pnc_id": "c1", "name_dob": "x"}, **views}),
        _raw(3, {"source_partner": "s", "tokens": {"upn": "u1", "nhs_number": "n1"}, **views}),
    ]
    changelog: dict[str, Any] = {}
    sent: list[Any] = []
    stage = _stage(changelog, sent)
    stage.process(batch1)
    saved = dict(changelog)  # the worker dies after batch 1's state was written
    stage.process(batch2)
    first_run = [(o.topic, o.key, o.value) for o in sent[len(batch1) :]]
    assert any(b'"merge"' in v for _, _, v in first_run)
    sent2: list[Any] = []
    _stage(saved, sent2).process(batch2)  # a new worker restores and gets batch 2 again
    assert [(o.topic, o.key, o.value) for o in sent2] == first_run
    assert saved == changelog


def test_name_and_dob_alone_do_not_link_people_in_different_districts() -> None:
    linker = Linker()
    a, _ = linker.add(rec(pnc_id="c1", name_dob="x", name_dob_district="x-rg1"))
    b, _ = linker.add(rec(name_dob="x", name_dob_district="x-ox4"))  # same name and birthday elsewhere
    c, _ = linker.add(rec("schools", name_dob="x"))  # no address to compare: ambiguous now anyway
    assert b != a and c not in (a, b)
    fresh = Linker()
    p, _ = fresh.add(rec(pnc_id="c1", name_dob="x", name_dob_district="x-rg1"))
    assert fresh.add(rec("schools", name_dob="x"))[0] == p  # no district on one side: name + dob links
