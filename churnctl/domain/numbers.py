"""One rule for numbers no measurement produces: infinities and magnitudes whose squares
overflow float64 (a scaler's variance, a window sum) are refused at ingest, whatever their
spelling (`inf`, `1e999`, `1e308`, an IEEE infinity in a Parquet file)."""

from __future__ import annotations

import pandas as pd

MAX_ABS = 1e100  # squares stay finite (1e200) with room for sums over many rows


def implausible(values: pd.Series) -> pd.Series:
    """True where a parsed number is infinite or beyond +-MAX_ABS (NaN is not implausible)."""
    magnitude = values.abs()
    return magnitude.notna() & ~(magnitude <= MAX_ABS)
