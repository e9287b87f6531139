"""Emergency department attendances for assault (the Cardiff model's data)."""

from __future__ import annotations

from datetime import datetime, timedelta

from streams.publish.simulate.people import Person, in_berkshire
from streams.publish.simulate.police import PLACES
from streams.publish.simulate.world import Built, World, gang_linked, location, pick

AGE_BANDS = [(9, "AGE_0_9"), (14, "AGE_10_14"), (17, "AGE_15_17"), (24, "AGE_18_24"), (34, "AGE_25_34")]
AGE_BANDS += [(49, "AGE_35_49"), (64, "AGE_50_64"), (200, "AGE_65_PLUS")]
LOCATION_TYPES = {
    "STREET": 35,
    "HOME": 20,
    "PUB_OR_CLUB": 15,
    "SCHOOL_OR_COLLEGE": 5,
    "PARK_OR_OPEN_SPACE": 8,
}
LOCATION_TYPES |= {"SHOP_OR_TAKEAWAY": 7, "PUBLIC_TRANSPORT": 5, "WORKPLACE": 3, "OTHER": 2}


def ed_assault_attendance(w: World, p: Person, at: datetime) -> Built:
    rng = w.rng
    age = p.age(at.date())
    methods = {"BODY_PART": 45, "KNIFE_OR_SHARP_OBJECT": 30 if gang_linked(p) else 8, "BLUNT_OBJECT": 12}
    methods |= {"GLASS_OR_BOTTLE": 6, "OTHER_WEAPON": 4, "UNKNOWN": 10}
    partner = "royal_berkshire_ed" if in_berkshire(p) else "john_radcliffe_ed"
    body = {
        "location": location(w.geo.near(rng, p.home), rng.choice(PLACES)),
        "site_code": "RHW01" if partner == "royal_berkshire_ed" else "RTH08",
        "arrival_at": at + timedelta(minutes=rng.randint(15, 360)),
        "assault_at": at if rng.random() < 0.85 else None,
        "age_band": next(band for limit, band in AGE_BANDS if age <= limit),
        "gender": p.gender,
        "assault_method": pick(rng, methods),
        "assault_location_type": pick(rng, LOCATION_TYPES),
        "disposal": pick(
            rng, {"DISCHARGED": 75, "ADMITTED": 15, "LEFT_BEFORE_TREATMENT": 8, "TRANSFERRED": 2}
        ),
    }
    return partner, body, [(p, "ANONYMOUS")]
