"""Linkage quality on data nobody here wrote (FEBRL4) and on the simulator, on keyed tokens only.

Runs `benchmarks.linkage` as a person would and reads its last line, `precision P recall R f1 F`.
"""

from __future__ import annotations

import contextlib
import io
import re

from benchmarks.linkage import main


def _scores(*args: str) -> tuple[float, float, float]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(list(args)) == 0
    last = out.getvalue().strip().splitlines()[-1]
    m = re.fullmatch(r"precision ([0-9.]+) recall ([0-9.]+) f1 ([0-9.]+)", last)
    assert m, last
    return float(m[1]), float(m[2]), float(m[3])


def test_febrl4_with_four_demographic_fields_reaches_splinks_quality() -> None:
    precision, recall, f1 = _scores("--febrl4")
    assert precision >= 0.999 and f1 >= 0.976, (precision, recall, f1)


def test_simulator_keeps_its_precision_and_recall() -> None:
    precision, recall, _ = _scores("--seed", "3", "--people", "1000", "--events", "10000")
    assert precision >= 0.9998 and recall >= 0.99, (precision, recall)


def test_generic_csv_mode_rejects_bad_input_in_one_line(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "people.csv"
    data.write_text("id,first,last,dob,pc\na-1,Ann,Lee,2001-02-03,RG1 2AB\n")
    assert (
        main(["--csv", str(data), "--map", "given_name=first,family_name=nope", "--truth-column", "id"]) == 2
    )
    assert capsys.readouterr().err == f"error: {data}: no column 'nope'\n"
    assert main(["--csv", str(data), "--map", "shoe_size=first", "--truth-column", "id"]) == 2
    assert (
        main(
            ["--csv", str(data), "--map", "given_name=first", "--truth-column", "id", "--truth-pattern", "("]
        )
        == 2
    )


def test_generic_csv_mode_deduplicates_one_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from benchmarks.linkage import FEBRL4

    lines = []
    for name in ("dataset4a.csv", "dataset4b.csv"):
        rows = (FEBRL4 / name).read_text().splitlines()
        lines += rows[1:] if lines else rows
    wanted = [line for line in lines[1:] if re.match(r"rec-(\d{1,3})-", line)]  # entities 0-999
    one = tmp_path / "both.csv"
    one.write_text("\n".join([lines[0], *wanted]) + "\n")
    precision, recall, f1 = _scores(
        "--csv",
        str(one),
        "--map",
        "given_name=given_name,family_name=surname,date_of_birth=date_of_birth,postcode=postcode",
        "--truth-column",
        "rec_id",
        "--truth-pattern",
        r"rec-(\d+)-",
    )
    assert precision >= 0.99 and recall >= 0.9, (precision, recall, f1)
