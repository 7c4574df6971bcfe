"""Read a customer-table export (CSV, Parquet, Excel), sniffing what exports leave unsaid.

CSV files come with any delimiter, encoding and with or without a header line; none of it
is given, so it is sniffed. Whatever cannot be read with confidence stops with one line that
names the file, the line and the fix: a half-understood file would give a model nobody can trust.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnctl.domain.table_parse import as_text, blank_mask, number_style, parse_numbers
from churnctl.errors import DataError

CSV_SUFFIXES = (".csv", ".txt", ".tsv", ".dat")
PARQUET_SUFFIXES = (".parquet", ".pq")
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
DELIMITERS = (",", ";", "\t", "|")
_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
SNIFF_LINES = 200


@dataclass
class RawTable:
    """Cells as text (CSV, Excel) or typed columns (Parquet), plus how the file was read."""

    frame: pd.DataFrame
    path: Path
    format: str
    encoding: str | None = None
    delimiter: str | None = None
    header: bool = True
    notices: list[str] = field(default_factory=list)
    duplicates: dict[str, int] = field(default_factory=dict)  # header name -> times it appears

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "format": self.format, "encoding": self.encoding,
                "delimiter": _NAMES.get(self.delimiter or "", self.delimiter),
                "header": self.header}


def read_table(path: Path) -> RawTable:
    """Read `path` by its suffix; every failure is a DataError naming the file."""
    if not path.is_file():
        raise DataError(f"{path}: file not found; check the path given to --data")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty; export the table again with a header row")
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        table = _read_parquet(path)
    elif suffix in EXCEL_SUFFIXES:
        table = _read_excel(path)
    elif suffix in CSV_SUFFIXES or suffix == "":
        table = _read_csv(path)
    elif suffix == ".xls":
        raise DataError(f"{path}: old .xls workbooks are not supported; save it as .xlsx or .csv")
    else:
        raise DataError(f"{path}: unsupported file type {suffix!r}; use .csv, .parquet or .xlsx")
    if table.frame.empty:
        raise DataError(f"{path}: has a header but no rows; export the table with its data")
    return table


def require_unique(table: RawTable, *names: str | None) -> None:
    """The columns the user named (--target, --id, --time) must not be ambiguous: a
    duplicated header would otherwise silently pick the first of them."""
    for name in names:
        if name and table.duplicates.get(name, 1) > 1:
            raise DataError(f"{table.path}: column name {name!r} appears "
                            f"{table.duplicates[name]} times in the header; rename the copies "
                            "so each name is unique")


def _read_parquet(path: Path) -> RawTable:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise DataError(f"{path}: not a readable Parquet file ({exc}); re-export it") from None
    notices: list[str] = []
    names = [str(c) for c in frame.columns]
    frame.columns = _clean_names(names, notices)
    return RawTable(frame.reset_index(drop=True), path, "parquet", notices=notices,
                    duplicates=_counts(names))


def _read_excel(path: Path) -> RawTable:
    if importlib.util.find_spec("openpyxl") is None:
        raise DataError(f"{path}: reading Excel needs openpyxl; pip install 'churnctl[excel]'")
    try:
        sheets = pd.read_excel(path, sheet_name=None, header=None, dtype=object)
    except Exception as exc:  # openpyxl raises many types for a damaged workbook
        raise DataError(f"{path}: not a readable Excel workbook ({exc}); re-save it") from None
    name, cells = next(iter(sheets.items()))
    notices = [f"{path.name}: read sheet {name!r}; {len(sheets) - 1} other sheet(s) ignored"
               ] if len(sheets) > 1 else []
    # Excel stores every number as a float; 3.0 in a cell is the whole number 3.
    cells = cells.map(_excel_cell)
    cells = cells.loc[~(cells == "").all(axis=1), ~(cells == "").all(axis=0)]
    if cells.empty:
        raise DataError(f"{path}: sheet {name!r} is empty; export the table with a header row")
    return _from_frame(cells.reset_index(drop=True), path, "excel", notices)


def _excel_cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ").removesuffix(" 00:00:00")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value).strip()


def _decode(path: Path, raw: bytes) -> tuple[str, str]:
    """Text and the encoding used: BOMs first, then UTF-8, then the Windows code page."""
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16"), "utf-16"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        # Excel on Windows saves "CSV" in cp1252; it rejects only 5 unused bytes.
        return raw.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return raw.decode("latin-1"), "latin-1"


def _field_counts(lines: list[str], delimiter: str) -> list[int]:
    return [len(row) for row in csv.reader(lines, delimiter=delimiter)]


def _sniff_delimiter(path: Path, lines: list[str]) -> str:
    """The delimiter that splits the first lines into the same number (>1) of fields."""
    sample = lines[:SNIFF_LINES]
    best, best_score = ",", (-1.0, 0)
    for delimiter in DELIMITERS:
        counts = _field_counts(sample, delimiter)
        if counts[0] < 2:
            continue
        score = (sum(c == counts[0] for c in counts) / len(counts), counts[0])
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _read_csv(path: Path) -> RawTable:
    text, encoding = _decode(path, path.read_bytes())
    head = [line for line in text[:1 << 20].splitlines()[:SNIFF_LINES] if line.strip()]
    if not head:
        raise DataError(f"{path}: file is empty; export the table again with a header row")
    delimiter = _sniff_delimiter(path, head)
    width, extra = _check_widths(path, text, delimiter)
    # pandas' C parser holds a million-row export as compact columns, not Python lists.
    frame = pd.read_csv(io.StringIO(text), sep=delimiter, header=None, dtype=str,
                        keep_default_na=False, names=list(range(width + extra)),
                        skip_blank_lines=True, quotechar='"', engine="c")
    frame = frame.iloc[:, :width]
    frame = frame[_filled_rows(frame)].reset_index(drop=True)  # lines of only delimiters
    notices = [f"{path.name}: read as {encoding}"] if encoding not in ("utf-8", "utf-8-sig") else []
    table = _from_frame(frame, path, "csv", notices)
    table.encoding, table.delimiter = encoding, delimiter
    return table


def _filled_rows(frame: pd.DataFrame) -> np.ndarray:
    """Rows with a cell that is not blank; a column is looked at only for the rows no earlier
    column decided (on a wide table the first column decides nearly every row)."""
    filled = np.zeros(len(frame), dtype=bool)
    undecided = np.arange(len(frame))
    for index in range(frame.shape[1]):
        if not len(undecided):
            break
        hit = (frame.iloc[undecided, index].str.strip() != "").to_numpy(dtype=bool)
        filled[undecided[hit]] = True
        undecided = undecided[~hit]
    return filled


def _check_widths(path: Path, text: str, delimiter: str) -> tuple[int, int]:
    """(header width, 1 when some lines end with a trailing delimiter); a line with another
    number of fields is an error that says why (mixed delimiters, or quoting)."""
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    width, extra = 0, 0
    for row in reader:  # the C reader: only counts are kept, never the cells
        if not any(cell.strip() for cell in row):
            continue
        if not width:
            width = len(row)
            continue
        if len(row) == width:
            continue
        if len(row) == width + 1 and row[-1] == "":
            extra = 1  # a trailing delimiter is a common, harmless export habit
            continue
        line = delimiter.join(row)
        others = [d for d in DELIMITERS if d != delimiter
                  and _field_counts([line], d)[0] == width and width > 1]
        if others:
            raise DataError(
                f"{path}: mixed delimiters: the header uses {_NAMES[delimiter]} but line "
                f"{reader.line_num} uses {_NAMES[others[0]]}; export the file again with one "
                "delimiter")
        raise DataError(
            f"{path}: line {reader.line_num} has {len(row)} field(s) but the header has "
            f"{width}; check quoting of {_NAMES[delimiter]}s inside values")
    return width, extra


def _from_frame(cells: pd.DataFrame, path: Path, fmt: str, notices: list[str]) -> RawTable:
    """Name the columns from the first row, unless that row is data (no header line)."""
    first = [str(v) for v in cells.iloc[0]]
    body = cells.iloc[1:].reset_index(drop=True)
    has_header = _has_header(first, body)
    if has_header:
        body.columns = _clean_names(first, notices)
    else:
        body = cells.reset_index(drop=True)
        body.columns = [f"column_{i}" for i in range(1, cells.shape[1] + 1)]
        notices.append(f"{path.name}: no header line found; columns are named column_1.."
                       f"column_{cells.shape[1]}")
    return RawTable(body, path, fmt, header=has_header, notices=notices,
                    duplicates=_counts(first) if has_header else {})


def _has_header(first: list[str], body: pd.DataFrame) -> bool:
    """A first line is data, not names, when it is numeric wherever the columns are numeric."""
    if body.empty:
        return True
    sample = body.iloc[:SNIFF_LINES]
    numeric_columns = 0
    for index, name in enumerate(first):
        text = as_text(sample.iloc[:, index])
        filled = text[~blank_mask(text)]
        if filled.empty:
            continue
        _, bad = parse_numbers(filled, number_style(filled))
        if float(bad.mean()) > 0.05:
            continue
        numeric_columns += 1
        head = as_text(pd.Series([name]))
        _, head_bad = parse_numbers(head, number_style(filled))
        if bool(head_bad.iloc[0]) or bool(blank_mask(head).iloc[0]):
            return True  # a name above a column of numbers
    return numeric_columns == 0


def _counts(names: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in names:
        counts[name.strip()] = counts.get(name.strip(), 0) + 1
    return counts


def _clean_names(names: list[str], notices: list[str]) -> list[str]:
    """Stripped, non-empty and unique column names (duplicates get a suffix, with a notice)."""
    out: list[str] = []
    seen: set[str] = set()
    for index, raw in enumerate(names, start=1):
        name = raw.strip() or f"column_{index}"
        if name.startswith("Unnamed: "):  # pandas' name for a blank header cell
            name = f"column_{index}"
        if name in seen:
            renamed = f"{name}_{index}"
            notices.append(f"duplicate column name {name!r}: column {index} renamed {renamed!r}")
            name = renamed
        seen.add(name)
        out.append(name)
    return out
