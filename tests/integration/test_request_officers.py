"""`sharebus request` files a data subject request only for a verified officer of the controller.

Real subprocesses, tokens of the embedded issuer, the shipped rights-roles.yaml, a real Tansu
broker and registry: every refused caller leaves the controller's request topic empty, and the one
officer's request carries its verified identity.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from streams import topics
from streams.avro.serde import SchemaCache, decode
from streams.identity import LocalIssuer
from streams.kafka.reader import read_to_end
from streams.registry.client import registry_client
from streams.rights.model import REQUEST_EVENT_TYPE
from streams.settings import ROOT, Settings
from tests.support.stack import reader_config

SCHOOLS, POLICE = "reading_schools", "thames_valley_police"
REFUSED, FILE = "request refused: ", "(rights-roles.yaml)"
P = ("--partner", SCHOOLS)
ERASE = ("--kind", "erase", "--identifier", "upn=A820200109001", "--reason", "Art 17 request from the parent")


def _request(settings: Settings, token: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARINGBUS_")} | settings.to_env()
    env.pop("SHARINGBUS_IDENTITY_TOKEN", None)
    if token is not None:
        env["SHARINGBUS_IDENTITY_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "sharebus.main", "request", *args, *ERASE],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


def _filed(settings: Settings) -> list[dict[str, Any]]:
    """Every request on the schools' request topic, decoded."""
    cache = SchemaCache(registry_client(settings))
    topic = topics.raw(SCHOOLS, REQUEST_EVENT_TYPE)
    return [decode(m.value(), cache)[1] for m in read_to_end(reader_config(settings), topic)]


def test_only_a_verified_officer_of_the_controller_files_a_request(
    stack_factory: Callable[..., Settings],
) -> None:
    settings = stack_factory()
    issuer = LocalIssuer.from_settings(settings)
    not_officer = f"is not an officer of {SCHOOLS} {FILE}"
    attacks = [
        (None, None, P, "empty token: set SHARINGBUS_IDENTITY_TOKEN to your token"),
        ("made.up.person", None, P, f"made.up.person {not_officer}"),
        ("tvp.sar.officer", None, P, f"tvp.sar.officer {not_officer}"),
        ("tvp.sar.officer", POLICE, P, f"tvp.sar.officer acts for {POLICE}, not {SCHOOLS}"),
        ("schools.sar.officer", POLICE, P, f"schools.sar.officer acts for {POLICE}, not {SCHOOLS}"),
        ("schools.dpo.smith", None, P, f"schools.dpo.smith {not_officer}"),  # a data owner, not an officer
        (
            "schools.dpo.smith",
            None,
            (),
            "schools.dpo.smith is not an officer of exactly one partner: name the partner",
        ),
    ]
    for subject, claims, args, why in attacks:
        token = None if subject is None else issuer.mint(subject, partner=claims)
        done = _request(settings, token, *args)
        assert (done.returncode, done.stdout) == (2, ""), (subject, done.stderr)
        assert done.stderr.splitlines() == [f"error: {REFUSED}{why}"], subject
    assert _filed(settings) == [], "a refused caller published a request"

    done = _request(settings, issuer.mint("schools.sar.officer"))  # its only controller
    assert done.returncode == 0, done.stderr
    request_id = done.stdout.strip().removeprefix("request: ")
    [filed] = _filed(settings)
    assert filed["envelope"]["event_id"] == request_id
    assert (filed["requester"], filed["kind"]) == (f"{SCHOOLS}:schools.sar.officer", "ERASE")
