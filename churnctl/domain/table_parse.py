"""Parse the cells of a customer-table export: numbers stored as text, booleans, dates, blanks.

Everything here is vectorised over a pandas Series of text and is used twice, with the same
settings: once by ingest to decide a column's type, and again by scoring on a new export,
so "1,234.50", " " and "Yes" mean the same thing in both.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from churnctl.domain.numbers import MAX_ABS, implausible

# Cells that mean "no value" in exports from spreadsheets, databases and BI tools.
NA_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "#n/a", "?", "-", "--", "nat"})
# Pairs of spellings that make a column boolean; the first of each pair means true.
BOOLEAN_PAIRS: tuple[tuple[str, str], ...] = (
    ("yes", "no"), ("y", "n"), ("true", "false"), ("t", "f"), ("on", "off"),
)
_CURRENCY = re.compile(r"^[\$€£¥]\s*|\s*[\$€£¥]$|^(?:usd|eur|gbp)\s+|\s+(?:usd|eur|gbp)$", re.I)
_US_NUMBER = re.compile(r"^[+-]?(\d{1,3}(,\d{3})+|\d*)(\.\d+)?([eE][+-]?\d+)?$")
_EU_NUMBER = re.compile(r"^[+-]?(\d{1,3}(\.\d{3})+|\d*)(,\d+)?$")
_DATE_PATTERNS = (
    r"\d{4}-\d{1,2}(-\d{1,2})?([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?",
    r"\d{4}/\d{1,2}/\d{1,2}( \d{1,2}:\d{2}(:\d{2})?)?",
    r"\d{1,2}[/.]\d{1,2}[/.]\d{2,4}( \d{1,2}:\d{2}(:\d{2})?)?",
    r"\d{1,2}[ -][A-Za-z]{3,9}[ -]\d{2,4}",
    r"[A-Za-z]{3,9} \d{1,2},? \d{4}",
)
_DATE = re.compile("^(" + "|".join(_DATE_PATTERNS) + ")$")
_DIGIT = re.compile(r"\d")
_SLASHED = re.compile(r"^(\d{1,2})[/.](\d{1,2})[/.]\d{2,4}")


def via_unique(text: pd.Series, fn: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """`fn` applied to each distinct cell once, spread back to every row.

    Exports repeat values (ages, plans, Yes/No) across millions of rows; parsing the distinct
    ones and indexing back was 5-20x faster than parsing every cell.
    """
    codes, uniques = pd.factorize(text, use_na_sentinel=False)
    if len(uniques) > len(text) // 2:
        return fn(text)
    values = fn(pd.Series(np.asarray(uniques, dtype=object), dtype=object))
    out = values.to_numpy()[codes]
    return pd.Series(out, index=text.index, dtype=values.dtype)


def as_text(series: pd.Series) -> pd.Series:
    """Cells as stripped text; missing cells become "" so one blank test covers both."""
    if pd.api.types.is_string_dtype(series) and not pd.api.types.is_object_dtype(series):
        return series.fillna("").str.strip()  # CSV cells: already text
    text = series.astype("object").where(series.notna(), "")
    return text.map(str).str.strip()


def blank_mask(text: pd.Series) -> pd.Series:
    """Blank, whitespace-only and the usual "no value" spellings."""
    return text.str.lower().isin(NA_TOKENS)


@dataclass(frozen=True)
class NumberStyle:
    """How a column writes numbers; found once at ingest and reused when scoring."""

    decimal_comma: bool = False  # 1.234,5 rather than 1,234.5

    def to_dict(self) -> dict[str, bool]:
        return {"decimal_comma": self.decimal_comma}


def _normalise_numbers(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Text with currency, percent signs and accounting brackets removed; and the percent mask."""
    out = text.str.replace(_CURRENCY, "", regex=True)
    negative = out.str.match(r"^\(.*\)$")
    out = out.where(~negative, "-" + out.str.slice(1, -1))
    percent = out.str.endswith("%")
    out = out.where(~percent, out.str.slice(0, -1)).str.strip()
    # "1 234" (a space as thousands separator, common in French exports)
    out = out.str.replace(r"(?<=\d)[ \u00a0\u202f](?=\d{3}\b)", "", regex=True)
    return out, percent


