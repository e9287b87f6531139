"""The Fellegi-Sunter model: m and u per comparison level, the prior, and the two thresholds.

For each comparison (`streams.linkage.compare.COMPARISONS`) and level, `m` is the probability of
that level among pairs of records about one person and `u` among pairs about two different
people. A pair's match weight is log2(prior odds) + the sum over comparisons of log2(m / u) at
the level observed (a comparison with a missing value adds nothing): each bit of weight doubles
the odds that the two records are one person. At or above `link_threshold` the linker links; from
`review_threshold` up to it the pair goes to the clerical review queue and is not linked; below
it nothing happens. The file format is validated (`load`), so a bad model fails at start with the
file and key named. `streams.linkage.em` estimates a model from tokens alone.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from streams.errors import ConfigurationError
from streams.linkage.compare import COMPARISONS, LEVELS

__all__ = ["DEFAULT_LINK", "DEFAULT_MODEL", "DEFAULT_REVIEW", "Model", "load", "probability"]

DEFAULT_MODEL = Path(__file__).with_name("model.json")
DEFAULT_LINK = round(math.log2(0.9 / 0.1), 2)  # match probability 0.9 (Splink's usual threshold)
DEFAULT_REVIEW = 0.0  # probability 0.5: more likely one person than two, but not sure enough
_FLOOR = 1e-6  # no probability is 0: one impossible level would give an infinite weight


class Model(BaseModel):
    """m and u per comparison level (index = level, as in `compare.LEVELS`), prior and thresholds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    m: dict[str, list[float]]
    u: dict[str, list[float]]
    prior: float = Field(gt=0, lt=1, description="share of compared candidate pairs that are matches")
    link_threshold: float = Field(description="match weight at or above which records are linked")
    review_threshold: float = Field(description="match weight from which a pair is queued for review")
    trained_on: str = ""

    @model_validator(mode="after")
    def _shape(self) -> Model:
        for name, table in (("m", self.m), ("u", self.u)):
            if sorted(table) != sorted(COMPARISONS):
                raise ValueError(f"{name} must have exactly the comparisons {list(COMPARISONS)}")
            for comparison, probabilities in table.items():
                if len(probabilities) != len(LEVELS[comparison]):
                    raise ValueError(f"{name}.{comparison} must have {len(LEVELS[comparison])} levels")
                if not all(0 < p <= 1 for p in probabilities):
                    raise ValueError(f"{name}.{comparison}: probabilities must be in (0, 1]")
        if self.review_threshold > self.link_threshold:
            raise ValueError("review_threshold must not exceed link_threshold")
        return self

    def weights(self) -> tuple[tuple[float, ...], ...]:
        """log2(m/u) per comparison (in `COMPARISONS` order) per level."""
        return tuple(
            tuple(
                math.log2(max(m, _FLOOR) / max(u, _FLOOR)) for m, u in zip(self.m[c], self.u[c], strict=True)
            )
            for c in COMPARISONS
        )

    def prior_weight(self) -> float:
        return math.log2(self.prior / (1 - self.prior))

    def save(self, path: Path | str) -> None:
        Path(path).write_text(json.dumps(self.model_dump(), indent=2) + "\n", encoding="utf-8")


def probability(weight: float) -> float:
    """Match probability of a match weight (log2 odds)."""
    return 1 / (1 + 2 ** (-weight))


def load(path: Path | str = DEFAULT_MODEL) -> Model:
    """Read and validate a model file; ConfigurationError names the file and the offending key."""
    path = Path(path)
    try:
        doc: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"{path}: linkage model file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"{path}: cannot read linkage model ({type(exc).__name__})") from None
    try:
        return Model.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigurationError(f"{path}: {where}: {first['msg']}") from None
