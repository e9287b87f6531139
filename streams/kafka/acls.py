"""The Kafka ACL plan: who may read, write or create which topic, generated from the agreements.

The broker must run an authorizer with `allow.everyone.if.no.acl.found=false`, so anything not
listed here is denied. Each party authenticates as its own principal and gets what its job needs:

- a partner (`User:partner.<id>`) writes only its own raw topics (prefix `raw.<id>.`);
- each worker role has its own principal (`RolePrincipals`, `deploy/kafka-principals.yaml`): the
  enforcer alone reads raw topics and dead letters (which hold raw bytes), and writes the shares,
  the audit ledger and linkage identifiers; the audit sink reads the ledger; the linker reads
  linkage identifiers and writes person links; the views read person links and write the views;
  the rights service re-reads raw records and writes corrections. Each writes its own dead letters;
- a recipient reads exactly the shared topics its agreements fill and the area counts if its
  agreements grant them (`views:`), nothing by prefix, with consumer groups named `<id>.<anything>`;
  never `views.person_profile`, which holds every recipient's person view (the API serves each
  recipient its own);
- operations read the audit ledger (decisions and tokens, no identifiers) and never dead letters:
  they learn the reasons from the metrics.

Every principal is `User:` and a safe name (`check_principal`): no wildcard can reach the plan,
and the text output quotes each one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, field_validator

from streams import topics
from streams.agreements.model import check_principal
from streams.errors import ConfigurationError
from streams.kafka.topology import VIEWS_AREA_FACTS, VIEWS_PROFILE_MOVES

if TYPE_CHECKING:
    from streams.agreements.loader import AgreementSet

Operation = Literal["Read", "Write", "Create", "Describe", "DescribeConfigs"]
ResourceType = Literal["Topic", "Group"]
PatternType = Literal["LITERAL", "PREFIXED"]

# The views a recipient reads on Kafka. The person view is granted through the authenticated API
# only: `views.person_profile` holds every recipient's person view, so Read on it would give one
# recipient the others' profiles; the API answers with the caller's own view (agents.web).
VIEW_TOPICS = {"area_counts": topics.VIEWS_AREA_COUNTS}
API_VIEWS = frozenset({"person_profile"})
_READ: tuple[Operation, ...] = ("Read", "Describe")
_WRITE: tuple[Operation, ...] = ("Write", "Describe")
_OWN: tuple[Operation, ...] = ("Read", "Write", "Describe", "Create")
# A worker creates the topics it reads as well as those it writes, so roles start in any order;
# creating an (empty) topic with the bus's own settings grants nothing on anyone's data.
_INPUT: tuple[Operation, ...] = ("Read", "Describe", "Create")


class RolePrincipals(BaseModel):
    """The principal each worker role (and operations, the registry) authenticates as."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enforcer: str = "User:sharingbus-enforcer"
    audit: str = "User:sharingbus-audit"
    linker: str = "User:sharingbus-linker"
    views: str = "User:sharingbus-views"
    rights: str = "User:sharingbus-rights"
    operations: str = "User:sharingbus-ops"
    registry: str = "User:sharingbus-registry"

    @field_validator("*")
    @classmethod
    def _safe(cls, v: str) -> str:
        return check_principal(v)


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
    """What one recipient may read: the shared topics and views its agreements give it."""

    id: str
    principal: str
    shared_topics: tuple[str, ...] = ()
    views: tuple[str, ...] = ()


def partner_principal(partner: str) -> str:
    return f"User:partner.{partner}"


def recipient_principal(recipient: str) -> str:
    return f"User:recipient.{recipient}"


def recipient_access(agreements: AgreementSet) -> list[RecipientAccess]:
    """Every recipient with the topics and views its (valid) agreements give it."""
    shared: dict[str, set[str]] = {}
    views: dict[str, set[str]] = {}
    for a in agreements.agreements:
        shared.setdefault(a.recipient, set()).update(topics.shared(a.recipient, et) for et in a.event_types)
        views.setdefault(a.recipient, set()).update(a.views)
    out = []
    for rid, r in sorted(agreements.recipients.items()):
        principal = r.principal or recipient_principal(rid)
        out.append(
            RecipientAccess(
                rid, principal, tuple(sorted(shared.get(rid, ()))), tuple(sorted(views.get(rid, ())))
            )
        )
    return out


