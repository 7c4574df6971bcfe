"""Population Stability Index (PSI) per feature and a two-sample KS test for numeric ones.

PSI = sum over bins of (current% - reference%) * ln(current% / reference%). Numeric bins are
the reference's deciles, so each reference bin holds ~10 % and a shift anywhere in the range
shows up; categorical bins are the reference's categories. Empty bins are floored at EPSILON
so one category that vanished (or appeared) gives a large but finite PSI instead of infinity.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from churnctl.errors import DataError, UserError

EPSILON = 1e-4
MISSING = "(missing)"
OTHER = "(other)"  # rare reference categories, pooled so they do not add noise
NEW = "(new)"  # categories the reference never had
MIN_CATEGORY_SHARE = 0.005
MAX_CATEGORIES = 30
# KS on millions of rows costs a sort per feature and its p-value is ~0 for any visible
# difference anyway; a fixed-seed sample keeps the check fast and deterministic.
KS_MAX_SAMPLE = 50_000
STATUS_ORDER = ("ok", "warn", "fail")


@dataclass(frozen=True)
class Thresholds:
    warn: float = 0.1
    fail: float = 0.25

    def __post_init__(self) -> None:
        if not 0 < self.warn <= self.fail:
            raise UserError(f"PSI thresholds: need 0 < warn <= fail, got warn={self.warn} "
                            f"fail={self.fail}; e.g. --warn 0.1 --fail 0.25")

    def status(self, psi: float) -> str:
        if psi >= self.fail:
            return "fail"
        return "warn" if psi >= self.warn else "ok"


@dataclass
class FeatureDrift:
    """One feature's comparison; `bins` with both sides' shares is what the report plots."""

    name: str
    kind: str  # numeric | categorical
    psi: float
    status: str
    n_reference: int
    n_current: int
    bins: list[str]
    reference_share: list[float]
    current_share: list[float]
    ks_statistic: float | None = None
    ks_pvalue: float | None = None
    reference_mean: float | None = None
    current_mean: float | None = None
    new_categories: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def psi(reference_share: np.ndarray, current_share: np.ndarray) -> float:
    """PSI of two share vectors over the same bins (each sums to 1)."""
    ref = np.maximum(np.asarray(reference_share, dtype=np.float64), EPSILON)
    cur = np.maximum(np.asarray(current_share, dtype=np.float64), EPSILON)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def quantile_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Inner bin edges: the reference's quantiles, duplicates dropped.

    Count features have point masses (many zeros): duplicate quantiles collapse into one bin
    holding the whole mass instead of empty bins that would only add noise.
    """
    values = reference[~np.isnan(reference)]
    if values.size == 0 or bins < 2:
        return np.empty(0)
    return np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else counts.astype(np.float64)


def _edge_labels(edges: np.ndarray) -> list[str]:
    if edges.size == 0:
        return ["all values"]
    text = [f"{e:.4g}" for e in edges]
    return [f"≤ {text[0]}", *(f"({a}, {b}]" for a, b in pairwise(text)),
            f"> {text[-1]}"]


def _as_numbers(series: pd.Series, side: str) -> np.ndarray:
    """Numbers as float64; text (a features CSV) is parsed, junk is an error naming it."""
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    text = series.astype("string").str.strip()
    values = pd.to_numeric(text.replace("", pd.NA), errors="coerce")
    bad = values.isna() & text.notna() & (text != "")
    if bad.any():
        raise DataError(f"{side} data: feature {series.name} expects numbers, found "
                        f"{series[bad].iloc[0]!r}; fix the column or leave it out with --features")
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def numeric_drift(name: str, reference: pd.Series, current: pd.Series, thresholds: Thresholds,
                  bins: int = 10) -> FeatureDrift:
    from scipy.stats import ks_2samp

    ref, cur = _as_numbers(reference, "reference"), _as_numbers(current, "current")
    edges = quantile_edges(ref, bins)
    labels = _edge_labels(edges)

    def counts(values: np.ndarray) -> np.ndarray:
        present = values[~np.isnan(values)]
        found = np.bincount(np.searchsorted(edges, present, side="left"), minlength=edges.size + 1)
        return np.append(found, np.isnan(values).sum())

    ref_counts, cur_counts = counts(ref), counts(cur)
    if ref_counts[-1] == 0 and cur_counts[-1] == 0:  # no missing values on either side
        ref_counts, cur_counts = ref_counts[:-1], cur_counts[:-1]
    else:
        labels = [*labels, MISSING]
    ref_share, cur_share = _shares(ref_counts), _shares(cur_counts)
    value = psi(ref_share, cur_share)
    ref_present, cur_present = _sample(ref[~np.isnan(ref)]), _sample(cur[~np.isnan(cur)])
    ks_stat = ks_p = None
    if ref_present.size and cur_present.size:
        test = ks_2samp(ref_present, cur_present)
        ks_stat, ks_p = float(test.statistic), float(test.pvalue)
    return FeatureDrift(
        name=name, kind="numeric", psi=round(value, 6), status=thresholds.status(value),
        n_reference=int(ref.size), n_current=int(cur.size), bins=labels,
        reference_share=_rounded(ref_share), current_share=_rounded(cur_share),
        ks_statistic=ks_stat, ks_pvalue=ks_p,
        reference_mean=_mean(ref), current_mean=_mean(cur),
    )


