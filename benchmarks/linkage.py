"""Score the linkage rules against the simulator's ground truth (no broker: this measures the rules).

    .venv/bin/python -m benchmarks.linkage [--seed 1] [--people 3000] [--events 30000]

Builds one `link.identifiers`-shaped record per (event, subject) with `linkage_tokens`, exactly as
the enforcer does, runs them through `Linker` in stream order, then resolves every record's person
token after the last merge and compares clusters with the simulated people. Pairwise precision and
recall over record pairs: a pair is a true match when both records are about the same simulated
person. Anonymous ED attendances carry no identifiers by design and are left out of the scores.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from streams.linkage.linker import Linker
from streams.linkage.tokens import linkage_tokens
from streams.privacy.keys import KeyRing
from streams.publish.simulate import Simulation


@dataclass(frozen=True)
class Scores:
    records: int
    people: int
    clusters: int
    precision: float
    recall: float
    false_pairs: int
    missed_pairs: int


def _pairs(counts: Iterable[int]) -> int:
    return sum(n * (n - 1) // 2 for n in counts)


def score(truth: list[str], predicted: list[str]) -> Scores:
    """Pairwise precision/recall of `predicted` cluster labels against `truth` labels."""
    both = _pairs(Counter(zip(truth, predicted, strict=True)).values())
    true_pairs = _pairs(Counter(truth).values())
    predicted_pairs = _pairs(Counter(predicted).values())
    return Scores(
        records=len(truth),
        people=len(set(truth)),
        clusters=len(set(predicted)),
        precision=both / predicted_pairs if predicted_pairs else 1.0,
        recall=both / true_pairs if true_pairs else 1.0,
        false_pairs=predicted_pairs - both,
        missed_pairs=true_pairs - both,
    )


def _subjects(event: dict[str, Any]) -> list[dict[str, Any]]:
    if isinstance(event.get("people"), list):
        return [p["subject"] for p in event["people"]]
    return [event["subject"]] if event.get("subject") else []


def run(seed: int, people: int, events: int) -> dict[str, Any]:
    sim = Simulation(seed, people)
    keyring = KeyRing.generate()
    records: list[dict[str, Any]] = []
    truth: list[str] = []
    invalid: Counter[str] = Counter()
    tokenise_s = 0.0
    for g in sim.generate(events):
        subjects = _subjects(g.event)
        for i, (person, role) in enumerate(g.people):
            if role == "ANONYMOUS":
                continue
            started = time.perf_counter()
            tokens, bad = linkage_tokens(subjects[i], g.partner, keyring)
            tokenise_s += time.perf_counter() - started
            invalid.update(bad)
            records.append(
                {
                    "event_id": g.event["envelope"]["event_id"],
                    "subject_index": i,
                    "source_partner": g.partner,
                    "tokens": tokens,
                }
            )
            truth.append(person.person_id)

    linker = Linker()
    started = time.perf_counter()
    assigned = [linker.add(r)[0] for r in records]
    link_s = time.perf_counter() - started
    predicted = [(linker.resolve(p) or p) if p is not None else f"none:{n}" for n, p in enumerate(assigned)]
    s = score(truth, predicted)
    return {
        "seed": seed,
        "population": people,
        "events": events,
        "scores": s,
        "invalid": dict(invalid),
        "untokenised": sum(p is None for p in assigned),
        "tokenise_per_s": len(records) / tokenise_s,
        "link_per_s": len(records) / link_s,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--people", type=int, default=3000)
    parser.add_argument("--events", type=int, default=30000)
    args = parser.parse_args(argv)
    r = run(args.seed, args.people, args.events)
    s: Scores = r["scores"]
    print(
        f"seed {r['seed']}, {r['population']} people, {r['events']} events -> {s.records} subject records "
        f"about {s.people} people; {s.clusters} clusters; {r['untokenised']} records without tokens"
    )
    print(f"invalid identifiers (not tokenised): {r['invalid']}")
    print(
        f"precision {s.precision:.4f} ({s.false_pairs} false pairs)   "
        f"recall {s.recall:.4f} ({s.missed_pairs} missed pairs)"
    )
    print(
        f"speed: linkage_tokens {r['tokenise_per_s']:,.0f} subjects/s, "
        f"Linker.add {r['link_per_s']:,.0f} records/s"
    )
    ok = s.precision >= 0.99 and s.recall >= 0.95
    print("goal (precision >= 0.99, recall >= 0.95):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
