"""`churnctl ab report`: per-variant outcome rates, the difference and its test, SRM, horizon.

Design: a fixed-horizon test. The sample size per variant comes from the minimum detectable
effect (MDE) before any data is looked at; until every variant has that many customers with
an outcome there is no verdict (looking early and stopping at the first p < alpha inflates
false positives far above alpha). The sample-ratio-mismatch (SRM) check compares the assigned
counts with the configured weights; a p-value below 0.001 means the assignment or the logging
is broken, and no verdict is given whatever the outcome test says.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SRM_ALPHA = 0.001


@dataclass
class VariantStats:
    variant: str
    weight: float
    assigned: int
    with_outcome: int
    outcomes: int

    @property
    def rate(self) -> float:
        return self.outcomes / self.with_outcome if self.with_outcome else float("nan")


@dataclass
class Comparison:
    variant: str
    control: str
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    significant: bool


@dataclass
class AbReport:
    variants: list[VariantStats]
    comparisons: list[Comparison]
    srm_p_value: float
    required_per_variant: int
    alpha: float
    mde: float
    verdict: str
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for row, stats in zip(out["variants"], self.variants, strict=True):
            row["rate"] = stats.rate
        return out


def required_sample_size(baseline: float, mde: float, alpha: float, power: float,
                         ratio: float = 1.0) -> int:
    """Customers per control group to detect an absolute change of `mde` from `baseline`."""
    import math

    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    target = min(max(baseline + mde, 1e-6), 1 - 1e-6)
    effect = abs(proportion_effectsize(target, baseline))
    n = NormalIndPower().solve_power(effect_size=effect, alpha=alpha, power=power, ratio=ratio,
                                     alternative="two-sided")
    return math.ceil(n)


def srm_p_value(assigned: list[int], weights: list[float]) -> float:
    from scipy.stats import chisquare

    total = sum(assigned)
    if total == 0:
        return 1.0
    expected = [w * total for w in weights]
    return float(chisquare(assigned, f_exp=expected).pvalue)


def compare(variant: VariantStats, control: VariantStats, alpha: float) -> Comparison:
    from statsmodels.stats.proportion import (
        confint_proportions_2indep,
        test_proportions_2indep,
    )

    counts = (variant.outcomes, variant.with_outcome, control.outcomes, control.with_outcome)
    test = test_proportions_2indep(*counts, method="wald", compare="diff")
    low, high = confint_proportions_2indep(*counts, method="wald", compare="diff", alpha=alpha)
    p_value = float(test.pvalue)
    return Comparison(variant.variant, control.variant, variant.rate - control.rate,
                      float(low), float(high), p_value, p_value < alpha)


def build_report(stats: list[VariantStats], *, control: str, alpha: float, power: float,
                 mde: float, baseline: float) -> AbReport:
    """The report; `stats` in the profile's variant order, `control` the champion."""
    by_name = {s.variant: s for s in stats}
    champion = by_name[control]
    srm = srm_p_value([s.assigned for s in stats], [s.weight for s in stats])
    smallest = min(stats, key=lambda s: s.weight)
    # Unequal weights: the horizon is set by the smallest arm against the control.
    required = required_sample_size(baseline, mde, alpha, power,
                                    ratio=champion.weight / smallest.weight)
    required_small = int(required * smallest.weight / champion.weight + 0.999999)
    comparisons = [compare(s, champion, alpha) for s in stats
                   if s.variant != control and s.with_outcome and champion.with_outcome]
    notes: list[str] = []
    if srm < SRM_ALPHA:
        verdict = "blocked"
        notes.append(f"sample ratio mismatch: assigned counts do not match the weights "
                     f"(p = {srm:.2g} < {SRM_ALPHA}); check the assignment and the log")
    elif champion.with_outcome < required or smallest.with_outcome < required_small:
        verdict = "not yet"
        notes.append(f"horizon not reached: {champion.with_outcome:,} of {required:,} "
                     f"{control} customers and {smallest.with_outcome:,} of "
                     f"{required_small:,} {smallest.variant} customers have an outcome")
    elif any(c.significant for c in comparisons):
        verdict = "; ".join(f"{c.variant} {'higher' if c.difference > 0 else 'lower'} than "
                            f"{control}" for c in comparisons if c.significant)
    else:
        verdict = f"no difference detected at alpha {alpha:g}"
    return AbReport(stats, comparisons, srm, required, alpha, mde, verdict, notes)
