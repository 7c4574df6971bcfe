"""The GX suite of a customer table (`--data`), from the schema ingest inferred.

The same kinds of expectation as the event-data suite, built from the table's profile and the
ingested (typed) table: every kept column exists with its type; categorical features take only
the values seen in the training data (up to MAX_VALUE_SET distinct: a value set is copied
into every GX config copy, see contract.py); numeric features stay in the range seen; the id
(with the time column, when given) is unique; the target is 0/1. The checks of
`validate.table` are here too, with the same verdicts: enough rows of each class
(`class_rows`), at least two time periods, features mostly filled and rows distinct
(warnings). Rows with a blank target never reach the batch (ingest left them out), so
`labelled` is reported from the profile by the backend, as `validate.table` does.
"""

from __future__ import annotations

from typing import Any

from churnctl.quality_gx.contract import TYPE_LISTS, ExpectationSpec, _condition

TABLE = "customers"
MAX_VALUE_SET = 50

# Kind -> default severity (the profile's `severity` overrides them).
TABLE_SEVERITY: dict[str, str] = {
    "column_exists": "critical",
    "type": "critical",
    "allowed_values": "critical",
    "range": "critical",
    "unique": "critical",
    "target_values": "critical",
    "class_rows": "critical",
    "time_periods": "critical",
    "mostly_filled": "warning",
    "distinct_rows": "warning",
}


def type_list(dtype: Any) -> list[str]:
    """The dtype names GX may see for a column ingested with `dtype`."""
    kind = getattr(dtype, "kind", "O")
    if kind in "iu":
        return [*TYPE_LISTS["int"], "int8", "int16", "uint8"]
    if kind == "f":
        return TYPE_LISTS["float"]
    if kind == "M":
        return TYPE_LISTS["date"]
    if kind == "b":
        return ["bool", "BooleanDtype"]
    return TYPE_LISTS["str"]


def _spec(gx_type: str, kind: str, about: str, **kwargs: Any) -> ExpectationSpec:
    """An expectation about column `about` ("*": the whole row) of the customer table."""
    return ExpectationSpec(gx_type, kind, TABLE, about, kwargs)


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers or text (the suite is JSON)."""
    return value.item() if hasattr(value, "item") else value


def _feature_specs(table: Any, name: str, categorical: bool) -> list[ExpectationSpec]:
    values = table[name].dropna()
    if categorical:
        seen = sorted({str(v) for v in values.unique()})
        if not seen or len(seen) > MAX_VALUE_SET:
            return []
        return [_spec("expect_column_values_to_be_in_set", "allowed_values", name,
                      column=name, value_set=seen)]
    if values.empty:
        return []
    return [_spec("expect_column_values_to_be_between", "range", name, column=name,
                  min_value=_plain(values.min()), max_value=_plain(values.max()))]


def customer_table_specs(table: Any, profile: dict[str, Any], *, min_class_rows: int,
                         max_blank_share: float) -> dict[str, list[ExpectationSpec]]:
    """{"customers": specs} for the ingested `table` and its `profile` (ingest's)."""
    target = profile["target"]["column"]
    id_column, time = profile["id"], profile.get("time")
    numeric, categorical = profile["features"]["numeric"], profile["features"]["categorical"]
    features = [*numeric, *categorical]
    kept = [c for c in dict.fromkeys([id_column, time, *features, target])
            if c is not None and c in table.columns]
    specs: list[ExpectationSpec] = []
    for name in kept:
        specs.append(_spec("expect_column_to_exist", "column_exists", name, column=name))
        specs.append(_spec("expect_column_values_to_be_in_type_list", "type", name,
                           column=name, type_list=type_list(table[name].dtype)))
    for name in features:
        specs += _feature_specs(table, name, name in categorical)
    specs.append(_spec("expect_column_values_to_be_in_set", "target_values", target,
                       column=target, value_set=[0, 1]))
    for flag in (1, 0):  # enough rows of each class to train and test a model
        specs.append(_spec("expect_table_row_count_to_be_between", "class_rows", target,
                           min_value=min_class_rows,
                           row_condition=_condition(target, "==", flag)))
    if id_column in table.columns:
        if time:
            specs.append(_spec("expect_compound_columns_to_be_unique", "unique", id_column,
                               column_list=[id_column, time]))
            specs.append(_spec("expect_column_unique_value_count_to_be_between",
                               "time_periods", time, column=time, min_value=2))
        else:
            specs.append(_spec("expect_column_values_to_be_unique", "unique", id_column,
                               column=id_column))
    for name in features:
        specs.append(_spec("expect_column_values_to_not_be_null", "mostly_filled", name,
                           column=name, mostly=round(1 - max_blank_share, 6)))
    specs.append(_spec("expect_compound_columns_to_be_unique", "distinct_rows", "*",
                       column_list=[*features, target]))
    return {TABLE: specs}