def number_style(text: pd.Series, prefer_decimal_comma: bool = False) -> NumberStyle:
    """Pick the decimal mark that reads most cells; ties (e.g. only "1,234") go to the hint."""
    commas = pd.Series(text[~blank_mask(text) & text.str.contains(",", regex=False)].unique(),
                       dtype=object)
    if commas.empty:
        return NumberStyle()  # no comma anywhere: nothing to decide
    cleaned, _ = _normalise_numbers(commas)
    us = int(cleaned.str.match(_US_NUMBER).sum())
    eu = int(cleaned.str.match(_EU_NUMBER).sum())
    if eu > us or (eu == us and prefer_decimal_comma):
        return NumberStyle(decimal_comma=True)
    return NumberStyle()


def _parse_formatted(text: pd.Series, style: NumberStyle) -> pd.Series:
    """Numbers with separators, currency, percent or brackets (distinct cells only: slow path)."""
    cleaned, percent = _normalise_numbers(text)
    if style.decimal_comma:
        ok = cleaned.str.match(_EU_NUMBER)
        cleaned = cleaned.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    else:
        ok = cleaned.str.match(_US_NUMBER)
        cleaned = cleaned.str.replace(",", "", regex=False)
    ok &= cleaned.str.contains(r"\d", regex=True)
    values = pd.to_numeric(cleaned.where(ok), errors="coerce").astype("float64")
    return values.where(~percent, values / 100.0)  # 12.5% is the fraction 0.125


def _parse_numbers(text: pd.Series, style: NumberStyle) -> pd.Series:
    blank = blank_mask(text)
    values = pd.Series(np.nan, index=text.index, dtype="float64")
    if not style.decimal_comma:  # plain cells ("12.5", "-3", "1e5") at C speed
        values = pd.to_numeric(text.where(~blank), errors="coerce").astype("float64")
        values = values.where(~implausible(values))
    rest = ~blank & values.isna()
    if rest.any():
        distinct = pd.Series(text[rest].unique(), dtype=object)
        distinct = distinct[distinct.str.contains(r"\d", regex=True)]  # names, words: not numbers
        if not distinct.empty:  # else every rest cell stays NaN, as the map would leave it
            parsed = dict(zip(distinct, _parse_formatted(distinct, style), strict=True))
            values[rest] = text[rest].map(parsed).astype("float64")
    return values.where(~implausible(values))  # as good as not a number: see domain/numbers


def parse_numbers(text: pd.Series, style: NumberStyle) -> tuple[pd.Series, pd.Series]:
    """(values, bad): floats with NaN for blanks and for cells that are not numbers."""
    values = via_unique(text, lambda t: _parse_numbers(t, style)).astype("float64")
    bad = ~blank_mask(text) & values.isna()
    return values, bad


def is_text_column(series: pd.Series) -> bool:
    """Cells held as text (object or string dtype): the ones `as_text` strips."""
    return pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)


def plain_candidates(frame: pd.DataFrame) -> set[str]:
    """Names of text columns whose every raw cell `pd.to_numeric` reads as a finite,
    plausible number: one C pass over the whole block instead of a few pandas passes per
    column. Only a pre-filter: `plain_values` decides each candidate exactly."""
    positions = [i for i in range(frame.shape[1]) if is_text_column(frame.iloc[:, i])]
    if not positions or frame.empty:
        return set()
    try:
        block = frame.iloc[:, positions].to_numpy(dtype=object).T.ravel()
        values = np.asarray(pd.to_numeric(block, errors="coerce"), dtype="float64")
    except (TypeError, ValueError, OverflowError):
        return set()  # odd cells (lists, bytes): every column takes the per-column path
    ok = (np.abs(values) <= MAX_ABS).reshape(len(positions), len(frame)).all(axis=1)
    return {str(frame.columns[p]) for p, good in zip(positions, ok, strict=True) if good}


def plain_values(series: pd.Series) -> np.ndarray | None:
    """Every cell's number when each stripped cell is a plain number ("12.5", "-3", "1e5"),
    exactly as `parse_numbers(as_text(series), NumberStyle())` reads it (no blanks, nothing
    unreadable); None when some cell needs the full path."""
    codes, uniques = pd.factorize(series.to_numpy(dtype=object), use_na_sentinel=False)
    cells = np.array([str(u).strip() if isinstance(u, str) else None for u in uniques],
                     dtype=object)
    if any(c is None or c.lower() in NA_TOKENS for c in cells):
        return None  # missing or blank cells: the full path counts them
    try:
        values = np.asarray(pd.to_numeric(cells, errors="coerce"), dtype="float64")
    except (TypeError, ValueError, OverflowError):
        return None
    if not (np.abs(values) <= MAX_ABS).all():  # NaN, infinite or implausible: full path
        return None
    return values[codes]


