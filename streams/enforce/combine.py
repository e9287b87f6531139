"""Which of an event's link facts may combine into which view, decided beside its disclosure.

The enforcer extracts facts (factors, area, linkage tokens) from every event, but a fact may only
flow into a view that an agreement grants (`streams.agreements.views`): into a recipient's person
view only when the event was SHARED with that recipient under the granting agreement, only the
factors the grant names, and with its time coarsened to the grant's unit (day for individual tier,
month for area), so that no view holds an instant another recipient could match; into the area
counts only from an owner of an `area_counts` grant. A record no view may take is not emitted at
all (the linker never sees its tokens). Each combination, allowed or denied, is one ledger record
(DPO control 8), in the recipient column as `<view>:<recipient>` so it never collides with the
recipient's own disclosure decision on the same event.

What goes on `link.identifiers` (docs/contracts.md): `factors` are those the area counts may count
(empty when none may), `profiles` maps each recipient whose person view takes the fact to
`{"factors", "occurred_at"}` (coarsened), `view_recipients` names every recipient holding a person
view now (the linker sends merges into each of those views).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from streams.agreements.model import AREA_VIEW, PERSON_VIEW, TimeUnit
from streams.agreements.views import ProfileSource, ViewPlans
from streams.enforce.audit import DECISION_DEFAULTS

__all__ = ["Combiner", "coarsen", "gate_facts"]

Seal = Callable[[dict[str, Any]], None]


def coarsen(when: str | datetime, unit: TimeUnit) -> str:
    """The start (UTC) of the day, ISO week or month holding `when`, as ISO text."""
    dt = when if isinstance(when, datetime) else datetime.fromisoformat(str(when))
    dt = (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(UTC)
    day = dt.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "week":
        day -= timedelta(days=day.weekday())
    elif unit == "month":
        day = day.replace(day=1)
    return day.isoformat()


class Combiner:
    """The view grants of one plan set, applied to one event's link facts at a time."""

    def __init__(self, views: ViewPlans) -> None:
        self.views = views
        self._recipients = list(views.profile_recipients)

    def combine(
        self,
        partner: str,
        event_type: str,
        records: list[dict[str, Any]],
        shared: Iterable[tuple[str, str]],
        base: Mapping[str, Any],
        seal: Seal,
    ) -> list[dict[str, Any]]:
        """The records that may flow on (rewritten as described above); audits each combination.

        `shared` holds (agreement id, recipient) of every plan that shared the event; `base` is the
        event's part of an audit record (event id, partner, event type, time); `seal` chains one.
        """
        shared = set(shared)
        profile_sources = self.views.profile_sources(event_type, partner)
        area_sources = self.views.area_sources(event_type, partner)
        seen = sorted({f for r in records for f in r.get("factors") or ()})
        granted: dict[tuple[str, str], set[str]] = {}
        takers = [s for s in profile_sources if (s.agreement_id, s.recipient) in shared]
        out = []
        if takers or area_sources:  # else no view may take anything of this event: no link fact at all
            for record in records:
                factors = tuple(record.get("factors") or ())
                record["profiles"] = self._profiles(takers, factors, record["occurred_at"], granted)
                record["factors"] = list(factors) if area_sources else []
                record["view_recipients"] = self._recipients
                out.append(record)
        if seen:
            self._audit_profiles(profile_sources, shared, granted, seen, base, seal)
            self._audit_areas(area_sources, seen, base, seal)
        return out

    @staticmethod
    def _profiles(
        takers: Iterable[ProfileSource],
        factors: tuple[str, ...],
        occurred_at: str,
        granted: dict[tuple[str, str], set[str]],
    ) -> dict[str, dict[str, Any]]:
        """Per recipient: the granted factors of one record and its time, coarsened for that view."""
        profiles: dict[str, dict[str, Any]] = {}
        for source in takers:
            allowed = {f for f in factors if source.factors is None or f in source.factors}
            granted.setdefault((source.agreement_id, source.recipient), set()).update(allowed)
            if allowed:
                entry = profiles.setdefault(
                    source.recipient, {"factors": [], "occurred_at": coarsen(occurred_at, source.time_unit)}
                )
                entry["factors"] = sorted(allowed.union(entry["factors"]))
        return profiles

    def _audit_profiles(
        self,
        sources: tuple[ProfileSource, ...],
        shared: set[tuple[str, str]],
        granted: Mapping[tuple[str, str], set[str]],
        seen: list[str],
        base: Mapping[str, Any],
        seal: Seal,
    ) -> None:
        if not sources:
            reason = (
                f"no agreement combines {base['event_type']} from {base['source_partner']} into a person view"
            )
            seal(_record(base, f"{PERSON_VIEW}:*", "denied", reason, withheld=seen))
            return
        for source in sources:
            key = (source.agreement_id, source.recipient)
            factors = sorted(granted.get(key, ()))
            withheld = [f for f in seen if f not in factors]
            under = f"{source.agreement_id} v{source.agreement_version}"
            if key not in shared:
                reason = f"not combined: the event was not shared with {source.recipient} under {under}"
                outcome = "denied"
            elif not factors:
                reason = f"not combined: {under} grants none of the event's factors"
                outcome = "denied"
            else:
                view = f"{source.recipient}'s {PERSON_VIEW}"
                reason = f"combined into {view} under {under} (times by {source.time_unit})"
                outcome = "shared"
            seal(
                _record(
                    base,
                    f"{PERSON_VIEW}:{source.recipient}",
                    outcome,
                    reason,
                    source.agreement_id,
                    source.agreement_version,
                    released=factors if outcome == "shared" else [],
                    withheld=withheld if outcome == "shared" else seen,
                )
            )

    def _audit_areas(
        self, sources: Iterable[Any], seen: list[str], base: Mapping[str, Any], seal: Seal
    ) -> None:
        sources = list(sources)
        if not sources:
            reason = f"no agreement counts {base['event_type']} from {base['source_partner']} in area counts"
            seal(_record(base, f"{AREA_VIEW}:*", "denied", reason, withheld=seen))
        for source in sources:
            under = f"{source.agreement_id} v{source.agreement_version}"
            seal(
                _record(
                    base,
                    f"{AREA_VIEW}:{source.recipient}",
                    "shared",
                    f"counted in {AREA_VIEW} under {under} (suppressed before release)",
                    source.agreement_id,
                    source.agreement_version,
                    released=seen,
                )
            )


