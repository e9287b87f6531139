"""Deterministic record linkage over linkage tokens: an incremental clusterer.

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
3. A record linked to nothing founds a cluster. Its person token is `"p." + 26 base32 chars` of
   SHA-256 over its highest-ranked token (tokens are already keyed, so no second key is needed);
   it stays the same until the cluster merges. On a merge the smaller person token survives.

Removal of a single event is not supported (it would need the other events' records to re-cluster);
erasure works per person with `forget_person`.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.linkage.tokens import STRONG_KINDS, WEAK_KINDS

__all__ = ["Linker", "Merge", "person_token"]

_PERSON_DOMAIN = b"sharingbus:person\x1f"
_RANK = {kind: i for i, kind in enumerate(STRONG_KINDS)}
_UNLOCATED = frozenset({"name_dob", "swapped_name_dob"})  # name keys without a postcode district


def person_token(canonical: str) -> str:
    """`p.` + 26 lower-case base32 characters derived from a cluster's canonical token."""
    digest = hashlib.sha256(_PERSON_DOMAIN + canonical.encode()).digest()
    return "p." + base64.b32encode(digest)[:26].decode("ascii").lower()


def _rank(kind_key: str) -> int:
    return _RANK[kind_key.split(":", 1)[0]]


@dataclass(frozen=True, slots=True)
class Merge:
    """Cluster `from_` was merged into `into`: views move the old profile to the new token."""

    from_: str
    into: str


@dataclass(slots=True)
class _Cluster:
    ids: dict[str, str] = field(default_factory=dict)  # kind key ("local_id:<partner>") -> token
    weak: list[str] = field(default_factory=list)  # name/dob tokens seen in this cluster
    aliases: list[str] = field(default_factory=list)  # person tokens merged into this one
    located: bool = False  # some record had a postcode district (a name_dob_district key)

    def to_json(self) -> dict[str, Any]:
        doc = {"ids": dict(self.ids), "weak": list(self.weak), "aliases": list(self.aliases)}
        return doc | {"located": True} if self.located else doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> _Cluster:
        return cls(
            dict(doc.get("ids", {})),
            list(doc.get("weak", [])),
            list(doc.get("aliases", [])),
            bool(doc.get("located", False)),
        )


def _compatible(a: Mapping[str, str], b: Mapping[str, str], below: int | None = None) -> bool:
    """No kind present in both with different tokens (only kinds ranked above `below`, if given)."""
    for kind, token in a.items():
        other = b.get(kind)
        if other is not None and other != token and (below is None or _rank(kind) < below):
            return False
    return True


class Linker:
    """Incremental, order-deterministic clusterer; state is a map person token -> cluster (JSON-able).

    `drain_changes()` returns what changed since the last call (person token -> cluster JSON, or
    None when the cluster merged away or was forgotten): a compacted changelog of these entries,
    replayed into `from_state`, restores the linker exactly.
    """

    def __init__(self) -> None:
        self._clusters: dict[str, _Cluster] = {}
        self._owner: dict[str, str] = {}  # validated-identifier token -> person token
        self._holders: dict[str, list[str]] = {}  # name/dob token -> person tokens holding it
        self._alias: dict[str, str] = {}  # merged-away person token -> surviving person token
        self._dirty: set[str] = set()

    # --- linking ----------------------------------------------------------------------------------

    def add(self, record: Mapping[str, Any]) -> tuple[str | None, list[Merge]]:
        """Link one record; returns its person token (None without tokens) and the merges it caused."""
        tokens: Mapping[str, str] = record.get("tokens") or {}
        partner = str(record.get("source_partner") or "")
        claim = {
            (f"local_id:{partner}" if kind == "local_id" else kind): tokens[kind]
            for kind in STRONG_KINDS
            if tokens.get(kind)
        }
        weak = [
            (t, kind in _UNLOCATED) for kind in WEAK_KINDS if tokens.get(kind) for t in tokens[kind].split()
        ]
        if not claim and not weak:
            return None, []
        located = bool(tokens.get("name_dob_district"))

        target: str | None = None
        losers: list[str] = []
        for kind, token in claim.items():  # rule 1, in rank order
            owner = self._owner.get(token)
            if owner is None or owner == target:
                continue
            ids = self._clusters[owner].ids
            if target is None:
                if _compatible(claim, ids, below=_rank(kind)):
                    target = owner
            elif _compatible(self._effective(target, claim), ids):
                target = self._union(target, owner, losers)

        for token, unlocated in weak:  # rule 2, tier by tier
            others = [h for h in self._holders.get(token, ()) if h != target]
            if len(others) != 1:
                continue
            other = self._clusters[others[0]]
            if unlocated and other.located and (located or (target and self._clusters[target].located)):
                continue  # both sides have a district and it differs: name + dob alone is not enough
            if _compatible(self._effective(target, claim), other.ids):
                target = others[0] if target is None else self._union(target, others[0], losers)

        if target is None:  # rule 3
            target = self._found(next(iter(claim.values()), None) or weak[0][0])
        self._attach(target, claim, [t for t, _ in weak], located)
        return target, [Merge(loser, target) for loser in losers]

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
        return {pt: c.to_json() for pt, c in self._clusters.items()}

    @classmethod
    def from_state(cls, state: Mapping[str, Mapping[str, Any] | None]) -> Linker:
        """Rebuild from `to_state()` or a replayed changelog (None values are deletions)."""
        linker = cls()
        for pt, doc in sorted(state.items()):
            if doc is None:
                continue
            cluster = _Cluster.from_json(doc)
            linker._clusters[pt] = cluster
            for t in cluster.ids.values():
                linker._owner[t] = pt
            for t in cluster.weak:
                linker._holders.setdefault(t, []).append(pt)
            for alias in cluster.aliases:
                linker._alias[alias] = pt
        return linker

    def drain_changes(self) -> dict[str, dict[str, Any] | None]:
        """Clusters changed since the last call: person token -> JSON, or None if gone."""
        changes = {pt: (c.to_json() if (c := self._clusters.get(pt)) else None) for pt in sorted(self._dirty)}
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
        self._clusters[pt] = _Cluster()
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
        for alias in (gone, *loser.aliases):
            self._alias[alias] = keep
            survivor.aliases.append(alias)
        losers.append(gone)
        self._dirty.update((keep, gone))
        return keep
