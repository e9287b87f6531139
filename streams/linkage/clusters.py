"""What the linker keeps per person: a cluster of tokens, its person token and its JSON form.

A cluster holds at most one validated identifier token of each kind (`ids`, ranked `nhs_number` >
`upn` > `pnc_id` > `local_id`), the name and date-of-birth keys seen in it, the person tokens merged
into it, and what reviewers said about it. Two clusters may be one person only when no kind they
both hold has different tokens (`compatible`).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.linkage.compare import Signature
from streams.linkage.tokens import STRONG_KINDS

__all__ = ["Cluster", "compatible", "person_token", "rank"]

PERSON_DOMAIN = b"sharingbus:person\x1f"
RANK = {kind: i for i, kind in enumerate(STRONG_KINDS)}


def person_token(canonical: str) -> str:
    """`p.` + 26 lower-case base32 characters derived from a cluster's canonical token."""
    digest = hashlib.sha256(PERSON_DOMAIN + canonical.encode()).digest()
    return "p." + base64.b32encode(digest)[:26].decode("ascii").lower()


def rank(kind_key: str) -> int:
    """Rank of an identifier kind key ("local_id:<partner>" ranks as local_id); 0 is the highest."""
    return RANK[kind_key.split(":", 1)[0]]


@dataclass(slots=True)
class Cluster:
    ids: dict[str, str] = field(default_factory=dict)  # kind key ("local_id:<partner>") -> token
    weak: list[str] = field(default_factory=list)  # name/dob tokens seen in this cluster
    aliases: list[str] = field(default_factory=list)  # person tokens merged into this one
    located: bool = False  # some record had a postcode district (a name_dob_district key)
    apart: list[str] = field(default_factory=list)  # person tokens a reviewer said are someone else
    pending: list[str] = field(default_factory=list)  # person tokens queued for review with this one

    def to_json(self, sigs: list[Signature]) -> dict[str, Any]:
        doc: dict[str, Any] = {"ids": dict(self.ids), "weak": list(self.weak), "aliases": list(self.aliases)}
        if self.located:
            doc["located"] = True
        for name in ("apart", "pending"):
            if getattr(self, name):
                doc[name] = list(getattr(self, name))
        if sigs:
            doc["sigs"] = [dict(s.tokens) for s in sigs]
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Cluster:
        return cls(
            dict(doc.get("ids", {})),
            list(doc.get("weak", [])),
            list(doc.get("aliases", [])),
            bool(doc.get("located", False)),
            list(doc.get("apart", [])),
            list(doc.get("pending", [])),
        )


def compatible(a: Mapping[str, str], b: Mapping[str, str], below: int | None = None) -> bool:
    """No kind present in both with different tokens (only kinds ranked above `below`, if given)."""
    for kind, token in a.items():
        other = b.get(kind)
        if other is not None and other != token and (below is None or rank(kind) < below):
            return False
    return True
