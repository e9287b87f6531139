"""Fellegi-Sunter scoring of a record against the clusters it could belong to.

`ScoreIndex` holds each cluster's distinct comparison signatures (`streams.linkage.compare`), a
blocking index (blocking key -> clusters) that keeps the search to a handful of candidates, and
term frequencies of the keyed name tokens. A record is scored against a candidate cluster by its
best-matching signature. Everything here is derived from the clusters' stored signatures, so
rebuilding it from the linker's state gives the same scores.

Term-frequency adjustment: agreeing exactly on a name that 1 in 10,000 people have is stronger
evidence than agreeing on one that 1 in 50 have. Once the index holds `TF_MIN` signatures, the u of
an exact name agreement is that name's share of signatures (never below one signature's share), as
Splink does, instead of the model's average over all names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from streams.linkage.compare import COMPARISONS, LEVELS, NULL, Signature, compare
from streams.linkage.compare import EXACT as _EXACT_NAME
from streams.linkage.model import Model

__all__ = ["MAX_BLOCK", "MAX_SIGNATURES", "ScoreIndex", "Scored"]

MAX_BLOCK = 64  # a blocking key held by more clusters than this is too common to search by
MAX_SIGNATURES = 16  # distinct signatures kept per cluster: enough for one person's variants
TF_MIN = 500
_TOP = tuple(len(LEVELS[c]) - 1 for c in COMPARISONS)  # each comparison's closest level
_NAMES = (0, 1)  # given_name, family_name positions in COMPARISONS


@dataclass(frozen=True, slots=True)
class Scored:
    """A candidate cluster, the record's match weight against it and the levels that gave it."""

    cluster: str
    weight: float
    levels: tuple[int, ...]
    level_weights: tuple[float, ...]

    def explain(self) -> dict[str, object]:
        """What agreed and how much each comparison weighed (the link's explanation)."""
        return {
            "rule": "probabilistic",
            "with": self.cluster,
            "weight": round(self.weight, 2),
            "comparisons": {
                name: {"level": LEVELS[name][level], "weight": round(w, 2)}
                for name, level, w in zip(COMPARISONS, self.levels, self.level_weights, strict=True)
                if level != NULL
            },
        }


class ScoreIndex:
    def __init__(self, model: Model) -> None:
        self.model = model
        self._weights = model.weights()
        self._prior = model.prior_weight()
        self._m_exact = [model.m[COMPARISONS[k]][_EXACT_NAME] for k in _NAMES]
        self._sigs: dict[str, list[Signature]] = {}  # cluster -> its distinct signatures
        self._blocks: dict[str, dict[str, None]] = {}  # blocking key -> clusters (an ordered set)
        self._owners: dict[str, list[str]] = {}  # signature key -> clusters holding it
        self._names: dict[str, int] = {}  # keyed name token -> signatures carrying it
        self._total = 0

    # --- maintenance --------------------------------------------------------------------------------

    def signatures(self, cluster: str) -> list[Signature]:
        return self._sigs.get(cluster, [])

    def add(self, cluster: str, sig: Signature) -> bool:
        """Attach `sig` to `cluster` unless it holds it already or is full; True when added."""
        owners = self._owners.get(sig.key)
        if owners is not None and cluster in owners:
            return False
        held = self._sigs.setdefault(cluster, [])
        if len(held) >= MAX_SIGNATURES:
            return False
        held.append(sig)
        self._index(cluster, sig)
        return True

    def _index(self, cluster: str, sig: Signature) -> None:
        blocks, names = self._blocks, self._names
        for key in sig.blocks:
            holders = blocks.get(key)
            if holders is None:
                blocks[key] = {cluster: None}
            else:
                holders[cluster] = None
        self._owners.setdefault(sig.key, []).append(cluster)
        if sig.given:
            names[sig.given] = names.get(sig.given, 0) + 1
        if sig.family:
            names[sig.family] = names.get(sig.family, 0) + 1
        self._total += 1

    def _unindex(self, cluster: str, sig: Signature) -> None:
        for key in sig.blocks:
            holders = self._blocks.get(key)
            if holders is not None and holders.pop(cluster, False) is None and not holders:
                del self._blocks[key]
        owners = self._owners[sig.key]
        owners.remove(cluster)
        if not owners:
            del self._owners[sig.key]
        for n in (sig.given, sig.family):
            if n:
                self._names[n] -= 1
                if not self._names[n]:
                    del self._names[n]
        self._total -= 1

    def remove(self, cluster: str) -> list[Signature]:
        """Forget a cluster's signatures (erasure, or before moving them on a merge)."""
        sigs = self._sigs.pop(cluster, [])
        for sig in sigs:
            self._unindex(cluster, sig)
        return sigs

    def merge(self, gone: str, keep: str) -> list[Signature]:
        """Move `gone`'s signatures to `keep`; returns those `keep` took (up to its limit)."""
        taken = [sig for sig in self.remove(gone) if self.add(keep, sig)]
        return taken

    # --- scoring ------------------------------------------------------------------------------------

    def identical(self, sig: Signature) -> list[str]:
        """Clusters holding exactly this signature."""
        return self._owners.get(sig.key, [])

    def known(self, key: str) -> Signature | None:
        """A held signature with this `key` (decoded already), if any cluster holds one."""
        owners = self._owners.get(key)
        if not owners:
            return None
        return next(s for s in self._sigs[owners[0]] if s.key == key)

    def candidates(self, sig: Signature, exclude: str | None) -> list[str]:
        """Clusters sharing a blocking key with `sig`, in first-seen order, without `exclude`."""
        seen: dict[str, None] = {}
        for key in sig.blocks:
            holders = self._blocks.get(key)
            if holders and len(holders) <= MAX_BLOCK:
                seen.update(holders)
        seen.pop(exclude, None)  # type: ignore[arg-type]
        return list(seen)

    def score(self, sig: Signature, cluster: str) -> Scored:
        """Match weight of `sig` against the cluster's best-matching signature."""
        best: Scored | None = None
        for other in self._sigs.get(cluster, ()):
            levels = compare(sig, other)
            level_weights = self._level_weights(sig, levels)
            weight = self._prior + sum(level_weights)
            if best is None or weight > best.weight:
                best = Scored(cluster, weight, levels, level_weights)
        if best is None:
            return Scored(cluster, self._prior, (NULL,) * len(COMPARISONS), (0.0,) * len(COMPARISONS))
        return best

    def cluster_weight(self, a: str, b: str) -> float:
        """Best match weight between any signature of cluster a and any of cluster b."""
        scores = [self.score(sig, b).weight for sig in self._sigs.get(a, ())]
        return max(scores, default=self._prior)

    def self_weight(self, sig: Signature) -> float:
        """Weight of a record against an identical one: what agreeing on all it carries is worth."""
        top = (
            _EXACT_NAME if sig.given else NULL,
            _EXACT_NAME if sig.family else NULL,
            _TOP[2] if sig.dob else NULL,
            _TOP[3] if sig.postcode else NULL,
        )
        return self._prior + sum(self._level_weights(sig, top))

    def _level_weights(self, sig: Signature, levels: tuple[int, ...]) -> tuple[float, ...]:
        out = [0.0 if level == NULL else self._weights[k][level] for k, level in enumerate(levels)]
        if self._total >= TF_MIN:
            for k, name in zip(_NAMES, (sig.given, sig.family), strict=True):
                if levels[k] == _EXACT_NAME and name:
                    share = max(self._names.get(name, 0), 1) / self._total
                    out[k] = math.log2(self._m_exact[k] / share)
        return tuple(out)
