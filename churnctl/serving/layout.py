"""A fitted ColumnTransformer read into plain tables: which input goes to which output column.

Supported steps (anything else raises CompileError and the caller uses the pipeline itself):
numeric columns through SimpleImputer, StandardScaler, RobustScaler, MaxAbsScaler, MinMaxScaler
(no clip) or passthrough; categorical columns through an optional SimpleImputer and then a
OneHotEncoder or OrdinalEncoder without infrequent-category grouping. The arithmetic is the
same as sklearn's ((x - a) / b or x * a + b, in that order) so results match to the last bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from churnctl.domain.model import FeatureSpec


class CompileError(Exception):
    """The pipeline has a step the fast path does not reproduce."""


class UnknownCategory(ValueError):
    """A category the model never saw, for an encoder that rejects unseen ones."""

    def __init__(self, feature: str, value: Any, known: list[str]) -> None:
        shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
        super().__init__(f"unknown category {value!r} for feature {feature!r} (known: {shown})")
        self.feature = feature
        self.value = value


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


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


@dataclass
class _Categorical:
    source: str
    position: int
    categories: list[str]
    ordinal: bool  # ordinal: one output column holding the code; else one-hot columns
    strict: bool  # unseen categories are an error rather than all-zeros / unknown_value
    unknown_value: float = math.nan
    offsets: dict[str, int] = field(default_factory=dict)  # category -> output column offset
    width: int = 1

    def code_table(self) -> np.ndarray:
        """Output offset (one-hot, -1 when dropped) or value (ordinal) per category code."""
        if self.ordinal:
            return np.arange(len(self.categories), dtype=np.float64)
        return np.array([self.offsets.get(c, -1) for c in self.categories], dtype=np.int64)


def _steps(transformer: Any) -> list[Any]:
    if isinstance(transformer, str):
        if transformer == "passthrough":
            return []
        raise CompileError(f"unsupported column transformer {transformer!r}")
    return [step for _, step in transformer.steps] if hasattr(transformer, "steps") else [transformer]


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
        if kind == "SimpleImputer":
            if blocks and blocks[0].ops:
                raise CompileError("SimpleImputer after a scaler")
            for block, stat in zip(blocks, _imputer_fill(step, len(blocks)), strict=True):
                if _missing(stat) and not getattr(step, "keep_empty_features", False):
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
            pairs = [("mul_add", float(s), float(m)) for s, m in zip(step.scale_, step.min_, strict=True)]
        else:
            raise CompileError(f"unsupported numeric step {kind}")
        for block, pair in zip(blocks, pairs, strict=True):
            block.ops.append(pair)
    return blocks


def _categorical_blocks(steps: list[Any], names: list[str], start: int) -> list[_Categorical]:
    *before, encoder = steps or [None]
    for step in before:
        # Imputation only changes missing inputs, and rows with a missing category are scored
        # by the pipeline itself (see Scorer), so an imputer in front changes nothing here.
        if type(step).__name__ != "SimpleImputer":
            raise CompileError(f"unsupported categorical step {type(step).__name__}")
        _imputer_fill(step, len(names))
    kind = type(encoder).__name__
    if kind not in ("OneHotEncoder", "OrdinalEncoder"):
        raise CompileError(f"unsupported categorical encoder {kind}")
    if getattr(encoder, "_infrequent_enabled", False):
        raise CompileError(f"{kind} groups infrequent categories")
    blocks, position = [], start
    drops = getattr(encoder, "drop_idx_", None)
    for i, (name, cats) in enumerate(zip(names, encoder.categories_, strict=True)):
        known = [c for c in cats if not _missing(c)]
        if not all(isinstance(c, str) for c in known):
            raise CompileError(f"categories of {name!r} are not strings")
        if kind == "OrdinalEncoder":
            strict = encoder.handle_unknown != "use_encoded_value"
            unknown = math.nan if strict else float(encoder.unknown_value)
            blocks.append(_Categorical(name, position, list(cats), True, strict, unknown))
            position += 1
            continue
        dropped = None if drops is None or drops[i] is None else int(drops[i])
        offsets, width = {}, 0
        for code, cat in enumerate(cats):
            if code != dropped:
                if isinstance(cat, str):
                    offsets[cat] = width
                width += 1
        strict = encoder.handle_unknown == "error"
        blocks.append(_Categorical(name, position, list(cats), False, strict,
                                   offsets=offsets, width=width))
        position += width
    return blocks


def _input_names(ct: Any, name: str) -> list[str]:
    indices = getattr(ct, "_transformer_to_input_indices", {}).get(name)
    names_in = getattr(ct, "feature_names_in_", None)
    if indices is None or names_in is None:
        raise CompileError("ColumnTransformer was not fitted on named DataFrame columns")
    return [str(names_in[i]) for i in indices]


def category_codes(column: pd.Series, categories: list[Any]) -> np.ndarray:
    """Position of each value in `categories`; -1 for unseen or missing values.

    Arrow's hash look-up (pyarrow ships with pandas here) is ~5x faster than pandas for strings
    and, unlike pd.Categorical(values, categories=...), has no deprecation for unseen values.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column.dtype, pd.CategoricalDtype):
        own = [categories.index(c) if c in categories else -1 for c in column.cat.categories]
        return np.append(np.array(own, dtype=np.int64), -1)[column.cat.codes.to_numpy()]
    try:
        values = pa.array(column, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ValueError(f"categorical feature column {column.name!r} is not text: {exc}") from exc
    if pa.types.is_null(values.type):
        return np.full(len(column), -1, dtype=np.int64)
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        raise ValueError(f"categorical feature column {column.name!r} holds {values.type}, not text")
    known = [c for c in categories if isinstance(c, str)]
    found = pc.index_in(values, value_set=pa.array(known, type=values.type))
    index = pc.fill_null(found, -1).to_numpy().astype(np.int64)
    positions = np.array([categories.index(c) for c in known] + [-1], dtype=np.int64)
    return positions[index]


class Columns:
    """The inputs of a frame as arrays: raw numeric columns and category codes."""

    def __init__(self, layout: Layout, frame: pd.DataFrame) -> None:
        self.layout = layout
        self.rows = len(frame)
        self.numeric = {}
        for block in layout.numerics:
            try:
                self.numeric[block.source] = frame[block.source].to_numpy(np.float64, na_value=np.nan)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"feature column {block.source!r} is not numeric: {exc}") from exc
        self.codes, self.missing = {}, np.zeros(self.rows, dtype=bool)
        for block in layout.categoricals:
            column = frame[block.source]
            missing = column.isna().to_numpy()
            codes = category_codes(column, block.categories)
            unseen = (codes < 0) & ~missing
            if block.strict and unseen.any():
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
            table = block.code_table()
            if block.ordinal:
                values = np.append(table, block.unknown_value) * weights[block.position]
            else:
                values = np.append(np.where(table >= 0, weights[block.position + table], 0.0), 0.0)
            total += values[self.codes[block.source]]  # code -1 (unseen) picks the last entry
        return total + constant

    def dense(self, start: int, stop: int) -> np.ndarray:
        matrix = np.zeros((stop - start, self.layout.width))
        for block in self.layout.numerics:
            matrix[:, block.position] = block.vector(self.numeric[block.source][start:stop])
        for block in self.layout.categoricals:
            codes = self.codes[block.source][start:stop]
            table = block.code_table()
            if block.ordinal:
                matrix[:, block.position] = np.append(table, block.unknown_value)[codes]
                continue
            offsets = np.append(table, -1)[codes]
            rows = np.nonzero(offsets >= 0)[0]
            matrix[rows, block.position + offsets[rows]] = 1.0
        return matrix


