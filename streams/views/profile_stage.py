"""`ProfileStage`: person profiles and tombstones from `link.person` facts, merges, moves and retractions.

Co-partitioning is what makes a person's state local: every record that touches a profile is keyed
by that profile's token (facts by `person_token`, merges by `from`, moves and forwarded retractions
by their target), so a record whose key is not the token it would modify is dead-lettered instead of
writing the token's state on a partition that does not own it.

Tombstones (`{"moved_to": token|None, "erased": [event key hex]}`) remember where a merged token
went and which events were erased for a token, so that an erasure follows a profile that has moved,
and a profile still in flight on the moves topic cannot bring an erased event back. A move that
reaches a merged token follows its `moved_to` (a chain of merges while it was in flight); a token it
has already passed through ends the chain there (a merge back, A->B then B->A, revives the token).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streams import deadletter as dl
from streams import metrics
from streams.deadletter import Output, RawRecord
from streams.views.profiles import (
    HALF_LIFE_DAYS,
    MAX_CONTRIBUTIONS,
    Profile,
    apply_fact,
    merge,
    rescore,
)
from streams.views.profiles import retract as retract_event
from streams.views.state import (
    AREA_PARTITION,
    STAGE,
    BadRecord,
    Store,
    ViewsTopics,
    check_fact,
    dumps,
    event_hex,
    parse_event_ids,
    parse_record,
    require_key,
    text_field,
)

log = logging.getLogger(__name__)

MAX_HOPS = 16  # a move forwarded along this many merged tokens stops: a cycle (A->B, B->A) ends here
_AREA_FIELDS = ("event_id", "subject_index", "person_token", "factors", "area", "occurred_at")

__all__ = ["ProfileResult", "ProfileStage"]


@dataclass
class ProfileResult:
    """What one batch means: records to send first, then table writes (`ProfileStage.commit`)."""

    outputs: list[Output] = field(default_factory=list)
    writes: list[tuple[Store, int, str, Any]] = field(default_factory=list)
    changed: dict[str, int] = field(default_factory=dict)  # profile token -> partition written
    applied: int = 0
    dead: int = 0
    last_fact_at: str | None = None


class _Batch:
    """Batch-local copies of the rows a batch touches: each row is read and written once per batch."""

    def __init__(self, profiles: Store, tombs: Store) -> None:
        self._profiles_store, self._tombs_store = profiles, tombs
        self.profiles: dict[str, Profile | None] = {}
        self.tombs: dict[str, dict[str, Any]] = {}
        self.dirty_profiles: dict[str, int] = {}
        self.dirty_tombs: dict[str, int] = {}

    def profile(self, token: str) -> Profile | None:
        if token not in self.profiles:
            raw = self._profiles_store.get(token)
            self.profiles[token] = Profile.from_dict(raw) if raw else None
        return self.profiles[token]

    def tomb(self, token: str) -> dict[str, Any]:
        if token not in self.tombs:
            raw = self._tombs_store.get(token) or {}
            self.tombs[token] = {"moved_to": raw.get("moved_to"), "erased": set(raw.get("erased", ()))}
        return self.tombs[token]

    def erased(self, token: str) -> set[str]:
        erased: set[str] = self.tomb(token)["erased"]
        return erased

    def set_profile(self, token: str, profile: Profile | None, partition: int) -> None:
        self.profiles[token] = profile
        self.dirty_profiles[token] = partition

    def touch_tomb(self, token: str, partition: int) -> dict[str, Any]:
        self.dirty_tombs[token] = partition
        return self.tomb(token)


class ProfileStage:
    """Person profiles from `link.person` facts, merges and erasures, plus moves between partitions."""

    def __init__(
        self,
        profiles: Store,
        tombs: Store,
        weights: Mapping[str, float],
        topics: ViewsTopics,
        half_life_days: float = HALF_LIFE_DAYS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_contributions: int = MAX_CONTRIBUTIONS,
    ) -> None:
        self.profiles, self.tombs = profiles, tombs
        self.weights = dict(weights)
        self.topics = topics
        self.half_life_days = half_life_days
        self.clock = clock
        self.cap = max_contributions  # per profile: the newest are kept (streams.views.profiles)

    def process(self, records: Sequence[RawRecord]) -> ProfileResult:
        """Work out a batch without changing the tables; bad records become dead letters in `outputs`.

        The caller sends `outputs` and only then calls `commit`: a merge's move must be delivered
        before the old profile's deletion can reach the changelog, or a crash between the two would
        lose the profile (the replayed merge would find nothing left to move). Until `commit`,
        running `process` again on the same records gives the same result.
        """
        result = ProfileResult()
        batch = _Batch(self.profiles, self.tombs)
        for record in records:
            started = time.perf_counter()
            try:
                doc = parse_record(record.value)
                kind = doc.get("kind")
                from_moves = record.topic == self.topics.moves
                if kind == "fact" and not from_moves:
                    self._fact(record, doc, batch, result)
                elif kind == "merge" and not from_moves:
                    self._merge(record, doc, batch, result)
                elif kind == "move" and from_moves:
                    self._move(record, doc, batch, result)
                elif kind == "retract":
                    self._retract(record, doc, batch, result, forward_area=not from_moves)
                else:
                    raise BadRecord(
                        dl.VALIDATION, f"unknown record kind {str(kind)[:40]!r} on {record.topic}"
                    )
            except BadRecord as exc:
                self._dead(record, exc.reason, str(exc), result)
            except Exception as exc:  # a bug: dead-letter and go on (Faust would skip it silently)
                log.exception("views failed on %s/%d/%d", record.topic, record.partition, record.offset)
                self._dead(record, dl.INTERNAL, type(exc).__name__, result)
            metrics.PROCESSING_TIME.labels(stage="view").observe(time.perf_counter() - started)
        self._plan_writes(batch, result)
        return result

    def commit(self, result: ProfileResult) -> None:
        """Apply the batch's table writes (after its outputs were delivered)."""
        for store, partition, key, value in result.writes:
            store.put(partition, key, value)

    def _dead(self, record: RawRecord, reason: str, detail: str, result: ProfileResult) -> None:
        out = dl.dead_letter(record, STAGE, reason, detail)
        out.topic = self.topics.dlq
        result.outputs.append(out)
        result.dead += 1
        metrics.count_dead_letter(STAGE, reason)

    def _fact(self, record: RawRecord, doc: dict[str, Any], batch: _Batch, result: ProfileResult) -> None:
        check_fact(doc)
        token = doc.get("person_token")
        if token is not None:
            require_key(record, token)
            if event_hex(doc["event_id"]) in batch.erased(token):
                return  # erased: neither the profile nor the area counts may see it again
        result.applied += 1
        result.last_fact_at = str(doc.get("occurred_at"))
        if doc.get("factors") and not doc.get("recipient"):
            # A recipient's person-view fact carries that view's coarse time and granted factors
            # only; the area counts take the linker's own area fact of the same event instead.
            area_fact = {k: doc.get(k) for k in _AREA_FIELDS}
            area_fact["kind"] = "fact"
            key = doc["event_id"].encode()
            result.outputs.append(Output(self.topics.area_facts, key, dumps(area_fact), None, AREA_PARTITION))
        if token is None:
            return
        onward = batch.tomb(token)["moved_to"]
        if onward:  # a late or replayed fact of a merged token follows the merge
            single = Profile(token)
            if apply_fact(single, doc, self.cap):
                move = {
                    "kind": "move",
                    "from": token,
                    "into": onward,
                    "profile": single.to_dict(),
                    "erased": [],
                }
                result.outputs.append(Output(self.topics.moves, onward.encode(), dumps(move)))
            return
        profile = batch.profile(token) or Profile(token)
        recipient = doc.get("recipient")
        if profile.recipient is not None and recipient != profile.recipient:
            # A token is in one recipient's domain: another view's fact must never join its profile,
            # nor a fact of no view (counted in the areas above, granted to no recipient).
            if recipient:
                raise BadRecord(dl.VALIDATION, "fact for another recipient's person token")
            return
        if apply_fact(profile, doc, self.cap):
            batch.set_profile(token, profile, record.partition)

    def _merge(self, record: RawRecord, doc: dict[str, Any], batch: _Batch, result: ProfileResult) -> None:
        source, target = text_field(doc, "from"), text_field(doc, "into")
        assert source is not None and target is not None
        if source == target:
            raise BadRecord(dl.VALIDATION, "merge from and into are the same token")
        require_key(record, source)
        self._send_on(source, target, record.partition, batch, result)

    def _send_on(
        self, source: str, target: str, partition: int, batch: _Batch, result: ProfileResult
    ) -> None:
        """Pop `source`'s profile and send it to the partition owning `target`; remember the move."""
        profile = batch.profile(source)
        tomb = batch.touch_tomb(source, partition)
        tomb["moved_to"] = target
        if profile is not None:
            batch.set_profile(source, None, partition)
        if profile is not None or tomb["erased"]:
            move = {
                "kind": "move",
                "from": source,
                "into": target,
                "profile": profile.to_dict() if profile is not None else None,
                "erased": sorted(tomb["erased"]),
            }
            result.outputs.append(Output(self.topics.moves, target.encode(), dumps(move)))

    def _move(self, record: RawRecord, doc: dict[str, Any], batch: _Batch, result: ProfileResult) -> None:
        target = text_field(doc, "into")
        assert target is not None
        require_key(record, target)
        moved_raw = doc.get("profile")
        erased = doc.get("erased") or []
        if not isinstance(erased, list) or (moved_raw is not None and not isinstance(moved_raw, dict)):
            raise BadRecord(dl.VALIDATION, "move needs a profile object and an erased list")
        onward = batch.tomb(target)["moved_to"]
        path = [str(t) for t in doc.get("path") or []]
        if erased:
            batch.touch_tomb(target, record.partition)["erased"].update(str(e) for e in erased)
        if onward and (onward in path or len(path) >= MAX_HOPS):
            batch.touch_tomb(target, record.partition)["moved_to"] = None  # merged back: alive again
        elif onward:  # `target` itself was merged on while this move was in flight: follow it
            forwarded = dict(doc, into=onward, erased=sorted(batch.erased(target)), path=[*path, target])
            result.outputs.append(Output(self.topics.moves, onward.encode(), dumps(forwarded)))
            return
        if moved_raw is None:
            return
        moved = Profile.from_dict(moved_raw)
        gone = batch.erased(target)
        moved.contributions = {k: c for k, c in moved.contributions.items() if f"{k[0]:016x}" not in gone}
        profile = batch.profile(target) or Profile(target)
        if merge(profile, moved, self.cap):
            batch.set_profile(target, profile, record.partition)

    def _retract(
        self, record: RawRecord, doc: dict[str, Any], batch: _Batch, result: ProfileResult, forward_area: bool
    ) -> None:
        event_ids = parse_event_ids(doc)
        token = text_field(doc, "person_token", optional=True)
        if token is not None:
            require_key(record, token)
        if forward_area:  # erasure of an event reaches the area counts once, from its first hop
            area = {"kind": "retract", "event_ids": event_ids}
            result.outputs.append(
                Output(self.topics.area_facts, event_ids[0].encode(), dumps(area), None, AREA_PARTITION)
            )
        if token is None:
            return
        tomb = batch.touch_tomb(token, record.partition)
        if doc.get("cause") != "rectify":
            # Erasure and retention are final; a rectification is followed by the corrected fact.
            tomb["erased"].update(event_hex(e) for e in event_ids)
        profile = batch.profile(token)
        if profile is not None:
            changed = False
            for event_id in event_ids:
                changed = retract_event(profile, event_id) or changed
            if changed:
                batch.set_profile(token, profile if profile.contributions else None, record.partition)
        if tomb["moved_to"]:
            onward = {"kind": "retract", "event_ids": event_ids, "person_token": tomb["moved_to"]}
            if doc.get("cause"):
                onward["cause"] = doc["cause"]
            result.outputs.append(Output(self.topics.moves, tomb["moved_to"].encode(), dumps(onward)))

    def _plan_writes(self, batch: _Batch, result: ProfileResult) -> None:
        now = self.clock()
        for token, partition in batch.dirty_profiles.items():
            profile = batch.profiles[token]
            if profile is not None and profile.contributions:
                rescore(profile, now, self.weights, self.half_life_days)
                result.writes.append((self.profiles, partition, token, profile.to_dict()))
            elif self.profiles.get(token) is not None:
                result.writes.append((self.profiles, partition, token, None))
            result.changed[token] = partition
        for token, partition in batch.dirty_tombs.items():
            tomb = {
                "moved_to": batch.tombs[token]["moved_to"],
                "erased": sorted(batch.tombs[token]["erased"]),
            }
            result.writes.append((self.tombs, partition, token, tomb))
