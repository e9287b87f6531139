"""What an event builder is given and returns, and the helpers every builder shares.

A builder gets the chosen person and a `World` (random source, geography, partner records,
per-person state) and returns the partner, the event body and who is in it (`Built`); `Spec` says
when the simulation calls it (`streams.publish.simulate.events.SPECS`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from streams.publish.simulate.geography import Geography, Place
from streams.publish.simulate.people import Person


class World(Protocol):
    rng: random.Random
    geo: Geography
    state: dict[tuple[str, str], Any]

    def subject(self, person: Person, partner: str) -> dict[str, Any]: ...
    def pick(self, event_type: str, exclude: Person | None = None) -> Person: ...


Built = tuple[str, dict[str, Any], list[tuple[Person, str]]]  # partner, body, [(person, role)]
Builder = Callable[[World, Person, datetime], Built | None]


@dataclass(frozen=True)
class Spec:
    event_type: str
    weight: float
    ages: tuple[int, int]
    propensity: Callable[[Person], float]
    covered: Callable[[Person], bool]
    build: Builder


def has(p: Person, *factors: str) -> bool:
    return any(f in p.factors for f in factors)


def gang_linked(p: Person) -> bool:
    return has(p, "GANGS", "CHILD_CRIMINAL_EXPLOITATION")


def in_reading(p: Person) -> bool:
    return p.home.local_authority == "Reading"


def in_school_areas(p: Person) -> bool:
    return p.home.local_authority in ("Reading", "Oxfordshire")


def everyone(p: Person) -> bool:
    return True


def location(place: Place, description: str | None = None) -> dict[str, Any]:
    return {
        "postcode": place.postcode,
        "lsoa_code": place.lsoa_code,
        "latitude": place.latitude,
        "longitude": place.longitude,
        "description": description,
    }


def pick(rng: random.Random, table: Mapping[str, float]) -> str:
    return rng.choices(list(table), weights=list(table.values()))[0]


def reference(rng: random.Random, prefix: str, when: datetime) -> str:
    return f"{prefix}/{when:%y}/{rng.randrange(10**6):06d}"
