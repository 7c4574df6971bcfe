"""A fitted ColumnTransformer read into plain tables: which input goes to which output column.

Supported steps (anything else raises CompileError and the caller uses the pipeline itself):
numeric columns through SimpleImputer, StandardScaler, RobustScaler, MaxAbsScaler, MinMaxScaler
(no clip) or passthrough; categorical columns through an optional SimpleImputer and then a
OneHotEncoder or OrdinalEncoder (read by probing the fitted encoder, see encoders.py). The
row and column paths use sklearn's arithmetic ((x - a) / b or x * a + b, in that order), so
they match it to the last bit; the linear shortcut folds the steps (differences ~1e-16).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from churnctl.domain.model import FeatureSpec
from churnctl.serving.encoders import (
    Categorical,
    CompileError,
    UnknownCategory,
    categorical_blocks,
    category_codes,
    is_missing,
)

__all__ = ["CompileError", "Layout", "UnknownCategory", "compile_layout"]

DENSE_ROWS = 4096  # rows per block when a frame's columns are written into the dense matrix


@dataclass
class _Numeric:
    source: str
    position: int
    fill: float = math.nan  # replaces a missing input; NaN means missing stays missing
    ops: list[tuple[str, float, float]] = field(default_factory=list)

    def scalar(self, value: Any) -> float:
        value = math.nan if value is None else float(value)
        if value != value:  # NaN
            value = self.fill
        for op, a, b in self.ops:
            value = (value - a) / b if op == "sub_div" else value * a + b
        return value

    def affine(self) -> tuple[float, float]:
        """The steps as one multiply-add: output = input * factor + offset."""
        factor, offset = 1.0, 0.0
        for op, a, b in self.ops:
            factor, offset = ((factor / b, (offset - a) / b) if op == "sub_div"
                              else (factor * a, offset * a + b))
        return factor, offset

    def vector(self, values: np.ndarray) -> np.ndarray:
        if not math.isnan(self.fill):
            values = np.where(np.isnan(values), self.fill, values)
        for op, a, b in self.ops:
            values = (values - a) / b if op == "sub_div" else values * a + b
        return values


def _steps(transformer: Any) -> list[Any]:
    if isinstance(transformer, str):
        if transformer == "passthrough":
            return []
        raise CompileError(f"unsupported column transformer {transformer!r}")
    if hasattr(transformer, "steps"):
        return [step for _, step in transformer.steps]
    return [transformer]


def _imputer_fill(step: Any, count: int) -> list[Any]:
    if getattr(step, "add_indicator", False):
        raise CompileError("SimpleImputer with add_indicator")
    marker = step.missing_values
    if not (marker is None or (isinstance(marker, float) and math.isnan(marker))):
        raise CompileError(f"SimpleImputer for missing_values={marker!r}")
    stats = list(step.statistics_)
    if len(stats) != count:
        raise CompileError("SimpleImputer statistics do not match its columns")
    return stats


def _numeric_blocks(steps: list[Any], names: list[str], start: int) -> list[_Numeric]:
    blocks = [_Numeric(name, start + i) for i, name in enumerate(names)]
    for step in steps:
        kind = type(step).__name__
        if kind == "FunctionTransformer" and step.func is None:
            continue  # how a fitted ColumnTransformer stores "passthrough"
        if kind == "SimpleImputer":
            if blocks and blocks[0].ops:
                raise CompileError("SimpleImputer after a scaler")
            for block, stat in zip(blocks, _imputer_fill(step, len(blocks)), strict=True):
                if is_missing(stat) and not getattr(step, "keep_empty_features", False):
                    raise CompileError("SimpleImputer dropped an all-missing column")
                block.fill = float(stat)
            continue
        if kind == "StandardScaler":
            mean = step.mean_ if step.with_mean else np.zeros(len(blocks))
            scale = step.scale_ if step.with_std else np.ones(len(blocks))
            pairs = [("sub_div", float(m), float(s)) for m, s in zip(mean, scale, strict=True)]
        elif kind == "RobustScaler":
            centre = step.center_ if step.with_centering else np.zeros(len(blocks))
            scale = step.scale_ if step.with_scaling else np.ones(len(blocks))
            pairs = [("sub_div", float(c), float(s)) for c, s in zip(centre, scale, strict=True)]
        elif kind == "MaxAbsScaler":
            pairs = [("sub_div", 0.0, float(s)) for s in step.scale_]
        elif kind == "MinMaxScaler" and not step.clip:
            pairs = [("mul_add", float(s), float(m))
                     for s, m in zip(step.scale_, step.min_, strict=True)]
        else:
            raise CompileError(f"unsupported numeric step {kind}")
        for block, pair in zip(blocks, pairs, strict=True):
            block.ops.append(pair)
    return blocks


def _input_names(ct: Any, name: str) -> list[str]:
    indices = getattr(ct, "_transformer_to_input_indices", {}).get(name)
    names_in = getattr(ct, "feature_names_in_", None)
    if indices is None or names_in is None:
        raise CompileError("ColumnTransformer was not fitted on named DataFrame columns")
    return [str(names_in[i]) for i in indices]


class Columns:
    """The inputs of a frame as arrays: raw numeric columns and category codes."""

    def __init__(self, layout: Layout, frame: pd.DataFrame) -> None:
        self.layout = layout
        self.rows = len(frame)
        self.numeric = {}
        for block in layout.numerics:
            try:
                values = frame[block.source].to_numpy(np.float64, na_value=np.nan)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"feature column {block.source!r} is not numeric: {exc}") from exc
            self.numeric[block.source] = values
        self.codes, self.missing = {}, np.zeros(self.rows, dtype=bool)
        for block in layout.categoricals:
            column = frame[block.source]
            missing = column.isna().to_numpy()
            codes = category_codes(column, block.categories)
            unseen = (codes < 0) & ~missing
            if block.unseen is None and unseen.any():
                raise UnknownCategory(block.source, column[unseen].iloc[0], block.categories)
            self.codes[block.source] = codes
            self.missing |= missing

    def nan_rows(self) -> np.ndarray:
        """Rows with a missing number."""
        rows = np.zeros(self.rows, dtype=bool)
        for values in self.numeric.values():
            rows |= np.isnan(values)
        return rows

    def dot(self, weights: np.ndarray) -> np.ndarray:
        """The linear model's score without building the one-hot matrix.

        Each numeric column's steps fold into one multiply-add, so this is two passes per
        column; the sum order differs from sklearn's BLAS dot only by rounding (~1e-16).
        """
        total = np.zeros(self.rows)
        scratch = np.empty(self.rows)
        constant = 0.0
        for block in self.layout.numerics:
            factor, offset = block.affine()
            values = self.numeric[block.source]
            if not math.isnan(block.fill):
                values = np.where(np.isnan(values), block.fill, values)
            np.multiply(values, weights[block.position] * factor, out=scratch)
            total += scratch
            constant += weights[block.position] * offset
        for block in self.layout.categoricals:
            if block.ordinal:
                values = block.table * weights[block.position]
            else:
                columns = block.position + block.table.astype(np.int64)
                values = np.where(block.table >= 0, weights[np.maximum(columns, 0)], 0.0)
            total += values[self.codes[block.source]]  # code -1 (unseen) picks the last entry
        return total + constant

    def dense(self, start: int, stop: int) -> np.ndarray:
        """Rows start..stop as the pipeline's numeric output (row-major, for the classifier).

        Filled DENSE_ROWS rows at a time: a column written into a block that stays in cache
        costs half of one written down the whole matrix (a 65,536 x 34 fill: 12 -> 6 ms).
        """
        matrix = np.zeros((stop - start, self.layout.width))
        for low in range(start, stop, DENSE_ROWS):
            high = min(low + DENSE_ROWS, stop)
            out = matrix[low - start:high - start]
            for block in self.layout.numerics:
                out[:, block.position] = block.vector(self.numeric[block.source][low:high])
            for block in self.layout.categoricals:
                values = block.table[self.codes[block.source][low:high]]
                if block.ordinal:
                    out[:, block.position] = values
                    continue
                rows = np.flatnonzero(values >= 0)
                out[rows, block.position + values[rows].astype(np.int64)] = 1.0
        return matrix


def _stages(blocks: list[_Numeric]) -> list[tuple[str, np.ndarray, np.ndarray]] | None:
    """The numeric steps as whole-vector operations, or None if columns differ in kind.

    A column with fewer steps gets identity steps ((x - 0) / 1 or x * 1 + 0), which leave every
    float, NaN and infinity unchanged, so the result matches the per-column arithmetic exactly.
    """
    stages = []
    for level in range(max((len(b.ops) for b in blocks), default=0)):
        kinds = {b.ops[level][0] for b in blocks if len(b.ops) > level}
        if len(kinds) != 1:
            return None
        kind = kinds.pop()
        identity = (0.0, 1.0) if kind == "sub_div" else (1.0, 0.0)
        pairs = [b.ops[level][1:] if len(b.ops) > level else identity for b in blocks]
        stages.append((kind, np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])))
    return stages


@dataclass
class Layout:
    width: int
    numerics: list[_Numeric]
    categoricals: list[Categorical]

    def __post_init__(self) -> None:
        self._names = [b.source for b in self.numerics]
        self._positions = np.array([b.position for b in self.numerics], dtype=np.int64)
        self._fill = np.array([b.fill for b in self.numerics], dtype=np.float64)
        self._fills = bool((~np.isnan(self._fill)).any())
        self._stages = _stages(self.numerics)

    def row(self, record: Any) -> np.ndarray | None:
        """One record (feature name -> value) as the pipeline's numeric output row.

        None when a category is missing: the pipeline's own imputation must score that row.
        """
        out = np.zeros(self.width)
        if self._stages is None:
            for block in self.numerics:
                out[block.position] = block.scalar(record[block.source])
        else:
            values = np.array([record[name] for name in self._names], dtype=np.float64)
            if self._fills:
                values = np.where(np.isnan(values), self._fill, values)
            for kind, a, b in self._stages:
                values = (values - a) / b if kind == "sub_div" else values * a + b
            out[self._positions] = values
        for block in self.categoricals:
            value = record[block.source]
            landing = block.lookup.get(value) if isinstance(value, str) else None
            if landing is None:
                if is_missing(value):
                    return None
                if block.unseen is None:
                    raise UnknownCategory(block.source, value, block.categories)
                landing = block.unseen
            if block.ordinal:
                out[block.position] = landing
            elif landing >= 0:
                out[block.position + int(landing)] = 1.0
        return out

    def columns(self, frame: pd.DataFrame) -> Columns:
        return Columns(self, frame)

    def linear(self, weights: np.ndarray, bias: float) -> Callable[[Any], float | None]:
        """A function from one record to a linear model's score, in plain Python.

        Every step folds into per-input coefficients and look-up tables, so a record costs
        ~40 multiply-adds and a few dict hits, no arrays. None means "score with the pipeline"
        (a missing category, or a value Python arithmetic cannot take).
        """
        names = [block.source for block in self.numerics]
        coefficients, constant = [], bias
        for block in self.numerics:
            factor, offset = block.affine()
            coefficients.append(float(weights[block.position] * factor))
            constant += float(weights[block.position] * offset)
        fills = [block.fill for block in self.numerics]
        fill_any = any(not math.isnan(fill) for fill in fills)
        tables = []
        for block in self.categoricals:
            def weight(landing: float, block: Categorical = block) -> float:
                if block.ordinal:
                    return float(weights[block.position] * landing)
                return float(weights[block.position + int(landing)]) if landing >= 0 else 0.0
            table = {category: weight(landing) for category, landing in block.lookup.items()}
            unseen = None if block.unseen is None else weight(block.unseen)
            tables.append((block, table, unseen))

        def score(record: Any) -> float | None:
            values = [record[name] for name in names]
            try:
                total = sum(map(operator.mul, values, coefficients), constant)
                if total != total and fill_any:  # NaN: replace missing numbers, as imputed
                    values = [f if v != v else v for v, f in zip(values, fills, strict=True)]
                    total = sum(map(operator.mul, values, coefficients), constant)
            except TypeError:
                return None
            for block, table, unseen in tables:
                value = record[block.source]
                term = table.get(value) if isinstance(value, str) else None
                if term is None:
                    if is_missing(value):
                        return None
                    if unseen is None:
                        raise UnknownCategory(block.source, value, block.categories)
                    term = unseen
                total += term
            return total

        return score

    def numeric_range(self, name: str) -> tuple[float, float]:
        """A plausible centre and spread of a numeric input, for verification samples."""
        block = next(b for b in self.numerics if b.source == name)
        if block.ops:
            op, a, b = block.ops[0]
            if op == "sub_div":
                return a, abs(b) or 1.0
            return (0.5 - b) / a if a else 0.0, abs(0.5 / a) if a else 1.0
        return (0.0 if math.isnan(block.fill) else block.fill), 10.0

    def known_categories(self, name: str) -> list[str]:
        block = next((b for b in self.categoricals if b.source == name), None)
        return [] if block is None else list(block.categories)


def compile_layout(ct: Any, features: list[FeatureSpec]) -> Layout:
    """Read a fitted ColumnTransformer whose inputs are the model's features."""
    if type(ct).__name__ != "ColumnTransformer":
        raise CompileError(f"first pipeline step is {type(ct).__name__}, not a ColumnTransformer")
    kinds = {spec.name: spec.kind for spec in features}
    numerics: list[_Numeric] = []
    categoricals: list[Categorical] = []
    width = 0
    for name, transformer, _ in ct.transformers_:
        if isinstance(transformer, str) and transformer == "drop":
            continue
        names = _input_names(ct, name)
        if not names:
            continue
        unknown = [n for n in names if n not in kinds]
        if unknown:
            raise CompileError(f"pipeline reads columns outside the feature schema: {unknown}")
        steps = _steps(transformer)
        out = ct.output_indices_[name]
        if {kinds[n] for n in names} == {"numeric"}:
            blocks = _numeric_blocks(steps, names, out.start)
            numerics += blocks
            produced = len(blocks)
        elif {kinds[n] for n in names} == {"categorical"}:
            cats = categorical_blocks(steps, names, out.start)
            categoricals += cats
            produced = sum(block.width for block in cats)
        else:
            raise CompileError(f"transformer {name!r} mixes numeric and categorical columns")
        if out.stop - out.start != produced:
            raise CompileError(f"transformer {name!r} output width is not what it was read as")
        width = max(width, out.stop)
    return Layout(width, numerics, categoricals)
