"""Synthetic Thames Valley geography: real postcode districts, synthetic postcodes and LSOAs.

`areas.csv` (beside this file) lists, per synthetic LSOA, its postcode district, centroid, town,
local authority and a synthetic deprivation decile. It is also a valid `streams.privacy.areas.AreaLookup`
file, and every simulated location takes its LSOA from that lookup, so the area-lookup operator
and the simulator agree on where a postcode is.
"""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from streams.privacy.areas import AreaLookup

AREAS_CSV = Path(__file__).with_name("areas.csv")

# Share of the simulated population living in each town (Reading-heavy: most partners are there).
TOWN_WEIGHTS = {
    "Reading": 0.40,
    "Oxford": 0.14,
    "Banbury": 0.04,
    "Slough": 0.09,
    "Maidenhead": 0.03,
    "Bracknell": 0.02,
    "Newbury": 0.02,
    "Milton Keynes": 0.12,
    "High Wycombe": 0.07,
    "Aylesbury": 0.07,
}
# DfE local authority numbers, the 3 digits after a UPN's check letter.
LA_CODES = {
    "Reading": "870",
    "Slough": "871",
    "Windsor and Maidenhead": "868",
    "Bracknell Forest": "867",
    "West Berkshire": "869",
    "Oxfordshire": "931",
    "Milton Keynes": "826",
    "Buckinghamshire": "825",
}
BERKSHIRE = frozenset({"Reading", "Slough", "Windsor and Maidenhead", "Bracknell Forest", "West Berkshire"})
# Royal Mail inward codes never use C, I, K, M, O or V in their last two letters.
_INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"


@dataclass(frozen=True)
class Lsoa:
    code: str
    name: str
    district: str
    town: str
    local_authority: str
    latitude: float
    longitude: float
    imd_decile: int


@dataclass(frozen=True)
class Place:
    """A point: synthetic postcode, its LSOA (from the lookup) and coordinates near the centroid."""

    postcode: str
    district: str
    lsoa_code: str
    latitude: float
    longitude: float
    town: str
    local_authority: str
    imd_decile: int


class Geography:
    """Districts by town, postcodes within districts, and places within them."""

    def __init__(self, csv_path: Path = AREAS_CSV) -> None:
        with csv_path.open(newline="", encoding="utf-8") as fh:
            self.lsoas = [
                Lsoa(
                    r["lsoa_code"],
                    r["lsoa_name"],
                    r["postcode_district"],
                    r["town"],
                    r["local_authority"],
                    float(r["latitude"]),
                    float(r["longitude"]),
                    int(r["imd_decile"]),
                )
                for r in csv.DictReader(fh)
            ]
        self.lookup = AreaLookup.load(csv_path)
        self.by_code = {a.code: a for a in self.lsoas}
        by_town: dict[str, list[str]] = defaultdict(list)
        for a in self.lsoas:
            if a.district not in by_town[a.town]:
                by_town[a.town].append(a.district)
        self.districts_by_town = dict(by_town)
        self.towns = [t for t in TOWN_WEIGHTS if t in self.districts_by_town]

    def home(self, rng: random.Random) -> Place:
        """A residential place, towns weighted by TOWN_WEIGHTS."""
        town = rng.choices(self.towns, weights=[TOWN_WEIGHTS[t] for t in self.towns])[0]
        return self.place(rng, rng.choice(self.districts_by_town[town]))

    def near(self, rng: random.Random, home: Place, stay: float = 0.65) -> Place:
        """A place in the same district with probability `stay`, else elsewhere in the same town."""
        if rng.random() < stay:
            return self.place(rng, home.district)
        return self.place(rng, rng.choice(self.districts_by_town[home.town]))

    def place(self, rng: random.Random, district: str) -> Place:
        postcode = f"{district} {rng.randint(1, 9)}{rng.choice(_INWARD_LETTERS)}{rng.choice(_INWARD_LETTERS)}"
        code = self.lookup.lsoa_for_postcode(postcode)
        assert code is not None, district
        lsoa = self.by_code[code]
        return Place(
            postcode,
            district,
            code,
            round(lsoa.latitude + rng.uniform(-0.004, 0.004), 5),
            round(lsoa.longitude + rng.uniform(-0.006, 0.006), 5),
            lsoa.town,
            lsoa.local_authority,
            lsoa.imd_decile,
        )
