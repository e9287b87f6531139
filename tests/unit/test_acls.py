"""The ACL plan, generated from the example agreements, against a least-privilege matrix written out
by hand: every principal x topic x operation (and every principal x consumer group) the plan allows
is in the matrix, and everything in the matrix is allowed (issue 16, "Kafka principals")."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from sharebus import acls as cli_acls
from sharebus.agreements import register as register_agreements
from streams.agreements import load_agreements
from streams.agreements.model import Recipient
from streams.avro.catalogue import Catalogue, load_catalogue
from streams.errors import ConfigurationError
from streams.kafka import acls
from streams.kafka.acls import AclEntry, RecipientAccess, RolePrincipals, acl_plan, recipient_access
from streams.settings import ROOT

AGREEMENTS = ROOT / "agreements"
OPERATIONS = ("Read", "Write", "Create", "Describe", "DescribeConfigs")
LETTER = {"R": "Read", "W": "Write", "C": "Create", "D": "Describe", "K": "DescribeConfigs"}

E, A, L, V = (
    "User:sharingbus-enforcer",
    "User:sharingbus-audit",
    "User:sharingbus-linker",
    "User:sharingbus-views",
)
RIGHTS, OPS, REG = "User:sharingbus-rights", "User:sharingbus-ops", "User:sharingbus-registry"
VRU, CSP, YJS = "User:recipient.vru_analysts", "User:recipient.reading_csp", "User:recipient.reading_yjs_team"
IOM, PUBLIC = "User:recipient.tvp_offender_management", "User:recipient.public_open_data"
TVP, SOCIAL, PROBATION = (
    "User:partner.thames_valley_police",
    "User:partner.reading_childrens_services",
    "User:partner.probation_thames_valley",
)

RAW_TVP = "raw.thames_valley_police.police.crime_recorded"
RAW_SOCIAL = "raw.reading_childrens_services.social_care.assessment_factors"
RAW_PROBATION = "raw.probation_thames_valley.probation.supervision_event"
SH_VRU_POLICE = "shared.vru_analysts.police.crime_recorded"
SH_VRU_SOCIAL = "shared.vru_analysts.social_care.assessment_factors"
SH_VRU_PROBATION = "shared.vru_analysts.probation.supervision_event"  # no agreement fills it
SH_CSP = "shared.reading_csp.health.ed_assault_attendance"
SH_YJS = "shared.reading_yjs_team.education.exclusion"
SH_IOM = "shared.tvp_offender_management.probation.supervision_event"
RAWS = (RAW_TVP, RAW_SOCIAL, RAW_PROBATION)
SHARES = (SH_VRU_POLICE, SH_VRU_SOCIAL, SH_VRU_PROBATION, SH_CSP, SH_YJS, SH_IOM)
DLQS = ("dlq.enforcer", "dlq.audit_sink", "dlq.linker", "dlq.views")
VIEWS = ("views.person_profile", "views.area_counts", "views.profile_moves", "views.area_facts")
FAUST_CHANGELOG = "sharingbus-profiles-changelog"
TOPICS = (
    *RAWS,
    *SHARES,
    "audit.decisions",
    *DLQS,
    "link.identifiers",
    "link.person",
    "link.state",
    *VIEWS,
    FAUST_CHANGELOG,
    "_schemas",
)

# Topic matrix, by hand. Letters: R Read, W Write, C Create, D Describe, K DescribeConfigs.
# Anything not listed must be denied.
TOPIC_MATRIX: dict[str, dict[str, str]] = {
    E: {
        **dict.fromkeys(RAWS, "RCD"),
        **dict.fromkeys(SHARES, "WCD"),
        "audit.decisions": "RWCD",
        **dict.fromkeys(DLQS, "RWCD"),  # dead letters hold raw bytes: only the enforcer reads them
        "link.identifiers": "WCD",
    },
    # Workers may create their inputs too (an empty topic grants nothing), so roles start in any order.
    A: {"audit.decisions": "RCD", "dlq.audit_sink": "WCD"},
    L: {"link.identifiers": "RCD", "link.state": "RWCD", "link.person": "WCD", "dlq.linker": "WCD"},
    V: {"link.person": "RCD", **dict.fromkeys(VIEWS, "RWCD"), FAUST_CHANGELOG: "RWCD", "dlq.views": "WCD"},
    RIGHTS: {
        **dict.fromkeys(RAWS, "RD"),
        **dict.fromkeys(SHARES, "WD"),
        "audit.decisions": "WD",
        "link.identifiers": "WD",
        "link.person": "WD",
    },
    OPS: {"audit.decisions": "RD"},
    REG: {"_schemas": "RWCDK"},
    TVP: {RAW_TVP: "WD"},
    SOCIAL: {RAW_SOCIAL: "WD"},
    PROBATION: {RAW_PROBATION: "WD"},
    # The VRU's person view is served by the API only: views.person_profile holds every recipient's.
    VRU: {SH_VRU_POLICE: "RD", SH_VRU_SOCIAL: "RD"},
    CSP: {SH_CSP: "RD"},
    YJS: {SH_YJS: "RD"},
    IOM: {SH_IOM: "RD"},
    PUBLIC: {"views.area_counts": "RD"},
}
GROUPS = (
    "sharingbus",
    "sharingbus-enforcer",
    "sharingbus-audit_sink",
    "sharingbus-linker",
    "sharingbus-rights",
    "sharingbus-audit-0c1f",
    "vru_analysts.dashboard",
    "reading_csp.analysis",
    "reading_yjs_team.cases",
    "tvp_offender_management.iom",
    "public_open_data.site",
    "ops.audit",
    "schema-registry-1",
)
GROUP_MATRIX: dict[str, set[str]] = {  # Read on consumer groups
    E: {"sharingbus-enforcer", "sharingbus-audit-0c1f"},
    A: {"sharingbus-audit_sink"},
    L: {"sharingbus-linker"},
    V: {"sharingbus"},
    RIGHTS: {"sharingbus-rights"},
    OPS: {"ops.audit"},
    REG: {"schema-registry-1"},
    VRU: {"vru_analysts.dashboard"},
    CSP: {"reading_csp.analysis"},
    YJS: {"reading_yjs_team.cases"},
    IOM: {"tvp_offender_management.iom"},
    PUBLIC: {"public_open_data.site"},
}


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue(ROOT / "schemas")


@pytest.fixture(scope="module")
def plan(catalogue: Catalogue) -> list[AclEntry]:
    agreements = load_agreements(AGREEMENTS, catalogue)
    return acl_plan(sorted(catalogue.partners), recipient_access(agreements), RolePrincipals())


def _matches(entry: AclEntry, resource_type: str, name: str) -> bool:
    if entry.resource_type != resource_type:
        return False
    if entry.pattern_type == "PREFIXED":
        return name.startswith(entry.resource_name)
    return entry.resource_name == name


def allowed(plan: list[AclEntry], principal: str, operation: str, topic: str, kind: str = "Topic") -> bool:
    return any(
        e.principal == principal and e.operation == operation and _matches(e, kind, topic) for e in plan
    )


def test_every_principal_topic_and_operation_matches_the_matrix(
    plan: list[AclEntry], catalogue: Catalogue
) -> None:
    everyone = {e.principal for e in plan}
    partners = {f"User:partner.{p}" for p in catalogue.partners}
    assert everyone == set(TOPIC_MATRIX) | set(GROUP_MATRIX) | partners  # nobody else holds a right
    wrong = []
    for principal in sorted(everyone):
        for topic in TOPICS:
            granted = TOPIC_MATRIX.get(principal, {}).get(topic, "")
            for op in OPERATIONS:
                expected = any(LETTER[c] == op for c in granted)
                if allowed(plan, principal, op, topic) != expected:
                    wrong.append(f"{principal} {op} {topic}: expected {'allow' if expected else 'deny'}")
        for group in GROUPS:
            expected = group in GROUP_MATRIX.get(principal, set())
            if allowed(plan, principal, "Read", group, "Group") != expected:
                wrong.append(f"{principal} Read group {group}: expected {'allow' if expected else 'deny'}")
    assert wrong == []


def test_a_worker_creates_only_the_topics_its_roles_may_create(catalogue: Catalogue) -> None:
    from streams.kafka.acls import may_create
    from streams.kafka.topology import bus_topics
    from streams.settings import Settings

    names = [s.name for s in bus_topics(Settings(), catalogue)]
    rest = [n for n in names if may_create(["audit", "linker", "views"], "sharingbus")(n)]
    assert sorted(rest) == [
        "audit.decisions",
        "dlq.audit_sink",
        "dlq.linker",
        "dlq.views",
        "link.identifiers",
        "link.person",
        "link.state",
        "views.area_counts",
        "views.area_facts",
        "views.person_profile",
        "views.profile_moves",
    ]
    enforcer = [n for n in names if may_create(["enforcer"], "sharingbus")(n)]
    assert set(enforcer) == {n for n in names if n.startswith(("raw.", "dlq."))} | {
        "audit.decisions",
        "link.identifiers",
    }
    assert set(rest) | set(enforcer) == set(names)  # every bus topic has a creator
    assert not may_create(["views"], "sharingbus")("shared.vru_analysts.police.crime_recorded")


def test_only_group_read_is_granted_on_groups(plan: list[AclEntry]) -> None:
    assert {e.operation for e in plan if e.resource_type == "Group"} == {"Read"}


def test_operations_cannot_read_dead_letters(plan: list[AclEntry]) -> None:
    for dlq in DLQS:
        assert not allowed(plan, OPS, "Read", dlq)
        assert {e.principal for e in plan if e.operation == "Read" and _matches(e, "Topic", dlq)} == {E}


def test_a_recipient_reads_only_its_own_shared_topics(plan: list[AclEntry], catalogue: Catalogue) -> None:
    agreed = {SH_VRU_POLICE, SH_VRU_SOCIAL}
    for topic in [t for t in TOPICS if t.startswith("shared.")]:
        assert allowed(plan, VRU, "Read", topic) is (topic in agreed), topic
    # Literal grants only: a shared topic no agreement fills stays closed, even the VRU's own prefix.
    vru_topics = {e.resource_name for e in plan if e.principal == VRU and e.resource_type == "Topic"}
    assert all(e.pattern_type == "LITERAL" for e in plan if e.principal == VRU and e.resource_type == "Topic")
    assert vru_topics == {
        "shared.vru_analysts.police.crime_recorded",
        "shared.vru_analysts.police.stop_search",
        "shared.vru_analysts.police.missing_person",
        "shared.vru_analysts.social_care.assessment_factors",
        "shared.vru_analysts.social_care.missing_episode",
    }
    assert not any(e.operation != "Read" and e.operation != "Describe" for e in plan if e.principal == VRU)


def test_views_follow_the_agreements_views_entries(catalogue: Catalogue) -> None:
    agreements = load_agreements(AGREEMENTS, catalogue)
    access = {r.id: r for r in recipient_access(agreements)}
    assert access["vru_analysts"].views == ("person_profile",)
    assert access["public_open_data"].views == ("area_counts",)
    assert access["reading_csp"].views == () and access["tvp_offender_management"].views == ()


def test_no_recipient_reads_the_person_profiles_topic_whoever_holds_a_person_view() -> None:
    """views.person_profile holds every recipient's person view: each reads its own through the API."""
    access = [
        RecipientAccess("vru_analysts", VRU, views=("person_profile",)),
        RecipientAccess("reading_yjs_team", YJS, views=("person_profile", "area_counts")),
    ]
    plan = acl_plan([], access, RolePrincipals())
    readers = {e.principal for e in plan if _matches(e, "Topic", "views.person_profile")}
    assert readers == {V}
    assert allowed(plan, YJS, "Read", "views.area_counts") and not allowed(
        plan, VRU, "Read", "views.area_counts"
    )


