"""Infer what each column of a customer table is, and turn raw cells into model-ready values.

`infer_plan` decides once, at ingest, per column: its type (numeric, boolean, date,
categorical), its role (feature, id, time, target, or dropped, with the reason) and how its
cells are written. `apply_plan` applies those decisions to any export of the same shape, so
training, batch scoring and a new month's file read values the same way.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnctl.domain import table_parse as P
from churnctl.domain.table_target import encode_target, resolve_target
from churnctl.errors import DataError

ROW_NUMBER = "row_number"  # the id when the table has none: the row's number in the file
OTHER = "(other)"  # rare levels of a high-cardinality column are pooled under this name
MAX_LEVELS = 50  # more distinct values than this and rare ones are pooled
MIN_LEVEL_ROWS = 10  # a level kept by pooling needs at least this many rows
_ID_WORDS = {"id", "uuid", "guid", "key", "no", "nr", "num", "number", "index", "idx", "row"}
_NAME_WORDS = {"name", "surname", "firstname", "lastname", "fullname", "email", "mail", "phone",
               "telephone", "mobile", "address", "street"}


@dataclass
class ColumnPlan:
    name: str
    kind: str  # numeric | boolean | date | categorical | empty
    role: str = "feature"  # feature | id | time | target | dropped
    reason: str = ""  # why it was dropped, or how it was read
    missing: int = 0
    distinct: int = 0
    decimal_comma: bool = False
    true_false: tuple[str, str] | None = None
    dayfirst: bool = False
    reference: str | None = None  # dates become "days before" this date
    spellings: dict[str, str] = field(default_factory=dict)  # lower-case -> canonical spelling
    keep: list[str] | None = None  # kept levels when rare ones are pooled as OTHER

    @property
    def model_kind(self) -> str:
        return "categorical" if self.kind == "categorical" else "numeric"


@dataclass
class TablePlan:
    columns: list[ColumnPlan]
    target: str
    positive: str
    negative: str
    id: str
    time: str | None = None
    time_kind: str | None = None  # date | numeric

    @property
    def features(self) -> list[ColumnPlan]:
        return [c for c in self.columns if c.role == "feature"]

    @property
    def id_generated(self) -> bool:
        return self.id == ROW_NUMBER and not any(c.name == ROW_NUMBER for c in self.columns)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TablePlan:
        columns = [ColumnPlan(**{**c, "true_false": tuple(c["true_false"]) if c["true_false"]
                                 else None}) for c in data["columns"]]
        return cls(**{**data, "columns": columns})


def _words(name: str) -> set[str]:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name)
    return {w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w}


def find_column(columns: list[str], wanted: str, path: Path, flag: str) -> str:
    """The column named `wanted`; a unique case-insensitive match is accepted too."""
    if wanted in columns:
        return wanted
    loose = [c for c in columns if c.strip().lower() == wanted.strip().lower()]
    if len(loose) == 1:
        return loose[0]
    shown = ", ".join(columns[:20]) + (", ..." if len(columns) > 20 else "")
    raise DataError(f"{path}: no column {wanted!r} (given by {flag}); the file has: {shown}")


def infer_column(name: str, series: pd.Series, decimal_hint: bool = False) -> ColumnPlan:
    """Type and parsing settings of one column, from its cells alone."""
    if pd.api.types.is_bool_dtype(series):
        return ColumnPlan(name, "boolean", true_false=("true", "false"),
                          missing=int(series.isna().sum()), distinct=int(series.nunique()))
    text = P.as_text(series)
    blank = P.blank_mask(text)
    filled = text[~blank]
    plan = ColumnPlan(name, "categorical", missing=int(blank.sum()))
    if filled.empty:
        plan.kind = "empty"
        return plan
    if pd.api.types.is_numeric_dtype(series):
        plan.kind, plan.distinct = "numeric", int(filled.nunique())
        return plan
    pair = P.boolean_pair(filled)
    if pair is not None:
        plan.kind, plan.true_false, plan.distinct = "boolean", pair, 2
        plan.reason = f"booleans written as {pair[0]}/{pair[1]}"
        return plan
    style = P.number_style(filled, decimal_hint)
    values, bad = P.parse_numbers(filled, style)
    if float(bad.mean()) <= 0.05:
        plan.kind, plan.decimal_comma, plan.distinct = "numeric", style.decimal_comma, int(
            values.nunique())
        notes = P.number_notes(filled, style)
        if bad.any():
            examples = ", ".join(repr(v) for v in filled[bad].unique()[:3])
            notes.append(f"{int(bad.sum())} non-numeric cell(s) read as blank, e.g. {examples}")
        plan.reason = "; ".join(notes)
        return plan
    if pd.api.types.is_datetime64_any_dtype(series) or P.looks_like_dates(filled):
        plan.kind, plan.dayfirst = "date", P.day_first(filled)
        dates, _ = P.parse_dates(filled, plan.dayfirst)
        plan.reference = str(dates.max().date())
        plan.distinct = int(dates.nunique())
        plan.reason = f"dates, used as days before {plan.reference}"
        return plan
    plan.spellings = P.canonical_spellings(filled)
    plan.distinct = len(set(plan.spellings.values()))
    return plan


def _word_column(name: str, series: pd.Series) -> ColumnPlan | None:
    """`infer_column` for text without digits (`P.word_cells`) on its distinct cells: no
    number, date or blank share to weigh, so booleans and spellings decide it."""
    cells = P.word_cells(series)
    if cells is None:
        return None
    codes, text, blank_text = cells
    blank = blank_text[codes]
    plan = ColumnPlan(name, "categorical", missing=int(blank.sum()))
    if blank.all():
        plan.kind = "empty"
        return plan
    pair = P.boolean_pair(pd.Series(pd.unique(text[~blank_text]), dtype=object))
    if pair is not None:
        plan.kind, plan.true_false, plan.distinct = "boolean", pair, 2
        plan.reason = f"booleans written as {pair[0]}/{pair[1]}"
        return plan
    plan.spellings = P.canonical_spellings(pd.Series(text[codes][~blank], dtype=object))
    plan.distinct = len(set(plan.spellings.values()))
    return plan


def _plain_column(name: str, values: np.ndarray) -> ColumnPlan:
    """What `infer_column` decides for text cells that are all plain numbers (no blanks, no
    commas, nothing to note), without its pandas passes: `P.plain_values` read them."""
    return ColumnPlan(name, "numeric", missing=0, distinct=int(pd.Series(values).nunique()))


def _role(plan: ColumnPlan, series: pd.Series, rows: int,
          plain: np.ndarray | None = None) -> None:
    """Leave out columns that cannot help a model, saying why (`plain`: the column's numbers
    when `P.plain_values` read them, the same as parse_numbers would)."""
    if plan.kind == "empty":
        plan.role, plan.reason = "dropped", "blank in every row"
        return
    if plan.distinct <= 1 and plan.missing == 0:
        value = P.as_text(series).iloc[0]
        plan.role, plan.reason = "dropped", f"the same value ({value!r}) in every row"
        return
    if plan.distinct == 1:  # one value or blank: the blank is the information
        plan.kind, plan.reason = "categorical", "one value or blank: used as filled/blank"
        plan.spellings = P.canonical_spellings(P.as_text(series))
        return
    unique = plan.missing == 0 and plan.distinct == rows and rows >= 20
    if unique and plan.kind == "categorical":
        plan.role, plan.reason = "dropped", "unique per row: an identifier"
        return
    if unique and plan.kind == "numeric":
        if plain is not None:
            values = pd.Series(plain)
        elif pd.api.types.is_numeric_dtype(series):
            values = pd.to_numeric(series, errors="coerce")
        else:
            values = P.parse_numbers(P.as_text(series), P.NumberStyle(plan.decimal_comma))[0]
        whole = bool((values == values.round()).all())
        consecutive = whole and values.max() - values.min() + 1 == rows
        if whole and (consecutive or _words(plan.name) & _ID_WORDS):
            what = "row numbers" if consecutive else "an identifier"
            plan.role, plan.reason = "dropped", f"unique per row: {what}"
            return
    if plan.kind != "categorical":
        return
    filled = rows - plan.missing
    if _words(plan.name) & _NAME_WORDS and plan.distinct > 20:
        plan.role = "dropped"
        plan.reason = f"names or contact details ({plan.distinct:,} distinct values)"
    elif plan.distinct > 50 and plan.distinct > 0.9 * filled:
        plan.role = "dropped"
        plan.reason = (f"almost unique per row ({plan.distinct / filled:.0%} distinct): "
                       "free text or an identifier")
    elif plan.distinct > MAX_LEVELS:
        canon = P.as_text(series).str.lower().map(plan.spellings)
        counts = canon.value_counts()
        plan.keep = sorted(counts[counts >= MIN_LEVEL_ROWS].index[:MAX_LEVELS].tolist())
        plan.reason = (f"{plan.distinct:,} distinct values: kept the {len(plan.keep)} most "
                       f"frequent, the rest pooled as {OTHER!r}")


def infer_plan(frame: pd.DataFrame, path: Path, target: str, id_column: str | None = None,
               time: str | None = None, positive: str | None = None,
               decimal_hint: bool = False) -> TablePlan:
    """Decide every column's type and role; DataError when the table cannot train a model."""
    names = [str(c) for c in frame.columns]
    target = find_column(names, target, path, "--target")
    id_column = find_column(names, id_column, path, "--id") if id_column else None
    time = find_column(names, time, path, "--time") if time else None
    if len({target, id_column, time} - {None}) < len([x for x in (target, id_column, time) if x]):
        raise DataError(f"{path}: --target, --id and --time must name different columns")
    positive_value, negative_value = resolve_target(frame[target], path, target, positive)
    columns: list[ColumnPlan] = []
    candidates = P.plain_candidates(frame)  # one pass over all the text for plain numbers
    for name in names:
        series = frame[name]
        if name == target:
            columns.append(ColumnPlan(name, "categorical", "target",
                                      missing=int(P.blank_mask(P.as_text(series)).sum())))
            continue
        plain = P.plain_values(series) if name in candidates else None
        plan = _plain_column(name, plain) if plain is not None else (
            _word_column(name, series) or infer_column(name, series, decimal_hint))
        if name in (id_column, time):
            plan.role = "id" if name == id_column else "time"
        else:
            _role(plan, series, len(frame), plain)
        columns.append(plan)
    time_kind = _check_time(frame, path, time, columns) if time else None
    if id_column is None:
        id_column = _auto_id(columns) or ROW_NUMBER
    elif P.blank_mask(P.as_text(frame[id_column])).any():
        raise DataError(f"{path}: column {id_column} (given by --id) has blank cells; fill them "
                        "or omit --id to use row numbers")
    plan = TablePlan(columns, target, positive_value, negative_value, id_column, time, time_kind)
    if not plan.features:
        dropped = "; ".join(f"{c.name} ({c.reason})" for c in columns if c.role == "dropped")
        raise DataError(f"{path}: no usable feature columns (dropped: {dropped or 'none'}); the "
                        "table needs at least one column besides the id, time and target")
    return plan


