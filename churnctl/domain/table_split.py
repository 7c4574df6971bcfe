"""Train/test split of a customer table, and the latest row per customer for scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnctl.errors import DataError


def random_split(table: pd.DataFrame, target: str, test_fraction: float, seed: int,
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified by the target, so both sets keep the churn rate (churn is often rare)."""
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(table, test_size=test_fraction, random_state=seed,
                                   stratify=table[target])
    return train.reset_index(drop=True), test.reset_index(drop=True)


def time_split(table: pd.DataFrame, time: str, test_fraction: float,
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The last `test_fraction` of distinct times are the test set: the model is judged on the
    future it will score, never on customers from the months it learned from."""
    times = np.sort(table[time].unique())
    if len(times) < 2:
        raise DataError(f"column {time} has one distinct value; cannot split by time (omit --time)")
    n_test = min(max(1, round(len(times) * test_fraction)), len(times) - 1)
    cutoff = times[-n_test]
    train, test = table[table[time] < cutoff], table[table[time] >= cutoff]
    return train.reset_index(drop=True), test.reset_index(drop=True)


def latest_rows(table: pd.DataFrame, id_column: str, time: str | None) -> pd.DataFrame:
    """Every customer once: the newest row when the table has several per customer."""
    if time is None:
        return table.reset_index(drop=True)
    return table.sort_values([id_column, time]).drop_duplicates(id_column, keep="last") \
        .reset_index(drop=True)
