"""The Great Expectations suites churnctl generates from the data contract, as plain specs.

Pure data (no GX import), so `churnctl validate suite` and `plan` stay fast: the backend turns
each spec into a GX expectation only when the stage runs. Every spec carries its `kind` (the
knob the profile's `severity` option turns), the table and the column(s) it is about, which
is how a failed expectation is reported in the same terms as the pandas gate.

Values that depend on the data (the date window whose "today" is the data's last event day or
`as_of`) are suite parameters filled in at run time, and events of unknown users are marked
in a column the gate adds (UNKNOWN_USER_COLUMN), the user's signup day in another
(SIGNUP_COLUMN): the suite itself depends only on the
contract and the options, so regenerating it is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from churnctl.domain.schema import PRIMARY_KEYS, TABLES, Column

SUITE_PREFIX = "churnctl_"  # churnctl owns the suites, validations and checkpoints so named
MARK = "churnctl"  # meta key on every expectation churnctl generated
UNKNOWN_USER_COLUMN = "user_id_of_unknown_user"  # added to the events batch by the gate
# Also added: the first instant at which an event of the user is not "before its signup date"
# (the signup date rounded up to a whole day, as the pandas gate compares event days).
SIGNUP_COLUMN = "signup_day_of_user"

# Kinds of expectation and their default severity; the profile's `severity` overrides them.
DEFAULT_SEVERITY: dict[str, str] = {
    "column_exists": "critical",
    "type": "critical",
    "not_null": "critical",
    "null_fraction": "warning",
    "allowed_values": "critical",
    "range": "critical",
    "unique": "critical",
    "consistent": "critical",
    "known_user": "critical",
    "date_range": "critical",
    "row_count": "critical",
    "after_signup": "warning",
}

# Type names GX compares against: numpy names and pandas' nullable dtypes by class name for
# pandas batches, pyspark.sql.types class names for Spark batches (validate.gx-spark). One
# suite serves both engines: each ignores the other's names, so a user's own expectations in
# churnctl's suites apply to both. The Spark names are the pandas names' counterparts only
# (a Parquet int16 is neither int64 nor LongType), so the verdicts agree.
_TIMES = ["datetime64[ns]", "datetime64[us]", "datetime64[ms]", "datetime64[s]", "TimestampType"]
TYPE_LISTS: dict[str, list[str]] = {
    "int": ["int64", "int32", "Int64Dtype", "Int32Dtype", "LongType", "IntegerType"],
    "float": ["float64", "float32", "Float64Dtype", "int64", "Int64Dtype", "DoubleType",
              "FloatType", "LongType"],
    "str": ["str", "object", "string", "StringDtype", "category", "StringType"],
    "date": _TIMES,
    "datetime": _TIMES,
}

# Optional values that one kind of event must carry.
CONDITIONAL_FILLS: dict[str, tuple[str, ...]] = {
    "quiz_score": ("quiz_attempt",),
    "course_id": ("course_enroll", "video_watch", "quiz_attempt"),
}


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation: GX type and kwargs, and what it checks in churnctl's terms."""

    type: str
    kind: str
    table: str
    column: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def severity(self, overrides: dict[str, str]) -> str:
        return overrides[self.kind] if self.kind in overrides else DEFAULT_SEVERITY[self.kind]

    def describe(self) -> str:
        shown = {k: v for k, v in self.kwargs.items() if k not in ("column", "column_list")}
        text = ", ".join(f"{k}={_short(v)}" for k, v in shown.items())
        return f"{self.type}({text})" if text else self.type


def _short(value: Any) -> str:
    if isinstance(value, dict) and "$PARAMETER" in value:
        return f"<{value['$PARAMETER']}>"
    if isinstance(value, dict) and value.get("type") == "comparison":
        return f"{value['column']['name']} {value['operator']} {value['parameter']}"
    if isinstance(value, list | tuple) and len(value) > 8:
        return f"[{len(value)} values]"
    return str(value)


def _condition(column: str, operator: str, value: Any) -> dict[str, Any]:
    """GX's serialized row condition, e.g. `Column("plan") == "paid"`."""
    return {"type": "comparison", "column": {"name": column}, "operator": operator,
            "parameter": value}


def suite_name(table: str) -> str:
    return f"{SUITE_PREFIX}{table}"


