"""One pseudonym domain, one recipient: tokens of one domain are equal for one person, so two
recipients given tokens in the same domain could join their data on them.

A domain shared by the agreements of two recipients is refused unless each of the two agreements
names the other's recipient in `joint_domain_with`: a joint use both data flows declare, and a DPO
can see in both files. The check runs across the whole directory (`check_agreements`), after each
agreement passed its own checks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from streams.agreements.checks import Finding
from streams.agreements.model import Agreement, Recipient

__all__ = ["DomainUse", "check_domains", "domain_uses", "one_recipient_per_domain"]


@dataclass(frozen=True)
class DomainUse:
    """Where an agreement puts tokens in a domain: the YAML key that chose it."""

    agreement: Agreement
    domain: str
    key: str


def domain_uses(agreement: Agreement) -> list[DomainUse]:
    """Every domain `agreement` writes tokens in, with the first key choosing each one."""
    uses: dict[str, DomainUse] = {}
    for et_name, rule in agreement.event_types.items():
        for selector, treatment in rule.fields.items():
            if treatment.operator != "pseudonymise":
                continue
            own = treatment.params.get("domain")
            domain = own if isinstance(own, str) and own else agreement.domain
            key = f"event_types.{et_name}.fields.{selector}" if own else "pseudonym_domain"
            uses.setdefault(domain, DomainUse(agreement, domain, key))
    return list(uses.values())


def check_domains(
    agreements: Iterable[Agreement], recipients: Mapping[str, Recipient]
) -> list[tuple[Agreement, Finding]]:
    """One finding per pair of agreements of different recipients sharing a domain undeclared,
    reported on the later of the two and naming both; and unknown recipients in joint_domain_with."""
    out: list[tuple[Agreement, Finding]] = []
    uses_so_far: list[DomainUse] = []
    for agreement in agreements:
        for i, rid in enumerate(agreement.joint_domain_with):
            if rid not in recipients:
                out.append((agreement, Finding(f"joint_domain_with[{i}]", f"unknown recipient {rid!r}")))
            elif rid == agreement.recipient:
                out.append((agreement, Finding(f"joint_domain_with[{i}]", f"{rid} is this agreement's own")))
        uses = domain_uses(agreement)
        for use in uses:
            for other in uses_so_far:
                if other.domain != use.domain or other.agreement.recipient == agreement.recipient:
                    continue
                if not _declared(agreement, other.agreement):
                    out.append((agreement, Finding(use.key, _message(use, other))))
        uses_so_far += uses
    return out


def _declared(a: Agreement, b: Agreement) -> bool:
    return b.recipient in a.joint_domain_with and a.recipient in b.joint_domain_with


def _message(use: DomainUse, other: DomainUse) -> str:
    a, b = use.agreement, other.agreement
    return (
        f"pseudonym domain {use.domain} of {a.id} ({a.recipient}) is also used by {b.id} ({b.recipient}, "
        f"{b.file}): the two recipients could join their data; use separate domains, or declare the "
        f"joint use in both (joint_domain_with: [{b.recipient}] here, [{a.recipient}] in {b.id})"
    )


def one_recipient_per_domain(
    valid: list[Agreement],
    recipients: Mapping[str, Recipient],
    previous_of: Callable[[Agreement], Agreement | None],
) -> tuple[list[Agreement], list[tuple[Agreement, Finding]]]:
    """`valid` without the agreements `check_domains` refuses, and the findings.

    Of two agreements in conflict the one changed since it last loaded (`previous_of` gives that
    version, or None) is refused, so an edit never stops another agreement's flow; its version last
    loaded stays in force (with a warning) when that one still keeps to its own domains.
    """

    def unchanged(a: Agreement) -> bool:
        old = previous_of(a)
        return old is not None and old.digest == a.digest

    ordered = sorted(valid, key=lambda a: not unchanged(a))  # stable: unchanged ones are judged first
    refused: dict[int, list[Finding]] = {}
    for a, f in check_domains(ordered, recipients):
        refused.setdefault(id(a), []).append(f)
    kept: list[Agreement] = []
    found: list[tuple[Agreement, Finding]] = []
    for agreement in valid:
        if id(agreement) not in refused:
            kept.append(agreement)
            continue
        found += [(agreement, f) for f in refused[id(agreement)]]
        old = previous_of(agreement)
        others = [a for a in valid if id(a) not in refused]
        if old is not None and old is not agreement and not check_domains([*others, old], recipients):
            note = f"not applied: {old.id} v{old.version} as last loaded stays in force until it is fixed"
            found.append((agreement, Finding("", note, "warning")))
            kept.append(old)
    return kept, found
