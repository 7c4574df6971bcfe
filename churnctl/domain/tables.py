"""Read users/events tables from CSV or Parquet and coerce them to the data model.

Real files are messy; every failure names the file, the column, the first bad row and the fix.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from churnctl.domain.numbers import implausible
from churnctl.domain.schema import Column
from churnctl.errors import DataError, shorten

CSV_SUFFIXES = (".csv", ".txt", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq")


def read_raw(path: Path) -> pd.DataFrame:
    """Read a CSV (all cells as text) or Parquet file, with one-line errors for bad files."""
    if not path.is_file():
        raise DataError(f"{path}: file not found; check the path")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty; export the table again with a header row")
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a corrupt file
            raise DataError(f"{path}: not a readable Parquet file ({shorten(exc, 200)}); "
                            "re-export it") from None
        return _no_rows(frame, path)
    if suffix not in CSV_SUFFIXES:
        raise DataError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet")
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}: not UTF-8 (bad byte at line {line}); "
                        "re-save the file as UTF-8") from None
    if not raw.strip():
        raise DataError(f"{path}: file is empty; export the table again with a header row")
    sep = "\t" if suffix == ".tsv" else ","
    frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8")
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise DataError(f"{path}: has a header but no rows; export the table with its data")
    return frame


def _no_rows(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    if frame.empty:
        raise DataError(f"{path}: has no rows; export the table with its data")
    return frame


def conform(frame: pd.DataFrame, columns: tuple[Column, ...], path: Path,
            ) -> tuple[pd.DataFrame, list[str]]:
    """Select and type the model's columns; return the table and notes on ignored columns."""
    missing = [c.name for c in columns if c.name not in frame.columns and not c.optional]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; the file has "
                        f"{', '.join(map(str, frame.columns))}")
    known = {c.name for c in columns}
    extra = [str(c) for c in frame.columns if c not in known]
    notes = [f"{path.name}: ignored extra column(s) {', '.join(extra)}"] if extra else []
    out = pd.DataFrame({c.name: _coerce(frame[c.name], c, path) for c in columns
                        if c.name in frame.columns})
    return out, notes


def _row(series: pd.Series, mask: pd.Series) -> str:
    position = int(mask.to_numpy().argmax())
    return f"row {position + 2}"  # +1 for 1-based, +1 for the header line


def _blank_mask(series: pd.Series) -> pd.Series:
    if series.dtype == object or pd.api.types.is_string_dtype(series):
        return series.isna() | (series.astype(str).str.strip() == "")
    return series.isna()


def _coerce(series: pd.Series, column: Column, path: Path) -> pd.Series:
    blank = _blank_mask(series)
    if column.required and blank.any():
        raise DataError(f"{path}: column {column.name} has {int(blank.sum())} blank value(s) "
                        f"(first at {_row(series, blank)}); fill them or drop those rows")
    text = series.astype(str).str.strip() if series.dtype == object else series
    if column.kind in ("int", "float"):
        values = pd.to_numeric(text.where(~blank), errors="coerce")
        bad = values.isna() & ~blank
        if bad.any():
            example = shorten(series[bad].iloc[0])
            raise DataError(f"{path}: column {column.name} expects numbers, found {example} "
                            f"at {_row(series, bad)}; fix or remove such values")
        huge = implausible(values)
        if huge.any():
            raise DataError(f"{path}: column {column.name} has {int(huge.sum())} infinite or "
                            f"implausibly large value(s), e.g. {shorten(series[huge].iloc[0])} "
                            f"at {_row(series, huge)}; fix or remove such values")
        if column.kind == "int":
            fractional = values.notna() & (values != values.round())
            if fractional.any():
                raise DataError(f"{path}: column {column.name} expects whole numbers, found "
                                f"{shorten(series[fractional].iloc[0])} at "
                                f"{_row(series, fractional)}")
            return values.astype("Int64") if blank.any() else values.astype("int64")
        return values.astype("float64")
    if column.kind in ("date", "datetime"):
        values = pd.to_datetime(text.where(~blank), errors="coerce", format="mixed")
        bad = values.isna() & ~blank
        if bad.any():
            raise DataError(f"{path}: column {column.name} expects dates like 2025-01-31, found "
                            f"{shorten(series[bad].iloc[0])} at {_row(series, bad)}")
        if getattr(values.dt, "tz", None) is not None:
            values = values.dt.tz_convert(None)
        values = values.astype("datetime64[ns]")
        return values.dt.normalize() if column.kind == "date" else values
    return text.astype(str).where(~blank, None) if blank.any() else text.astype(str)
