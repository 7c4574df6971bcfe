"""A/B domain logic: sticky hash assignment, and the report on simulated outcomes with a known
effect (found) and none (false positives at the stated rate), SRM, the horizon, bad files."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from churnctl.ab.assign import assign, bucket
from churnctl.ab.outcomes import read_outcomes, variant_stats
from churnctl.ab.report import build_report, required_sample_size
from churnctl.errors import UserError

WEIGHTS = {"champion": 0.5, "challenger": 0.5}
PLAN = {"alpha": 0.05, "power": 0.8, "mde": 0.03, "baseline": 0.35}


@given(st.one_of(st.integers(), st.text(min_size=1)), st.text(min_size=1))
def test_assignment_is_deterministic(customer: object, salt: str) -> None:
    first = assign(customer, {"champion": 0.9, "challenger": 0.1}, salt)
    assert first == assign(customer, {"champion": 0.9, "challenger": 0.1}, salt)
    assert 0 <= bucket(customer, salt) < 1


def test_the_same_customer_in_any_spelling_gets_one_variant() -> None:
    for customer in range(200):
        spelled = {assign(v, WEIGHTS, "s") for v in (customer, str(customer), float(customer),
                                                      f" {customer} ")}
        assert len(spelled) == 1


def test_shares_follow_the_weights_and_a_new_salt_reshuffles() -> None:
    weights = {"champion": 0.9, "challenger": 0.1}
    n = 20_000
    chosen = [assign(i, weights, "exp-1") for i in range(n)]
    share = chosen.count("challenger") / n
    assert abs(share - 0.1) < 4 * (0.1 * 0.9 / n) ** 0.5
    moved = sum(a != assign(i, weights, "exp-2") for i, a in enumerate(chosen))
    assert moved > 0.1 * n  # independent draws: ~18% change variant


def simulate(rates: dict[str, float], n: int, seed: int, weights: dict[str, float] = WEIGHTS,
             salt: str = "sim") -> tuple[dict[str, str], dict[str, int]]:
    rng = random.Random(seed)
    assignments = {str(i): assign(i, weights, f"{salt}-{seed}") for i in range(n)}
    outcomes = {c: int(rng.random() < rates[v]) for c, v in assignments.items()}
    return assignments, outcomes


def report(assignments: dict[str, str], outcomes: dict[str, int],
           weights: dict[str, float] = WEIGHTS) -> Any:
    stats = variant_stats(assignments, outcomes, weights, Path("outcomes.csv"))
    return build_report(stats, control="champion", **PLAN)


def test_a_known_effect_is_found() -> None:
    needed = required_sample_size(0.35, 0.03, 0.05, 0.8)
    assert 3_000 < needed < 5_000  # about 4,000 per arm for 35% -> 32%
    result = report(*simulate({"champion": 0.35, "challenger": 0.30}, 2 * needed + 2_000, 1))
    (comparison,) = result.comparisons
    assert comparison.significant and comparison.ci_high < 0
    assert comparison.ci_low < -0.05 < comparison.ci_high
    assert result.verdict == "challenger lower than champion"


def test_no_effect_gives_false_positives_at_about_alpha() -> None:
    runs, positives = 200, 0
    for seed in range(runs):
        result = report(*simulate({"champion": 0.35, "challenger": 0.35}, 9_000, seed))
        assert result.verdict != "not yet" and result.verdict != "blocked"
        positives += result.comparisons[0].significant
    # 5% expected; 3 sigma of a binomial(200, 0.05) is ~9 runs.
    assert positives <= 0.05 * runs + 3 * (runs * 0.05 * 0.95) ** 0.5


def test_no_verdict_before_the_horizon() -> None:
    result = report(*simulate({"champion": 0.35, "challenger": 0.20}, 1_000, 3))
    assert result.comparisons[0].significant  # looks like a win, but it is too early
    assert result.verdict == "not yet"
    assert "horizon not reached" in result.notes[0]


def test_sample_ratio_mismatch_blocks_the_verdict() -> None:
    assignments, outcomes = simulate({"champion": 0.35, "challenger": 0.30}, 12_000, 4)
    lost = [c for c, v in assignments.items() if v == "challenger"][::10]  # 10% not logged
    for customer in lost:
        del assignments[customer], outcomes[customer]
    result = report(assignments, outcomes)
    assert result.srm_p_value < 0.001 and result.verdict == "blocked"
    assert report(*simulate({"champion": 0.35, "challenger": 0.30}, 12_000, 4)).srm_p_value > 0.001


def test_outcome_files_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.csv"
    path.write_text("user_id,churned\n1,yes\n2,0\n")
    assert read_outcomes(path, "user_id", "churned") == {"1": 1, "2": 0}
    with pytest.raises(UserError, match=r"missing column\(s\) outcome \(columns: user_id, "
                                         r"churned\)"):
        read_outcomes(path, "user_id", "outcome")
    path.write_text("user_id,churned\n1,maybe\n")
    with pytest.raises(UserError, match="line 2: churned is 'maybe'"):
        read_outcomes(path, "user_id", "churned")
    with pytest.raises(UserError, match=r"1 customer.s. never assigned"):
        variant_stats({"2": "champion"}, {"1": 1, "2": 0}, WEIGHTS, path)
