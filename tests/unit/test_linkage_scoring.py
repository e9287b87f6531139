"""Probabilistic linkage on keyed tokens: comparisons, EM, scores, explanations and the review band."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from streams.errors import ConfigurationError
from streams.linkage.compare import COMPARISONS, LEVELS, NULL, compare, signature
from streams.linkage.em import em, estimate_u, train
from streams.linkage.encodings import soundex
from streams.linkage.linker import Linker
from streams.linkage.model import DEFAULT_MODEL, Model, load
from streams.linkage.tokens import COMPARISON_KINDS, linkage_tokens
from streams.privacy.keys import KeyRing

RING = KeyRing.from_secrets({"k1": b"s" * 32}, "k1")
PERSON = {
    "given_name": "Oliver",
    "family_name": "Tootell",
    "date_of_birth": "2001-06-04",
    "postcode": "RG1 2AB",
}


def toks(partner: str = "police", **changes: Any) -> dict[str, str]:
    return linkage_tokens({**PERSON, **changes}, partner, RING)[0]


def levels(**changes: Any) -> dict[str, str]:
    a = signature(toks(), COMPARISON_KINDS)
    b = signature(toks(**changes), COMPARISON_KINDS)
    assert a is not None and b is not None
    return {
        name: ("null" if level == NULL else LEVELS[name][level])
        for name, level in zip(COMPARISONS, compare(a, b), strict=True)
    }


def test_soundex_codes() -> None:
    assert [soundex(n) for n in ("robert", "rupert", "ashcraft", "tymczak", "pfister", "lee")] == [
        "R163",
        "R163",
        "A261",
        "T522",
        "P236",
        "L000",
    ]


def test_identical_records_agree_exactly_on_everything() -> None:
    assert levels() == dict.fromkeys(COMPARISONS, "exact")


def test_name_typos_are_close_by_dice_and_different_names_are_not() -> None:
    assert levels(family_name="Tootel")["family_name"] == "Dice >= 0.88"
    assert levels(family_name="Tooteil")["family_name"] in ("Dice >= 0.88", "Dice >= 0.7")
    assert levels(given_name="Olivier")["given_name"] == "Dice >= 0.7"
    assert levels(given_name="Olivia")["given_name"] == "different"  # Dice 0.57, Soundex differs
    assert levels(given_name="Amelia")["given_name"] == "different"
    assert levels(family_name="Tuttle")["family_name"] == "same Soundex"


def test_swapped_names_compare_exactly_even_with_a_typo() -> None:
    assert levels(given_name="Tootell", family_name="Oliver")[COMPARISONS[0]] == "exact"
    swapped_typo = levels(given_name="Tootel", family_name="Oliver")
    # levels are named after the first record's fields: its given name is the other's family name
    assert swapped_typo["given_name"] == "exact" and swapped_typo["family_name"] == "same Soundex"


def test_date_of_birth_levels() -> None:
    assert levels(date_of_birth="2001-04-06")["date_of_birth"] == "day/month transposed"
    assert levels(date_of_birth="2011-06-04")["date_of_birth"] == "two of three parts"
    assert levels(date_of_birth="1999-01-20")["date_of_birth"] == "different"
    assert levels(date_of_birth=None)["date_of_birth"] == "null"


def test_postcode_levels_uk_and_foreign() -> None:
    assert levels(postcode="RG1 2BA")["postcode"] == "one typo"
    assert levels(postcode="RG1 9ZZ")["postcode"] == "same district"
    assert levels(postcode="OX4 1AA")["postcode"] == "different"
    a = signature(toks(postcode="4223"), COMPARISON_KINDS)
    b = signature(toks(postcode="4232"), COMPARISON_KINDS)
    assert a is not None and b is not None and LEVELS["postcode"][compare(a, b)[3]] == "one typo"


def test_em_recovers_m_and_the_match_share_from_pattern_counts() -> None:
    rng = random.Random(5)
    m_true = {c: [0.05] + [0.0] * (len(LEVELS[c]) - 2) + [0.95] for c in COMPARISONS}
    u_true = {c: [0.9] + [0.0] * (len(LEVELS[c]) - 2) + [0.1] for c in COMPARISONS}
    for c in COMPARISONS:  # give the middle levels some mass so every level exists
        m_true[c][1], m_true[c][0] = 0.02, 0.03
        u_true[c][1], u_true[c][0] = 0.02, 0.88
    counts: Counter[tuple[int, ...]] = Counter()
    for _ in range(20_000):
        table = m_true if rng.random() < 0.2 else u_true
        counts[tuple(rng.choices(range(len(LEVELS[c])), weights=table[c])[0] for c in COMPARISONS)] += 1
    m, share = em(counts, u_true, (0, 1, 2, 3))
    assert share == pytest.approx(0.2, abs=0.02)
    for c in COMPARISONS:
        assert m[c][-1] == pytest.approx(0.95, abs=0.03)


def test_u_from_random_pairs_is_mostly_disagreement() -> None:
    names = ["amelia", "oliver", "harry", "isla", "noah", "ava", "leo", "mia"]
    sigs = [
        signature(
            toks(given_name=g, family_name=f"{f}son", date_of_birth=f"20{d:02d}-01-0{1 + d % 9}"),
            COMPARISON_KINDS,
        )
        for d, (g, f) in enumerate((g, f) for g in names for f in names)
    ]
    u = estimate_u([s for s in sigs if s is not None], pairs=5000)
    assert u["given_name"][-1] == pytest.approx(1 / 8, abs=0.03)  # one name in eight
    assert u["date_of_birth"][-1] < 0.01


def test_model_file_is_validated_with_the_key_named(tmp_path: Path) -> None:
    doc = json.loads(DEFAULT_MODEL.read_text())
    doc["m"]["postcode"] = [0.5, 0.5]
    bad = tmp_path / "model.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(ConfigurationError, match=r"model.json: .*postcode must have 4 levels"):
        load(bad)
    with pytest.raises(ConfigurationError, match="not found"):
        load(tmp_path / "missing.json")
    assert isinstance(load(), Model)


def _record(partner: str = "police", **changes: Any) -> dict[str, Any]:
    return {
        "event_id": "e",
        "subject_index": 0,
        "source_partner": partner,
        "tokens": toks(partner, **changes),
    }


def test_a_typo_links_without_any_identifier_and_the_link_is_explained() -> None:
    linker = Linker()
    a = linker.link(_record("council", nhs_number=None))
    b = linker.link(_record("police", family_name="Tootel", postcode="RG1 2BA"))
    assert b.person == a.person and b.reviews == []
    (why,) = b.evidence
    assert why["rule"] == "probabilistic" and why["with"] == a.person
    assert why["weight"] >= linker.model.link_threshold
    assert why["comparisons"]["family_name"]["level"] == "Dice >= 0.88"
    assert why["comparisons"]["date_of_birth"] == {
        "level": "exact",
        "weight": pytest.approx(why["comparisons"]["date_of_birth"]["weight"]),
    }


def test_a_different_person_sharing_a_birthday_is_not_linked() -> None:
    linker = Linker()
    a = linker.link(_record())
    b = linker.link(_record(given_name="Amelia", family_name="Khan", postcode="OX4 1AA"))
    assert b.person != a.person and b.evidence == [] and b.reviews == []


def _uncertain_model() -> Model:
    """The shipped model with thresholds that put "same name and birthday, elsewhere" in review."""
    model = load()
    linker = Linker(model)
    a = linker.link(_record())
    weight = linker._index.score(linker._index.signatures(a.person)[0], a.person).weight  # type: ignore[arg-type]
    elsewhere = signature(toks(postcode="OX4 1AA"), COMPARISON_KINDS)
    assert elsewhere is not None
    w = linker._index.score(elsewhere, a.person).weight  # type: ignore[arg-type]
    assert w < weight
    return model.model_copy(update={"link_threshold": w + 1, "review_threshold": w - 1})


def test_a_pair_in_the_review_band_is_queued_not_linked_and_decisions_apply() -> None:
    model = _uncertain_model()
    linker = Linker(model)
    a = linker.link(_record())
    b = linker.link(_record(postcode="OX4 1AA"))
    assert b.person != a.person and b.merges == []
    (review,) = b.reviews
    assert {review.a, review.b} == {a.person, b.person}
    assert review.explanation["comparisons"]["postcode"]["level"] == "different"
    again = linker.link(_record(postcode="OX4 1AA"))
    assert again.person == b.person and again.reviews == []  # asked once
    merges = linker.decide(review.a, review.b, accept=True)
    assert len(merges) == 1 and linker.resolve(a.person) == linker.resolve(b.person)  # type: ignore[arg-type]


def test_a_rejected_pair_is_never_linked_nor_asked_again() -> None:
    model = _uncertain_model()
    linker = Linker(model)
    a = linker.link(_record())
    b = linker.link(_record(postcode="OX4 1AA"))
    (review,) = b.reviews
    assert linker.decide(review.a, review.b, accept=False) == []
    assert linker.decide(review.a, review.b, accept=True) == []  # kept apart for good
    c = linker.link(_record(postcode="OX4 1AB"))  # scores in the band against both
    assert c.person == b.person and all({r.a, r.b} != {a.person, b.person} for r in c.reviews)


def test_two_equally_good_candidates_go_to_review() -> None:
    linker = Linker()
    a = linker.link(_record("health", nhs_number="9434765919"))
    b = linker.link(_record("health", nhs_number="9434765870"))  # same demographics, another person
    c = linker.link(_record("schools"))
    assert len({a.person, b.person, c.person}) == 3 and c.evidence == []
    assert {r.b for r in c.reviews} == {a.person, b.person}


def test_state_with_signatures_round_trips_and_erasure_forgets_them() -> None:
    linker = Linker()
    first = linker.link(_record())
    snapshot = json.loads(json.dumps(linker.to_state()))
    restored = Linker.from_state(snapshot)
    assert restored.link(_record(family_name="Tootel")).person == first.person
    assert restored.forget_person(first.person) == [first.person]  # type: ignore[arg-type]
    later = restored.link(_record(family_name="Tootel"))
    assert later.person != first.person and later.evidence == []


def test_a_given_name_alone_founds_no_person() -> None:
    linker = Linker()
    assert (
        linker.link(
            {"source_partner": "p", "tokens": toks(family_name=None, date_of_birth=None, postcode=None)}
        ).person
        is None
    )


def test_common_names_weigh_less_than_rare_ones() -> None:
    rng = random.Random(1)
    linker = Linker()
    for i in range(600):  # a population where "smith" is common
        linker.link(
            {
                "source_partner": "p",
                "tokens": toks(
                    given_name=rng.choice(["ann", "bob", "cy", "di", "ed"]) + str(i % 7) * 0,
                    family_name="smith" if i % 3 == 0 else f"rare{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}x",
                    date_of_birth=f"19{50 + i % 50}-0{1 + i % 9}-1{i % 10}",
                    postcode=f"RG{1 + i % 40} 2AB",
                ),
            }
        )
    index = linker._index
    common = signature(toks(family_name="smith"), COMPARISON_KINDS)
    rare = signature(toks(family_name="rareabx"), COMPARISON_KINDS)
    assert common is not None and rare is not None
    assert index.self_weight(common) < index.self_weight(rare)


def test_train_estimates_a_usable_model_from_tokens_alone() -> None:
    rng = random.Random(2)
    people = [
        {
            "given_name": rng.choice(
                ["amelia", "oliver", "harry", "isla", "noah", "ava", "leo", "mia", "jack"]
            ),
            "family_name": rng.choice(["smith", "jones", "khan", "patel", "brown", "taylor"])
            + rng.choice("abcdefgh"),
            "date_of_birth": date(rng.randrange(1990, 2015), rng.randrange(1, 13), rng.randrange(1, 29)),
            "postcode": f"RG{rng.randrange(1, 30)} {rng.randrange(1, 9)}AB",
        }
        for _ in range(400)
    ]
    records = [dict(p) for p in people] + [{**p, "given_name": p["given_name"] + "e"} for p in people[:200]]
    sigs = [signature(linkage_tokens(r, "p", RING)[0], COMPARISON_KINDS) for r in records]
    model = train(
        [s for s in sigs if s is not None], link_threshold=3.17, review_threshold=0.0, u_pairs=20_000
    )
    weights = dict(zip(COMPARISONS, model.weights(), strict=True))
    assert weights["date_of_birth"][-1] > 5 and weights["date_of_birth"][0] < 0
    assert weights["family_name"][-1] > weights["family_name"][0]
    assert 0 < model.prior < 0.01
