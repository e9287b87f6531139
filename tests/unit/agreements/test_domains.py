"""One pseudonym domain, one recipient (issue 16): a domain two recipients' agreements share is
refused by `sharebus agreements check` unless both agreements declare the joint use."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from sharebus.agreements import register
from streams.agreements import check_agreements
from streams.agreements.model import Agreement
from streams.avro.catalogue import Catalogue

from .conftest import EXAMPLES, TODAY

VRU = "police-vru-analysts.yaml"
TVP = "probation-police.yaml"


def _check(directory: Path) -> tuple[int, list[str], str]:
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # a second command keeps `agreements` a sub-command
    result = CliRunner().invoke(app, ["agreements", "check", str(directory), "--today", TODAY.isoformat()])
    return result.exit_code, result.stdout.splitlines(), result.stdout


def _vru_pnc_in_policing(joint: list[str] | None = None) -> dict[str, object]:
    doc = yaml.safe_load((EXAMPLES / VRU).read_text())
    doc["event_types"]["police.stop_search"]["fields"]["subject.pnc_id"] = {
        "pseudonymise": {"identifier": "pnc_id", "domain": "purpose:policing"}
    }
    if joint is not None:
        doc["joint_domain_with"] = joint
    return doc


def _tvp(joint: list[str] | None = None) -> dict[str, object]:
    doc = yaml.safe_load((EXAMPLES / TVP).read_text())
    if joint is not None:
        doc["joint_domain_with"] = joint
    return doc


def test_vru_pnc_in_the_policing_domain_fails_naming_both_agreements(
    agreement_dir: Callable[..., Path],
) -> None:
    d = agreement_dir({VRU: _vru_pnc_in_policing()}, examples=True)
    code, lines, out = _check(d)
    assert code == 1
    [line] = [x for x in lines if "purpose:policing" in x]
    # Reported once, on the later file of the two, naming both agreements and both files.
    assert line.startswith(f"{d}/{TVP}: pseudonym_domain: pseudonym domain purpose:policing of ")
    assert "police-to-vru-analysts" in line and "probation-to-tvp-offender-management" in line
    assert str(d / VRU) in line
    assert [x for x in lines if not x.startswith(str(d / "recipients.yaml"))] == [line], out


@pytest.mark.parametrize(
    ("vru_joint", "tvp_joint", "ok"),
    [
        (["tvp_offender_management"], ["vru_analysts"], True),
        (["tvp_offender_management"], None, False),  # declared on one side only
        (None, ["vru_analysts"], False),
        (["reading_yjs_team"], ["vru_analysts"], False),  # declared with someone else
    ],
)
def test_a_joint_domain_needs_both_agreements_to_declare_it(
    agreement_dir: Callable[..., Path],
    vru_joint: list[str] | None,
    tvp_joint: list[str] | None,
    ok: bool,
) -> None:
    d = agreement_dir({VRU: _vru_pnc_in_policing(vru_joint), TVP: _tvp(tvp_joint)}, examples=True)
    code, lines, out = _check(d)
    assert (code == 0) is ok, out
    assert any("purpose:policing" in x for x in lines) is not ok


def test_a_whole_agreement_in_another_recipients_purpose_domain_is_refused(
    catalogue: Catalogue, agreement_dir: Callable[..., Path]
) -> None:
    doc = yaml.safe_load((EXAMPLES / VRU).read_text())
    doc["pseudonym_domain"] = "purpose:policing"
    d = agreement_dir({VRU: doc}, examples=True)
    agreements, issues = check_agreements(d, catalogue, today=TODAY)
    errors = [i for i in issues if i.severity == "error"]
    assert [(i.file.name, i.key) for i in errors] == [(TVP, "pseudonym_domain")]
    assert "probation-to-tvp-offender-management" not in {a.id for a in agreements.agreements}


def test_the_examples_keep_one_recipient_per_domain(catalogue: Catalogue) -> None:
    _, issues = check_agreements(EXAMPLES, catalogue, today=TODAY)
    assert [i for i in issues if i.severity == "error"] == []


@pytest.mark.parametrize(
    ("joint", "message"),
    [(["Not An Id"], "is not a recipient id"), (["vru_analysts", "vru_analysts"], "listed twice")],
)
def test_joint_domain_with_is_validated(joint: list[str], message: str) -> None:
    doc = yaml.safe_load((EXAMPLES / TVP).read_text())
    with pytest.raises(ValueError, match=message):
        Agreement.model_validate({**doc, "joint_domain_with": joint})


def test_joint_domain_with_names_known_recipients(
    catalogue: Catalogue, agreement_dir: Callable[..., Path]
) -> None:
    d = agreement_dir({TVP: _tvp(["nobody_known", "tvp_offender_management"])}, examples=True)
    _, issues = check_agreements(d, catalogue, today=TODAY)
    assert [(i.key, i.message) for i in issues if i.severity == "error"] == [
        ("joint_domain_with[0]", "unknown recipient 'nobody_known'"),
        ("joint_domain_with[1]", "tvp_offender_management is this agreement's own"),
    ]


def test_an_edit_sharing_a_domain_is_refused_and_never_stops_the_other_flow(
    catalogue: Catalogue, agreement_dir: Callable[..., Path]
) -> None:
    """The watcher passes the set last loaded: the edited agreement is the one refused (its last
    version stays in force), and the untouched TVP agreement goes on sharing."""
    d = agreement_dir(examples=True)
    before, _ = check_agreements(d, catalogue, today=TODAY)
    (d / VRU).write_text(yaml.safe_dump(_vru_pnc_in_policing()))
    after, issues = check_agreements(d, catalogue, today=TODAY, previous=before)
    errors = [i for i in issues if i.severity == "error"]
    assert [(i.file.name, i.key) for i in errors] == [
        (VRU, "event_types.police.stop_search.fields.subject.pnc_id")
    ]
    assert "probation-to-tvp-offender-management" in errors[0].message
    by_id = {a.id: a for a in after.agreements}
    assert by_id["probation-to-tvp-offender-management"] is after.from_file(d / TVP)
    assert by_id["police-to-vru-analysts"] is before.from_file(d / VRU)  # the last good version
    assert any(
        i.file.name == VRU and i.severity == "warning" and "stays in force" in i.message for i in issues
    )


def test_every_agreement_of_a_recipient_must_declare_the_joint_use(
    agreement_dir: Callable[..., Path],
) -> None:
    """The VRU has two agreements in purpose:policing: the one that does not declare the joint use
    with TVP offender management is refused, even though the other does (and whichever file order)."""
    declared = _vru_pnc_in_policing(["tvp_offender_management"])
    social = yaml.safe_load((EXAMPLES / "social-care-vru.yaml").read_text())
    social["pseudonym_domain"] = "purpose:policing"
    for social_file in ("police-vru-social-care.yaml", "zz-social-care-vru.yaml"):  # before/after TVP's
        d = agreement_dir({VRU: declared, TVP: _tvp(["vru_analysts"]), social_file: social}, examples=True)
        (d / "social-care-vru.yaml").unlink()
        code, lines, _ = _check(d)
        assert code == 1
        [line] = [x for x in lines if "purpose:policing" in x]
        assert "probation-to-tvp-offender-management" in line and "social-care-to-vru-analysts" in line