def is_combination(record: Mapping[str, Any]) -> bool:
    """A ledger record about combining an event into a view (recipient `<view>:<id>`), not a release."""
    view, sep, _ = str(record.get("recipient", "")).partition(":")
    return bool(sep) and view in (PERSON_VIEW, AREA_VIEW)


def _record(
    base: Mapping[str, Any],
    recipient: str,
    outcome: str,
    reason: str,
    agreement_id: str | None = None,
    agreement_version: str | None = None,
    released: list[str] | None = None,
    withheld: list[str] | None = None,
) -> dict[str, Any]:
    """A complete decision record (as `AuditChain.seal` needs it) for one combination."""
    return {
        **DECISION_DEFAULTS,
        **base,
        "recipient": recipient,
        "outcome": outcome,
        "reason": reason,
        "agreement_id": agreement_id,
        "agreement_version": agreement_version,
        "released": list(released or ()),
        "withheld": list(withheld or ()),
        "transformed": [],
        "invalid_identifiers": [],
        "subject_tokens": [],
        "output_key": None,  # a view is not a topic record: nothing to retract by key
    }


def gate_facts(
    planset: Any, partner: str, event_type: str, event: Mapping[str, Any], facts: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """`Combiner.combine` for an event decided again outside the enforcer's batch (a rectified
    one): its plans are applied afresh; the caller audits the step, so records are not sealed."""
    shared = set()
    for plan in planset.plans_for(event_type, partner):
        if plan.apply(event).outcome == "shared":
            shared.add((plan.agreement_id, plan.recipient))
    base = {"event_id": "", "source_partner": partner, "event_type": event_type}
    views = getattr(planset, "views", None) or ViewPlans()
    return Combiner(views).combine(partner, event_type, facts, shared, base, lambda _: None)
