"""Outcomes joined to assignments: which customer had the outcome (churned, converted, ...)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from churnctl.ab.assign import canonical_id
from churnctl.ab.report import VariantStats
from churnctl.errors import UserError

_TRUE = {"1", "1.0", "true", "yes", "y"}
_FALSE = {"0", "0.0", "false", "no", "n"}


def read_outcomes(path: Path, id_column: str, outcome_column: str) -> dict[str, int]:
    """customer id (canonical text) -> 0/1; one line naming the file and column on bad input."""
    import pandas as pd

    if not path.is_file():
        raise UserError(f"no outcomes file at {path}")
    try:
        frame = (pd.read_parquet(path) if path.suffix in (".parquet", ".pq")
                 else pd.read_csv(path, dtype=str, keep_default_na=False))
    except (ValueError, OSError) as exc:
        raise UserError(f"{path}: cannot read it as CSV or Parquet: {exc}") from None
    missing = [c for c in (id_column, outcome_column) if c not in frame.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)} (columns: "
                        f"{', '.join(map(str, frame.columns))}); name them with --id-column "
                        "and --outcome-column")
    out: dict[str, int] = {}
    for row, (customer, value) in enumerate(zip(frame[id_column], frame[outcome_column],
                                                strict=True), 2):
        text = str(value).strip().lower()
        if text not in _TRUE | _FALSE:
            raise UserError(f"{path}: line {row}: {outcome_column} is {value!r}; use 0/1 or "
                            "yes/no")
        key = canonical_id(customer)
        if key in out:
            raise UserError(f"{path}: line {row}: customer {key} appears twice")
        out[key] = int(text in _TRUE)
    return out


def variant_stats(assignments: Mapping[str, str], outcomes: Mapping[str, int],
                  weights: Mapping[str, float], path: Path) -> list[VariantStats]:
    unknown = [c for c in outcomes if c not in assignments]
    if unknown:
        raise UserError(f"{path}: {len(unknown)} customer(s) never assigned to a variant (e.g. "
                        f"{', '.join(unknown[:5])}); outcomes must come from the A/B test's "
                        "customers")
    strange = sorted(set(assignments.values()) - set(weights))
    if strange:
        raise UserError(f"the assignment log names variants {strange} the profile does not "
                        f"({', '.join(weights)}); report with the profile that served the test")
    stats = []
    for variant, weight in weights.items():
        members = [c for c, v in assignments.items() if v == variant]
        seen = [outcomes[c] for c in members if c in outcomes]
        stats.append(VariantStats(variant, weight, len(members), len(seen), sum(seen)))
    return stats
