"""The promotion gate: the one rule every trainer uses to decide whether a candidate replaces
production.

A candidate is promoted only when it beats production on the same test data by the margin,
and by more than noise: with per-row scores of both models, the candidate-minus-production
difference gets a paired bootstrap interval on those rows (domain/bootstrap.py) and only its
lower bound counts. Without per-row scores the point difference decides.
A gate that cannot compare (production needs columns this data lacks, a metric is missing)
keeps production and says why; only an explicit override (`churnctl run --promote`) replaces
production without a comparison. Never promote by accident: there is no exception path here
that promotes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

LOWER_IS_BETTER = frozenset({"brier", "log_loss"})


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    compared: bool  # both models were scored on the same rows
    metric: str
    margin: float
    candidate: dict[str, float] = field(default_factory=dict)
    production: dict[str, float] | None = None
    production_version: int | None = None
    overridden: bool = False  # promoted by an explicit override, not by the gate
    interval: dict[str, Any] | None = None  # the paired bootstrap Interval, when computed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def improvement(candidate: float, production: float, metric: str) -> float:
    """How much better the candidate is (positive = better), whatever the metric's direction."""
    return production - candidate if metric in LOWER_IS_BETTER else candidate - production


def decide(metric: str, margin: float, candidate: dict[str, float],
           production: dict[str, float] | None, production_version: int | None,
           cannot_compare: str | None = None, override: bool = False,
           interval: dict[str, Any] | None = None) -> Decision:
    """The gate. `production` is None when there is no production model; `cannot_compare`
    names why the two could not be scored on the same data; `interval` is the paired bootstrap
    interval of the difference (an Interval as a dict), which then decides."""
    frame = {"metric": metric, "margin": margin, "candidate": candidate,
             "production": production, "production_version": production_version}
    if production_version is None:
        return Decision(True, "first model: promoted", False, **frame)
    why_not = cannot_compare or _missing_metric(metric, candidate, production)
    if why_not is not None:
        if override:
            return Decision(True, f"promoted by --promote without a comparison ({why_not})",
                            False, overridden=True, **frame)
        return Decision(False, f"kept production v{production_version}: cannot compare "
                        f"({why_not}); pass --promote to replace it anyway", False, **frame)
    assert production is not None
    ours, theirs = candidate[metric], production[metric]
    gain = improvement(ours, theirs, metric)
    if interval is None:
        promote = gain >= margin  # "by at least the margin"
        noise = ""
    else:
        # Strictly above: two equal models have an interval of exactly [0, 0].
        promote = interval["lower"] > margin
        noise = (f", difference {interval['difference']:+.4f}, {interval['level']:.0%} "
                 f"interval {interval['lower']:+.4f}..{interval['upper']:+.4f} over "
                 f"{interval['rows']:,} rows; lower bound "
                 f"{'above' if promote else 'not above'} the margin")
    verdict = "promoted" if promote else "kept production"
    reason = (f"{metric} {ours:.4f} vs production v{production_version} {theirs:.4f} on the "
              f"same test data (margin {margin}{noise}): {verdict}")
    frame["interval"] = interval
    if override and not promote:
        return Decision(True, f"{reason}; promoted by --promote", True, overridden=True, **frame)
    return Decision(promote, reason, True, **frame)


def _missing_metric(metric: str, candidate: dict[str, float],
                    production: dict[str, float] | None) -> str | None:
    for who, scores in (("candidate", candidate), ("production", production or {})):
        value = scores.get(metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return f"the {who} has no {metric}"
    return None