def _auto_id(columns: list[ColumnPlan]) -> str | None:
    """An identifier column named like one (customerID, CustomerId) becomes the id."""
    for column in columns:
        if column.role == "dropped" and column.reason.startswith("unique per row: an ident") \
                and _words(column.name) & _ID_WORDS:
            column.role = "id"
            return column.name
    return None


def _check_time(frame: pd.DataFrame, path: Path, time: str, columns: list[ColumnPlan]) -> str:
    plan = next(c for c in columns if c.name == time)
    if plan.kind == "empty" or plan.missing:
        raise DataError(f"{path}: column {time} (given by --time) has {plan.missing} blank "
                        "cell(s); fill them or omit --time to split at random")
    if plan.kind not in ("date", "numeric"):
        raise DataError(f"{path}: column {time} (given by --time) is neither dates nor numbers; "
                        "give a date column such as 2024-01-31, or omit --time")
    return plan.kind


def _categories(plan: ColumnPlan, text: pd.Series) -> pd.Series:
    """Canonical spellings, rare levels pooled, blanks as None."""
    values = text.str.lower().map(plan.spellings).fillna(text)
    if plan.keep is not None:
        values = values.where(values.isin(plan.keep), OTHER)
    return values.astype("object").where(~P.blank_mask(text), None)


