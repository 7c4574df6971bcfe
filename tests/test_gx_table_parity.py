"""validate.gx-table, the GX suite of a customer table: same verdicts as validate.table over the
table bad-input corpus, the suite built from the inferred schema, and `--data` picking it in
profiles that validate with GX.

Each case runs `ingest` (table) + `validate` once per validator on the same file and asserts
the same exit code, the same offending columns of gate errors, the same warnings, and that a
table ingest refuses is refused identically whichever validator follows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from churnctl.cli.main import app
from tests.fixtures_tables import telecom_like
from tests.test_table_bad_input import CASES

pytestmark = pytest.mark.slow

TABLE_WARNINGS = ("labelled", "mostly_filled", "distinct_rows")  # validate.table's warnings


def _mostly_blank(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(MonthlyCharges=f.MonthlyCharges.where(f.index % 10 < 3, None))


def _blank_targets(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(Churn=f.Churn.where(f.index >= 4, ""))


def _duplicated_rows(f: pd.DataFrame) -> pd.DataFrame:
    twins = f.head(3).assign(customerID=[f"TWIN-{i}" for i in range(3)])
    return pd.concat([f, twins], ignore_index=True)


# (mutation, extra flags, needles of the GX error line)
EXTRA: dict[str, tuple[Any, tuple[str, ...], tuple[str, ...]]] = {
    "clean": (lambda f: f, (), ()),
    "blank_and_constant_columns": (lambda f: f.assign(Empty="", Country="SE"), (), ()),
    "mostly_blank_feature": (_mostly_blank, (), ()),
    "blank_targets": (_blank_targets, (), ()),
    "duplicated_rows": (_duplicated_rows, ("--id", "customerID"), ()),
    "duplicate_ids": (lambda f: pd.concat([f, f.head(2)], ignore_index=True),
                      ("--id", "customerID"), ("customerID", "unique")),
}
WARNED = {"mostly_blank_feature": {("customers", "MonthlyCharges", "mostly_filled")},
          "blank_targets": {("customers", "Churn", "labelled")},
          "duplicated_rows": {("customers", "*", "distinct_rows")},
          "duplicate_ids": {("customers", "*", "distinct_rows")}}
CORPUS = {**{name: (mutate, (), ("Churn", "class_rows") if name == "too_few_churners" else ())
             for name, (mutate, _needles) in CASES.items()}, **EXTRA}


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    return telecom_like(160, seed=5)


def _invoke(root: Path, *args: str) -> Any:
    return CliRunner().invoke(app, [*args, "--workspace", str(root)], catch_exceptions=False)


def _run(root: Path, data: Path, validator: str, flags: tuple[str, ...]) -> tuple[Any, Any]:
    result = _invoke(root, "run", "--profile", "v1", "--data", str(data), "--target", "Churn",
                     *flags, "--only", "ingest", "--only", "validate",
                     "--set", f"validate.backend={validator}")
    report = root / "reports" / "validation.json"
    if not report.exists():
        return result, None
    checks = json.loads(report.read_text())["checks"]
    errors = {(c["table"], c["column"]) for c in checks
              if not c["passed"] and c["severity"] == "error"}
    warnings = {(c["table"], c["column"], c["check"]) for c in checks
                if not c["passed"] and c["severity"] == "warning" and c["check"] in TABLE_WARNINGS}
    return result, (errors, warnings)


def _errors(result: Any) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_table_and_gx_table_agree(tmp_path: Path, base: pd.DataFrame, case: str) -> None:
    mutate, flags, needles = CORPUS[case]
    data = tmp_path / "customers.csv"
    mutate(base.copy()).to_csv(data, index=False)
    table_result, table_verdict = _run(tmp_path / "table", data, "table", flags)
    gx_result, gx_verdict = _run(tmp_path / "gx", data, "gx-table", flags)
    assert gx_result.exit_code == table_result.exit_code, (table_result.output,
                                                          gx_result.output)
    assert gx_verdict == table_verdict  # same errors and warnings (None: ingest refused)
    if table_verdict is None:
        assert _errors(gx_result) == _errors(table_result)  # stopped by ingest, not validate
        return
    assert gx_verdict[1] == WARNED.get(case, set())  # the corpus does reach the warnings
    if table_result.exit_code == 0:
        assert not needles and gx_verdict[0] == set()
        return
    [line] = _errors(gx_result)
    assert all(needle in line for needle in (*needles, "customers.csv", "Data Docs: ")), line


def test_the_suite_is_built_from_the_inferred_schema(tmp_path: Path, base: pd.DataFrame) -> None:
    data = tmp_path / "customers.csv"
    base.to_csv(data, index=False)
    result, verdict = _run(tmp_path / "ws", data, "gx-table", ())
    assert result.exit_code == 0 and verdict == (set(), set()), result.output
    suite = json.loads((tmp_path / "ws" / "gx" / "expectations" / "churnctl_customers.json")
                       .read_text())["expectations"]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for item in suite:
        by_kind.setdefault(item["meta"]["churnctl"]["kind"], []).append(item)
    [contract] = [e for e in by_kind["allowed_values"] if e["kwargs"]["column"] == "Contract"]
    assert sorted(contract["kwargs"]["value_set"]) == sorted(base.Contract.unique())
    [tenure] = [e for e in by_kind["range"] if e["kwargs"]["column"] == "tenure"]
    assert (tenure["kwargs"]["min_value"], tenure["kwargs"]["max_value"]) == \
        (base.tenure.min(), base.tenure.max())
    [target] = by_kind["target_values"]
    assert target["kwargs"] == {"column": "Churn", "value_set": [0, 1]}
    assert [e["kwargs"]["column"] for e in by_kind["unique"]] == ["customerID"]
    assert len(by_kind["class_rows"]) == 2 and by_kind["mostly_filled"][0]["severity"] == "warning"
    artifacts = tmp_path / "ws" / ".churnctl" / "artifacts" / "validate"
    assert list(artifacts.rglob("data_docs/validations/churnctl_customers/**/*.html"))


def test_data_with_a_gx_profile_validates_with_the_table_suite(tmp_path: Path) -> None:
    data = tmp_path / "customers.csv"
    telecom_like(60, seed=1).to_csv(data, index=False)
    plans = {}
    for profile in ("v1", "v3"):
        result = _invoke(tmp_path, "plan", "--profile", profile, "--data", str(data),
                         "--target", "Churn", "--json")
        assert result.exit_code == 0, result.output
        plans[profile] = {s["stage"]: s["backend"] for s in json.loads(result.stdout)["stages"]}
    assert plans["v1"]["validate"] == "table" and plans["v3"]["validate"] == "gx-table"
