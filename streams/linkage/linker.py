"""Record linkage over linkage tokens: an incremental, deterministic clusterer.

Input is one `link.identifiers` record at a time (only its `tokens` and `source_partner` matter);
output is the person token of the record's cluster and the merges the record caused. Nothing here
sees an identifier: tokens are keyed HMACs (`streams.linkage.tokens`), so the rules compare tokens for
equality only. Precision matters more than recall (a false link puts one child's social-care
factors on another child's profile), so every rule below refuses to guess.

Rules, in order (docs/linkage.md has the reasoning and the measured precision/recall):

1. Validated identifiers (`nhs_number` > `upn` > `pnc_id` > `local_id`, the last scoped per partner)
   are owned by exactly one cluster, and a cluster holds at most one token of each kind. The record
   joins the cluster owning its highest-ranked known identifier, unless that cluster holds a
   *different* token of a kind the record ranks higher (a different NHS number). Clusters owning the
   record's other identifiers merge in only when no kind conflicts.
2. Name + date of birth keys, tier by tier: `name_dob_district`, `name_dob`, `swapped_name_dob`.
   A key links the record to the one other cluster holding it, provided no validated identifier
   conflicts. A key held by two or more other clusters is ambiguous (two people share a name and
   birthday) and links nothing.
3. Fellegi-Sunter scoring (`streams.linkage.scoring`, model in `streams.linkage.model`): the record
   is scored against every cluster sharing a blocking key with it (by keyed comparison material
   only). It links to the clusters at or above the model's link threshold, unless two of those
   may not be one person (different validated identifiers, or a reviewer said they differ): then,
   as for a score in the review band below the threshold, the pair goes to the clerical review
   queue (`Outcome.reviews`) and nothing is linked. `decide` applies a reviewer's answer.
4. A record linked to nothing founds a cluster. Its person token is `"p." + 26 base32 chars` of
   SHA-256 over its highest-ranked token (tokens are already keyed, so no second key is needed);
   it stays the same until the cluster merges. On a merge the smaller person token survives.

Removal of a single event is not supported (it would need the other events' records to re-cluster);
erasure works per person with `forget_person`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from streams.linkage.clusters import Cluster, compatible, person_token, rank
from streams.linkage.compare import Signature, identity_key, signature
from streams.linkage.model import DEFAULT_MODEL, Model, load
from streams.linkage.outcome import Merge, Outcome, Review, review_id
from streams.linkage.scoring import Scored, ScoreIndex
from streams.linkage.tokens import COMPARISON_KINDS, STRONG_KINDS, WEAK_KINDS

__all__ = ["Linker", "Merge", "Outcome", "Review", "review_id"]

RIVAL_MARGIN = 5.0  # bits: a rival 32 times less likely than the best match does not block it
_UNLOCATED = frozenset({"name_dob", "swapped_name_dob"})  # name keys without a postcode district


_DEFAULT: list[Model] = []


def _default_model() -> Model:
    if not _DEFAULT:
        _DEFAULT.append(load(DEFAULT_MODEL))
    return _DEFAULT[0]


class Linker:
    """Incremental, order-deterministic clusterer; state is a map person token -> cluster (JSON-able).

    `drain_changes()` returns what changed since the last call (person token -> cluster JSON, or
    None when the cluster merged away or was forgotten): a compacted changelog of these entries,
    replayed into `from_state`, restores the linker exactly.
    """

    def __init__(self, model: Model | None = None) -> None:
        self.model = model or _default_model()
        self._clusters: dict[str, Cluster] = {}
        self._owner: dict[str, str] = {}  # validated-identifier token -> person token
        self._holders: dict[str, list[str]] = {}  # name/dob token -> person tokens holding it
        self._alias: dict[str, str] = {}  # merged-away person token -> surviving person token
        self._dirty: set[str] = set()
        self._index = ScoreIndex(self.model)

    # --- linking ----------------------------------------------------------------------------------

    def add(self, record: Mapping[str, Any]) -> tuple[str | None, list[Merge]]:
        """Link one record; returns its person token (None without tokens) and the merges it caused."""
        outcome = self.link(record)
        return outcome.person, outcome.merges

    def link(self, record: Mapping[str, Any]) -> Outcome:
        """Link one record and say why: evidence per link made, and pairs left for review."""
        tokens: Mapping[str, str] = record.get("tokens") or {}
        partner = str(record.get("source_partner") or "")
        claim = {
            (f"local_id:{partner}" if kind == "local_id" else kind): tokens[kind]
            for kind in STRONG_KINDS
            if tokens.get(kind)
        }
        weak = [(tokens[kind], kind) for kind in WEAK_KINDS if tokens.get(kind)]
        sig = self._index.known(identity_key(tokens)) or self._enough(signature(tokens, COMPARISON_KINDS))
        if not claim and not weak and sig is None:
            return Outcome(None)
        located = bool(tokens.get("name_dob_district"))
        evidence: list[dict[str, Any]] = []
        target: str | None = None
        losers: list[str] = []
        for kind, token in claim.items():  # rule 1, in rank order
            owner = self._owner.get(token)
            if owner is None or owner == target:
                continue
            ids = self._clusters[owner].ids
            if target is None:
                if compatible(claim, ids, below=rank(kind)):
                    target = owner
                    evidence.append({"rule": "identifier", "kind": kind.split(":")[0], "with": owner})
            elif compatible(self._effective(target, claim), ids):
                evidence.append({"rule": "identifier", "kind": kind.split(":")[0], "with": owner})
                target = self._union(target, owner, losers)

        for token, kind in weak:  # rule 2, tier by tier
            holders = self._holders.get(token)
            if not holders or (target is not None and len(holders) == 1 and holders[0] == target):
                continue  # nobody else holds it (the commonest case: a person seen before)
            others = [h for h in holders if h != target]
            if len(others) != 1:
                continue
            other = self._clusters[others[0]]
            if (
                kind in _UNLOCATED
                and other.located
                and (located or (target and self._clusters[target].located))
            ):
                continue  # both sides have a district and it differs: name + dob alone is not enough
            if self._may_join(target, claim, others[0]):
                evidence.append({"rule": "exact_key", "kind": kind, "with": others[0]})
                target = others[0] if target is None else self._union(target, others[0], losers)

        queued: list[Scored] = []
        if sig is not None:  # rule 3
            target, queued = self._probabilistic(sig, target, claim, losers, evidence)
        if target is None:  # rule 4
            target = self._found(next(iter(claim.values()), None) or (weak[0][0] if weak else sig.key))  # type: ignore[union-attr]
        self._attach(target, claim, [t for t, _ in weak], located)
        if sig is not None and self._index.add(target, sig):
            self._dirty.add(target)
        reviews = [r for scored in queued if (r := self._queue(target, scored)) is not None]
        return Outcome(target, [Merge(loser, target) for loser in losers], evidence, reviews)

    def _probabilistic(
        self,
        sig: Signature,
        target: str | None,
        claim: Mapping[str, str],
        losers: list[str],
        evidence: list[Any],
    ) -> tuple[str | None, list[Scored]]:
        """Link to the clusters scoring at or above the threshold; return the ones to review."""
        index, model = self._index, self.model
        identical = index.identical(sig)
        if target is not None and target in identical:
            return target, []  # this material is already the cluster's: it was scored when it came
        if len(identical) == 1 and identical[0] != target and index.self_weight(sig) >= model.link_threshold:
            scored = [index.score(sig, identical[0])]  # a known signature: no search needed
        else:
            scored = [index.score(sig, c) for c in index.candidates(sig, target)]
        scored = sorted(
            (s for s in scored if s.weight >= model.review_threshold), key=lambda s: (-s.weight, s.cluster)
        )
        sure = [s for s in scored if s.weight >= model.link_threshold]
        unsure = [s for s in scored if s.weight < model.link_threshold]
        if not sure:
            return target, unsure
        # A second cluster joins only when it matches the best one itself; a close rival that
        # does not is a different person the record could equally be: a reviewer decides.
        joined, rivals = [sure[0]], []
        for s in sure[1:]:
            if index.cluster_weight(sure[0].cluster, s.cluster) >= model.link_threshold:
                joined.append(s)
            elif s.weight > sure[0].weight - RIVAL_MARGIN:
                return target, sure + unsure
            else:
                rivals.append(s)
        if any(not self._may_join(target, claim, s.cluster) for s in joined) or any(
            not self._may_join(a.cluster, {}, b.cluster)
            for i, a in enumerate(joined)
            for b in joined[i + 1 :]
        ):
            return target, sure + unsure  # they cannot all be one person: a reviewer decides
        for s in joined:
            evidence.append(s.explain())
            target = s.cluster if target is None else self._union(target, s.cluster, losers)
        return target, rivals + unsure

    def _enough(self, sig: Signature | None) -> Signature | None:
        """`sig` if agreeing on all it holds could link (a given name alone never could), else None."""
        if sig is None or self._index.self_weight(sig) < self.model.link_threshold:
            return None
        return sig

    def _may_join(self, target: str | None, claim: Mapping[str, str], other: str) -> bool:
        """No validated identifier conflicts and no reviewer said the two are different people."""
        if target is not None and (target == other or self._apart(target, other)):
            return target == other
        return compatible(self._effective(target, claim), self._clusters[other].ids)

    def _apart(self, a: str, b: str) -> bool:
        return any(self.resolve(t) == b for t in self._clusters[a].apart) or any(
            self.resolve(t) == a for t in self._clusters[b].apart
        )

    def _queue(self, person: str, scored: Scored) -> Review | None:
        other = self.resolve(scored.cluster)
        if other is None or other == person or self._apart(person, other):
            return None
        mine, theirs = self._clusters[person], self._clusters[other]
        if any(self.resolve(t) == other for t in mine.pending):
            return None  # already queued
        mine.pending.append(other)
        theirs.pending.append(person)
        self._dirty.update((person, other))
        return Review(review_id(person, other), person, other, round(scored.weight, 2), scored.explain())

    def decide(self, a: str, b: str, accept: bool) -> list[Merge]:
        """Apply a reviewer's answer about person tokens a and b: merge them, or keep them apart.

        Tokens merged since the question was asked are followed; an erased person makes it a no-op,
        and so does accepting a pair whose validated identifiers conflict (that is never one person).
        """
        ra, rb = self.resolve(a), self.resolve(b)
        if ra is None or rb is None or ra == rb:
            return []
        for x, y in ((ra, rb), (rb, ra)):
            pending = self._clusters[x].pending
            pending[:] = [t for t in pending if self.resolve(t) != y]
        self._dirty.update((ra, rb))
        if not accept:
            self._clusters[ra].apart.append(rb)
            self._clusters[rb].apart.append(ra)
            return []
        if self._apart(ra, rb) or not compatible(self._clusters[ra].ids, self._clusters[rb].ids):
            return []
        losers: list[str] = []
        keep = self._union(ra, rb, losers)
        return [Merge(loser, keep) for loser in losers]

    def resolve(self, token: str) -> str | None:
        """Current person token for a (possibly merged-away) person token; None if unknown."""
        if token in self._clusters:
            return token
        return self._alias.get(token)

    def forget_person(self, token: str) -> list[str]:
        """Erase a person's cluster (and every token merged into it); returns the person tokens erased.

        Later records of that person found a new cluster; nothing links them to what was erased.
        """
        root = self.resolve(token)
        if root is None:
            return []
        cluster = self._clusters.pop(root)
        self._index.remove(root)
        for t in cluster.ids.values():
            self._owner.pop(t, None)
        for t in cluster.weak:
            rest = [h for h in self._holders.get(t, ()) if h != root]
            if rest:
                self._holders[t] = rest
            else:
                self._holders.pop(t, None)
        for alias in cluster.aliases:
            self._alias.pop(alias, None)
        self._dirty.add(root)
        return [root, *cluster.aliases]

    # --- state ------------------------------------------------------------------------------------

    def to_state(self) -> dict[str, dict[str, Any]]:
        """Every cluster as JSON, keyed by person token."""
        return {pt: c.to_json(self._index.signatures(pt)) for pt, c in self._clusters.items()}

    @classmethod
    def from_state(cls, state: Mapping[str, Mapping[str, Any] | None], model: Model | None = None) -> Linker:
        """Rebuild from `to_state()` or a replayed changelog (None values are deletions)."""
        linker = cls(model)
        for pt, doc in sorted(state.items()):
            if doc is None:
                continue
            cluster = Cluster.from_json(doc)
            linker._clusters[pt] = cluster
            for t in cluster.ids.values():
                linker._owner[t] = pt
            for t in cluster.weak:
                linker._holders.setdefault(t, []).append(pt)
            for alias in cluster.aliases:
                linker._alias[alias] = pt
            for tokens in doc.get("sigs", ()):
                sig = linker._index.known(identity_key(tokens)) or signature(tokens, COMPARISON_KINDS)
                if sig is not None:
                    linker._index.add(pt, sig)
        return linker

    def drain_changes(self) -> dict[str, dict[str, Any] | None]:
        """Clusters changed since the last call: person token -> JSON, or None if gone."""
        changes = {
            pt: (c.to_json(self._index.signatures(pt)) if (c := self._clusters.get(pt)) else None)
            for pt in sorted(self._dirty)
        }
        self._dirty.clear()
        return changes

    def __len__(self) -> int:
        return len(self._clusters)

    # --- internals --------------------------------------------------------------------------------

    def _effective(self, target: str | None, claim: Mapping[str, str]) -> dict[str, str]:
        """Identifiers the record's cluster will hold: the cluster's own, plus the record's new kinds."""
        return dict(claim) if target is None else {**claim, **self._clusters[target].ids}

    def _found(self, canonical: str) -> str:
        pt, n = person_token(canonical), 0
        while pt in self._clusters or pt in self._alias:  # the canonical token founded one before
            n += 1
            pt = person_token(f"{canonical}#{n}")
        self._clusters[pt] = Cluster()
        self._dirty.add(pt)
        return pt

    def _attach(self, target: str, claim: Mapping[str, str], weak: Iterable[str], located: bool) -> None:
        cluster = self._clusters[target]
        if located and not cluster.located:
            cluster.located = True
            self._dirty.add(target)
        for kind, token in claim.items():
            if kind not in cluster.ids and token not in self._owner:
                cluster.ids[kind] = token
                self._owner[token] = target
                self._dirty.add(target)
        for token in weak:
            holders = self._holders.setdefault(token, [])
            if target not in holders:
                holders.append(target)
                cluster.weak.append(token)
                self._dirty.add(target)

    def _union(self, a: str, b: str, losers: list[str]) -> str:
        """Merge clusters a and b; the smaller person token survives and is returned."""
        keep, gone = (a, b) if a < b else (b, a)
        survivor, loser = self._clusters[keep], self._clusters.pop(gone)
        for kind, token in loser.ids.items():
            survivor.ids[kind] = token
            self._owner[token] = keep
        for token in loser.weak:
            holders = self._holders[token]
            holders.remove(gone)
            if keep not in holders:
                holders.append(keep)
                survivor.weak.append(token)
        survivor.located = survivor.located or loser.located
        survivor.apart.extend(loser.apart)
        survivor.pending.extend(t for t in loser.pending if self.resolve(t) not in (keep, gone))
        self._index.merge(gone, keep)
        for alias in (gone, *loser.aliases):
            self._alias[alias] = keep
            survivor.aliases.append(alias)
        losers.append(gone)
        self._dirty.update((keep, gone))
        return keep
