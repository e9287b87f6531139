"""Fixtures for agreement tests: the real catalogue and operators, a key ring in a temp file,
example agreements, throwaway agreement directories and valid sample events."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import fastavro.validation
import pytest
import yaml

from streams.agreements import AgreementSet, PlanSet, compile_plans, load_agreements
from streams.agreements.tree import Node, event_tree
from streams.avro.catalogue import Catalogue, load_catalogue
from streams.avro.formats import FORMATS
from streams.privacy.identifiers import nhs_check_digit, pnc_check_char, upn_check_letter
from streams.privacy.keys import KeyRing
from streams.privacy.operators.base import avro_kind

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "agreements"
TODAY = date(2026, 6, 1)  # review dates are judged against a fixed day, so tests do not expire

NHS = "943476591" + str(nhs_check_digit("943476591"))
UPN = upn_check_letter("820200101001") + "820200101001"
PNC = "09/0012345" + pnc_check_char("090012345")
IDENTIFIERS = {
    "nhs_number": NHS,
    "upn": UPN,
    "pnc_id": PNC,
    "local_id": "CH-001234",
    "name": "Jordan",
    "date_of_birth": date(2010, 5, 17),
    "postcode": "RG1 2AB",
}


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return load_catalogue(ROOT / "schemas")


@pytest.fixture(scope="session")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> KeyRing:
    return KeyRing.load_or_create(tmp_path_factory.mktemp("keys") / "keyring.json")


@pytest.fixture(scope="session")
def examples(catalogue: Catalogue) -> AgreementSet:
    return load_agreements(EXAMPLES, catalogue, today=TODAY)


@pytest.fixture(scope="session")
def planset(examples: AgreementSet, catalogue: Catalogue, keyring: KeyRing) -> PlanSet:
    return compile_plans(examples, catalogue, keyring)


@pytest.fixture
def agreement_dir(tmp_path: Path) -> Callable[..., Path]:
    """A directory with the example recipients and the given agreements (YAML text or dicts)."""

    def make(files: dict[str, str | dict[str, Any]] | None = None, *, examples: bool = False) -> Path:
        d = tmp_path / f"agreements-{uuid.uuid4().hex[:6]}"
        d.mkdir()
        if examples:
            for f in EXAMPLES.glob("*.yaml"):
                shutil.copy(f, d / f.name)
        else:
            shutil.copy(EXAMPLES / "recipients.yaml", d / "recipients.yaml")
        for name, content in (files or {}).items():
            text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
            (d / name).write_text(text, encoding="utf-8")
        return d

    return make


def base_agreement(**changes: Any) -> dict[str, Any]:
    """A small valid individual-tier agreement for police.crime_recorded; `changes` replace keys."""
    doc: dict[str, Any] = {
        "id": "test-agreement",
        "version": "1",
        "title": "Test agreement",
        "owners": ["thames_valley_police"],
        "recipient": "vru_analysts",
        "purpose": "Testing",
        "lawful_basis": ["cda_1998_s115", "uk_gdpr_6_1_e"],
        "review_date": "2099-12-31",  # far off: the watcher judges it against the real date
        "retention_days": 30,
        "event_types": {
            "police.crime_recorded": {
                "fields": {
                    "subject.nhs_number": {"pseudonymise": {"identifier": "nhs_number"}},
                    "subject.date_of_birth": {"age_band": {"bands": [10, 18, 25]}},
                    "crime_category": "keep",
                }
            }
        },
    }
    doc.update(changes)
    return doc


def fields_of(doc: dict[str, Any], event_type: str = "police.crime_recorded") -> dict[str, Any]:
    fields: dict[str, Any] = doc["event_types"][event_type]["fields"]
    return fields


# --- sample events -------------------------------------------------------------------------------


def _sample(node: Node) -> Any:
    for tag in node.tags:
        if tag.startswith("identifier:"):
            return IDENTIFIERS[tag.split(":", 1)[1]]
    if node.name == "postcode":
        return IDENTIFIERS["postcode"]
    if node.field.get("format") in FORMATS:
        return FORMATS[node.field["format"]].example
    t, kind = node.avro_type, avro_kind(node.avro_type)
    if kind == "enum":
        return t["symbols"][0]
    if kind == "uuid":
        return str(uuid.uuid4())
    if kind == "date":
        return date(2026, 2, 20)
    if kind in ("timestamp-millis", "timestamp-micros"):
        return datetime(2026, 2, 20, 23, 30, tzinfo=UTC)
    if kind == "boolean":
        return True
    if kind in ("int", "long"):
        return 3
    if kind in ("float", "double"):
        return {"latitude": 51.4543, "longitude": -0.9781}.get(node.name, 2.5)
    if kind == "array":
        items = t["items"]
        return [items["symbols"][0]] if isinstance(items, dict) and items.get("type") == "enum" else ["x"]
    return f"{node.name}-1"


def _record(nodes: tuple[Node, ...], nulls: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in nodes:
        if nulls and n.nullable:
            out[n.name] = None
        elif n.is_leaf:
            out[n.name] = _sample(n)
        elif n.is_array:
            out[n.name] = [_record(n.children, nulls)]
        else:
            out[n.name] = _record(n.children, nulls)
    return out


def set_path(event: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path; `people[]` sets the value in every element."""
    head, _, rest = path.partition(".")
    if head.endswith("[]"):
        for item in event[head[:-2]]:
            set_path(item, rest, value)
    elif rest:
        set_path(event[head], rest, value)
    else:
        event[head] = value


@pytest.fixture
def make_event(catalogue: Catalogue) -> Callable[..., dict[str, Any]]:
    """A valid decoded event of `event_type` (every field filled, or every nullable one null)."""

    def make(
        event_type: str, overrides: dict[str, Any] | None = None, *, nulls: bool = False
    ) -> dict[str, Any]:
        et = catalogue.event_type(event_type)
        event = _record(event_tree(et), nulls)
        event["envelope"].update(
            event_type=event_type,
            source_partner=catalogue.partners_for(event_type)[0],
            occurred_at=datetime(2026, 3, 1, 10, 0, tzinfo=UTC),
            schema_version=1,
        )
        for path, value in (overrides or {}).items():
            set_path(event, path, value)
        fastavro.validation.validate(event, et.parsed, raise_errors=True)
        return event

    return make
