"""Who is asking over HTTP: each attack on the views API, tried as an attacker would.

The views app runs behind the real guard (`agents.web.auth`) over a filled `MemoryViewsReader`;
the last test runs a real worker, whose Faust pages (/metrics, /ready) sit behind the same guard.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agents.web import MemoryViewsReader
from streams.identity import LocalIssuer
from streams.kafka.broker import free_port
from streams.privacy.keys import KeyRing
from streams.settings import ROOT, Settings
from streams.views.factors import load_factors
from tests.support.web import PERSON_VIEW_RECIPIENT, ServerThread, guarded_app
from tests.workers import WorkerProcess, bearer, discard, start_worker

NOW = datetime(2026, 3, 13, 12, tzinfo=UTC)
TOP = "p.aaaaaaaaaaaaaaaaaaaaaaaaaa"
OTHER_INDIVIDUAL = "reading_yjs_team"  # individual tier, but no agreement grants it the person view
OTHER_VIEW = "tvp_offender_management"  # granted a person view of its own here
OTHERS = "k1.bbbbbbbbbbbbbbbbbbbbbbbbbb"  # a person token of OTHER_VIEW's view


def _fact(n: int, token: str, factors: list[str], recipient: str = PERSON_VIEW_RECIPIENT) -> dict[str, Any]:
    return {
        "kind": "fact",
        "recipient": recipient,
        "person_token": token,
        "event_id": f"ev-{n}",
        "subject_index": 0,
        "event_type": "test.event",
        "source_partner": "thames_valley_police",
        "occurred_at": NOW.isoformat(),
        "role": None,
        "factors": factors,
        "area": {"lsoa": None, "district": "RG1"},
    }


class Served:
    def __init__(self, url: str, issuer: LocalIssuer) -> None:
        self.url, self.issuer = url, issuer

    def get(self, path: str, token: str | None = None, **headers: str) -> httpx.Response:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.get(f"{self.url}{path}", headers=headers, timeout=5)

    def mint(self, recipient: str, tier: str, **kw: Any) -> str:
        return self.issuer.mint("attacker", recipient=recipient, tier=tier, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    reader = MemoryViewsReader(load_factors(ROOT / "factors.yaml").factors, clock=lambda: NOW)
    for i in range(3):
        reader.apply(_fact(i, TOP, ["weapon_carrying", "gang_association"]))
    for i in range(3, 40):
        reader.apply(_fact(i, f"p.{i:026d}", ["school_exclusion"]))
    reader.apply(_fact(40, OTHERS, ["weapon_carrying"], OTHER_VIEW))
    views = frozenset({PERSON_VIEW_RECIPIENT, OTHER_VIEW})
    app, issuer = guarded_app(tmp_path_factory.mktemp("web") / "var", reader, person_readers=views)
    with ServerThread(app) as s:
        yield Served(s.url, issuer)


def assert_refused(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == {"error": reason}
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="sharingbus"')
    assert TOP not in response.text


def test_a_spoofed_tier_header_gets_nothing(server: Served) -> None:
    for path in ("/api/cohort", f"/api/persons/{TOP}", "/api/health", "/dashboard"):
        assert_refused(
            server.get(path, **{"X-SharingBus-Tier": "individual"}),
            "no credentials: send Authorization: Bearer <token>",
        )
    area = server.mint("reading_csp", "area")
    spoofed = server.get("/api/cohort", area, **{"X-SharingBus-Tier": "individual"})
    assert spoofed.status_code == 403 and spoofed.json()["tier"] == "area"  # the claim, not the header


def test_no_token_and_a_malformed_header(server: Served) -> None:
    assert_refused(server.get("/api/factors"), "no credentials: send Authorization: Bearer <token>")
    assert_refused(
        server.get("/api/factors", Authorization="Basic dXNlcjpwYXNz"),
        "Authorization must be: Bearer <token>",
    )
    assert_refused(server.get("/api/factors", "not-a-jwt"), "malformed token")


def test_expired_token(server: Served) -> None:
    old = LocalIssuer(
        server.issuer._key, issuer="sharingbus-local", audience="sharingbus", clock=lambda: time.time() - 7200
    )
    assert_refused(
        server.get("/api/factors", old.mint("a", recipient="reading_csp", tier="area")), "token expired"
    )


def test_wrong_issuer_and_wrong_audience(server: Served) -> None:
    key = server.issuer._key
    evil = LocalIssuer(key, issuer="https://evil.example", audience="sharingbus")
    assert_refused(
        server.get("/api/factors", evil.mint("a", recipient="reading_csp", tier="area")), "wrong issuer"
    )
    other = LocalIssuer(key, issuer="sharingbus-local", audience="another-service")
    assert_refused(
        server.get("/api/factors", other.mint("a", recipient="reading_csp", tier="area")), "wrong audience"
    )


def test_bad_signature(server: Served) -> None:
    claims = jwt.decode(server.mint("reading_csp", "area"), options={"verify_signature": False})
    forged = jwt.encode(
        {**claims, "recipient": PERSON_VIEW_RECIPIENT, "tier": "individual"},
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
        headers={"kid": server.issuer.kid},
    )
    assert_refused(server.get(f"/api/persons/{TOP}", forged), "bad signature")


def test_recipient_a_cannot_read_recipient_bs_person_view(server: Served) -> None:
    """An individual-tier recipient without the person view gets nothing person-level; B does."""
    a = server.mint(OTHER_INDIVIDUAL, "individual")
    for path in (f"/api/persons/{TOP}", "/api/cohort"):
        denied = server.get(f"{path}?recipient={PERSON_VIEW_RECIPIENT}", a)
        assert denied.status_code == 403 and TOP not in denied.text
        assert denied.json()["error"] == f"no agreement grants {OTHER_INDIVIDUAL} the person view"
    b = server.mint(PERSON_VIEW_RECIPIENT, "individual")
    assert server.get(f"/api/persons/{TOP}", b).json()["recipient"] == PERSON_VIEW_RECIPIENT
    assert server.get("/api/cohort", b).json()["cohort"][0]["person_token"] == TOP
    # a token may not claim a tier above its recipient's cap, nor a recipient nobody listed
    assert_refused(
        server.get("/api/cohort", server.mint("reading_csp", "individual")),
        "tier individual exceeds recipient reading_csp's cap (area)",
    )
    assert_refused(
        server.get("/api/cohort", server.mint("made_up", "individual")), "unknown recipient 'made_up'"
    )


def test_each_recipient_with_a_person_view_reaches_its_own_view_only(server: Served) -> None:
    """Two recipients hold a person view: another view's token is unknown, the cohort is one's own."""
    other, vru = server.mint(OTHER_VIEW, "individual"), server.mint(PERSON_VIEW_RECIPIENT, "individual")
    for token, caller in ((TOP, other), (OTHERS, vru)):
        unknown = server.get(f"/api/persons/{token}", caller)
        assert unknown.status_code == 404 and unknown.json() == {"error": "unknown person token"}
    assert server.get(f"/api/persons/{OTHERS}", other).json()["person_token"] == OTHERS
    assert [e["person_token"] for e in server.get("/api/cohort?n=100", other).json()["cohort"]] == [OTHERS]
    cohort = [e["person_token"] for e in server.get("/api/cohort?n=100", vru).json()["cohort"]]
    assert cohort[0] == TOP and OTHERS not in cohort and len(cohort) == 38


def test_host_not_allowed(server: Served) -> None:
    b = server.mint(PERSON_VIEW_RECIPIENT, "individual")
    for host in ("evil.example", "evil.example:6066", "127.0.0.1.nip.io"):
        refused = server.get("/api/cohort", b, Host=host)
        assert refused.status_code == 400 and TOP not in refused.text
        assert refused.json()["error"].startswith("host not allowed")
    assert server.get("/login", Host="rebind.attacker.example").status_code == 400
    assert server.get("/api/cohort", b, Host="localhost:1234").status_code == 200


def test_api_health_gives_lower_tiers_no_exact_counts(server: Served) -> None:
    for recipient, tier in (("public_open_data", "aggregate"), ("reading_csp", "area")):
        body = server.get("/api/health", server.mint(recipient, tier)).json()
        assert body["status"] == "ok" and body["tier"] == tier
        assert not {"facts_applied", "profiles", "last_fact_at"} & body.keys(), body
    full = server.get("/api/health", server.mint(PERSON_VIEW_RECIPIENT, "individual")).json()
    assert full["facts_applied"] == 41 and full["profiles"] == 38  # its own view's, not OTHER_VIEW's
    assert server.get("/api/health", server.mint(OTHER_VIEW, "individual")).json()["profiles"] == 1


def test_login_needs_a_bearer_header(server: Served) -> None:
    """A cross-site form can post, but not set Authorization: login CSRF gets no session."""
    token = server.mint(PERSON_VIEW_RECIPIENT, "individual")
    posted = httpx.post(f"{server.url}/login", data={"token": token}, timeout=5)
    assert posted.status_code == 401 and "set-cookie" not in posted.headers
    ok = httpx.post(f"{server.url}/login", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert ok.status_code == 204
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie


@pytest.fixture
def worker_and_port(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> Iterator[tuple[WorkerProcess, int]]:
    settings = settings_factory(roles="views", metrics_port=free_port())
    KeyRing.load_or_create(settings.keyring_path)
    w = start_worker(settings, tmp_path / "logs", name="web-auth")
    try:
        yield w, settings.metrics_port  # type: ignore[misc]
    finally:
        discard(w)


def test_worker_metrics_ready_and_api_need_credentials(
    worker_and_port: tuple[WorkerProcess, int], tmp_path: Path
) -> None:
    worker, metrics_port = worker_and_port

    def get(path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.get(f"{worker.url}{path}", headers=headers or {}, timeout=10)

    assert get("/health").status_code == 200
    for path in ("/metrics", "/ready", "/api/health", "/dashboard", "/"):
        assert get(path).status_code == 401, path
    assert get("/api/cohort", {"X-SharingBus-Tier": "individual"}).status_code == 401
    assert get("/metrics", worker.analyst).json() == {"error": "needs role ops"}
    metrics = get("/metrics", worker.ops)
    assert metrics.status_code == 200 and "sharingbus_" in metrics.text
    assert get("/ready", worker.ops).status_code == 200
    # its own port: no token, for a scraper on a private network only
    assert "sharingbus_" in httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    assert get("/metrics", {**worker.ops, "Host": "evil.example"}).status_code == 400
    assert get("/api/health", worker.analyst).json()["recipient"] == PERSON_VIEW_RECIPIENT
    assert get("/api/health", worker.ops).json() == {"error": "the token names no recipient and tier"}
    elsewhere = bearer(Settings(data_dir=tmp_path / "elsewhere"), roles=["ops"])
    assert get("/metrics", elsewhere).json() == {"error": "unknown key id"}  # another issuer's key
