"""`Simulation`: a seeded population and an endless, reproducible stream of partner events."""

from __future__ import annotations

import itertools
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from streams.avro.catalogue import Catalogue, load_catalogue
from streams.publish.record_ids import RecordIds
from streams.publish.simulate.events import SPECS, Spec
from streams.publish.simulate.geography import Geography
from streams.publish.simulate.people import PartnerRecord, Person, make_population, partner_record

YEAR = timedelta(days=365)


@dataclass(frozen=True)
class Generated:
    """One simulated event with the people it is about (for the truth file and extracts)."""

    partner: str
    event_type: str
    event: dict[str, Any]
    people: list[tuple[Person, str]]


class Simulation:
    """Deterministic for (seed, people, now): same people, same events, same event ids.

    `now` (default: today at midnight UTC) anchors ages and event times; events happened within
    the year before it. Call `events(n)` repeatedly to continue one stream. Event ids are derived
    from each event's record key exactly as the Publisher derives them (`record_ids`, default: the
    settings' key), so the truth file's ids are what gets published; an event whose record key
    repeats an earlier one (the same pupil excluded twice on one day) is not generated, since a
    partner system would hold it as one record.
    """

    def __init__(
        self,
        seed: int = 1,
        people: int = 3000,
        *,
        now: datetime | None = None,
        invalid_rate: float = 0.02,
        catalogue: Catalogue | None = None,
        record_ids: RecordIds | None = None,
    ) -> None:
        self.seed = seed
        self.now = now or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        self.invalid_rate = invalid_rate
        self.rng = random.Random(seed)
        self.geo = Geography()
        self.people: list[Person] = make_population(self.rng, people, self.now.date(), self.geo)
        self.state: dict[tuple[str, str], Any] = {}
        self._catalogue = catalogue or load_catalogue()
        if record_ids is None:
            from streams.settings import get_settings

            record_ids = RecordIds.load_or_create(get_settings().record_id_key_path)
        self._ids = record_ids
        self._seen_ids: set[str] = set()
        self._records: dict[tuple[str, str], PartnerRecord] = {}
        self._pools = {s.event_type: self._pool(s) for s in SPECS}
        self._specs = [s for s in SPECS if s.weight > 0 and self._pools[s.event_type] is not None]
        self._spec_weights = list(itertools.accumulate(s.weight for s in self._specs))

    def _pool(self, spec: Spec) -> tuple[list[Person], list[float]] | None:
        lo, hi = spec.ages
        today = self.now.date()
        chosen = [
            (p, spec.propensity(p)) for p in self.people if lo <= p.age(today) <= hi and spec.covered(p)
        ]
        chosen = [(p, w) for p, w in chosen if w > 0]
        if not chosen:
            return None
        return [p for p, _ in chosen], list(itertools.accumulate(w for _, w in chosen))

    # --- the World the builders see ---

    def pick(self, event_type: str, exclude: Person | None = None) -> Person:
        """A person for `event_type`, weighted by its propensity (never `exclude`)."""
        pool = self._pools[event_type]
        assert pool is not None
        for _ in range(10):
            person = self.rng.choices(pool[0], cum_weights=pool[1])[0]
            if person is not exclude:
                return person
        return next(p for p in self.people if p is not exclude)

    def subject(self, person: Person, partner: str) -> dict[str, Any]:
        """The partner's record of `person` as an event subject (a fresh copy)."""
        return dict(self.record(person, partner).subject)

    def record(self, person: Person, partner: str) -> PartnerRecord:
        key = (person.person_id, partner)
        rec = self._records.get(key)
        if rec is None:
            sector = self._catalogue.partner(partner).sector
            rec = partner_record(self.seed, person, partner, sector, self.invalid_rate)
            self._records[key] = rec
        rec.used = True
        return rec

    # --- streams ---

    def generate(self, n: int | None = None) -> Iterator[Generated]:
        """Events with the people they are about; `n=None` never ends."""
        count = 0
        while n is None or count < n:
            spec = self.rng.choices(self._specs, cum_weights=self._spec_weights)[0]
            person = self.pick(spec.event_type)
            occurred = self.now - YEAR * self.rng.random()
            occurred = occurred.replace(second=0, microsecond=0)
            built = spec.build(self, person, occurred)
            if built is None:
                continue
            partner, body, people = built[0], _to_minutes(built[1]), built[2]
            # Drawn even when the id is derived, so a seed keeps giving the same events.
            random_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            recorded = min(self.now, occurred + timedelta(minutes=self.rng.randint(10, 4320)))
            envelope = {
                "event_type": spec.event_type,
                "source_partner": partner,
                "occurred_at": occurred,
                "recorded_at": recorded,
            }
            et = self._catalogue.event_type(spec.event_type)
            event_id = self._ids.event_id(partner, et, {"envelope": envelope, **body}) or random_id
            if event_id in self._seen_ids:
                continue
            self._seen_ids.add(event_id)
            envelope = {"event_id": event_id, **envelope}
            for p, role in people:
                (p.anonymous_event_ids if role == "ANONYMOUS" else p.event_ids).append(event_id)
            count += 1
            yield Generated(partner, spec.event_type, {"envelope": envelope, **body}, people)

    def events(self, n: int | None = None) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(partner, event_type, event) for the Publisher; `n=None` never ends."""
        for g in self.generate(n):
            yield g.partner, g.event_type, g.event

    def truth(self) -> list[dict[str, Any]]:
        """One dict per person: canonical identity, every variant published, event ids so far."""
        variants: dict[str, list[dict[str, str]]] = {}
        local_ids: dict[str, dict[str, str]] = {}
        for (pid, partner), rec in self._records.items():
            variants.setdefault(pid, []).extend(rec.variants)
            if "local_id" in rec.subject:
                local_ids.setdefault(pid, {})[partner] = rec.subject["local_id"]
        return [
            {
                "person_id": p.person_id,
                "nhs_number": p.nhs_number,
                "upn": p.upn,
                "pnc_id": p.pnc_id,
                "given_name": p.given_name,
                "family_name": p.family_name,
                "date_of_birth": p.date_of_birth.isoformat(),
                "gender": p.gender,
                "postcode": p.home.postcode,
                "lsoa_code": p.home.lsoa_code,
                "local_ids": local_ids.get(p.person_id, {}),
                "risk_tier": p.tier,
                "factors": list(p.factors),
                "looked_after": p.looked_after,
                "variants": variants.get(p.person_id, []),
                "event_ids": list(p.event_ids),
                "anonymous_event_ids": list(p.anonymous_event_ids),
            }
            for p in self.people
        ]

    def write_truth(self, path: Path) -> None:
        """The truth as JSON Lines (everything in it must never leave the bus)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as fh:
            for row in self.truth():
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _to_minutes(value: Any) -> Any:
    """Times to whole minutes: what partner systems record, and exact under timestamp-millis."""
    if isinstance(value, dict):
        return {k: _to_minutes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_minutes(v) for v in value]
    if isinstance(value, datetime):
        return value.replace(second=0, microsecond=0)
    return value
