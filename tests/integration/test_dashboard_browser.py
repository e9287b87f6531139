"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright.

The views app runs standalone (`make_app`) on a free port in a thread, over a `MemoryViewsReader`
filled with real `Profile`s and `AreaCounts` built from link.person-style fact records, behind the
real guard. Pages are opened the way a user does: a login link `/login#token=...` from the
embedded issuer, exchanged by the page for an HttpOnly, SameSite=Strict session cookie.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from agents.web import MemoryViewsReader
from agents.web.auth import SESSION_COOKIE
from streams.identity import LocalIssuer
from streams.settings import ROOT
from streams.views.factors import load_factors
from tests.support.web import PERSON_VIEW_RECIPIENT, ServerThread, guarded_app

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
NOW = datetime(2026, 3, 13, 12, tzinfo=UTC)  # a Friday of 2026-W11
TOP = "p.aaaaaaaaaaaaaaaaaaaaaaaaaa"


def _fact(
    n: int, token: str | None, factors: list[str], district: str, days_ago: float = 0
) -> dict[str, Any]:
    return {
        "kind": "fact",
        "recipient": PERSON_VIEW_RECIPIENT,
        "person_token": token,
        "event_id": f"ev-{district}-{n}-{'-'.join(factors)}",
        "subject_index": 0,
        "event_type": "test.event",
        "source_partner": "thames_valley_police",
        "occurred_at": (NOW - timedelta(days=days_ago)).isoformat(),
        "role": None,
        "factors": factors,
        "area": {"lsoa": None, "district": district},
    }


def _filled_reader() -> MemoryViewsReader:
    extractor = load_factors(ROOT / "factors.yaml")
    reader = MemoryViewsReader(extractor.factors, threshold=10, clock=lambda: NOW)
    plan = {  # (district, factor): events this week
        ("RG1", "weapon_carrying"): 24,
        ("RG1", "school_exclusion"): 31,
        ("RG1", "persistent_absence"): 18,
        ("RG1", "programme_engagement"): 12,
        ("RG2", "weapon_carrying"): 3,  # small: suppressed, and a complement with it
        ("RG2", "school_exclusion"): 15,
        ("RG2", "persistent_absence"): 22,
        ("OX4", "weapon_carrying"): 16,
        ("OX4", "school_exclusion"): 11,
        ("OX4", "persistent_absence"): 5,
        ("OX1", "violence_density"): 27,
        ("RG30", "prior_violent_victimisation"): 19,
        ("RG30", "involvement_in_violence"): 14,
        ("RG30", "weapon_carrying"): 21,
        ("RG30", "housing_instability"): 36,
        ("OX2", "prior_violent_victimisation"): 12,
        ("OX2", "housing_instability"): 17,
        ("OX2", "missing_episodes"): 13,
        ("OX2", "violence_density"): 44,
    }
    i = 0
    for (district, factor), n in plan.items():
        for _ in range(n):
            i += 1
            reader.apply(_fact(i, f"p.{i:026d}", [factor], district))
    for week in range(1, 7):  # earlier weeks for the trends
        for _ in range(8 + 3 * week):
            i += 1
            reader.apply(_fact(i, None, ["weapon_carrying"], "RG1", days_ago=7 * week + 1))
    for k in range(3):
        i += 1
        reader.apply(_fact(i, TOP, ["weapon_carrying", "gang_association"], "RG1", days_ago=k))
    return reader


@pytest.fixture(scope="module")
def reader() -> MemoryViewsReader:
    return _filled_reader()