def categorical_drift(name: str, reference: pd.Series, current: pd.Series,
                      thresholds: Thresholds) -> FeatureDrift:
    ref = _categories(reference)
    cur = _categories(current)
    ref_share_all = ref.value_counts(normalize=True)
    kept = [c for c, share in ref_share_all.items() if share >= MIN_CATEGORY_SHARE][:MAX_CATEGORIES]
    known = set(ref_share_all.index)
    new = sorted(set(cur.unique()) - known)

    def bucket(values: pd.Series) -> pd.Series:
        pooled = values.where(values.isin(kept), OTHER)
        return pooled.where(values.isin(known), NEW)

    labels = [*kept, *([OTHER] if len(kept) < len(known) else []), *([NEW] if new else [])]
    ref_share = bucket(ref).value_counts(normalize=True).reindex(labels, fill_value=0.0)
    cur_share = bucket(cur).value_counts(normalize=True).reindex(labels, fill_value=0.0)
    value = psi(ref_share.to_numpy(), cur_share.to_numpy())
    return FeatureDrift(
        name=name, kind="categorical", psi=round(value, 6), status=thresholds.status(value),
        n_reference=int(ref.size), n_current=int(cur.size), bins=[str(b) for b in labels],
        reference_share=_rounded(ref_share.to_numpy()),
        current_share=_rounded(cur_share.to_numpy()),
        new_categories=[str(c) for c in new[:20]],
    )


def _categories(series: pd.Series) -> pd.Series:
    """Categories as stripped strings; blanks and nulls become one `(missing)` category."""
    text = series.astype("string").str.strip()
    return text.mask(text.isna() | (text == ""), MISSING).astype(str)


def _sample(values: np.ndarray) -> np.ndarray:
    if values.size <= KS_MAX_SAMPLE:
        return values
    return np.random.default_rng(0).choice(values, KS_MAX_SAMPLE, replace=False)


def _mean(values: np.ndarray) -> float | None:
    present = values[~np.isnan(values)]
    return round(float(present.mean()), 6) if present.size else None


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in values]


def check_columns(frame: pd.DataFrame, features: list[str], side: str) -> None:
    """Every feature the check names must exist: a missing column is an error, never skipped."""
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise DataError(f"{side} data has no column(s) {', '.join(missing)}; it has "
                        f"{', '.join(map(str, frame.columns[:40]))}")
    if frame.empty:
        raise DataError(f"{side} data has no rows; nothing to compare")


def compare(reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str],
            categorical: list[str], thresholds: Thresholds, bins: int = 10) -> list[FeatureDrift]:
    """Drift of each feature, numeric first then categorical, in the order given."""
    names = [*numeric, *categorical]
    check_columns(reference, names, "reference")
    check_columns(current, names, "current")
    results = [numeric_drift(n, reference[n], current[n], thresholds, bins) for n in numeric]
    results += [categorical_drift(n, reference[n], current[n], thresholds) for n in categorical]
    return results


def overall_status(results: list[FeatureDrift]) -> str:
    worst = max((STATUS_ORDER.index(r.status) for r in results), default=0)
    return STATUS_ORDER[worst]
