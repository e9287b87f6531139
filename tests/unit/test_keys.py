"""Key ring: known-answer tokens, per-domain keys, persistence, rotation, fail-closed, no secret leaks."""

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
from streams.privacy.key_sources import EnvKeys, FileKeys, load_keyring, provider_for
from streams.privacy.keys import KeyRing, pseudonym
from streams.settings import Settings
from tests.support.tokens import HKDF_LABEL, domain_key, expected_token

K1 = bytes(range(32))
K2 = bytes(range(100, 132))
K1_B64 = base64.b64encode(K1).decode()
K2_B64 = base64.b64encode(K2).decode()


def expected(master: bytes, kid: str, domain: str, kind: str, value: str) -> str:
    return expected_token(master, kid, domain, kind, value)


def write_ring(path: Path, active: str = "k1") -> None:
    doc = {
        "active": active,
        "keys": {
            "k1": {"secret": K1_B64, "created": "2026-01-01T00:00:00+00:00"},
            "k2": {"secret": K2_B64, "created": "2026-02-01T00:00:00+00:00"},
        },
    }
    path.write_text(json.dumps(doc))
    path.chmod(0o600)


@pytest.fixture
def ring(tmp_path: Path) -> KeyRing:
    write_ring(tmp_path / "ring.json")
    return KeyRing.load(tmp_path / "ring.json")


def test_known_answer(ring: KeyRing) -> None:
    token = pseudonym(ring, "recipient:vru_analysts", "nhs_number", "9434765919")
    assert token == expected(K1, "k1", "recipient:vru_analysts", "nhs_number", "9434765919")
    assert len(token) == 3 + 26 and token == token.lower()
    # A fixed vector, so a change of algorithm cannot pass silently with both sides changed.
    assert token == "k1.jnwco7ulwllppbm7a6e62ujsrr"


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


def test_one_domains_key_computes_no_other_domains_tokens(ring: KeyRing) -> None:
    """Each domain has its own HKDF key: A's key yields A's tokens, and neither the master-keyed
    construction nor A's key (under any domain label) yields B's."""
    value = "9434765919"
    key_a = domain_key(K1, "k1", "recipient:a")
    a = pseudonym(ring, "recipient:a", "nhs_number", value)
    b = pseudonym(ring, "recipient:b", "nhs_number", value)

    def with_key(key: bytes, message: str) -> str:
        return (
            "k1." + base64.b32encode(hmac.new(key, message.encode(), "sha256").digest()).decode()[:26].lower()
        )

    assert a == with_key(key_a, f"nhs_number\x1f{value}")
    attempts = {
        with_key(key_a, f"nhs_number\x1f{value}"),
        with_key(key_a, f"recipient:b\x1fnhs_number\x1f{value}"),
        with_key(K1, f"recipient:b\x1fnhs_number\x1f{value}"),  # one master key for every domain
        with_key(K1, f"nhs_number\x1f{value}"),
    }
    assert b not in attempts
    assert len({key_a, domain_key(K1, "k1", "recipient:b"), domain_key(K1, "k2", "recipient:a"), K1}) == 4


def test_domain_key_info_is_unambiguous() -> None:
    from streams.privacy.domain_keys import domain_key_info

    assert domain_key_info("k1", "ab") != domain_key_info("k1a", "b")
    assert domain_key_info("k1", "recipient:a") == HKDF_LABEL + b"\x00\x02k1\x00\x0brecipient:a"


def test_mac_serves_tokenizer_and_callers(ring: KeyRing) -> None:
    """One keyed MAC for every caller (linkage's fuzzy tokens use it directly): fresh on every call."""
    first = ring.mac("bus:linkage", "fuzzy_family", "k1")
    first.update(b"garbage")
    again = ring.mac("bus:linkage", "fuzzy_family", "k1")
    again.update(b"x")
    plain = hmac.new(domain_key(K1, "k1", "bus:linkage"), b"fuzzy_family\x1fx", hashlib.sha256)
    assert again.digest() == plain.digest() != first.digest()


def test_stable_across_reload(tmp_path: Path) -> None:
    path = tmp_path / "ring.json"
    first = KeyRing.load_or_create(path)
    token = pseudonym(first, "d", "name", "anne marie")
    again = KeyRing.load_or_create(path)
    assert again.active_id == first.active_id == "k1"
    assert pseudonym(again, "d", "name", "anne marie") == token
    secret = base64.b64decode(json.loads(path.read_text())["keys"]["k1"]["secret"])
    assert len(secret) == 32 and token == expected(secret, "k1", "d", "name", "anne marie")


