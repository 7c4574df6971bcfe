"""Bad customer tables: one line naming the file / column and the fix, exit 2, no half-writes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from tests.fixtures_tables import telecom_like

GATE = ("--only", "ingest", "--only", "validate")  # the bad inputs all stop before features


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    return telecom_like(160, seed=5)


def _assert_clean_failure(result, root: Path, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in result.output
    state = root / ".churnctl"
    assert not list(state.rglob("*.tmp")) if state.exists() else True
    ingest = state / "artifacts" / "ingest"
    committed = [p for p in ingest.iterdir() if p.is_dir()] if ingest.exists() else []
    assert not committed or "validation failed" in lines[0]  # a gate keeps only what passed
    assert not (root / "reports" / "latest.html").exists()


def _write(root: Path, frame: pd.DataFrame, name: str = "customers.csv") -> Path:
    frame.to_csv(root / name, index=False)
    return root / name


def _many_classes(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(Churn=["Yes", "No", "Maybe"] * (len(f) // 3) + ["No"] * (len(f) % 3))


def _no_features(f: pd.DataFrame) -> pd.DataFrame:
    return f[["customerID", "Churn"]].assign(Source="web", Comment="")


CASES: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], tuple[str, ...]]] = {
    "no_target_column": (lambda f: f.drop(columns=["Churn"]),
                         ("customers.csv", "no column 'Churn'", "--target")),
    "three_classes": (_many_classes, ("customers.csv", "Churn", "3 values", "Maybe")),
    "one_class": (lambda f: f.assign(Churn="No"), ("customers.csv", "Churn", "one value only")),
    "all_blank_target": (lambda f: f.assign(Churn="  "), ("Churn", "blank in every row")),
    "all_features_dropped": (_no_features, ("customers.csv", "no usable feature columns",
                                            "Source", "Comment")),
    "ambiguous_target": (lambda f: f.assign(Churn=f["Churn"].map({"Yes": "A", "No": "B"})),
                         ("Churn", "--positive")),
    "too_few_churners": (lambda f: pd.concat([f[f.Churn == "No"], f[f.Churn == "Yes"].head(3)]),
                         ("validation failed", "Churn", "class_rows", "only 3 row(s)", "'Yes'")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_tables(cli, tmp_path: Path, base: pd.DataFrame, case: str) -> None:
    mutate, needles = CASES[case]
    _write(tmp_path, mutate(base.copy()))
    result = cli("run", "--data", "customers.csv", "--target", "Churn", *GATE)
    _assert_clean_failure(result, tmp_path, *needles)


def test_header_only_file(cli, tmp_path: Path, base: pd.DataFrame) -> None:
    (tmp_path / "customers.csv").write_text(",".join(base.columns) + "\n")
    result = cli("run", "--data", "customers.csv", "--target", "Churn", *GATE)
    _assert_clean_failure(result, tmp_path, "customers.csv", "header but no rows")


def test_mixed_delimiters(cli, tmp_path: Path, base: pd.DataFrame) -> None:
    lines = base.to_csv(index=False, sep=";").splitlines()
    lines[40] = base.iloc[[39]].to_csv(index=False, header=False).strip()  # one line with commas
    (tmp_path / "customers.csv").write_text("\n".join(lines) + "\n")
    result = cli("run", "--data", "customers.csv", "--target", "Churn", *GATE)
    _assert_clean_failure(result, tmp_path, "customers.csv", "mixed delimiters", "semicolon",
                          "line 41", "comma")


def test_duplicate_ids(cli, tmp_path: Path, base: pd.DataFrame) -> None:
    frame = pd.concat([base, base.head(2)], ignore_index=True)
    _write(tmp_path, frame)
    result = cli("run", "--data", "customers.csv", "--target", "Churn", "--id", "customerID",
                 *GATE)
    _assert_clean_failure(result, tmp_path, "validation failed", "customerID", "unique",
                          "2 duplicate")
    report = json.loads((tmp_path / "reports" / "validation.json").read_text())
    assert report["passed"] is False


def test_blank_id_cells(cli, tmp_path: Path, base: pd.DataFrame) -> None:
    _write(tmp_path, base.assign(customerID=base["customerID"].where(base.index != 4, " ")))
    result = cli("run", "--data", "customers.csv", "--target", "Churn", "--id", "customerID",
                 *GATE)
    _assert_clean_failure(result, tmp_path, "customerID", "blank")


@pytest.mark.parametrize(("args", "needles"), [
    (("--data", "customers.csv"), ("--target",)),
    (("--target", "Churn"), ("--target needs --data",)),
    (("--data", "nope.csv", "--target", "Churn"), ("nope.csv", "not found")),
    (("--data", "customers.csv", "--target", "Churn", "--positive", "Gone"),
     ("--positive 'Gone'", "Churn")),
    (("--data", "customers.csv", "--target", "Churn", "--time", "tenure"), ()),
    (("--data", "customers.csv", "--target", "Churn", "--id", "Churn"), ("different columns",)),
])
def test_bad_flags(cli, tmp_path: Path, base: pd.DataFrame, args: tuple[str, ...],
                   needles: tuple[str, ...]) -> None:
    _write(tmp_path, base)
    result = cli("run", *args, *GATE)
    if not needles:  # a numeric --time (e.g. a month number) is a valid split column
        assert result.exit_code == 0, result.output
        return
    _assert_clean_failure(result, tmp_path, *needles)


def test_blank_and_constant_columns_are_dropped_not_fatal(cli, tmp_path: Path,
                                                          base: pd.DataFrame) -> None:
    _write(tmp_path, base.assign(Empty="", Spaces="   ", Country="SE"))
    result = cli("run", "--data", "customers.csv", "--target", "Churn", *GATE)
    assert result.exit_code == 0, result.output
    for name in ("Empty", "Spaces", "Country"):
        assert f"column {name}: left out" in result.stderr


def test_a_duplicated_target_name_is_refused(cli, tmp_path: Path, base: pd.DataFrame) -> None:
    frame = base.copy()
    frame.insert(1, "Churn_copy", frame["Churn"].map({"Yes": "No", "No": "Yes"}))
    _write(tmp_path, frame.rename(columns={"Churn_copy": "Churn"}))
    result = cli("run", "--data", "customers.csv", "--target", "Churn", *GATE)
    _assert_clean_failure(result, tmp_path, "customers.csv", "'Churn' appears 2 times")


def test_overflowing_numbers_are_unreadable_cells_not_a_crash(cli, tmp_path: Path,
                                                              base: pd.DataFrame) -> None:
    frame = base.assign(MonthlyCharges=base["MonthlyCharges"].astype(object))
    frame.loc[3, "MonthlyCharges"], frame.loc[4, "MonthlyCharges"] = "1e308", "-1e308"
    _write(tmp_path, frame)
    result = cli("run", "--data", "customers.csv", "--target", "Churn",
                 "--set", "train.cv_folds=3")
    assert result.exit_code == 0, result.output
    assert "column MonthlyCharges: 2 unreadable cell(s) treated as blank" in result.stderr
