"""Reading and type inference of customer-table exports (no pipeline run: fast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnctl.domain.table_infer import OTHER, ROW_NUMBER, TablePlan, apply_plan, infer_plan
from churnctl.domain.table_read import read_table
from churnctl.domain.table_target import resolve_target
from churnctl.errors import DataError
from tests.fixtures_tables import bank_like, messy_table, telecom_like


def _columns(plan: TablePlan) -> dict[str, tuple[str, str]]:
    return {c.name: (c.kind, c.role) for c in plan.columns}


def test_messy_export_types_and_roles(tmp_path: Path) -> None:
    path = tmp_path / "messy.csv"
    messy_table(300).to_csv(path, index=False)
    raw = read_table(path)
    plan = infer_plan(raw.frame, path, "churned?")  # case-insensitive column match
    columns = _columns(plan)
    assert columns["Annual Spend"] == ("numeric", "feature")  # "1,234.50" and "   "
    assert columns["Usage"] == ("numeric", "feature")  # "37%"
    assert columns["Auto Renew"] == ("boolean", "feature")  # YES / no / Yes / No
    assert columns["Signed Up"] == ("date", "feature")  # 31/01/2020, day first
    assert columns["Region"] == ("categorical", "feature")
    assert columns["Row"][1] == "dropped"  # row numbers
    assert columns["Customer Name"][1] == "dropped"  # unique per row
    assert columns["Country Code"][1] == "dropped"  # constant
    assert columns["Notes"] == ("empty", "dropped")  # blank in every row
    assert plan.id == ROW_NUMBER and plan.positive == "churned"
    table, _ = apply_plan(plan, raw.frame, path, with_target=True)
    assert table["Annual Spend"].isna().sum() == len(range(0, 300, 17))
    assert abs(table["Usage"].max() - 1.0) < 0.02 and table["Usage"].min() >= 0
    assert set(table["Auto Renew"].dropna()) == {0.0, 1.0}
    assert table["Region"].nunique() == 3  # "south" and "SOUTH" are one category
    spend = float(raw.frame.loc[1, "Annual Spend"].replace(",", ""))
    assert table.loc[1, "Annual Spend"] == pytest.approx(spend)
    assert table[ROW_NUMBER].tolist()[:3] == [1, 2, 3]


def test_public_style_tables_drop_identifiers_and_keep_features(tmp_path: Path) -> None:
    telecom = tmp_path / "telecom.csv"
    telecom_like(400).to_csv(telecom, index=False)
    plan = infer_plan(read_table(telecom).frame, telecom, "Churn")
    assert plan.id == "customerID" and plan.positive == "yes"
    assert _columns(plan)["TotalCharges"] == ("numeric", "feature")  # text with " " blanks
    bank = tmp_path / "bank.csv"
    bank_like(600).to_csv(bank, index=False)
    plan = infer_plan(read_table(bank).frame, bank, "Exited")
    columns = _columns(plan)
    assert plan.id == "CustomerId" and plan.positive == "1"
    assert columns["RowNumber"][1] == columns["Surname"][1] == "dropped"
    assert columns["EstimatedSalary"] == ("numeric", "feature")  # unique floats are no id


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_delimiter_and_decimal_comma_are_sniffed(tmp_path: Path, delimiter: str) -> None:
    frame = telecom_like(120)
    path = tmp_path / "export.csv"
    if delimiter == ";":  # European exports: ; between fields, decimal commas
        frame["MonthlyCharges"] = [f"{v:.2f}".replace(".", ",") for v in frame["MonthlyCharges"]]
    frame.to_csv(path, index=False, sep=delimiter)
    raw = read_table(path)
    assert raw.delimiter == delimiter and "MonthlyCharges" in raw.frame.columns
    plan = infer_plan(raw.frame, path, "Churn", decimal_hint=delimiter == ";")
    table, _ = apply_plan(plan, raw.frame, path, with_target=True)
    assert np.allclose(table["MonthlyCharges"], telecom_like(120)["MonthlyCharges"])


@pytest.mark.parametrize("encoding", ["cp1252", "utf-8-sig", "utf-16"])
def test_encodings_are_sniffed(tmp_path: Path, encoding: str) -> None:
    frame = telecom_like(60).assign(City="Malmö")
    frame.loc[::2, "City"] = "Zürich"
    path = tmp_path / "export.csv"
    frame.to_csv(path, index=False, encoding=encoding)
    raw = read_table(path)
    assert set(raw.frame["City"]) == {"Malmö", "Zürich"}


def test_header_is_sniffed(tmp_path: Path) -> None:
    path = tmp_path / "noheader.csv"
    frame = bank_like(80).drop(columns=["Surname", "Geography", "Gender"])
    frame.to_csv(path, index=False, header=False)
    raw = read_table(path)
    assert not raw.header and raw.frame.columns[0] == "column_1" and len(raw.frame) == 80
    assert read_table(tmp_path / "noheader.csv").frame.shape == (80, frame.shape[1])


def test_parquet_and_excel_exports(tmp_path: Path) -> None:
    frame = telecom_like(80)
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    frame.to_excel(tmp_path / "t.xlsx", index=False)
    for name in ("t.parquet", "t.xlsx"):
        raw = read_table(tmp_path / name)
        plan = infer_plan(raw.frame, tmp_path / name, "Churn")
        table, _ = apply_plan(plan, raw.frame, tmp_path / name, with_target=True)
        assert len(table) == 80 and table["tenure"].tolist() == frame["tenure"].tolist()
        assert _columns(plan)["Partner"] == ("boolean", "feature")


def test_high_cardinality_categoricals_are_pooled(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = telecom_like(2000)
    cities = np.array([f"City {i}" for i in range(400)], dtype=object)
    frame["City"] = rng.choice(cities, 2000, p=np.r_[np.full(20, 0.04), np.full(380, 0.2 / 380)])
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    raw = read_table(path)
    plan = infer_plan(raw.frame, path, "Churn")
    city = next(c for c in plan.columns if c.name == "City")
    assert city.role == "feature" and city.keep is not None and len(city.keep) <= 50
    table, _ = apply_plan(plan, raw.frame, path, with_target=True)
    assert table["City"].nunique() <= 51 and OTHER in set(table["City"])


@pytest.mark.parametrize(("values", "positive"), [
    (["Yes", "No"], "yes"), (["no", "YES"], "yes"), (["TRUE", "false"], "true"),
    (["1", "0"], "1"), (["1.0", "0.0"], "1"), (["Churned", "Stayed"], "churned"),
    (["stayed", "CHURNED"], "churned"), (["Attrited Customer", "Existing Customer"],
                                          "attrited customer"),
    (["Not churned", "Churned"], "churned"), (["retained", "lost"], "lost"),
])
def test_positive_class_from_common_spellings(values: list[str], positive: str) -> None:
    series = pd.Series(values * 5 + [" "], dtype=object)
    assert resolve_target(series, Path("t.csv"), "Churn", None)[0] == positive


def test_positive_class_given_or_ambiguous() -> None:
    series = pd.Series(["gold", "silver"] * 5, dtype=object)
    with pytest.raises(DataError, match="pass --positive 'gold'"):
        resolve_target(series, Path("t.csv"), "Tier", None)
    assert resolve_target(series, Path("t.csv"), "Tier", "Silver") == ("silver", "gold")
    with pytest.raises(DataError, match="not a value of column Tier"):
        resolve_target(series, Path("t.csv"), "Tier", "bronze")
    # `--set ingest.positive=yes` reaches the options as YAML true: still means the yes side
    assert resolve_target(pd.Series(["Yes", "No"] * 3), Path("t.csv"), "C", "true")[0] == "yes"


def test_plan_round_trips_through_json(tmp_path: Path) -> None:
    path = tmp_path / "messy.csv"
    messy_table(120).to_csv(path, index=False)
    raw = read_table(path)
    plan = infer_plan(raw.frame, path, "Churned?")
    again = TablePlan.from_dict(plan.to_dict())
    first, _ = apply_plan(plan, raw.frame, path, with_target=True)
    second, _ = apply_plan(again, raw.frame, path, with_target=True)
    pd.testing.assert_frame_equal(first, second)