def _categories_of(plan: ColumnPlan, series: pd.Series) -> pd.Series:
    """`_categories` of every cell, worked out once per distinct raw cell (it is cell by cell)."""
    distinct = P.distinct_text(series)
    if distinct is None:
        return P.via_unique(P.as_text(series), lambda cells: _categories(plan, cells))
    codes, cells = distinct
    values = _categories(plan, pd.Series(cells, dtype=object))
    return pd.Series(values.to_numpy()[codes], index=series.index, dtype=values.dtype)


def _parse(plan: ColumnPlan, series: pd.Series, plain: bool = False) -> tuple[pd.Series, int]:
    """Model-ready values of one column and the number of cells that could not be read
    (`plain`: a candidate of `P.plain_candidates`, tried on the fast path first)."""
    if plain and plan.kind == "numeric" and not plan.decimal_comma:
        values = P.plain_values(series)
        if values is not None:
            return pd.Series(values, index=series.index, dtype="float64"), 0
    if plan.kind == "boolean" and pd.api.types.is_bool_dtype(series):
        return series.astype("float64"), 0
    if plan.kind == "numeric" and pd.api.types.is_numeric_dtype(series):
        return pd.to_numeric(series, errors="coerce").astype("float64"), 0
    if plan.kind == "date" and pd.api.types.is_datetime64_any_dtype(series):
        values, bad = series.astype("datetime64[ns]"), pd.Series(False, index=series.index)
    else:
        if plan.kind not in ("numeric", "boolean", "date"):
            return _categories_of(plan, series), 0
        text = P.as_text(series)
        if plan.kind == "numeric":
            values, bad = P.parse_numbers(text, P.NumberStyle(plan.decimal_comma))
            return values, int(bad.sum())
        if plan.kind == "boolean":
            values, bad = P.parse_booleans(text, plan.true_false or ("true", "false"))
            return values, int(bad.sum())
        values, bad = P.parse_dates(text, plan.dayfirst)
    days = (pd.Timestamp(plan.reference) - values).dt.total_seconds() / 86400.0
    return days.astype("float64"), int(bad.sum())


