"""Quality checks on an ingested customer table, in the CheckResult style of domain/quality.py.

Ingest already refuses what cannot be read (no target, three classes, one class); these checks
are the gate on what can be read but would make a poor or misleading model.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from churnctl.domain.quality import CheckResult

TABLE = "customers"


def check_customer_table(table: pd.DataFrame, profile: dict[str, Any], *,
                         min_class_rows: int = 20, max_blank_share: float = 0.5,
                         ) -> list[CheckResult]:
    target = profile["target"]["column"]
    results = [_classes(table, profile, min_class_rows)]
    blank_target = int(profile.get("rows_blank_target", 0))
    results.append(CheckResult(
        "labelled", TABLE, target, blank_target == 0, blank_target,
        f"{blank_target} row(s) with a blank target were left out" if blank_target else "",
        severity="warning"))
    results += _id_checks(table, profile)
    features = profile["features"]["numeric"] + profile["features"]["categorical"]
    for name in features:
        share = float(table[name].isna().mean())
        results.append(CheckResult(
            "mostly_filled", TABLE, name, share <= max_blank_share, int(table[name].isna().sum()),
            f"{share:.0%} of cells are blank" if share > max_blank_share else "",
            severity="warning"))
    dupes = int(table.duplicated(subset=[*features, target]).sum())
    results.append(CheckResult(
        "distinct_rows", TABLE, "*", dupes == 0, dupes,
        f"{dupes} row(s) repeat another row's features and target" if dupes else "",
        severity="warning"))
    return results


def _classes(table: pd.DataFrame, profile: dict[str, Any], minimum: int) -> CheckResult:
    target = profile["target"]
    counts = table[target["column"]].value_counts()
    names = {1: target["positive"], 0: target["negative"]}
    small = {names[k]: int(counts.get(k, 0)) for k in (1, 0) if counts.get(k, 0) < minimum}
    if not small:
        return CheckResult("class_rows", TABLE, target["column"], True)
    label, rows = min(small.items(), key=lambda kv: kv[1])
    return CheckResult("class_rows", TABLE, target["column"], False, rows,
                       f"only {rows} row(s) of class {label!r}; need at least {minimum} of each "
                       "class to train and test a model")


def _id_checks(table: pd.DataFrame, profile: dict[str, Any]) -> list[CheckResult]:
    id_column, time = profile["id"], profile.get("time")
    if id_column not in table.columns:
        return []
    key = [id_column, time] if time else [id_column]
    repeated = table.duplicated(subset=key, keep=False)
    count = int(table.duplicated(subset=key).sum())
    what = f"{id_column} and {time}" if time else id_column
    detail = (f"{count} duplicate value(s) of {what}, e.g. {table.loc[repeated, id_column].iloc[0]}"
              if count else "")
    results = [CheckResult("unique", TABLE, id_column, count == 0, count, detail)]
    if time:
        periods = int(table[time].nunique())
        results.append(CheckResult(
            "time_periods", TABLE, time, periods >= 2, 0,
            f"one distinct value ({table[time].iloc[0]}): cannot split by time; omit --time"
            if periods < 2 else ""))
    return results
