"""The generated numeric telecom export: reproducible, all-numeric, a plausible churn rate."""

from __future__ import annotations

import pandas as pd

from tests.fixtures_tables import numeric_telecom_like


def test_numeric_telecom_like_is_reproducible_by_seed() -> None:
    first, again = numeric_telecom_like(2000, seed=3), numeric_telecom_like(2000, seed=3)
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(numeric_telecom_like(2000, seed=4))


def test_numeric_telecom_like_is_all_numeric_with_a_two_class_target() -> None:
    frame = numeric_telecom_like()
    assert len(frame) == 5000
    assert [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])] == []
    assert frame.notna().all().all()
    assert set(frame["Churn"].unique()) == {0, 1}
    assert 0.1 <= frame["Churn"].mean() <= 0.2
    for plan in ("International plan", "Voice mail plan"):
        assert set(frame[plan].unique()) == {0, 1}
    assert (frame.loc[frame["Voice mail plan"] == 0, "Number vmail messages"] == 0).all()
    assert (frame["Total day charge"] - 0.17 * frame["Total day minutes"]).abs().max() < 0.006


def test_numeric_telecom_like_has_no_id_column() -> None:
    """No column is unique per row, so churnctl keys the rows by their number in the file."""
    frame = numeric_telecom_like(3000, seed=1)
    assert all(frame[c].nunique() < len(frame) for c in frame.columns)