def _topic(
    principal: str, name: str, ops: Iterable[Operation], why: str, *, prefix: bool = False
) -> list[AclEntry]:
    pattern: PatternType = "PREFIXED" if prefix else "LITERAL"
    return [AclEntry(principal, "Topic", pattern, name, op, why) for op in ops]


def _group(principal: str, name: str, why: str, *, prefix: bool = False) -> AclEntry:
    return AclEntry(principal, "Group", "PREFIXED" if prefix else "LITERAL", name, "Read", why)


def _enforcer(p: str, group: str) -> list[AclEntry]:
    return [
        *_topic(
            p, "raw.", ("Read", "Describe", "Create"), "the enforcer alone reads raw events", prefix=True
        ),
        *_topic(p, "shared.", ("Write", "Describe", "Create"), "shares per agreement", prefix=True),
        *_topic(p, "dlq.", _OWN, "dead letters hold raw bytes: the enforcer alone reads them", prefix=True),
        *_topic(p, topics.AUDIT_DECISIONS, _OWN, "writes the ledger; re-reads its chain heads"),
        *_topic(p, topics.LINK_IDENTIFIERS, ("Write", "Describe", "Create"), "linkage tokens"),
        _group(p, f"{group}-enforcer", "enforcer consumer group"),
        _group(p, "sharingbus-audit-", "chain recovery reader", prefix=True),
    ]


def _audit(p: str, group: str) -> list[AclEntry]:
    return [
        *_topic(p, topics.AUDIT_DECISIONS, _INPUT, "stores the ledger in PostgreSQL"),
        *_topic(p, topics.dlq("audit_sink"), ("Write", "Describe", "Create"), "its dead letters"),
        _group(p, f"{group}-audit_sink", "audit sink consumer group"),
    ]


def _linker(p: str, group: str) -> list[AclEntry]:
    return [
        *_topic(p, topics.LINK_IDENTIFIERS, _INPUT, "links tokens, never identifiers"),
        *_topic(p, topics.LINK_STATE, _OWN, "its own changelog"),
        *_topic(p, topics.LINK_PERSON, ("Write", "Describe", "Create"), "person links for the views"),
        *_topic(p, topics.dlq("linker"), ("Write", "Describe", "Create"), "its dead letters"),
        _group(p, f"{group}-linker", "linker consumer group"),
    ]


def _views(p: str, group: str) -> list[AclEntry]:
    entries = _topic(p, topics.LINK_PERSON, _INPUT, "facts by person")
    for name in (
        topics.VIEWS_PERSON_PROFILE,
        topics.VIEWS_AREA_COUNTS,
        VIEWS_PROFILE_MOVES,
        VIEWS_AREA_FACTS,
    ):
        entries += _topic(p, name, _OWN, "views and their internal streams")
    entries += _topic(p, f"{group}-", _OWN, "Faust tables' changelogs", prefix=True)
    entries += _topic(p, topics.dlq("views"), ("Write", "Describe", "Create"), "its dead letters")
    entries.append(_group(p, group, "the views' Faust consumer group"))
    return entries


def _rights(p: str, group: str) -> list[AclEntry]:
    return [
        *_topic(p, "raw.", _READ, "subject requests; re-reads a person's raw records", prefix=True),
        *_topic(p, "shared.", _WRITE, "corrections and retractions to recipients", prefix=True),
        *_topic(p, topics.AUDIT_DECISIONS, _WRITE, "every request is in the ledger"),
        *_topic(p, topics.LINK_IDENTIFIERS, _WRITE, "forget and rectify linkage"),
        *_topic(p, topics.LINK_PERSON, _WRITE, "retract facts from the views"),
        _group(p, f"{group}-rights", "rights consumer group"),
    ]


def _operations(p: str) -> list[AclEntry]:
    return [
        *_topic(p, topics.AUDIT_DECISIONS, _READ, "audit queries (tokens, no identifiers)"),
        _group(p, "ops.", "operator consumer groups", prefix=True),
    ]


def _registry(p: str) -> list[AclEntry]:
    ops: tuple[Operation, ...] = ("Read", "Write", "Describe", "Create", "DescribeConfigs")
    return [
        *_topic(p, topics.SCHEMAS, ops, "schema registry store"),
        _group(p, "schema-registry", "registry", prefix=True),
    ]


def _partner(partner: str) -> list[AclEntry]:
    topics.raw(partner, "x.y")  # validates the id (no dots, lower-case)
    return _topic(
        partner_principal(partner), f"raw.{partner}.", _WRITE, "partner publishes its events", prefix=True
    )


