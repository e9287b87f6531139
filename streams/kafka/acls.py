"""The Kafka ACL plan: who may read or write which topic, generated from partners and recipients.

The broker must run an authorizer with `allow.everyone.if.no.acl.found=false`, so anything not
listed here is denied. The plan encodes DESIGN.md's data flow:

- a partner (`User:partner.<id>`) writes only its own raw topics (prefix `raw.<id>.`);
- the bus (`User:sharingbus-enforcer`, every agent of `sharebus worker`) alone reads raw topics and
  writes shared, audit, dead-letter, link and view topics, plus its Faust-internal topics;
- a recipient (`User:recipient.<id>`) reads only `shared.<id>.*` and the view topics of its tier,
  with consumer groups named `<id>.<anything>`;
- operations (`User:sharingbus-ops`) read dead letters and the audit trail; nobody else does.

Partner and recipient ids never contain dots, so a prefix ending in "." matches exactly one party.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import yaml

from streams import topics
from streams.errors import ConfigurationError

Tier = Literal["aggregate", "area", "individual"]
Operation = Literal["Read", "Write", "Create", "Describe", "DescribeConfigs"]
ResourceType = Literal["Topic", "Group"]
PatternType = Literal["LITERAL", "PREFIXED"]

ENFORCER_PRINCIPAL = "User:sharingbus-enforcer"
OPS_PRINCIPAL = "User:sharingbus-ops"
REGISTRY_PRINCIPAL = "User:sharingbus-registry"

# Which view topics each access tier may read (DOMAIN.md: level 1 aggregate, 2 area, 3 individual).
TIER_VIEWS: Mapping[str, tuple[str, ...]] = {
    "aggregate": (topics.VIEWS_AREA_COUNTS,),
    "area": (topics.VIEWS_AREA_COUNTS,),
    "individual": (topics.VIEWS_AREA_COUNTS, topics.VIEWS_PERSON_PROFILE),
}

# Topic prefixes only the bus writes (and creates: the bus never relies on auto-creation).
_BUS_OUTPUT_PREFIXES = ("shared.", "audit.", "dlq.", "link.", "views.")


@dataclass(frozen=True, order=True)
class AclEntry:
    """One ALLOW rule, in kafka-acls vocabulary."""

    principal: str
    resource_type: ResourceType
    pattern_type: PatternType
    resource_name: str
    operation: Operation
    why: str = ""


@dataclass(frozen=True)
class RecipientAccess:
    """A recipient as the ACL plan needs it (read from `agreements/recipients.yaml` by the CLI)."""

    id: str
    tier: Tier
    principal: str | None = None


def partner_principal(partner: str) -> str:
    return f"User:partner.{partner}"


def recipient_principal(recipient: str) -> str:
    return f"User:recipient.{recipient}"


def _prefixed(principal: str, name: str, ops: Iterable[Operation], why: str) -> list[AclEntry]:
    return [AclEntry(principal, "Topic", "PREFIXED", name, op, why) for op in ops]


def _partner_acls(partner: str) -> list[AclEntry]:
    topics.raw(partner, "x.y")  # validates the id (no dots, lower-case)
    return _prefixed(
        partner_principal(partner), f"raw.{partner}.", ("Write", "Describe"), "partner publishes its events"
    )


def _recipient_acls(access: RecipientAccess) -> list[AclEntry]:
    topics.shared(access.id, "x.y")  # validates the id
    if access.tier not in TIER_VIEWS:
        raise ConfigurationError(f"recipient {access.id}: unknown tier {access.tier!r}")
    who = access.principal or recipient_principal(access.id)
    entries = _prefixed(who, f"shared.{access.id}.", ("Read", "Describe"), "recipient reads its own share")
    for view in TIER_VIEWS[access.tier]:
        entries += [
            AclEntry(who, "Topic", "LITERAL", view, op, f"{access.tier} tier view")
            for op in ("Read", "Describe")
        ]
    entries.append(AclEntry(who, "Group", "PREFIXED", f"{access.id}.", "Read", "recipient consumer groups"))
    return entries


def _bus_acls(consumer_group: str) -> list[AclEntry]:
    p = ENFORCER_PRINCIPAL
    entries = _prefixed(p, "raw.", ("Read", "Describe", "Create"), "enforcer alone reads raw events")
    for prefix in _BUS_OUTPUT_PREFIXES:
        ops: tuple[Operation, ...] = ("Write", "Read", "Describe", "Create", "DescribeConfigs")
        entries += _prefixed(p, prefix, ops, "bus outputs (agents read each other's outputs)")
    entries += _prefixed(
        p, f"{consumer_group}-", ("Read", "Write", "Describe", "Create"), "Faust changelog/repartition topics"
    )
    entries.append(AclEntry(p, "Group", "PREFIXED", consumer_group, "Read", "worker consumer group"))
    return entries


def _ops_acls() -> list[AclEntry]:
    entries = _prefixed(OPS_PRINCIPAL, "dlq.", ("Read", "Describe"), "operators inspect dead letters")
    entries += [
        AclEntry(OPS_PRINCIPAL, "Topic", "LITERAL", topics.AUDIT_DECISIONS, op, "audit queries")
        for op in ("Read", "Describe")
    ]
    entries.append(AclEntry(OPS_PRINCIPAL, "Group", "PREFIXED", "ops.", "Read", "operator consumer groups"))
    return entries


def _registry_acls() -> list[AclEntry]:
    ops: tuple[Operation, ...] = ("Read", "Write", "Describe", "Create", "DescribeConfigs")
    entries = [
        AclEntry(REGISTRY_PRINCIPAL, "Topic", "LITERAL", topics.SCHEMAS, op, "schema registry store")
        for op in ops
    ]
    entries.append(AclEntry(REGISTRY_PRINCIPAL, "Group", "PREFIXED", "schema-registry", "Read", "registry"))
    return entries


def acl_plan(
    partners: Iterable[str],
    recipients: Iterable[RecipientAccess | tuple[str, str]],
    consumer_group: str = "sharingbus",
) -> list[AclEntry]:
    """Every ALLOW rule of the bus, sorted and de-duplicated; anything else is denied."""
    entries = _bus_acls(consumer_group) + _ops_acls() + _registry_acls()
    for partner in partners:
        entries += _partner_acls(partner)
    for r in recipients:
        access = r if isinstance(r, RecipientAccess) else RecipientAccess(r[0], r[1])  # type: ignore[arg-type]
        entries += _recipient_acls(access)
    return sorted(set(entries))


def read_recipients(path: Path) -> list[RecipientAccess]:
    """`recipients: [{id, name, tier, principal?}]` from YAML; ConfigurationError naming the entry."""
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"{path}: {exc}") from exc
    items = doc.get("recipients") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise ConfigurationError(f"{path}: expected a top-level 'recipients' list")
    out: list[RecipientAccess] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "id" not in item or item.get("tier") not in TIER_VIEWS:
            raise ConfigurationError(
                f"{path}: recipients[{i}] needs an id and a tier in {sorted(TIER_VIEWS)}"
            )
        out.append(RecipientAccess(str(item["id"]), item["tier"], item.get("principal")))
    return out


def render_text(entries: Iterable[AclEntry], bootstrap: str = "$BOOTSTRAP") -> str:
    """One `kafka-acls --add` command per rule (pass `--command-config` for the admin's own TLS/SASL)."""
    lines = []
    for e in entries:
        resource = "--topic" if e.resource_type == "Topic" else "--group"
        lines.append(
            f"kafka-acls --bootstrap-server {bootstrap} --add --allow-principal {e.principal} "
            f"--operation {e.operation} {resource} {e.resource_name} "
            f"--resource-pattern-type {e.pattern_type.lower()}"
        )
    return "\n".join(lines) + "\n"


def render_json(entries: Iterable[AclEntry]) -> str:
    """The plan as a JSON list (for review tools and Terraform-style provisioning)."""
    return json.dumps([{**asdict(e), "permission": "ALLOW"} for e in entries], indent=2) + "\n"
