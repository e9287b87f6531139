"""The identity core: tokens of the embedded issuer (and of a JWKS-publishing IdP) through PyJWT.

Every refusal names its reason in one line; the recipient and tier come from claims and are
checked against `recipients.yaml`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import stat
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from streams.errors import ConfigurationError, SharingBusError
from streams.identity import AuthError, LocalIssuer, Principal, TokenVerifier
from streams.identity.keys import key_id
from streams.identity.recipients import RecipientCaps
from streams.identity.verifier import JwksKeys, StaticKeys
from streams.settings import ROOT, Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "var")


@pytest.fixture
def issuer(settings: Settings) -> LocalIssuer:
    return LocalIssuer.from_settings(settings)


@pytest.fixture
def verifier(settings: Settings, issuer: LocalIssuer) -> TokenVerifier:
    return TokenVerifier.from_settings(settings)


def _refused(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(AuthError) as caught:
        verifier.verify(token)
    message = str(caught.value)
    assert "\n" not in message and token not in message
    return message


def test_a_minted_token_verifies_to_its_principal(issuer: LocalIssuer, verifier: TokenVerifier) -> None:
    token = issuer.mint(
        "alice", recipient="vru_analysts", tier="individual", partner="reading_schools", roles=["ops", "a"]
    )
    assert verifier.verify(token) == Principal(
        "alice", "vru_analysts", "individual", "reading_schools", frozenset({"ops", "a"})
    )
    assert issubclass(AuthError, SharingBusError)


def test_the_issuer_key_is_made_once_and_private(settings: Settings, issuer: LocalIssuer) -> None:
    path = LocalIssuer.key_path(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert LocalIssuer.from_settings(settings).kid == issuer.kid  # read back, not made again
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="readable by others"):
        LocalIssuer.from_settings(settings)


def test_expired_and_not_yet_valid(settings: Settings, verifier: TokenVerifier) -> None:
    key = LocalIssuer.from_settings(settings)
    past = LocalIssuer(
        key._key, issuer="sharingbus-local", audience="sharingbus", clock=lambda: time.time() - 7200
    )
    assert _refused(verifier, past.mint("bob", ttl_seconds=600)) == "token expired"
    future = LocalIssuer(
        key._key, issuer="sharingbus-local", audience="sharingbus", clock=lambda: time.time() + 600
    )
    assert _refused(verifier, future.mint("bob")) == "token not yet valid"


def test_wrong_issuer_and_audience(issuer: LocalIssuer, verifier: TokenVerifier) -> None:
    other_iss = LocalIssuer(issuer._key, issuer="https://evil.example", audience="sharingbus")
    assert _refused(verifier, other_iss.mint("bob")) == "wrong issuer"
    other_aud = LocalIssuer(issuer._key, issuer="sharingbus-local", audience="another-api")
    assert _refused(verifier, other_aud.mint("bob")) == "wrong audience"


def test_bad_signature_and_unknown_key(issuer: LocalIssuer, verifier: TokenVerifier) -> None:
    token = issuer.mint("bob", recipient="reading_csp", tier="area")
    head = token.split(".")[0]
    forged_body = jwt.utils.base64url_encode(
        json.dumps({**jwt.decode(token, options={"verify_signature": False}), "tier": "individual"}).encode()
    ).decode()
    assert _refused(verifier, f"{head}.{forged_body}.{token.split('.')[2]}") == "bad signature"
    stranger = ec.generate_private_key(ec.SECP256R1())
    claims = jwt.decode(token, options={"verify_signature": False})
    same_kid = jwt.encode(claims, stranger, algorithm="ES256", headers={"kid": issuer.kid})
    assert _refused(verifier, same_kid) == "bad signature"
    own_kid = LocalIssuer(stranger, issuer="sharingbus-local", audience="sharingbus").mint("bob")
    assert _refused(verifier, own_kid) == "unknown key id"


def test_algorithm_confusion_and_garbage(issuer: LocalIssuer, verifier: TokenVerifier) -> None:
    claims = jwt.decode(issuer.mint("bob"), options={"verify_signature": False})
    # The classic confusion: HMAC keyed with the (public) PEM. PyJWT refuses to make one; by hand:
    b64 = jwt.utils.base64url_encode
    signing_input = b".".join(
        b64(json.dumps(part).encode()) for part in ({"alg": "HS256", "kid": issuer.kid}, claims)
    )
    mac = b64(hmac.new(issuer.public_pem, signing_input, hashlib.sha256).digest())
    hmac_token = (signing_input + b"." + mac).decode()
    assert _refused(verifier, hmac_token) == "algorithm 'HS256' not accepted"
    unsigned = jwt.encode(claims, None, algorithm="none")
    assert _refused(verifier, unsigned) == "algorithm 'none' not accepted"
    assert _refused(verifier, "not.a.token") == "malformed token"
    assert _refused(verifier, "   ") == "empty token"


def test_missing_and_invalid_claims(issuer: LocalIssuer, verifier: TokenVerifier) -> None:
    base = jwt.decode(issuer.mint("bob"), options={"verify_signature": False})
    for claim in ("exp", "iat", "iss", "aud", "sub"):
        token = jwt.encode(
            {k: v for k, v in base.items() if k != claim},
            issuer._key,
            algorithm="ES256",
            headers={"kid": issuer.kid},
        )
        assert _refused(verifier, token) == f"missing claim {claim}"
    bad = jwt.encode({**base, "tier": "god"}, issuer._key, algorithm="ES256", headers={"kid": issuer.kid})
    assert _refused(verifier, bad).startswith("invalid claim tier")


def test_recipient_must_be_listed_and_tier_within_its_cap(
    issuer: LocalIssuer, verifier: TokenVerifier
) -> None:
    assert (
        _refused(verifier, issuer.mint("bob", recipient="made_up", tier="area"))
        == "unknown recipient 'made_up'"
    )
    over = issuer.mint("bob", recipient="public_open_data", tier="individual")
    assert _refused(verifier, over) == "tier individual exceeds recipient public_open_data's cap (aggregate)"
    assert "needs a recipient" in _refused(verifier, issuer.mint("bob", tier="aggregate"))


def test_a_removed_recipient_is_refused_at_once(tmp_path: Path, issuer: LocalIssuer) -> None:
    recipients = tmp_path / "agreements" / "recipients.yaml"
    recipients.parent.mkdir()
    original = (ROOT / "agreements" / "recipients.yaml").read_text()
    recipients.write_text(original)
    verifier = TokenVerifier(
        StaticKeys({issuer.kid: issuer.public_key}),
        issuer="sharingbus-local",
        audience="sharingbus",
        caps=RecipientCaps(recipients),
    )
    token = issuer.mint("bob", recipient="reading_csp", tier="area")
    assert verifier.verify(token).recipient == "reading_csp"
    recipients.write_text(original.replace("id: reading_csp", "id: reading_csp_retired"))
    assert _refused(verifier, token) == "unknown recipient 'reading_csp'"


def test_symmetric_algorithms_cannot_be_configured(tmp_path: Path, issuer: LocalIssuer) -> None:
    with pytest.raises(ConfigurationError, match="HS256"):
        TokenVerifier.from_settings(Settings(data_dir=tmp_path / "var", auth_algorithms="ES256,HS256"))


def test_pem_file_with_two_keys_and_claim_mapping(tmp_path: Path) -> None:
    """A VRU's own issuer: keys from a PEM file (rotation: two keys), Keycloak-style nested roles."""
    old, new = ed25519.Ed25519PrivateKey.generate(), ec.generate_private_key(ec.SECP256R1())
    from streams.identity.keys import public_pem

    pem = tmp_path / "idp.pem"
    pem.write_bytes(public_pem(old.public_key()) + public_pem(new.public_key()))
    settings = Settings(
        data_dir=tmp_path / "var",
        auth_public_key_path=pem,
        auth_issuer="https://login.example/realms/vru",
        auth_audience="sharingbus-api",
        auth_recipient_claim="sb_recipient",
        auth_roles_claim="realm_access.roles",
    )
    verifier = TokenVerifier.from_settings(settings)
    now = int(time.time())
    claims = {
        "iss": "https://login.example/realms/vru",
        "aud": ["sharingbus-api", "account"],
        "sub": "f3b2",
        "iat": now,
        "exp": now + 60,
        "sb_recipient": "reading_csp",
        "tier": "area",
        "realm_access": {"roles": ["ops", "offline_access"]},
    }
    for key, alg in ((old, "EdDSA"), (new, "ES256")):
        token = jwt.encode(claims, key, algorithm=alg, headers={"kid": key_id(key.public_key())})
        principal = verifier.verify(token)
        assert (principal.recipient, principal.tier, principal.roles) == (
            "reading_csp",
            "area",
            frozenset({"ops", "offline_access"}),
        )
    no_kid = jwt.encode(claims, new, algorithm="ES256")
    assert _refused(verifier, no_kid) == "token has no key id (kid)"
    assert not (tmp_path / "var" / "identity").exists()  # the local issuer is not made or trusted


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, ec.EllipticCurvePrivateKey]]:
    """A real HTTP server publishing one EC key as a JWKS document (as an OIDC issuer does)."""
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = {**jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k1", "use": "sig"}
    body = json.dumps({"keys": [jwk]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks", key
    finally:
        server.shutdown()


def test_jwks_url(tmp_path: Path, jwks_server: tuple[str, ec.EllipticCurvePrivateKey]) -> None:
    url, key = jwks_server
    verifier = TokenVerifier.from_settings(
        Settings(data_dir=tmp_path / "var", auth_jwks_url=url, auth_issuer="https://idp", auth_audience="api")
    )
    assert isinstance(verifier.keys, JwksKeys) and verifier.remote
    now = int(time.time())
    claims = {"iss": "https://idp", "aud": "api", "sub": "u1", "iat": now, "exp": now + 60, "roles": "ops x"}
    principal = verifier.verify(jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k1"}))
    assert principal.subject == "u1" and principal.roles == frozenset({"ops", "x"})
    assert (
        _refused(verifier, jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k2"}))
        == "unknown key id"
    )