def test_saved_file_is_private_and_well_formed(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ring.json"
    ring = KeyRing.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["active"] == "k1"
    secret = base64.b64decode(doc["keys"]["k1"]["secret"])
    assert pseudonym(ring, "d", "upn", "x") == expected(secret, "k1", "d", "upn", "x")
    assert doc["keys"]["k1"]["created"]
    assert [p.name for p in path.parent.iterdir()] == ["ring.json"]  # no temporary file left


def test_rotation_keeps_old_keys_for_linkage(tmp_path: Path) -> None:
    path = tmp_path / "ring.json"
    ring = KeyRing.load_or_create(path)
    old = pseudonym(ring, "bus:linkage", "nhs_number", "9434765919")
    old_key = json.loads(path.read_text())["keys"]["k1"]["secret"]
    assert ring.rotate(path) == "k2"
    reloaded = KeyRing.load(path)
    assert reloaded.active_id == "k2" and reloaded.ids == ["k1", "k2"]
    saved = {k: base64.b64decode(v["secret"]) for k, v in json.loads(path.read_text())["keys"].items()}
    new = pseudonym(reloaded, "bus:linkage", "nhs_number", "9434765919")
    assert new.startswith("k2.") and new != old
    assert new == expected(saved["k2"], "k2", "bus:linkage", "nhs_number", "9434765919")
    assert pseudonym(reloaded, "bus:linkage", "nhs_number", "9434765919", kid="k1") == old
    assert saved["k1"] == base64.b64decode(old_key) != saved["k2"]
    assert reloaded.created("k1") <= reloaded.created("k2")


def test_missing_key_fails_closed(ring: KeyRing) -> None:
    with pytest.raises(ConfigurationError, match="k9"):
        ring.require("k9")
    ring.require("k2")
    with pytest.raises(ConfigurationError):
        pseudonym(ring, "d", "nhs_number", "9434765919", kid="k9")
    with pytest.raises(ConfigurationError):
        ring.tokenizer("d", "upn", kid="k9")


def _token_of(ring: KeyRing, kid: str) -> str:
    return pseudonym(ring, "d", "upn", "v", kid=kid)


def test_from_spec() -> None:
    ring = KeyRing.from_spec(f"k1:{K1_B64}, k2:{K2_B64}", "k1")
    assert ring.active_id == "k1" and ring.ids == ["k1", "k2"]
    assert _token_of(ring, "k2") == expected(K2, "k2", "d", "upn", "v")
    assert KeyRing.from_spec(f"k1:{K1_B64},k2:{K2_B64}").active_id == "k2"
    urlsafe = base64.urlsafe_b64encode(K2).decode()
    assert _token_of(KeyRing.from_spec(f"k7:{urlsafe}"), "k7") == expected(K2, "k7", "d", "upn", "v")


@pytest.mark.parametrize(
    ("spec", "active"),
    [
        ("", None),
        (K1_B64, None),
        (f"k1:{K1_B64}", "k2"),
        (f"k.1:{K1_B64}", None),
        ("k1:" + base64.b64encode(b"short").decode(), None),
        ("k1:not*base64!", None),
    ],
)
def test_from_spec_rejects(spec: str, active: str | None) -> None:
    with pytest.raises(ConfigurationError, match="SHARINGBUS_"):
        KeyRing.from_spec(spec, active)


def test_settings_declare_the_key_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """SHARINGBUS_KEYS and SHARINGBUS_ACTIVE_KEY are read by Settings, and win over the file."""
    monkeypatch.setenv("SHARINGBUS_KEYS", f"k1:{K1_B64},k2:{K2_B64}")
    monkeypatch.setenv("SHARINGBUS_ACTIVE_KEY", "k1")
    settings = Settings(keyring_path=tmp_path / "absent.json")
    assert K1_B64 not in repr(settings)  # a secret field
    assert isinstance(provider_for(settings), EnvKeys)
    ring = load_keyring(settings)
    assert ring.active_id == "k1" and _token_of(ring, "k2") == expected(K2, "k2", "d", "upn", "v")
    monkeypatch.delenv("SHARINGBUS_KEYS")
    assert provider_for(Settings(keyring_path=tmp_path / "absent.json")) == FileKeys(tmp_path / "absent.json")


class _Vault:
    """A KMS-style provider as a deployment would plug one in (here the secret is a constant)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def load(self) -> KeyRing:
        return KeyRing.from_secrets({"kms1": K2}, active="kms1")


def test_a_plugged_in_provider_supplies_the_keys(tmp_path: Path) -> None:
    settings = Settings(key_provider=f"{__name__}:_Vault", keyring_path=tmp_path / "absent.json")
    ring = load_keyring(settings)
    assert ring.active_id == "kms1" and _token_of(ring, "kms1") == expected(K2, "kms1", "d", "upn", "v")
    for target, message in [
        ("no_colon", "module:factory"),
        ("no.such.module:f", "cannot be imported"),
        (f"{__name__}:K1", "did not return a KeyProvider"),
    ]:
        with pytest.raises(ConfigurationError, match=message):
            load_keyring(Settings(key_provider=target))


def test_key_files_open_to_group_or_others_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "ring.json"
    write_ring(path)
    for mode in (0o640, 0o604, 0o644, 0o660):
        path.chmod(mode)
        with pytest.raises(ConfigurationError) as info:
            KeyRing.load(path)
        message = str(info.value)
        assert message == (
            f"{path}: key ring is open to group or others (mode {mode:04o}): run chmod 600 {path}"
        )
        assert K1_B64 not in message
    path.chmod(0o600)
    assert KeyRing.load(path).ids == ["k1", "k2"]


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
    path.chmod(0o600)
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
    bad_inputs = [(f"k1:{short}", None), (f"k1:{K1_B64}", "nope"), (f"k1:{K1_B64}*", None)]
    for spec, active in bad_inputs:
        with pytest.raises(ConfigurationError) as info:
            KeyRing.from_spec(spec, active)
        message = str(info.value) + repr(info.value.args)
        for secret in (short, K1_B64, K1_B64 + "*"):
            assert secret not in message
        # No chained exception either: a traceback could otherwise show the decoder's input.
        assert info.value.__cause__ is None
        assert info.value.__context__ is None or info.value.__suppress_context__
    path = tmp_path / "ring.json"
    path.write_text(json.dumps({"active": "k1", "keys": {"k1": {"secret": K1_B64 + "!"}}}))
    path.chmod(0o600)
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
    saved = [base64.b64decode(v["secret"]) for v in json.loads(path.read_text())["keys"].values()]
    assert len(saved) == 2
    for out in (first.output, second.output, listed.output):
        for secret in saved:
            for form in _secret_forms(secret):
                assert form not in out


def test_cli_list_missing_file_fails(tmp_path: Path) -> None:
    result = CliRunner().invoke(_cli(), ["keys", "list", "--keyring", str(tmp_path / "none.json")])
    assert result.exit_code == 1 and "not found" in result.output and "sharebus keys rotate" in result.output


def test_retire_removes_a_key_for_good(tmp_path: Path) -> None:
    path = tmp_path / "ring.json"
    ring = KeyRing.load_or_create(path)
    ring.rotate(path)
    ring.rotate(path)  # k1 k2 k3, k3 active
    ring.retire("k2", path)
    reloaded = KeyRing.load(path)
    assert reloaded.ids == ["k1", "k3"] and reloaded.retired == ["k2"]
    with pytest.raises(ConfigurationError, match="'k2' is not in the key ring"):
        pseudonym(reloaded, "d", "upn", "x", kid="k2")  # nothing is tokenised under a retired key
    with pytest.raises(ConfigurationError, match="rotate to a new key before retiring it"):
        reloaded.retire("k3")
    reloaded.retire("k1", path)
    assert reloaded.rotate(path) == "k4"  # a retired id is never issued again
    assert KeyRing.load(path).retired == ["k2", "k1"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_retire_never_reissues_the_highest_id(tmp_path: Path) -> None:
    path = tmp_path / "ring.json"
    write_ring(path, active="k1")  # k1 (active) and k2
    ring = KeyRing.load(path)
    ring.retire("k2", path)
    assert KeyRing.load(path).rotate(path) == "k3"


def test_cli_retire_refuses_the_active_and_the_linkage_key(tmp_path: Path) -> None:
    path = tmp_path / "ring.json"
    runner = CliRunner()
    for _ in range(3):
        assert runner.invoke(_cli(), ["keys", "rotate", "--keyring", str(path)]).exit_code == 0
    linkage = runner.invoke(_cli(), ["keys", "retire", "k1", "--keyring", str(path)])
    assert linkage.exit_code == 1 and linkage.output.startswith("error: key 'k1' is the linkage key")
    active = runner.invoke(_cli(), ["keys", "retire", "k3", "--keyring", str(path)])
    assert active.exit_code == 1 and "rotate to a new key before retiring it" in active.output
    unknown = runner.invoke(_cli(), ["keys", "retire", "k9", "--keyring", str(path)])
    assert unknown.exit_code == 1 and "'k9' is not in the key ring" in unknown.output
    done = runner.invoke(_cli(), ["keys", "retire", "k2", "--keyring", str(path)])
    assert done.exit_code == 0 and done.output == "retired k2\n"
    listed = runner.invoke(_cli(), ["keys", "list", "--keyring", str(path)])
    assert [line.split("\t")[0] for line in listed.output.splitlines()] == ["k1", "k3"]
    for result in (linkage, active, unknown, done):
        assert len(result.output.strip().splitlines()) == 1
