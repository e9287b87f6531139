"""Key ring: known-answer tokens, domains, persistence, rotation, fail-closed, no secret leaks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import stat
from datetime import date
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from sharebus.keys import register
from streams.errors import ConfigurationError
from streams.privacy.keys import KeyRing, pseudonym

K1 = bytes(range(32))
K2 = bytes(range(100, 132))
K1_B64 = base64.b64encode(K1).decode()
K2_B64 = base64.b64encode(K2).decode()


def expected(key: bytes, kid: str, domain: str, kind: str, value: str) -> str:
    """The token spelled out from the contract, independently of streams.privacy.keys."""
    mac = hmac.new(key, f"{domain}\x1f{kind}\x1f{value}".encode(), hashlib.sha256).digest()
    return f"{kid}." + base64.b32encode(mac).decode()[:26].lower()


def write_ring(path: Path, active: str = "k1") -> None:
    doc = {
        "active": active,
        "keys": {
            "k1": {"secret": K1_B64, "created": "2026-01-01T00:00:00+00:00"},
            "k2": {"secret": K2_B64, "created": "2026-02-01T00:00:00+00:00"},
        },
    }
    path.write_text(json.dumps(doc))


@pytest.fixture
def ring(tmp_path: Path) -> KeyRing:
    write_ring(tmp_path / "ring.json")
    return KeyRing.load(tmp_path / "ring.json")


def test_known_answer(ring: KeyRing) -> None:
    token = pseudonym(ring, "recipient:vru_analysts", "nhs_number", "9434765919")
    assert token == expected(K1, "k1", "recipient:vru_analysts", "nhs_number", "9434765919")
    assert len(token) == 3 + 26 and token == token.lower()
    # A fixed vector, so a change of algorithm cannot pass silently with both sides changed.
    digest = hmac.new(K1, b"recipient:vru_analysts\x1fnhs_number\x1f9434765919", "sha256").digest()
    assert token == "k1." + base64.b32encode(digest).decode()[:26].lower()


def test_tokenizer_matches_pseudonym(ring: KeyRing) -> None:
    tok = ring.tokenizer("purpose:svd", "upn")
    for value in ["B801200005001", "", "ünïcode", "a\x1fb"]:
        assert (
            tok(value)
            == pseudonym(ring, "purpose:svd", "upn", value)
            == expected(K1, "k1", "purpose:svd", "upn", value)
        )


def test_many_random_values_match_the_reference(ring: KeyRing) -> None:
    rng = random.Random(3)
    tok = ring.tokenizer("recipient:x", "name")
    for _ in range(500):
        value = "".join(rng.choice("abcdefgh xyz'-éü") for _ in range(rng.randrange(0, 30)))
        assert tok(value) == expected(K1, "k1", "recipient:x", "name", value)


def test_dates_are_hashed_as_iso(ring: KeyRing) -> None:
    d = date(2010, 3, 4)
    assert pseudonym(ring, "bus:linkage", "date_of_birth", d) == expected(
        K1, "k1", "bus:linkage", "date_of_birth", "2010-03-04"
    )
    assert ring.tokenizer("bus:linkage", "date_of_birth")(d) == pseudonym(
        ring, "bus:linkage", "date_of_birth", "2010-03-04"
    )


def test_domains_and_kinds_separate_tokens(ring: KeyRing) -> None:
    a = pseudonym(ring, "recipient:a", "nhs_number", "9434765919")
    b = pseudonym(ring, "recipient:b", "nhs_number", "9434765919")
    c = pseudonym(ring, "recipient:a", "local_id", "9434765919")
    assert len({a, b, c}) == 3


def test_stable_across_reload(tmp_path: Path) -> None:
    path = tmp_path / "ring.json"
    first = KeyRing.load_or_create(path)
    token = pseudonym(first, "d", "name", "anne marie")
    again = KeyRing.load_or_create(path)
    assert again.active_id == first.active_id == "k1"
    assert pseudonym(again, "d", "name", "anne marie") == token
    assert again.key("k1") == first.key("k1") and len(first.key("k1")) == 32


def test_saved_file_is_private_and_well_formed(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ring.json"
    ring = KeyRing.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["active"] == "k1"
    assert base64.b64decode(doc["keys"]["k1"]["secret"]) == ring.key("k1")
    assert doc["keys"]["k1"]["created"]
    assert [p.name for p in path.parent.iterdir()] == ["ring.json"]  # no temporary file left


def test_rotation_keeps_old_keys_for_linkage(tmp_path: Path) -> None:
    path = tmp_path / "ring.json"
    ring = KeyRing.load_or_create(path)
    old = pseudonym(ring, "bus:linkage", "nhs_number", "9434765919")
    old_key = ring.key("k1")
    assert ring.rotate(path) == "k2"
    reloaded = KeyRing.load(path)
    assert reloaded.active_id == "k2" and reloaded.ids == ["k1", "k2"]
    new = pseudonym(reloaded, "bus:linkage", "nhs_number", "9434765919")
    assert new.startswith("k2.") and new != old
    assert new == expected(reloaded.key("k2"), "k2", "bus:linkage", "nhs_number", "9434765919")
    assert pseudonym(reloaded, "bus:linkage", "nhs_number", "9434765919", kid="k1") == old
    assert reloaded.key("k1") == old_key != reloaded.key("k2")
    assert reloaded.created("k1") <= reloaded.created("k2")


def test_missing_key_fails_closed(ring: KeyRing) -> None:
    with pytest.raises(ConfigurationError, match="k9"):
        ring.key("k9")
    with pytest.raises(ConfigurationError):
        pseudonym(ring, "d", "nhs_number", "9434765919", kid="k9")
    with pytest.raises(ConfigurationError):
        ring.tokenizer("d", "upn", kid="k9")


def test_from_env() -> None:
    env = {"SHARINGBUS_KEYS": f"k1:{K1_B64}, k2:{K2_B64}", "SHARINGBUS_ACTIVE_KEY": "k1"}
    ring = KeyRing.from_env(env)
    assert ring.active_id == "k1" and ring.ids == ["k1", "k2"] and ring.key("k2") == K2
    assert KeyRing.from_env({"SHARINGBUS_KEYS": f"k1:{K1_B64},k2:{K2_B64}"}).active_id == "k2"
    urlsafe = base64.urlsafe_b64encode(K2).decode()
    assert KeyRing.from_env({"SHARINGBUS_KEYS": f"k7:{urlsafe}"}).key("k7") == K2


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"SHARINGBUS_KEYS": ""},
        {"SHARINGBUS_KEYS": K1_B64},
        {"SHARINGBUS_KEYS": f"k1:{K1_B64}", "SHARINGBUS_ACTIVE_KEY": "k2"},
        {"SHARINGBUS_KEYS": f"k.1:{K1_B64}"},
        {"SHARINGBUS_KEYS": "k1:" + base64.b64encode(b"short").decode()},
        {"SHARINGBUS_KEYS": "k1:not*base64!"},
    ],
)
def test_from_env_rejects(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        KeyRing.from_env(env)


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"active": "k1", "keys": {}}',
        json.dumps({"active": "k3", "keys": {"k1": {"secret": K1_B64}}}),
        json.dumps({"active": "k1", "keys": {"k1": {"secret": K1_B64[:-8]}}}),
        json.dumps({"active": "k1", "keys": {"k1": "x"}}),
    ],
)
def test_load_rejects_bad_files(tmp_path: Path, content: str) -> None:
    path = tmp_path / "ring.json"
    path.write_text(content)
    with pytest.raises(ConfigurationError, match=r"ring\.json"):
        KeyRing.load(path)


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not found"):
        KeyRing.load(tmp_path / "absent.json")


def _secret_forms(key: bytes) -> list[str]:
    return [base64.b64encode(key).decode(), key.hex(), repr(key), str(key)]


def test_repr_and_str_never_show_keys(ring: KeyRing) -> None:
    for text in (repr(ring), str(ring), f"{ring}"):
        assert "k1" in text
        for form in _secret_forms(K1) + _secret_forms(K2):
            assert form not in text


def test_errors_never_contain_key_material(tmp_path: Path) -> None:
    short = base64.b64encode(b"0123456789abcdef").decode()
    bad_inputs = [
        {"SHARINGBUS_KEYS": f"k1:{short}"},
        {"SHARINGBUS_KEYS": f"k1:{K1_B64}", "SHARINGBUS_ACTIVE_KEY": "nope"},
        {"SHARINGBUS_KEYS": f"k1:{K1_B64}*"},
    ]
    for env in bad_inputs:
        with pytest.raises(ConfigurationError) as info:
            KeyRing.from_env(env)
        message = str(info.value) + repr(info.value.args)
        for secret in (short, K1_B64, K1_B64 + "*"):
            assert secret not in message
        # No chained exception either: a traceback could otherwise show the decoder's input.
        assert info.value.__cause__ is None
        assert info.value.__context__ is None or info.value.__suppress_context__
    path = tmp_path / "ring.json"
    path.write_text(json.dumps({"active": "k1", "keys": {"k1": {"secret": K1_B64 + "!"}}}))
    with pytest.raises(ConfigurationError) as info:
        KeyRing.load(path)
    assert K1_B64 not in str(info.value)


def _cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        pass

    register(app)
    return app


def test_cli_rotate_and_list(tmp_path: Path) -> None:
    path = tmp_path / "ring.json"
    runner = CliRunner()
    first = runner.invoke(_cli(), ["keys", "rotate", "--keyring", str(path)])
    assert first.exit_code == 0 and first.output.strip() == "k1"
    second = runner.invoke(_cli(), ["keys", "rotate", "--keyring", str(path)])
    assert second.exit_code == 0 and second.output.strip() == "k2"
    listed = runner.invoke(_cli(), ["keys", "list", "--keyring", str(path)])
    assert listed.exit_code == 0
    lines = listed.output.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["k1", "k2"] and lines[1].endswith("(active)")
    ring = KeyRing.load(path)
    for out in (first.output, second.output, listed.output):
        for kid in ("k1", "k2"):
            for form in _secret_forms(ring.key(kid)):
                assert form not in out


def test_cli_list_missing_file_fails(tmp_path: Path) -> None:
    result = CliRunner().invoke(_cli(), ["keys", "list", "--keyring", str(tmp_path / "none.json")])
    assert result.exit_code == 1 and "not found" in result.output