def _column_specs(table: str, column: Column) -> list[ExpectationSpec]:
    name = column.name
    specs = [
        ExpectationSpec("expect_column_to_exist", "column_exists", table, name, {"column": name}),
        ExpectationSpec("expect_column_values_to_be_in_type_list", "type", table, name,
                        {"column": name, "type_list": TYPE_LISTS[column.kind]}),
    ]
    if column.required:
        specs.append(ExpectationSpec("expect_column_values_to_not_be_null", "not_null", table,
                                     name, {"column": name}))
    if column.allowed:
        specs.append(ExpectationSpec("expect_column_values_to_be_in_set", "allowed_values",
                                     table, name, {"column": name,
                                                   "value_set": list(column.allowed)}))
    if column.minimum is not None or column.maximum is not None:
        bounds = {"min_value": column.minimum, "max_value": column.maximum}
        specs.append(ExpectationSpec(
            "expect_column_values_to_be_between", "range", table, name,
            {"column": name, **{k: v for k, v in bounds.items() if v is not None}}))
    if table == "events" and name in CONDITIONAL_FILLS:
        condition = _condition("event_type", "IN", list(CONDITIONAL_FILLS[name]))
        specs.append(ExpectationSpec(
            "expect_column_values_to_not_be_null", "null_fraction", table, name,
            {"column": name, "row_condition": condition}))
    return specs


def event_data_specs(columns: dict[str, list[str]], *, min_rows: int = 1,
                     max_rows: int | None = None) -> dict[str, list[ExpectationSpec]]:
    """Suites for users and events. `columns` are the ingested tables' columns: optional
    contract columns (users.valid_from) are checked only where the data has them."""
    suites: dict[str, list[ExpectationSpec]] = {}
    for table, contract in TABLES.items():
        specs: list[ExpectationSpec] = []
        present = set(columns.get(table, ()))
        for column in contract:
            if column.optional and column.name not in present:
                continue
            specs += _column_specs(table, column)
        key = PRIMARY_KEYS[table]
        if table == "users" and "valid_from" in present:
            specs.append(ExpectationSpec(
                "expect_compound_columns_to_be_unique", "unique", table, f"{key}+valid_from",
                {"column_list": [key, "valid_from"]}))
        else:
            specs.append(ExpectationSpec("expect_column_values_to_be_unique", "unique", table,
                                         key, {"column": key}))
        date_column = "signup_date" if table == "users" else "event_time"
        specs.append(ExpectationSpec(
            "expect_column_values_to_be_between", "date_range", table, date_column,
            {"column": date_column, "min_value": {"$PARAMETER": "earliest_date"},
             "max_value": {"$PARAMETER": "latest_date"}, "strict_max": True}))
        bounds = {"min_value": min_rows, **({"max_value": max_rows} if max_rows else {})}
        specs.append(ExpectationSpec("expect_table_row_count_to_be_between", "row_count",
                                     table, "*", bounds))
        suites[table] = specs
    # is_paid is 1 exactly where plan is "paid" (a plan outside the set fails allowed_values).
    for operator, flag in (("==", 1), ("!=", 0)):
        suites["users"].append(ExpectationSpec(
            "expect_column_values_to_be_in_set", "consistent", "users", "is_paid",
            {"column": "is_paid", "value_set": [flag],
             "row_condition": _condition("plan", operator, "paid")}))
    # Cross-table: a value set of every user id costs GX O(users) per expectation copy (its
    # pydantic configs are copied hundreds of times: 5 s at 2,000 users), so the gate adds a
    # column holding the user_id of events whose user is unknown (null otherwise).
    suites["events"].append(ExpectationSpec(
        "expect_column_values_to_be_null", "known_user", "events", "user_id",
        {"column": UNKNOWN_USER_COLUMN}))
    # Events dated before their user's signup day (a clock or import problem, not a reason
    # to stop): rows of unknown users or without dates are the other expectations' business.
    suites["events"].append(ExpectationSpec(
        "expect_column_pair_values_a_to_be_greater_than_b", "after_signup", "events",
        "event_time", {"column_A": "event_time", "column_B": SIGNUP_COLUMN, "or_equal": True,
                       "ignore_row_if": "either_value_is_missing"}))
    return suites
