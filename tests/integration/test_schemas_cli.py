"""`sharebus schemas register | check` against the real registry, on a temporary copy of schemas/.

The copy's partners.yaml names one partner unique to the test, so its subjects are its own.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sharebus.main import app
from streams.settings import ROOT, Settings

Edit = Callable[[dict[str, Any]], None]


@pytest.fixture
def schemas(tmp_path: Path) -> tuple[Path, str]:
    target = tmp_path / "schemas"
    shutil.copytree(ROOT / "schemas", target)
    partner = f"t{uuid.uuid4().hex[:10]}_schools"
    (target / "partners.yaml").write_text(
        f"partners:\n  {partner}:\n    name: Test schools\n    sector: education\n"
        "    event_types: [education.exclusion, education.attendance_alert]\n"
    )
    return target, partner


def _run(settings: Settings, schemas_dir: Path, *args: str) -> Any:
    cli = ["schemas", *args, "--registry", settings.schema_registry_url, "--schemas", str(schemas_dir)]
    return CliRunner().invoke(app, cli)


def _edit(schemas_dir: Path, event_type: str, edit: Edit) -> None:
    path = schemas_dir / f"{event_type}.avsc"
    schema = json.loads(path.read_text())
    edit(schema)
    path.write_text(json.dumps(schema, indent=2))


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def test_register_then_check_reports_new_unchanged_and_compatible(
    settings: Settings, schemas: tuple[Path, str]
) -> None:
    schemas_dir, partner = schemas
    subject = f"raw.{partner}.education.exclusion-value"
    first = _run(settings, schemas_dir, "check")
    assert first.exit_code == 0, first.output
    assert f"new {subject}" in first.output and "2 new" in first.output

    registered = _run(settings, schemas_dir, "register")
    assert registered.exit_code == 0, registered.output
    assert f"registered {subject}: id" in registered.output

    same = _run(settings, schemas_dir, "check")
    assert same.exit_code == 0 and f"unchanged {subject} (version 1)" in same.output

    _edit(
        schemas_dir,
        "education.exclusion",
        lambda s: s["fields"].append(
            {
                "name": "review_panel",
                "type": ["null", "boolean"],
                "default": None,
                "doc": "Governors' panel held.",
            }
        ),
    )
    # an enum with a default can lose a symbol: old data with it reads as the default
    _edit(
        schemas_dir,
        "education.exclusion",
        lambda s: _field(s, "reason")["type"]["symbols"].remove("BULLYING"),
    )
    evolved = _run(settings, schemas_dir, "check")
    assert evolved.exit_code == 0, evolved.output
    assert (
        f"compatible {subject}" in evolved.output and "1 compatible, 0 new, 0 incompatible" in evolved.output
    )


@pytest.mark.parametrize(
    ("edit", "field", "rule"),
    [
        (
            lambda s: s["fields"].append({"name": "exclusion_days", "type": "int", "doc": "Days excluded."}),
            "exclusion_days",
            "has no default",
        ),
        (
            lambda s: _field(s, "sessions").update(type=["null", "string"]),
            "sessions",
            "no branch of the reader union",
        ),
        (
            lambda s: _field(s, "exclusion_type").update(type="string"),
            "exclusion_type",
            "cannot read writer type enum",
        ),
    ],
)
def test_incompatible_change_fails_naming_subject_field_and_rule(
    settings: Settings, schemas: tuple[Path, str], edit: Edit, field: str, rule: str
) -> None:
    schemas_dir, partner = schemas
    subject = f"raw.{partner}.education.exclusion-value"
    assert _run(settings, schemas_dir, "register").exit_code == 0
    _edit(schemas_dir, "education.exclusion", edit)

    checked = _run(settings, schemas_dir, "check")
    assert checked.exit_code == 1
    line = next(x for x in checked.output.splitlines() if x.startswith(f"incompatible {subject}"))
    assert f"'{field}'" in line and rule in line and "(BACKWARD:" in line
    assert f"unchanged raw.{partner}.education.attendance_alert-value" in checked.output
    assert "1 subject(s) would reject" in checked.output

    refused = _run(settings, schemas_dir, "register")
    assert refused.exit_code == 1 and f"error: {subject}" in refused.output