def test_text_output_quotes_every_principal(plan: list[AclEntry]) -> None:
    text = acls.render_text(plan, "kafka:9093")
    assert (
        "kafka-acls --bootstrap-server kafka:9093 --add "
        "--allow-principal 'User:partner.thames_valley_police' --operation Write "
        "--topic raw.thames_valley_police. --resource-pattern-type prefixed"
    ) in text.splitlines()
    assert all(" --allow-principal 'User:" in line for line in text.splitlines())
    assert len(text.splitlines()) == len(plan)
    dn = [RecipientAccess("council", "User:CN=council.example.gov.uk,O=Reading", ("shared.council.x.y",))]
    assert "--allow-principal 'User:CN=council.example.gov.uk,O=Reading'" in acls.render_text(
        acl_plan([], dn)
    )


@pytest.mark.parametrize(
    "principal",
    ["User:*", "User:recipient.*", "User:", "Group:x", "recipient.x", "User:a b", "User:a'b", "User:a;rm"],
)
def test_unsafe_principals_are_refused(principal: str) -> None:
    with pytest.raises(ValueError, match="no wildcard"):
        Recipient(id="x", name="X", organisation="O", tier="area", principal=principal)
    with pytest.raises(ValueError, match="no wildcard"):
        acl_plan([], [RecipientAccess("x", principal, ("shared.x.a.b",))])
    with pytest.raises(ValueError, match="no wildcard"):
        RolePrincipals(views=principal)


