"""Postcode district / coordinates -> LSOA, so locations can be shared as areas instead of points.

The lookup is a small CSV (`postcode_district,lsoa_code,latitude,longitude`, one row per LSOA with
its population-weighted centroid). A full postcode maps to one LSOA of its district, chosen by a
stable hash of the postcode (the CSV has no postcode-level rows, and the choice must be the same in
every process); coordinates map to the nearest centroid through a uniform grid, so a lookup costs
a few cells, not a scan of every LSOA.
"""

from __future__ import annotations

import csv
import math
import zlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from streams.errors import ConfigurationError
from streams.privacy.identifiers import normalise_postcode

__all__ = ["Area", "AreaLookup"]

_COLUMNS = ("postcode_district", "lsoa_code", "latitude", "longitude")
_KM_PER_DEGREE = 111.2
_CELL_DEG = 0.02  # grid cell (about 2.2 km north-south)
_MAX_RINGS = 64


@dataclass(frozen=True)
class Area:
    district: str
    lsoa_code: str
    latitude: float
    longitude: float


class AreaLookup:
    """LSOAs by postcode district, and a grid of their centroids for nearest-point queries."""

    def __init__(self, areas: Iterable[Area]) -> None:
        self.areas: tuple[Area, ...] = tuple(areas)
        if not self.areas:
            raise ConfigurationError("area lookup is empty")
        by_district: dict[str, list[str]] = defaultdict(list)
        for a in self.areas:
            if a.lsoa_code not in by_district[a.district]:
                by_district[a.district].append(a.lsoa_code)
        self._by_district = {d: tuple(codes) for d, codes in by_district.items()}
        # Equirectangular projection around the data's mean latitude: fine at county scale.
        self._xscale = math.cos(math.radians(sum(a.latitude for a in self.areas) / len(self.areas)))
        self._points = [(a.longitude * self._xscale, a.latitude, a.lsoa_code) for a in self.areas]
        self._grid: dict[tuple[int, int], list[tuple[float, float, str]]] = defaultdict(list)
        for p in self._points:
            self._grid[self._cell(p[0], p[1])].append(p)
        xs, ys = [c[0] for c in self._grid], [c[1] for c in self._grid]
        self._bounds = (min(xs), min(ys), max(xs), max(ys))

    @classmethod
    def load(cls, csv_path: Path | str) -> AreaLookup:
        """Read the CSV; ConfigurationError names the file and line of any bad row."""
        path = Path(csv_path)
        try:
            with path.open(newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
                if missing:
                    raise ConfigurationError(f"{path}: missing columns {', '.join(missing)}")
                areas = []
                for row in reader:
                    try:
                        lat, lon = float(row["latitude"]), float(row["longitude"])
                    except (TypeError, ValueError):
                        where = f"{path}:{reader.line_num}"
                        raise ConfigurationError(f"{where}: bad latitude/longitude") from None
                    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or not row["lsoa_code"]:
                        raise ConfigurationError(f"{path}:{reader.line_num}: bad row")
                    district = row["postcode_district"].strip().upper()
                    areas.append(Area(district, row["lsoa_code"].strip(), lat, lon))
        except OSError as exc:
            raise ConfigurationError(f"{path}: cannot read area lookup ({exc.strerror})") from None
        return cls(areas)

    def lsoas_in(self, district: str) -> tuple[str, ...]:
        return self._by_district.get(district.strip().upper(), ())

    def lsoa_for_postcode(self, postcode: str) -> str | None:
        """One LSOA of the postcode's district, picked by CRC32 of the normalised postcode.

        A bare district ('RG1') gives the district's first LSOA. None when the district is unknown.
        Raises InvalidIdentifier when `postcode` is neither a postcode nor a known district.
        """
        codes = self.lsoas_in(postcode)
        if codes:
            return codes[0]
        pc = normalise_postcode(postcode)
        codes = self.lsoas_in(pc.split(" ")[0])
        if not codes:
            return None
        return codes[zlib.crc32(pc.encode()) % len(codes)]

    def nearest(self, latitude: float, longitude: float, max_km: float | None = None) -> str | None:
        """LSOA whose centroid is nearest (ties: lowest code); None when none lies within `max_km`."""
        x, y = longitude * self._xscale, latitude
        limit = math.inf if max_km is None else (max_km / _KM_PER_DEGREE) ** 2
        cx, cy = self._cell(x, y)
        gx0, gy0, gx1, gy1 = self._bounds
        last = max(abs(cx - gx0), abs(cx - gx1), abs(cy - gy0), abs(cy - gy1))
        if max_km is not None:
            last = min(last, int(max_km / _KM_PER_DEGREE / _CELL_DEG) + 1)
        if last > _MAX_RINGS:  # far outside the data: a plain scan is cheaper than thousands of rings
            return self._pick(self._points, x, y, limit)
        best: tuple[float, str] | None = None
        for r in range(last + 1):
            for cell in self._ring(cx, cy, r):
                for px, py, code in self._grid.get(cell, ()):
                    cand = ((px - x) ** 2 + (py - y) ** 2, code)
                    if best is None or cand < best:
                        best = cand
            # Every centroid outside rings 0..r is at least r cells away.
            if best is not None and best[0] <= (r * _CELL_DEG) ** 2:
                break
        return best[1] if best is not None and best[0] <= limit else None

    @staticmethod
    def _pick(points: Iterable[tuple[float, float, str]], x: float, y: float, limit: float) -> str | None:
        best = min((((px - x) ** 2 + (py - y) ** 2, code) for px, py, code in points), default=None)
        return best[1] if best is not None and best[0] <= limit else None

    @staticmethod
    def _cell(x: float, y: float) -> tuple[int, int]:
        return math.floor(x / _CELL_DEG), math.floor(y / _CELL_DEG)

    @staticmethod
    def _ring(cx: int, cy: int, r: int) -> Iterable[tuple[int, int]]:
        if r == 0:
            yield cx, cy
            return
        for dx in range(-r, r + 1):
            yield cx + dx, cy - r
            yield cx + dx, cy + r
        for dy in range(-r + 1, r):
            yield cx - r, cy + dy
            yield cx + r, cy + dy