def _recipient(access: RecipientAccess) -> list[AclEntry]:
    who = check_principal(access.principal)
    entries = []
    for topic in access.shared_topics:
        entries += _topic(who, topic, _READ, "recipient reads its own share")
    for view in access.views:
        if view in API_VIEWS:
            continue
        if view not in VIEW_TOPICS:
            raise ConfigurationError(f"recipient {access.id}: unknown view {view!r}")
        entries += _topic(who, VIEW_TOPICS[view], _READ, "view granted by an agreement")
    if entries:
        entries.append(_group(who, f"{access.id}.", "recipient consumer groups", prefix=True))
    return entries


_ROLE_GRANTS: dict[str, Callable[[str, str], list[AclEntry]]] = {
    "enforcer": _enforcer,
    "audit": _audit,
    "linker": _linker,
    "views": _views,
    "rights": _rights,
}


def may_create(roles: Iterable[str], consumer_group: str) -> Callable[[str], bool]:
    """Whether a worker running `roles` may create a topic: it ensures those only, since under the
    plan its principal is refused (and its start would fail) on any other."""
    grants = [
        e
        for role in roles
        for e in _ROLE_GRANTS[role]("User:worker", consumer_group)
        if e.operation == "Create"
    ]
    return lambda name: any(_covers(e, "Topic", name) for e in grants)


def _covers(entry: AclEntry, resource_type: str, name: str) -> bool:
    if entry.resource_type != resource_type:
        return False
    return (
        name.startswith(entry.resource_name)
        if entry.pattern_type == "PREFIXED"
        else name == entry.resource_name
    )


def acl_plan(
    partners: Iterable[str],
    recipients: Sequence[RecipientAccess],
    principals: RolePrincipals | None = None,
    consumer_group: str = "sharingbus",
) -> list[AclEntry]:
    """Every ALLOW rule of the bus, sorted and de-duplicated; anything else is denied.

    ConfigurationError when two parties would share a principal (each would get the other's
    rights). Worker roles may share one: a worker running several roles (compose's `agents`
    service) authenticates as one principal holding each of its roles' grants.
    """
    p = principals or RolePrincipals()
    owners: dict[str, str] = {}
    parties = [("the bus", v) for v in p.model_dump().values()]
    parties += [(f"partner {x}", partner_principal(x)) for x in partners]
    parties += [(f"recipient {r.id}", r.principal) for r in recipients]
    for party, principal in parties:
        if owners.setdefault(principal, party) != party:
            raise ConfigurationError(f"{party} and {owners[principal]} would share the principal {principal}")
    g = consumer_group
    entries = [
        *_enforcer(p.enforcer, g),
        *_audit(p.audit, g),
        *_linker(p.linker, g),
        *_views(p.views, g),
        *_rights(p.rights, g),
        *_operations(p.operations),
        *_registry(p.registry),
    ]
    for partner in partners:
        entries += _partner(partner)
    for r in recipients:
        entries += _recipient(r)
    return sorted(set(entries))


def read_principals(path: Path | None) -> RolePrincipals:
    """Role principals from YAML (`{enforcer: User:..., ...}`), the defaults when `path` is None."""
    if path is None:
        return RolePrincipals()
    try:
        doc = yaml.safe_load(path.read_text()) or {}
        return RolePrincipals.model_validate(doc)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"{path}: cannot read ({type(exc).__name__})") from None
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(x) for x in err["loc"]) or "(top level)"
        raise ConfigurationError(f"{path}: {key}: {str(err['msg']).removeprefix('Value error, ')}") from None


def render_text(entries: Iterable[AclEntry], bootstrap: str = "$BOOTSTRAP") -> str:
    """One `kafka-acls --add` command per rule, principals quoted (pass `--command-config` for the
    admin's own TLS/SASL)."""
    lines = []
    for e in entries:
        resource = "--topic" if e.resource_type == "Topic" else "--group"
        principal = check_principal(e.principal)
        lines.append(
            f"kafka-acls --bootstrap-server {bootstrap} --add --allow-principal '{principal}' "
            f"--operation {e.operation} {resource} {e.resource_name} "
            f"--resource-pattern-type {e.pattern_type.lower()}"
        )
    return "\n".join(lines) + "\n"


def render_json(entries: Iterable[AclEntry]) -> str:
    """The plan as a JSON list (for review tools and Terraform-style provisioning)."""
    return json.dumps([{**asdict(e), "permission": "ALLOW"} for e in entries], indent=2) + "\n"
