"""Estimating m and u from tokens alone: random pairs for u, expectation-maximisation for m.

Splink's recipe, on keyed comparison material instead of cleartext:
- u (chance agreement) from random record pairs, nearly all of which are about two people;
- m by EM over the agreement patterns of pairs that share a blocking key (a mixture of matches
  and non-matches), with u held fixed and the blocked-on comparisons left out (see `em`).
EM runs on pattern counts (a few hundred distinct patterns), so it costs milliseconds whatever
the number of pairs. No label is used anywhere: the estimate is unsupervised.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence

from streams.linkage.compare import COMPARISONS, LEVELS, NULL, Signature, compare
from streams.linkage.model import Model

__all__ = ["blocked_pairs", "em", "estimate_u", "patterns", "train"]

Pattern = tuple[int, ...]
_SMOOTH = 1.0  # add-one smoothing: a level never seen still gets a small probability
M_FLOOR = 0.001
MAX_BLOCK = 64  # a blocking key shared by more records than this is too common to block on


def estimate_u(sigs: Sequence[Signature], pairs: int = 100_000, seed: int = 0) -> dict[str, list[float]]:
    """Level frequencies over random record pairs (missing values left out)."""
    counts = [[_SMOOTH] * len(LEVELS[c]) for c in COMPARISONS]
    rng = random.Random(seed)
    n = len(sigs)
    if n >= 2:
        for _ in range(pairs):
            i, j = rng.randrange(n), rng.randrange(n)
            if i == j:
                continue
            for k, level in enumerate(compare(sigs[i], sigs[j])):
                if level != NULL:
                    counts[k][level] += 1
    return {c: [x / sum(row) for x in row] for c, row in zip(COMPARISONS, counts, strict=True)}


def blocked_pairs(sigs: Sequence[Signature], key: Callable[[Signature], str | None]) -> set[tuple[int, int]]:
    """Index pairs with the same non-empty `key`; blocks larger than `MAX_BLOCK` are skipped."""
    blocks: dict[str, list[int]] = defaultdict(list)
    for i, sig in enumerate(sigs):
        if (value := key(sig)) is not None:
            blocks[value].append(i)
    out: set[tuple[int, int]] = set()
    for members in blocks.values():
        if 2 <= len(members) <= MAX_BLOCK:
            out.update((a, b) for x, a in enumerate(members) for b in members[x + 1 :])
    return out


def patterns(sigs: Sequence[Signature], pairs: Iterable[tuple[int, int]]) -> Counter[Pattern]:
    return Counter(compare(sigs[a], sigs[b]) for a, b in pairs)


def em(
    counts: Counter[Pattern],
    u: dict[str, list[float]],
    used: Sequence[int],
    *,
    prior: float = 0.1,
    iterations: int = 500,
    tolerance: float = 1e-8,
) -> tuple[dict[str, list[float]], float]:
    """(m of the `used` comparisons, share of matches) by EM over pattern counts, u held fixed.

    The pairs come from one blocking rule; the comparisons it blocks on are left out (`used`
    names the others), because inside a block two different people agree on those far more often
    than random pairs do, while on the other comparisons they agree as randomly as u says. Holding
    u fixed keeps the two classes from swapping.
    """
    u_rows = [u[c] for c in COMPARISONS]
    m_rows = [[2.0**level for level in range(len(LEVELS[c]))] for c in COMPARISONS]
    m_rows = [[x / sum(r) for x in r] for r in m_rows]
    items = list(counts.items())
    total = sum(counts.values())
    for _ in range(iterations):
        tallies = [[_SMOOTH * 1e-3] * len(r) for r in m_rows]
        matched = 0.0
        for pattern, count in items:
            pm, pu = prior, 1 - prior
            for k in used:
                level = pattern[k]
                if level != NULL:
                    pm *= m_rows[k][level]
                    pu *= u_rows[k][level]
            share = count * pm / (pm + pu)
            matched += share
            for k in used:
                if pattern[k] != NULL:
                    tallies[k][pattern[k]] += share
        new_rows = [[x / sum(r) for x in r] for r in tallies]
        new_prior = min(max(matched / total, 1e-9), 1 - 1e-9) if total else prior
        change = max(abs(a - b) for k in used for a, b in zip(new_rows[k], m_rows[k], strict=True))
        m_rows, converged = new_rows, change < tolerance and abs(new_prior - prior) < tolerance
        prior = new_prior
        if converged:
            break
    return {COMPARISONS[k]: m_rows[k] for k in used}, prior


def _floored(row: list[float]) -> list[float]:
    """No level of m below `M_FLOOR`: data that never showed a typo does not prove typos impossible."""
    raised = [max(x, M_FLOOR) for x in row]
    return [x / sum(raised) for x in raised]


def train(
    sigs: Sequence[Signature],
    *,
    link_threshold: float,
    review_threshold: float,
    seed: int = 0,
    trained_on: str = "",
    u_pairs: int = 100_000,
) -> Model:
    """A model estimated from `sigs` alone (distinct signatures are used; no label anywhere).

    Two EM sessions, as Splink's training does: pairs with the same date of birth give m for the
    names and the postcode; pairs with the same Soundex of both names give m for the date of
    birth (and the postcode again: the two estimates are averaged). The prior over all pairs
    comes from the first session: matches found among same-birthday pairs, divided by the share
    of matches that agree on the date of birth exactly (from the second).
    """
    distinct = list({s.key: s for s in sigs}.values())
    n = len(distinct)
    if n < 2:
        raise ValueError("need at least two distinct records to estimate a model")
    u = estimate_u(distinct, pairs=u_pairs, seed=seed)
    by_dob = blocked_pairs(distinct, lambda s: s.dob)
    by_names = blocked_pairs(
        distinct, lambda s: f"{s.given_sound}{s.family_sound}" if s.given_sound and s.family_sound else None
    )
    m_names, share_dob = em(patterns(distinct, by_dob), u, (0, 1, 3))
    m_dob, _ = em(patterns(distinct, by_names), u, (2, 3))
    m = {
        "given_name": m_names["given_name"],
        "family_name": m_names["family_name"],
        "date_of_birth": m_dob["date_of_birth"],
        "postcode": [(a + b) / 2 for a, b in zip(m_names["postcode"], m_dob["postcode"], strict=True)],
    }
    m = {c: _floored(row) for c, row in m.items()}
    with_dob = sum(1 for s in distinct if s.dob) / n
    dob_exact = m["date_of_birth"][-1] * with_dob * with_dob
    matches = share_dob * len(by_dob) / max(dob_exact, 1e-9)
    prior = min(max(matches / (n * (n - 1) / 2), 1e-12), 0.5)
    return Model(
        m=m,
        u=u,
        prior=prior,
        link_threshold=link_threshold,
        review_threshold=review_threshold,
        trained_on=trained_on,
    )