def distinct_text(series: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """(codes, stripped distinct cells) of an object column of str cells, such that
    `as_text(series)` is `cells[codes]`; None for other columns."""
    if not pd.api.types.is_object_dtype(series):
        return None
    codes, uniques = pd.factorize(series.to_numpy(dtype=object), use_na_sentinel=False)
    if not all(isinstance(u, str) for u in uniques):
        return None
    return codes, np.array([u.strip() for u in uniques], dtype=object)


def word_cells(series: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(codes, stripped distinct cells, which of them are blank) for a text column none of
    whose filled cells has a digit: no number or date can be read from it, so only booleans
    and categories are left to decide. None for other columns (the full path decides)."""
    distinct = distinct_text(series)
    if distinct is None:
        return None
    codes, cells = distinct
    blank = np.array([c.lower() in NA_TOKENS for c in cells], dtype=bool)
    if any(_DIGIT.search(c) for c in cells[~blank]):
        return None
    return codes, cells, blank


def number_notes(text: pd.Series, style: NumberStyle) -> list[str]:
    """How a text column wrote its numbers, for the profile (plain numbers need no note)."""
    distinct = pd.Series(text.unique(), dtype=object).astype(str)
    distinct = distinct[pd.to_numeric(distinct, errors="coerce").isna()]  # plain ones say nothing
    notes = []
    if style.decimal_comma:
        notes.append("decimal commas")
    elif distinct.str.contains(r"\d,\d{3}", regex=True).any():
        notes.append("thousands separators")
    if distinct.str.endswith("%").any():
        notes.append("percentages (read as fractions)")
    if distinct.str.contains(_CURRENCY, regex=True).any():
        notes.append("currency symbols")
    return [f"numbers written with {', '.join(notes)}"] if notes else []


def boolean_pair(text: pd.Series) -> tuple[str, str] | None:
    """The (true, false) spelling pair when every non-blank cell is one of the two."""
    distinct = pd.Series(text.unique(), dtype=object)
    if len(distinct) > 64:  # a few spellings of two values at most, plus blanks
        return None
    values = set(distinct[~blank_mask(distinct)].str.lower())
    if len(values) != 2:
        return None
    for pair in BOOLEAN_PAIRS:
        if values == set(pair):
            return pair
    return None


def parse_booleans(text: pd.Series, pair: tuple[str, str]) -> tuple[pd.Series, pd.Series]:
    lower = text.str.lower()
    values = pd.Series(np.where(lower == pair[0], 1.0, np.where(lower == pair[1], 0.0, np.nan)),
                       index=text.index)
    bad = ~blank_mask(text) & values.isna()
    return values, bad


def looks_like_dates(text: pd.Series, share: float = 0.95) -> bool:
    filled = text[~blank_mask(text)]
    if filled.empty:
        return False
    matches = via_unique(filled, lambda t: t.str.match(_DATE).astype(bool))
    return float(matches.mean()) >= share


def day_first(text: pd.Series) -> bool:
    """Whether 03/04/2024 means 3 April: decided by cells whose first part cannot be a month."""
    parts = text.str.extract(_SLASHED).dropna().astype(int)
    if parts.empty:
        return False
    return bool((parts[0] > 12).any()) and not bool((parts[1] > 12).any())


def parse_dates(text: pd.Series, dayfirst: bool) -> tuple[pd.Series, pd.Series]:
    """(timestamps, bad) as naive datetime64; time zones are converted to UTC first."""
    def parse(cells: pd.Series) -> pd.Series:
        candidates = cells.where(~blank_mask(cells) & cells.str.match(_DATE).astype(bool))
        return pd.to_datetime(candidates, errors="coerce", format="mixed", dayfirst=dayfirst,
                              utc=True).dt.tz_convert(None).astype("datetime64[ns]")

    values = via_unique(text, parse).astype("datetime64[ns]")
    bad = ~blank_mask(text) & values.isna()
    return values, bad


def canonical_spellings(text: pd.Series) -> dict[str, str]:
    """Lower-case value -> its most frequent spelling, so "Male", "male " and "MALE" are one."""
    filled = text[~blank_mask(text)]
    counts = filled.value_counts()
    canon: dict[str, str] = {}
    for value in counts.index:  # most frequent first
        canon.setdefault(str(value).lower(), str(value))
    return canon