def id_values(series: pd.Series) -> pd.Series:
    """Ids as whole numbers when every one is digits without a leading zero, else as text."""
    if pd.api.types.is_integer_dtype(series):
        return series.astype("int64")
    text = P.as_text(series)
    if text.str.fullmatch(r"[1-9]\d{0,17}").all():
        return text.astype("int64")
    return text


def parse_time(plan: TablePlan, series: pd.Series) -> pd.Series:
    column = next(c for c in plan.columns if c.name == plan.time)
    if column.kind == "numeric":
        return _parse(column, series)[0]
    if pd.api.types.is_datetime64_any_dtype(series):
        return series.astype("datetime64[ns]")
    return P.parse_dates(P.as_text(series), column.dayfirst)[0]


def apply_plan(plan: TablePlan, frame: pd.DataFrame, path: Path, with_target: bool,
               ) -> tuple[pd.DataFrame, list[str]]:
    """The id, time, feature (and target) columns of `frame`, typed as in training.

    Extra columns are ignored; a missing feature column is a DataError naming it.
    """
    names = [str(c) for c in frame.columns]
    lookup = {n.strip().lower(): n for n in names}
    missing = [c.name for c in plan.features if c.name not in names
               and c.name.strip().lower() not in lookup]
    if missing:
        raise DataError(f"{path}: missing feature column(s) {', '.join(missing)}; the model "
                        "was trained with them (extra columns are fine)")
    out: dict[str, Any] = {}
    notices: list[str] = []
    if plan.id_generated or plan.id.strip().lower() not in lookup:
        if not plan.id_generated:
            notices.append(f"{path.name}: no id column {plan.id}; rows are named by row number")
        out[ROW_NUMBER] = np.arange(1, len(frame) + 1, dtype=np.int64)
    else:
        out[plan.id] = id_values(frame[lookup[plan.id.strip().lower()]])
    if plan.time and plan.time.strip().lower() in lookup:
        out[plan.time] = parse_time(plan, frame[lookup[plan.time.strip().lower()]])
    sources = {c.name: c.name if c.name in names else lookup[c.name.strip().lower()]
               for c in plan.features}
    numeric = [sources[c.name] for c in plan.features
               if c.kind == "numeric" and not c.decimal_comma]
    candidates = P.plain_candidates(frame[numeric]) if numeric else set()
    for column in plan.features:
        source = sources[column.name]
        out[column.name], bad = _parse(column, frame[source], source in candidates)
        if bad:
            notices.append(f"{path.name}: column {column.name}: {bad} unreadable cell(s) "
                           "treated as blank")
    if with_target:
        out[plan.target] = encode_target(frame[plan.target], plan.positive, plan.negative)
    return pd.DataFrame(out, index=frame.index), notices
