"""area_lookup and AreaLookup: postcode district -> one of its LSOAs; coordinates -> nearest LSOA."""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.errors import ConfigurationError, ValidationError
from streams.privacy.areas import Area, AreaLookup
from streams.privacy.identifiers import InvalidIdentifier
from streams.privacy.operators import Transform, get_operator, parse_params

RG1 = ("E01016300", "E01016301", "E01016302")


def test_postcode_maps_deterministically_within_its_district(bind: Callable[..., Transform]) -> None:
    t = bind("area_lookup", {"source": "postcode"})
    assert t("rg12ab", {}) == RG1[zlib.crc32(b"RG1 2AB") % 3]
    assert t("RG1 2AB", {}) == t("rg1 2ab", {})
    assert {t(f"RG1 {n}AB", {}) for n in range(10)} <= set(RG1)
    assert t("OX4 1AA", {}) == "E01028700"
    assert t("RG1", {}) == RG1[0]  # a bare district: its first LSOA


def test_postcode_outside_lookup(bind: Callable[..., Transform]) -> None:
    t = bind("area_lookup", {"source": "postcode"})
    with pytest.raises(ValidationError, match="not covered"):
        t("M1 1AE", {})
    with pytest.raises(InvalidIdentifier):
        t("garbage", {})


def test_latlon_nearest_centroid(bind: Callable[..., Transform]) -> None:
    t = bind("area_lookup", {"source": "latlon"}, "double")
    event = {"location": {"latitude": 51.4482, "longitude": -0.9605}}
    assert t(51.4482, event) == "E01016301"
    assert t(0.0, {"location": {"latitude": 51.74, "longitude": -1.21}}) == "E01028700"


def test_latlon_custom_paths_and_failures(bind: Callable[..., Transform]) -> None:
    t = bind("area_lookup", {"source": "latlon", "latitude": "geo.lat", "longitude": "geo.lon", "max_km": 5})
    assert t("x", {"geo": {"lat": 51.4601, "lon": -0.9851}}) == "E01016302"
    with pytest.raises(ValidationError, match="within 5 km"):
        t("x", {"geo": {"lat": 0.0, "lon": 0.0}})
    with pytest.raises(ValidationError, match="missing"):
        t("x", {"geo": {"lat": 51.0}})


def test_needs_an_area_lookup(bind: Callable[..., Transform]) -> None:
    with pytest.raises(ConfigurationError, match="area lookup"):
        bind("area_lookup", {"source": "postcode"}, area_lookup=None)


def test_output_type() -> None:
    op = get_operator("area_lookup")
    assert op.output_type(parse_params("area_lookup", {"source": "postcode"}), "string") == "string"
    assert op.output_type(parse_params("area_lookup", {"source": "latlon"}), "double") == "string"
    with pytest.raises(ConfigurationError):
        op.output_type(parse_params("area_lookup", {"source": "postcode"}), "double")


def test_grid_search_agrees_with_brute_force() -> None:
    rng = random.Random(7)
    areas = [
        Area(f"D{i % 40}", f"E{i:08d}", 51.3 + rng.random() * 0.6, -1.6 + rng.random() * 1.0)
        for i in range(800)
    ]
    lookup = AreaLookup(areas)
    for _ in range(300):
        lat, lon = 51.0 + rng.random() * 1.2, -2.0 + rng.random() * 1.8
        got = lookup.nearest(lat, lon)
        xs = lookup._xscale
        want = min(areas, key=lambda a: ((a.longitude - lon) * xs) ** 2 + (a.latitude - lat) ** 2)
        assert got == want.lsoa_code
    assert lookup.nearest(0.0, 0.0) is not None  # far away: plain scan, still an answer
    assert lookup.nearest(0.0, 0.0, max_km=50) is None


def test_load_csv(tmp_path: Path) -> None:
    path = tmp_path / "areas.csv"
    path.write_text(
        "postcode_district,lsoa_code,latitude,longitude\nrg1,E01016300,51.454,-0.973\nRG1,E01016301,51.448,-0.96\n"
    )
    lookup = AreaLookup.load(path)
    assert lookup.lsoas_in("RG1") == ("E01016300", "E01016301")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("district,lsoa_code,latitude,longitude\nRG1,E1,51,-1\n", "missing columns postcode_district"),
        ("postcode_district,lsoa_code,latitude,longitude\nRG1,E1,north,-1\n", ":2: bad latitude"),
        ("postcode_district,lsoa_code,latitude,longitude\nRG1,E1,951,-1\n", ":2: bad row"),
        ("postcode_district,lsoa_code,latitude,longitude\n", "empty"),
    ],
)
def test_load_rejects_bad_csv(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "areas.csv"
    path.write_text(content)
    with pytest.raises(ConfigurationError, match=message):
        AreaLookup.load(path)
    with pytest.raises(ConfigurationError, match="cannot read"):
        AreaLookup.load(tmp_path / "absent.csv")
