"""The latest-snapshot look-up behind `POST /predict {"user_id"}` (serving/lookup.py): a
user's record equals that user's row of the Parquet table, value for value and type for type,
whatever the mix of numbers, categories and missing values."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from churnctl.serving.lookup import FeatureTable

numbers = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=False, width=64),
                    st.integers(-(2**40), 2**40))
categories = st.one_of(st.none(), st.sampled_from(["free", "paid", "", "ünïcode"]))


def _same(got: object, expected: object) -> bool:
    if isinstance(expected, float) and math.isnan(expected):
        return isinstance(got, float) and math.isnan(got)
    return type(got) is type(expected) and got == expected


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.tuples(numbers, numbers, categories), min_size=1, max_size=12),
       order=st.permutations(["a", "b", "plan"]))
def test_a_users_record_is_that_users_row(tmp_path_factory, rows, order) -> None:
    frame = pd.DataFrame(rows, columns=["a", "b", "plan"])
    frame["a"] = frame["a"].astype("float64")
    frame["b"] = pd.array([None if v is None else v for v in frame["b"]], dtype="Float64")
    frame.insert(0, "user_id", [f"u{i}" for i in range(len(frame))])
    frame["as_of"] = pd.Timestamp("2026-11-30")
    path = Path(tmp_path_factory.mktemp("lookup")) / "latest.parquet"
    frame.to_parquet(path)
    table = FeatureTable.read(path)
    names = tuple(order)
    assert table.missing_columns(names) == [] and table.missing_columns(("nope",)) == ["nope"]
    for i, row in enumerate(rows):
        record, as_of = table.get(f"u{i}", names)  # type: ignore[misc]
        assert as_of == "2026-11-30" and set(record) == set(names)
        expected = {"a": np.nan if row[0] is None else float(row[0]),
                    "b": np.nan if row[1] is None else float(row[1]), "plan": row[2]}
        assert all(_same(record[name], expected[name]) for name in names), (record, expected)
        # The batch path reads the same values column-wise.
        for name in ("a", "b"):
            assert _same(float(table.columns[name][i]), expected[name])
    assert table.get("unknown", names) is None
    assert table.get(f"u{len(rows) - 1}", ("plan",))[0] == {"plan": rows[-1][2]}  # type: ignore[index]