@dataclass
class Layout:
    width: int
    numerics: list[_Numeric]
    categoricals: list[_Categorical]

    def row(self, record: Any) -> list[float]:
        """One record (feature name -> value) as the pipeline's numeric output row."""
        out = [0.0] * self.width
        for block in self.numerics:
            out[block.position] = block.scalar(record[block.source])
        for block in self.categoricals:
            value = record[block.source]
            if block.ordinal:
                if value in block.categories:
                    out[block.position] = float(block.categories.index(value))
                elif block.strict:
                    raise UnknownCategory(block.source, value, block.categories)
                else:
                    out[block.position] = block.unknown_value
                continue
            offset = block.offsets.get(value)
            if offset is not None:
                out[block.position + offset] = 1.0
            elif block.strict:
                raise UnknownCategory(block.source, value, block.categories)
        return out

    def columns(self, frame: pd.DataFrame) -> Columns:
        return Columns(self, frame)

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
        return [] if block is None else [c for c in block.categories if isinstance(c, str)]


def compile_layout(ct: Any, features: list[FeatureSpec]) -> Layout:
    """Read a fitted ColumnTransformer whose inputs are the model's features."""
    if type(ct).__name__ != "ColumnTransformer":
        raise CompileError(f"first pipeline step is {type(ct).__name__}, not a ColumnTransformer")
    kinds = {spec.name: spec.kind for spec in features}
    numerics: list[_Numeric] = []
    categoricals: list[_Categorical] = []
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
            cats = _categorical_blocks(steps, names, out.start)
            categoricals += cats
            produced = sum(block.width for block in cats)
        else:
            raise CompileError(f"transformer {name!r} mixes numeric and categorical columns")
        if out.stop - out.start != produced:
            raise CompileError(f"transformer {name!r} output width is not what it was read as")
        width = max(width, out.stop)
    return Layout(width, numerics, categoricals)
