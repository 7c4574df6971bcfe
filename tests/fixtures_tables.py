"""Test-only customer tables and helpers; the public-shape generators live in
churnctl.domain.sample_tables (they back `churnctl data table`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnctl.domain.sample_tables import (  # noqa: F401  (re-exported for the tests)
    _sigmoid,
    bank_like,
    numeric_telecom_like,
    telecom_like,
)


def with_signup_month(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The table as monthly snapshots: a `snapshot` date column to split by time."""
    rng = np.random.default_rng(seed)
    months = pd.date_range("2024-01-31", periods=6, freq="ME")
    out = frame.copy()
    out.insert(1, "snapshot", rng.choice(months.strftime("%Y-%m-%d"), len(frame)))
    return out


def messy_table(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """Every kind of mess a real export has, with a learnable churn column."""
    rng = np.random.default_rng(seed)
    spend = rng.gamma(2.0, 800.0, rows)
    usage = rng.uniform(0, 1, rows)
    logit = 1.5 - 2.5 * usage + 0.0004 * (spend - 1600)
    churn = rng.random(rows) < _sigmoid(logit - 0.5)
    spend_text = np.array([f"{v:,.2f}" for v in spend], dtype=object)  # "1,234.50"
    spend_text[::17] = "   "  # whitespace-only blanks
    return pd.DataFrame({
        "Row": np.arange(1, rows + 1),
        "Customer Name": [f"Customer {i:05d}" for i in range(rows)],
        "Annual Spend": spend_text,
        "Usage": [f"{v:.0%}" for v in usage],  # "37%"
        "Auto Renew": rng.choice(np.array(["YES", "no", "Yes", "No"], dtype=object), rows),
        "Signed Up": pd.date_range("2020-01-01", periods=rows, freq="3D").strftime("%d/%m/%Y"),
        "Region": rng.choice(np.array(["North", "south", "SOUTH", "East"], dtype=object), rows),
        "Country Code": "SE",
        "Notes": "",
        "Churned?": np.where(churn, "Churned", "Stayed"),
    })


# Three folds keep CLI tests to a few seconds; the default for tables is five.
FAST = ("--set", "train.cv_folds=3")


def run_table(root: Path | str, data: Path | str, *args: str) -> Any:
    """`churnctl run --data ... --json` in workspace `root`; click's Result."""
    from typer.testing import CliRunner

    from churnctl.cli.main import app

    return CliRunner().invoke(app, ["run", "--workspace", str(root), "--data", str(data), "--json",
                                    *FAST, *args], catch_exceptions=False)