def test_wildcard_recipient_principal_fails_agreements_check_in_one_line(tmp_path: Path) -> None:
    d = tmp_path / "agreements"
    shutil.copytree(AGREEMENTS, d)
    doc = yaml.safe_load((d / "recipients.yaml").read_text())
    doc["recipients"][0]["principal"] = "User:*"
    (d / "recipients.yaml").write_text(yaml.safe_dump(doc))
    app = typer.Typer()
    register_agreements(app)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["agreements", "check", str(d), "--today", "2026-06-01"])
    assert result.exit_code == 1
    problems = [line for line in result.stdout.splitlines() if "principal" in line]
    assert problems == [
        f"{d}/recipients.yaml: recipients[0].principal: "
        "must be 'User:' and a name of letters, digits and . _ - @ = , + (no wildcard)"
    ]


def test_two_parties_never_share_a_principal(tmp_path: Path, catalogue: Catalogue) -> None:
    with pytest.raises(ConfigurationError, match="would share the principal User:sharingbus-ops"):
        acl_plan([], [RecipientAccess("x", OPS, ("shared.x.a.b",))])
    with pytest.raises(ConfigurationError, match=r"share the principal User:partner\.a"):
        acl_plan(["a"], [RecipientAccess("x", "User:partner.a", ("shared.x.a.b",))])
    with pytest.raises(ConfigurationError, match="share the principal"):
        acl_plan([], [RecipientAccess("x", VRU, ("shared.x.a.b",)), RecipientAccess("y", VRU, ())])
    # Roles may share one (a worker running several roles): it holds each role's grants.
    combined = "User:sharingbus-agents"
    merged = acl_plan([], [], RolePrincipals(audit=combined, linker=combined, views=combined))
    assert allowed(merged, combined, "Read", "audit.decisions") and allowed(
        merged, combined, "Read", "link.person"
    )
    assert not allowed(merged, combined, "Read", RAW_TVP) and not allowed(
        merged, combined, "Read", "dlq.linker"
    )
    d = tmp_path / "agreements"
    shutil.copytree(AGREEMENTS, d)
    doc = yaml.safe_load((d / "recipients.yaml").read_text())
    doc["recipients"][1]["principal"] = doc["recipients"][0]["principal"]
    (d / "recipients.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigurationError, match=r"recipients\[1\]\.principal: .* also the principal of"):
        load_agreements(d, catalogue)


def test_recipient_prefix_does_not_leak_to_a_longer_id() -> None:
    plan = acl_plan(
        [],
        [
            RecipientAccess("vru", "User:recipient.vru", ("shared.vru.police.crime_recorded",)),
            RecipientAccess("vru_analysts", VRU, ("shared.vru_analysts.police.crime_recorded",)),
        ],
    )
    assert not allowed(plan, "User:recipient.vru", "Read", SH_VRU_POLICE)
    assert not allowed(plan, "User:recipient.vru", "Read", "vru_analysts.x", "Group")


def test_role_principals_from_a_file(tmp_path: Path) -> None:
    shipped = acls.read_principals(cli_acls.DEFAULT_PRINCIPALS)
    assert shipped == RolePrincipals()
    path = tmp_path / "principals.yaml"
    path.write_text("enforcer: 'User:CN=enforcer.bus.example.org'\n")
    assert acls.read_principals(path).enforcer == "User:CN=enforcer.bus.example.org"
    for text, message in [("views: 'User:*'\n", "views: must be 'User:'"), ("gateway: User:x\n", "gateway")]:
        path.write_text(text)
        with pytest.raises(ConfigurationError, match=message):
            acls.read_principals(path)


def test_json_output_round_trips(plan: list[AclEntry]) -> None:
    rows = json.loads(acls.render_json(plan))
    assert [AclEntry(**{k: v for k, v in r.items() if k != "permission"}) for r in rows] == plan
    assert {r["permission"] for r in rows} == {"ALLOW"}


def _cli() -> typer.Typer:
    app = typer.Typer()
    cli_acls.register(app)
    app.command("noop")(lambda: None)  # with two commands typer keeps the sub-command name
    return app


def test_cli_prints_the_plan_from_the_agreements(plan: list[AclEntry]) -> None:
    result = CliRunner().invoke(_cli(), ["acls", "--format", "json", "--agreements", str(AGREEMENTS)])
    assert result.exit_code == 0, result.output
    assert result.output == acls.render_json(plan)
    text = CliRunner().invoke(_cli(), ["acls", "--bootstrap", "kafka:9093", "--agreements", str(AGREEMENTS)])
    assert text.exit_code == 0 and text.output == acls.render_text(plan, "kafka:9093")
    bad = CliRunner().invoke(_cli(), ["acls", "--format", "xml"])
    assert bad.exit_code == 1 and "error: --format must be text or json" in bad.output


def test_cli_refuses_a_wildcard_principal_in_one_line(tmp_path: Path) -> None:
    d = tmp_path / "agreements"
    shutil.copytree(AGREEMENTS, d)
    doc = yaml.safe_load((d / "recipients.yaml").read_text())
    doc["recipients"][0]["principal"] = "User:*"
    (d / "recipients.yaml").write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(_cli(), ["acls", "--agreements", str(d)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {d}/recipients.yaml: recipients[0].principal: ")
    assert "no wildcard" in lines[0]
