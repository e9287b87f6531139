"""The rights roles file: validated like agreements (one line naming file, key and why), and the
only source of who may re-identify or answer subject access for a partner."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.avro.catalogue import load_catalogue
from streams.errors import ConfigurationError
from streams.identity import Principal
from streams.rights.roles import NotAuthorised, load_roles
from streams.settings import ROOT, Settings

PARTNERS = ("thames_valley_police", "reading_schools")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rights-roles.yaml"
    path.write_text(text)
    return path


def test_the_shipped_file_is_valid_and_is_the_default() -> None:
    assert Settings().rights_roles_path == ROOT / "rights-roles.yaml"
    roles = load_roles(ROOT / "rights-roles.yaml", load_catalogue(ROOT / "schemas").partners)
    assert set(roles.partners) == set(load_catalogue(ROOT / "schemas").partners)
    assert all(len(r.data_owners) >= 2 and r.officers for r in roles.partners.values())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "partners:\n  reading_schools:\n    data_owners: [a]\n",
            "partners.reading_schools.data_owners: dual control needs none or at least two data owners",
        ),
        (
            "partners:\n  reading_schools:\n    owners: [a, b]\n",
            "partners.reading_schools.owners: unknown key",
        ),
        ("partners:\n  reading_schools:\n    data_owners: [a, a]\n", "data_owners: an identity is listed"),
        ("partners:\n  nowhere_council:\n    officers: [a]\n", "partners.nowhere_council: unknown partner"),
        (
            "partners:\n  reading_schools:\n    officers: ['has space']\n",
            "partners.reading_schools.officers[0]",
        ),
        ("partners: {}\n", "partners:"),
        ("", "empty file"),
        ("partners:\n  reading_schools: {}\n  reading_schools: {}\n", "duplicate key"),
    ],
)
def test_a_bad_file_fails_in_one_line_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as exc:
        load_roles(_write(tmp_path, text), PARTNERS)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert str(exc.value).startswith(str(tmp_path / "rights-roles.yaml"))


def test_a_missing_file_names_its_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="SHARINGBUS_RIGHTS_ROLES_PATH"):
        load_roles(tmp_path / "absent.yaml")


def test_only_the_file_makes_an_owner_or_an_officer(tmp_path: Path) -> None:
    roles = load_roles(
        _write(
            tmp_path,
            "partners:\n"
            "  thames_valley_police:\n    data_owners: [jones, khan]\n    officers: [sar]\n"
            "  reading_schools:\n    data_owners: [smith, evans]\n    officers: [sar]\n",
        ),
        PARTNERS,
    )
    tvp = "thames_valley_police"
    roles.authorise(Principal("jones"), tvp, "data_owner")
    roles.authorise(Principal("jones", partner=tvp), tvp, "data_owner")
    with pytest.raises(NotAuthorised, match="jones is not an officer of thames_valley_police"):
        roles.authorise(Principal("jones"), tvp, "officer")
    with pytest.raises(NotAuthorised, match="smith is not a data owner of thames_valley_police"):
        roles.authorise(Principal("smith", roles=frozenset({"data_owner"})), tvp, "data_owner")
    with pytest.raises(NotAuthorised, match="acts for reading_schools"):
        roles.authorise(Principal("sar", partner="reading_schools"), tvp, "officer")
    assert roles.partner_for(Principal("jones"), None, "data_owner") == tvp
    assert (
        roles.partner_for(Principal("sar", partner="reading_schools"), None, "officer") == "reading_schools"
    )
    with pytest.raises(NotAuthorised, match="exactly one partner"):
        roles.partner_for(Principal("sar"), None, "officer")
