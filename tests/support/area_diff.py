"""Why the area tables two workers serve differ from a reference: the text of a failed assertion.

A wrong published count says little by itself. This names, per worker and week, the rows that
differ, then follows every reference fact the frozen tables should hold but the workers' own rows
do not: was it delivered to the area agent (`views.area_facts`), and in which week's row, if any,
was it counted (the area table's changelog, latest value per row)? A fact counted in a later week
arrived after its own week was published; a fact on the input topic but in no row was lost by the
area agent; a fact missing from the input topic was never sent by the profile stage (the
`link.person` partitions of the missing facts say whether one partition went unconsumed).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from agents.views import AREA_ROWS
from streams import topics
from streams.kafka import topology
from streams.settings import Settings
from streams.views.area_counts import cells_of, event_key
from streams.views.area_stage import TableAreaCounts, split_row_key
from tests.support.stack import read_topic

__all__ = ["explain_areas"]

SHOWN = 20  # facts listed one by one; the summary counts them all


def _text(raw: bytes | None) -> str:
    """A changelog key: JSON-encoded or raw, depending on the table's key serializer."""
    text = (raw or b"").decode()
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, str) else text


def counted_rows(settings: Settings) -> TableAreaCounts:
    """The area table as its changelog holds it (every worker's view of the counts)."""
    latest: dict[str, bytes | None] = {}
    for message in read_topic(settings, f"{settings.consumer_group}-{AREA_ROWS}-changelog"):
        latest[_text(message.key())] = message.value()
    counts = TableAreaCounts("district")
    for key, value in latest.items():
        counts.load_row(*split_row_key(key), json.loads(value) if value else None)
    return counts


def _weeks_holding(counts: TableAreaCounts) -> dict[int, set[str]]:
    """event key -> the weeks whose rows count it."""
    held: dict[int, set[str]] = defaultdict(set)
    for area, week in counts.rows():
        for keys in (counts.row(area, week) or {}).values():
            body = keys[1:]  # "p" + (event hex, person hex) pairs
            for i in range(0, len(body), 32):
                held[int(body[i : i + 16], 16)].add(week)
    return held


def _table_diff(week: str, got: Mapping[str, Any], want: Mapping[str, Any]) -> list[str]:
    lines = [f"  {week}: total {got.get('total')} want {want.get('total')}"]
    got_rows = dict(zip(got.get("rows") or [], got.get("row_totals") or [], strict=False))
    want_rows = dict(zip(want.get("rows") or [], want.get("row_totals") or [], strict=False))
    for area in sorted(set(got_rows) | set(want_rows)):
        if got_rows.get(area) != want_rows.get(area):
            lines.append(f"    {area}: {got_rows.get(area, 'no row')} want {want_rows.get(area, 'no row')}")
    return lines


def explain_areas(
    settings: Settings,
    reference_facts: Iterable[Mapping[str, Any]],
    served: list[Mapping[str, Any]],
    want: Mapping[str, Any],
) -> str:
    """The differing weeks per worker, then where each fact missing from its frozen week went."""
    lines = []
    for i, tables in enumerate(served):
        differing = [w for w, table in want.items() if tables.get(w) != table]
        lines.append(f"worker {i}: {len(differing)} of {len(want)} weeks differ")
        for week in differing[:5]:
            lines += _table_diff(week, tables.get(week) or {}, want[week])
    frozen = {w for w, table in want.items() if table.get("rows")}
    inputs = read_topic(settings, topology.VIEWS_AREA_FACTS)
    delivered = {json.loads(m.value() or b"{}").get("event_id") for m in inputs}
    held = _weeks_holding(counted_rows(settings))
    partition_of = {  # the link.person partition of each area fact (keyed by its event id)
        (m.key() or b"").decode(): m.partition() for m in read_topic(settings, topics.LINK_PERSON)
    }
    fates: Counter[str] = Counter()
    by_partition: Counter[int | None] = Counter()
    missing = []
    facts = {(f["event_id"], f.get("subject_index")): f for f in reference_facts}  # replays repeat
    for fact in facts.values():
        cells = cells_of(fact)
        if not cells or cells[0][1] not in frozen:
            continue
        area, week = cells[0][0], cells[0][1]
        weeks = held.get(event_key(str(fact["event_id"])), set())
        if week in weeks:
            continue
        if weeks:
            fate = f"counted in {', '.join(sorted(weeks))} (arrived after {week} was published)"
        elif fact["event_id"] in delivered:
            fate = "delivered to the area agent, counted in no row"
        else:
            fate = "never sent to the area agent"
        fates[fate.split(" (")[0] if weeks else fate] += 1
        by_partition[partition_of.get(str(fact["event_id"]))] += 1
        missing.append(f"  {fact['event_id']} ({week}, {area}): {fate}")
    lines.append(f"{len(missing)} facts missing from their published week: {dict(fates)}")
    lines.append(f"  by link.person partition: {dict(sorted(by_partition.items(), key=str))}")
    return "\n".join(lines + missing[:SHOWN])
