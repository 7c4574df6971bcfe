"""Fitted category encoders read into look-up tables by asking the encoder itself.

Rather than re-implementing sklearn's rules (dropped columns, infrequent-category grouping,
unknown handling), each known category and one unseen value are passed through the fitted
encoder once, and where each lands is recorded: the tables agree with sklearn by construction.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

UNSEEN = "\x00churnctl-unseen\x00"  # a probe value no real category equals


class CompileError(Exception):
    """The pipeline has a step the fast path does not reproduce."""


class UnknownCategory(ValueError):
    """A category the model never saw, for an encoder that rejects unseen ones."""

    def __init__(self, feature: str, value: Any, known: list[str]) -> None:
        shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
        super().__init__(f"unknown category {value!r} for feature {feature!r} (known: {shown})")
        self.feature = feature
        self.value = value


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass
class Categorical:
    """Where one categorical input lands in the output row.

    One-hot: `outputs` holds each category's column offset in the block (-1: no column, as for
    a dropped category). Ordinal: the code written to the single column. `unseen` is the same
    for values the encoder never saw; None when the encoder rejects them.
    """

    source: str
    position: int
    ordinal: bool
    categories: list[str]
    outputs: list[float]
    unseen: float | None
    width: int
    lookup: dict[str, float] = field(init=False)
    table: np.ndarray = field(init=False)  # per category code; code -1 (unseen) takes the last

    def __post_init__(self) -> None:
        self.lookup = dict(zip(self.categories, self.outputs, strict=True))
        fallback = self.unseen if self.unseen is not None else (math.nan if self.ordinal else -1)
        self.table = np.array([*self.outputs, fallback], dtype=np.float64)


def category_codes(column: pd.Series, categories: list[str]) -> np.ndarray:
    """Position of each value in `categories`; -1 for unseen or missing values.

    Arrow's hash look-up (pyarrow ships with pandas here) is ~5x faster than pandas for strings
    and, unlike pd.Categorical(values, categories=...), has no deprecation for unseen values.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column.dtype, pd.CategoricalDtype):
        position = {c: i for i, c in enumerate(categories)}
        own = [position.get(c, -1) for c in column.cat.categories]
        return np.append(np.array(own, dtype=np.int64), -1)[column.cat.codes.to_numpy()]
    try:
        values = pa.array(column, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ValueError(f"categorical feature column {column.name!r} is not text: {exc}") from exc
    if pa.types.is_null(values.type):
        return np.full(len(column), -1, dtype=np.int64)
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        raise ValueError(f"categorical column {column.name!r} holds {values.type}, not text")
    found = pc.index_in(values, value_set=pa.array(categories, type=values.type))
    return pc.fill_null(found, -1).to_numpy().astype(np.int64)


def _imputer_only_fills_missing(step: Any) -> None:
    if type(step).__name__ != "SimpleImputer":
        raise CompileError(f"unsupported categorical step {type(step).__name__}")
    if getattr(step, "add_indicator", False):
        raise CompileError("SimpleImputer with add_indicator")
    marker = step.missing_values
    if not is_missing(marker):
        raise CompileError(f"SimpleImputer for missing_values={marker!r}")


def _transform(encoder: Any, rows: list[list[str]]) -> np.ndarray:
    data: Any = np.array(rows, dtype=object)
    names = getattr(encoder, "feature_names_in_", None)
    if names is not None:
        data = pd.DataFrame(data, columns=list(names))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "found unknown categories": the probe means to
        out = encoder.transform(data)
    return np.asarray(out.toarray() if hasattr(out, "toarray") else out, dtype=np.float64)


def categorical_blocks(steps: list[Any], names: list[str], start: int) -> list[Categorical]:
    """Blocks for an encoder (optionally after a SimpleImputer) over `names`."""
    *before, encoder = steps or [None]
    # Imputation only changes missing inputs, and rows with a missing category are scored by
    # the pipeline itself (see Scorer), so an imputer in front changes nothing here.
    for step in before:
        _imputer_only_fills_missing(step)
    kind = type(encoder).__name__
    if kind not in ("OneHotEncoder", "OrdinalEncoder"):
        raise CompileError(f"unsupported categorical encoder {kind}")
    known = [[c for c in cats if not is_missing(c)] for cats in encoder.categories_]
    for name, cats in zip(names, known, strict=True):
        if not cats or not all(isinstance(c, str) for c in cats):
            raise CompileError(f"categories of {name!r} are not strings")
    if kind == "OneHotEncoder":
        widths = list(getattr(encoder, "_n_features_outs", []))
        if len(widths) != len(names):
            raise CompileError("cannot tell the one-hot encoder's output widths")
    else:
        widths = [1] * len(names)
    base = [cats[0] for cats in known]
    blocks, offset = [], 0
    for i, (name, cats) in enumerate(zip(names, known, strict=True)):
        rows = [[*base[:i], value, *base[i + 1:]] for value in [*cats, UNSEEN]]
        try:
            out = _transform(encoder, rows)
            strict = False
        except ValueError:  # handle_unknown="error": probe the known categories only
            out = _transform(encoder, rows[:-1])
            strict = True
        block = out[:, offset:offset + widths[i]]
        lands = []
        for values in block:
            if kind == "OrdinalEncoder":
                lands.append(float(values[0]))
                continue
            hot = np.flatnonzero(values)
            if len(hot) > 1 or (len(hot) == 1 and values[hot[0]] != 1.0):
                raise CompileError(f"one-hot block of {name!r} is not one-hot")
            lands.append(float(hot[0]) if len(hot) else -1.0)
        unseen = None if strict else lands.pop()
        blocks.append(Categorical(name, start + offset, kind == "OrdinalEncoder", cats, lands,
                                  unseen, widths[i]))
        offset += widths[i]
    return blocks
