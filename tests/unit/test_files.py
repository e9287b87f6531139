"""read_yaml: a YAML file that cannot be read or parsed is a ConfigurationError naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.errors import ConfigurationError
from streams.files import read_yaml


def test_reads_a_document(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("partners:\n  tvp: {sector: police}\n", encoding="utf-8")
    assert read_yaml(path) == {"partners": {"tvp": {"sector": "police"}}}


def test_a_missing_file_names_the_file_and_what_it_is(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    with pytest.raises(ConfigurationError) as exc:
        read_yaml(path, "mapping")
    assert str(exc.value) == f"{path}: cannot read mapping (No such file or directory)"


@pytest.mark.parametrize("content", [b"a: [1, 2\n", b"name: \xff\xfe\n"])
def test_bad_yaml_or_encoding_names_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigurationError, match=r"bad\.yaml: invalid YAML") as exc:
        read_yaml(path)
    assert str(exc.value).startswith(str(path))