class Served:
    def __init__(self, url: str, issuer: LocalIssuer) -> None:
        self.url, self.issuer = url, issuer

    def token(self, tier: str, recipient: str | None = None, **kw: Any) -> str:
        recipient = recipient or {"individual": PERSON_VIEW_RECIPIENT, "area": "reading_csp"}.get(
            tier, "public_open_data"
        )
        return self.issuer.mint("browser-test", recipient=recipient, tier=tier, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def server(reader: MemoryViewsReader, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    app, issuer = guarded_app(tmp_path_factory.mktemp("web") / "var", reader)
    with ServerThread(app) as s:
        yield Served(s.url, issuer)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def _open(browser: Browser, server: Served, tier: str) -> Page:
    """Sign in with a login link, as a user would, and wait for the dashboard's first table."""
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    page.goto(f"{server.url}/login#token={server.token(tier)}")
    page.wait_for_url(f"{server.url}/dashboard")
    page.wait_for_selector("#heat td.cell")
    return page


def _get(url: str, token: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_api_enforces_tiers(server: Served) -> None:
    url, area, individual = server.url, server.token("area"), server.token("individual")
    assert _get(f"{url}/api/cohort", area)[0] == 403
    assert _get(f"{url}/api/persons/{TOP}", area)[0] == 403
    assert _get(f"{url}/api/areas", server.token("aggregate"))[0] == 403
    assert _get(f"{url}/api/areas", None)[0] == 401  # no credentials: nothing at all
    status, body = _get(f"{url}/api/persons/{TOP}", individual)
    assert status == 200 and body["factors"]["weapon_carrying"]["count"] == 3 and body["advisory"]
    status, body = _get(f"{url}/api/areas?week=2026-W11", area)
    assert status == 200 and body["week"] == "2026-W11"
    assert _get(f"{url}/api/areas?week=W11", area)[0] == 400


def test_dashboard_individual_tier_shows_suppression_and_cohort(
    server: Served, browser: Browser, reader: MemoryViewsReader, artifacts_dir: Path
) -> None:
    page = _open(browser, server, "individual")
    small = page.locator('#heat td[data-area="RG2"][data-factor="weapon_carrying"]')
    expect(small).to_have_text("*")
    assert page.locator("#heat td.sup").count() >= 4  # the 3, the 5 and their complements
    expect(page.locator('#heat td[data-area="RG1"][data-factor="school_exclusion"]')).to_have_text("31")
    expect(page.locator("#week")).to_have_text("2026-W11")
    expect(page.locator("#cohort")).to_be_visible()
    expect(page.locator("#cohort-table tbody tr").first).to_have_attribute("data-token", TOP)
    expect(page.locator(".spark")).to_have_count(len(reader.factors()))
    expect(page.locator("#tier")).to_have_text("tier individual")
    expect(page.locator("#status")).to_have_text("pipeline ok")
    page.wait_for_timeout(300)
    page.screenshot(path=str(artifacts_dir / "dashboard.png"), full_page=True)
    page.context.close()


def test_dashboard_area_tier_hides_the_cohort(server: Served, browser: Browser) -> None:
    page = _open(browser, server, "area")
    expect(page.locator("#tier")).to_have_text("tier area")
    expect(page.locator("#cohort")).to_be_hidden()
    assert page.locator("#cohort-table tr").count() == 0
    assert TOP not in page.content()
    page.context.close()


def test_dashboard_updates_live(server: Served, browser: Browser, reader: MemoryViewsReader) -> None:
    page = _open(browser, server, "individual")
    cell = page.locator('#heat td[data-area="OX1"][data-factor="school_exclusion"]')
    total = page.locator('#heat td[data-area="ALL"][data-factor="school_exclusion"]')
    expect(cell).to_have_text("0")
    expect(total).to_have_text("57")
    for i in range(14):
        reader.apply(_fact(10_000 + i, f"p.live{i:022d}", ["school_exclusion"], "OX1"))
    expect(cell).to_have_text("14", timeout=6000)
    expect(total).to_have_text("71")
    assert cell.inner_text() == "14" and total.inner_text() == "71"
    page.context.close()


def test_login_link_gives_an_httponly_strict_session_and_leaves_no_token_behind(
    server: Served, browser: Browser
) -> None:
    page = _open(browser, server, "individual")
    assert "token" not in page.url
    (cookie,) = [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert cookie["expires"] > time.time() + 600
    assert SESSION_COOKIE not in page.evaluate("document.cookie")  # scripts cannot read it
    assert page.evaluate("history.length") == 2 and "#token" not in page.evaluate("location.href")
    expect(page.locator("#tier")).to_have_text("tier individual")
    page.context.close()


def test_dashboard_without_a_session_is_refused(server: Served, browser: Browser) -> None:
    context = browser.new_context()
    page = context.new_page()
    response = page.goto(f"{server.url}/dashboard")
    assert response is not None and response.status == 401
    assert "no credentials" in response.text()
    assert TOP not in page.content()
    context.close()


def test_an_expired_login_link_is_refused_and_sets_no_cookie(server: Served, browser: Browser) -> None:
    expired = LocalIssuer(
        server.issuer._key,
        issuer=server.issuer.issuer,
        audience=server.issuer.audience,
        clock=lambda: time.time() - 7200,
    ).mint("browser-test", recipient=PERSON_VIEW_RECIPIENT, tier="individual", ttl_seconds=600)
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{server.url}/login#token={expired}")
    expect(page.locator("#login-status")).to_have_text("Sign-in refused: token expired")
    assert context.cookies() == [] and "token" not in page.url
    assert page.goto(f"{server.url}/dashboard").status == 401  # type: ignore[union-attr]
    context.close()
