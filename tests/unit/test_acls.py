"""The ACL plan: partners write only their raw topics, only the bus reads raw, recipients read their own."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from sharebus import acls as cli_acls
from streams.errors import ConfigurationError
from streams.kafka import acls
from streams.kafka.acls import ENFORCER_PRINCIPAL, OPS_PRINCIPAL, AclEntry, RecipientAccess, acl_plan

PARTNERS = ["thames_valley_police", "reading_schools"]
RECIPIENTS: list[RecipientAccess | tuple[str, str]] = [
    RecipientAccess("vru_analysts", "individual"),
    RecipientAccess("district_council", "area", principal="User:CN=council.example.gov.uk"),
    ("public_health", "aggregate"),
]


@pytest.fixture(scope="module")
def plan() -> list[AclEntry]:
    return acl_plan(PARTNERS, RECIPIENTS, consumer_group="sharingbus")


def _matches(entry: AclEntry, topic: str) -> bool:
    if entry.resource_type != "Topic":
        return False
    if entry.pattern_type == "PREFIXED":
        return topic.startswith(entry.resource_name)
    return entry.resource_name == topic


def allowed(plan: list[AclEntry], principal: str, operation: str, topic: str) -> bool:
    return any(e.principal == principal and e.operation == operation and _matches(e, topic) for e in plan)


def principals(plan: list[AclEntry], operation: str, topic: str) -> set[str]:
    return {e.principal for e in plan if e.operation == operation and _matches(e, topic)}


def test_partner_writes_only_its_own_raw_topics(plan: list[AclEntry]) -> None:
    tvp = "User:partner.thames_valley_police"
    assert allowed(plan, tvp, "Write", "raw.thames_valley_police.police.crime_recorded")
    assert not allowed(plan, tvp, "Write", "raw.reading_schools.education.exclusion")
    assert not allowed(plan, tvp, "Read", "raw.thames_valley_police.police.crime_recorded")
    assert {e.operation for e in plan if e.principal == tvp} == {"Write", "Describe"}


def test_only_the_enforcer_reads_raw_topics(plan: list[AclEntry]) -> None:
    assert principals(plan, "Read", "raw.thames_valley_police.police.crime_recorded") == {ENFORCER_PRINCIPAL}


@pytest.mark.parametrize(
    "topic",
    ["shared.vru_analysts.police.crime_recorded", "audit.decisions", "dlq.enforcer", "link.identifiers"],
)
def test_only_the_enforcer_writes_bus_outputs(plan: list[AclEntry], topic: str) -> None:
    assert principals(plan, "Write", topic) == {ENFORCER_PRINCIPAL}


def test_recipients_read_only_their_share_and_tier_views(plan: list[AclEntry]) -> None:
    vru, council, health = (
        "User:recipient.vru_analysts",
        "User:CN=council.example.gov.uk",
        "User:recipient.public_health",
    )
    assert allowed(plan, vru, "Read", "shared.vru_analysts.police.crime_recorded")
    assert not allowed(plan, vru, "Read", "shared.district_council.police.crime_recorded")
    assert allowed(plan, council, "Read", "shared.district_council.police.crime_recorded")
    assert principals(plan, "Read", "views.person_profile") == {vru, ENFORCER_PRINCIPAL}
    assert {vru, council, health} <= principals(plan, "Read", "views.area_counts")
    assert not any(e.principal in (vru, council, health) and e.operation == "Write" for e in plan)


def test_nobody_but_enforcer_and_ops_reads_dead_letters(plan: list[AclEntry]) -> None:
    assert principals(plan, "Read", "dlq.enforcer") == {ENFORCER_PRINCIPAL, OPS_PRINCIPAL}


def test_recipient_prefix_does_not_leak_to_a_longer_id() -> None:
    plan = acl_plan([], [("vru", "aggregate"), ("vru_analysts", "aggregate")])
    assert not allowed(plan, "User:recipient.vru", "Read", "shared.vru_analysts.police.crime_recorded")


def test_bad_ids_and_tiers_are_refused() -> None:
    with pytest.raises(ValueError):
        acl_plan(["has.dot"], [])
    with pytest.raises(ConfigurationError, match="unknown tier"):
        acl_plan([], [("vru", "everything")])


def test_text_output_is_kafka_acls_commands(plan: list[AclEntry]) -> None:
    text = acls.render_text(plan, "kafka:9093")
    assert (
        "kafka-acls --bootstrap-server kafka:9093 --add --allow-principal User:partner.thames_valley_police "
        "--operation Write --topic raw.thames_valley_police. --resource-pattern-type prefixed"
    ) in text.splitlines()
    assert "--group vru_analysts. --resource-pattern-type prefixed" in text
    assert len(text.splitlines()) == len(plan)


def test_json_output_round_trips(plan: list[AclEntry]) -> None:
    rows = json.loads(acls.render_json(plan))
    assert [AclEntry(**{k: v for k, v in r.items() if k != "permission"}) for r in rows] == plan
    assert {r["permission"] for r in rows} == {"ALLOW"}


def test_read_recipients(tmp_path: Path) -> None:
    path = tmp_path / "recipients.yaml"
    path.write_text(
        "recipients:\n"
        "  - {id: vru_analysts, name: VRU analysts, tier: individual}\n"
        "  - {id: council, name: Council, tier: area, principal: 'User:CN=council'}\n"
    )
    assert acls.read_recipients(path) == [
        RecipientAccess("vru_analysts", "individual"),
        RecipientAccess("council", "area", "User:CN=council"),
    ]
    path.write_text("recipients:\n  - {id: x, tier: everything}\n")
    with pytest.raises(ConfigurationError, match=r"recipients\[0\]"):
        acls.read_recipients(path)


def test_cli_prints_the_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI wires catalogue partners and recipients.yaml into the plan (catalogue stubbed)."""
    (tmp_path / "recipients.yaml").write_text("recipients:\n  - {id: vru_analysts, name: VRU, tier: area}\n")
    fake = types.ModuleType("streams.avro.catalogue")
    fake.load_catalogue = lambda schemas_dir=None: types.SimpleNamespace(  # type: ignore[attr-defined]
        partners={"thames_valley_police": object()}
    )
    monkeypatch.setitem(sys.modules, "streams.avro.catalogue", fake)
    monkeypatch.setenv("SHARINGBUS_AGREEMENTS_DIR", str(tmp_path))
    app = typer.Typer()
    cli_acls.register(app)
    app.command("noop")(lambda: None)  # with two commands typer keeps the sub-command name

    result = CliRunner().invoke(app, ["acls", "--format", "json"])
    assert result.exit_code == 0, result.output
    expected = acl_plan(["thames_valley_police"], [("vru_analysts", "area")])
    assert result.output == acls.render_json(expected)

    text = CliRunner().invoke(app, ["acls", "--bootstrap", "kafka:9093"])
    assert text.exit_code == 0 and text.output == acls.render_text(expected, "kafka:9093")

    bad = CliRunner().invoke(app, ["acls", "--format", "xml"])
    assert bad.exit_code == 1 and "error: --format must be text or json" in bad.output
