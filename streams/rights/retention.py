"""Retention per agreement (DPO control 10): what the bus itself keeps about shared events expires.

Shared topics expire by themselves (`retention.ms` from each plan's `retention_days`, see
`streams.kafka.topology`). What the bus keeps besides — the views' contributions (Faust tables and the
PostgreSQL sink), the vault's identifiers and links — is purged here, by an operator-scheduled
`sharebus retention purge` (cron, a Kubernetes CronJob), not a timer in every worker: the purge is
global, and one scheduled run needs no leader election.

An event expires when its first decision (`at` in the audit ledger) is older than the LONGEST
retention of any person-level agreement (events or person profiles) its controller shares under:
the bus may keep it while any recipient may; a controller with none gets the longest of all.
Aggregate-only agreements (suppressed area counts) keep only the sink's area rows that long.
Per expired event: a `link.person` retraction (cause "retention", so the views and the sink drop
it as they drop an erased event), then its vault rows go and it is recorded in `retention_purged`,
which is also the log of the purge. The sink's person rows not seen within the longest retention
are deleted directly as a backstop, and area rows of weeks older than the longest agreement.

The audit ledger is NOT purged: its topic has `retention.ms = -1` and its PostgreSQL copy is the
record of every disclosure (DPA 2018 s.62), kept for the audit period the deployment sets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from streams.agreements import Agreement, AgreementSet
from streams.agreements.model import PERSON_VIEW
from streams.avro.catalogue import Catalogue
from streams.deadletter import Output
from streams.linkage.view_tokens import ViewTokens
from streams.privacy.vault import delete_subjects
from streams.rights import messages
from streams.rights.links import LinkIndex
from streams.views.area_counts import iso_week

__all__ = ["PurgeReport", "purge", "retention_days"]


@dataclass
class PurgeReport:
    """What a purge found and did (`dry_run`: found only)."""

    cutoffs: dict[str, str] = field(default_factory=dict)  # partner -> ISO cutoff
    expired_events: int = 0
    views_retractions: int = 0
    vault_rows: int = 0
    sink_rows: int = 0
    dry_run: bool = False


def _person_level(agreement: Agreement) -> bool:
    """Shares events or person profiles: what makes the bus keep person-level data for it."""
    return bool(agreement.event_types) or "person_profile" in agreement.views


def retention_days(agreements: AgreementSet, catalogue: Catalogue) -> dict[str, int]:
    """Per controller, the longest retention of the person-level agreements it shares under (else
    the longest of all person-level agreements). Aggregate-only agreements (area counts, which
    leave the bus suppressed) do not keep identifiers or profiles alive."""
    personal = [a for a in agreements.agreements if _person_level(a)]
    longest = max((a.retention_days for a in personal), default=0)
    days: dict[str, int] = {}
    for agreement in personal:
        for owner in agreement.owners:
            days[owner] = max(days.get(owner, 0), agreement.retention_days)
    for partner in catalogue.partners:
        days.setdefault(partner, longest)
    return {p: d for p, d in days.items() if d > 0}


def _table_exists(conn: psycopg.Connection[Any], name: str) -> bool:
    return conn.execute("SELECT to_regclass(%s)", (name,)).fetchone() != (None,)


def _expired(conn: psycopg.Connection[Any], cutoffs: Mapping[str, datetime]) -> list[tuple[str, str]]:
    if not _table_exists(conn, "audit_decisions"):
        return []
    rows = conn.execute(
        "WITH c(partner, cutoff) AS (SELECT * FROM unnest(%s::text[], %s::timestamptz[])) "
        "SELECT d.event_id, d.source_partner FROM audit_decisions d JOIN c ON c.partner = d.source_partner "
        "WHERE NOT EXISTS (SELECT 1 FROM retention_purged p WHERE p.event_id = d.event_id) "
        "GROUP BY d.event_id, d.source_partner, c.cutoff HAVING min(d.at) < c.cutoff ORDER BY d.event_id",
        (list(cutoffs), list(cutoffs.values())),
    ).fetchall()
    return [(str(e), str(p)) for e, p in rows]


def purge(
    dsn: str,
    agreements: AgreementSet,
    catalogue: Catalogue,
    send: Callable[[Sequence[Output]], Any],
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    view_tokens: ViewTokens | None = None,
) -> PurgeReport:
    """Purge what outlived its retention; `send` delivers the views retractions (and must block
    until they are acknowledged: vault rows go only after the views were told)."""
    now = now or datetime.now(UTC)
    days = retention_days(agreements, catalogue)
    cutoffs = {p: now - timedelta(days=d) for p, d in sorted(days.items())}
    report = PurgeReport({p: c.isoformat(timespec="seconds") for p, c in cutoffs.items()}, dry_run=dry_run)
    if not cutoffs:
        return report
    oldest = min(cutoffs.values())  # the longest retention of all
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        expired = _expired(conn, cutoffs)
    report.expired_events = len(expired)
    ids = [e for e, _ in expired]
    rows = LinkIndex(dsn).by_events(ids)
    linked = {r.event_id for r in rows}
    pairs = [(r.event_id, r.person_token) for r in rows] + [(e, None) for e in ids if e not in linked]
    expand: Callable[[str], list[str]] | None = None
    if view_tokens is not None:  # person views are kept under each recipient's own token
        tokens = view_tokens
        holders = sorted({a.recipient for a in agreements.agreements if PERSON_VIEW in a.views})

        def expand(person: str) -> list[str]:
            return tokens.expand(person, holders)

    outputs = messages.views_retractions(pairs, f"retention:{now.date().isoformat()}", "retention", expand)
    report.views_retractions = len(outputs)
    if dry_run:
        return report
    send(outputs)
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        if _table_exists(conn, "vault_subjects"):
            report.vault_rows += delete_subjects(conn, "WHERE s.event_id = ANY(%s)", (ids,))
            report.vault_rows += delete_subjects(
                conn,
                "USING unnest(%s::text[], %s::timestamptz[]) AS c(partner, cutoff) "
                "WHERE s.partner = c.partner AND s.recorded_at < c.cutoff",
                (list(cutoffs), list(cutoffs.values())),
            )
            report.vault_rows += _count(conn, "DELETE FROM vault_links WHERE event_id = ANY(%s)", (ids,))
        conn.execute(
            "INSERT INTO retention_purged (event_id, source_partner) "
            "SELECT * FROM unnest(%s::text[], %s::text[]) ON CONFLICT DO NOTHING",
            (ids, [p for _, p in expired]),
        )
        if _table_exists(conn, "person_factors"):
            report.sink_rows += _count(conn, "DELETE FROM person_factors WHERE last_seen < %s", (oldest,))
            report.sink_rows += _count(
                conn,
                "DELETE FROM person_profiles p WHERE updated_at < %s AND NOT EXISTS "
                "(SELECT 1 FROM person_factors f WHERE f.person_token = p.person_token)",
                (oldest,),
            )
        aggregate_days = max(a.retention_days for a in agreements.agreements)
        if _table_exists(conn, "area_counts"):  # suppressed counts: kept as long as any agreement says
            week = iso_week(now - timedelta(days=aggregate_days))
            report.sink_rows += _count(conn, "DELETE FROM area_counts WHERE week < %s", (week,))
    return report


def _count(conn: psycopg.Connection[Any], sql: str, params: Sequence[Any]) -> int:
    return max(conn.execute(sql, params).rowcount, 0)  # type: ignore[arg-type]  # static SQL
