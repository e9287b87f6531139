"""Per-recipient person tokens: the linker's derived keys give the enforcer's tokens, and no others."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from streams.errors import ConfigurationError
from streams.linkage.view_tokens import ViewTokens, view_domain, view_keys
from streams.privacy.domain_keys import DomainKeys
from streams.privacy.keys import KeyRing, pseudonym
from streams.settings import ROOT

RING = KeyRing.from_secrets({"k1": b"a" * 32, "k2": b"b" * 32}, "k2")


def test_derived_view_keys_give_the_key_rings_tokens_and_nothing_else(tmp_path: Path) -> None:
    keys = view_keys(RING, ROOT / "agreements", "k1")
    from_ring, from_keys = ViewTokens(RING, "k1"), ViewTokens(keys, "k1")
    p = "p.abcdefghijklmnopqrstuvwxyz"
    assert from_keys.token("vru_analysts", p) == from_ring.token("vru_analysts", p)
    assert from_keys.token("vru_analysts", p) != from_keys.token("reading_yjs_team", p)
    assert from_keys.token("vru_analysts", p).startswith("k1.")
    # the same construction as every pseudonym of the recipient's domain, under the pinned key
    assert from_keys.token("vru_analysts", p) == pseudonym(
        RING, view_domain("vru_analysts"), "person", p, "k1"
    )
    with pytest.raises(ConfigurationError):  # an identifier domain's key is not held
        keys.mac("bus:linkage", "nhs_number", "k1")
    with pytest.raises(ConfigurationError):  # nor another key id's
        keys.mac(view_domain("vru_analysts"), "person", "k2")
    path = tmp_path / "view-keys.json"
    keys.save(path)
    assert path.stat().st_mode & 0o077 == 0
    assert ViewTokens(DomainKeys.load(path), "k1").token("vru_analysts", p) == from_ring.token(
        "vru_analysts", p
    )
    assert base64.b64encode(b"a" * 32).decode() not in path.read_text()  # no master in the file
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="open to group"):
        DomainKeys.load(path)


def test_a_missing_pinned_key_fails_at_start() -> None:
    with pytest.raises(ConfigurationError):
        ViewTokens(view_keys(RING, ROOT / "agreements", "k1"), "k2")
