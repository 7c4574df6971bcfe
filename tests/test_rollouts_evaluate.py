"""Argo's analysis semantics in churnctl's evaluator: conditions, failureLimit, count, interval,
consecutive errors, the run's worst phase and early stop (no Prometheus: a scripted query)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from churnctl.deploy.rollouts.conditions import (
    ConditionError,
    evaluate_condition,
    measurement_phase,
)
from churnctl.deploy.rollouts.evaluate import effective_count, run_analysis


@pytest.mark.parametrize(("condition", "result", "expected"), [
    ("result[0] < 0.05", [0.01], True),
    ("len(result) > 0 && result[0] <= 0.2", [], False),
    ("len(result) > 0 && result[0] <= 0.2", [0.2], True),
    ("!isNaN(result[0]) && result[0] != 1", [float("nan")], False),
    ("result >= 0.9 || result < 0", 0.95, True),
    ("not (result[0] > 1) and asInt(result[0]) == 0", [0.5], True),
])
def test_conditions_as_expr_evaluates_them(condition: str, result: Any, expected: bool) -> None:
    assert evaluate_condition(condition, result) is expected


@pytest.mark.parametrize("condition", ["result[0] < 1", "__import__('os')", "result.real",
                                       "result[0] +", "result[0]"])
def test_unusable_conditions_are_errors(condition: str) -> None:
    with pytest.raises(ConditionError):
        evaluate_condition(condition, [])


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_success_only_failure_only_and_both(value: float) -> None:
    ok = value < 0.5
    assert measurement_phase(value, "result < 0.5", None) == ("Successful" if ok else "Failed")
    assert measurement_phase(value, None, "result >= 0.5") == ("Successful" if ok else "Failed")
    both = measurement_phase(value, "result < 0.2", "result > 0.8")
    assert both == ("Successful" if value < 0.2 else "Failed" if value > 0.8 else "Inconclusive")
    assert measurement_phase(value, None, None) == "Successful"


class Script:
    """A query answering from a list of values; a fake clock that sleep advances."""

    def __init__(self, values: list[Any]) -> None:
        self.values, self.now, self.calls = list(values), 0.0, 0

    def query(self, address: str, query: str) -> Any:
        self.calls += 1
        value = self.values.pop(0)
        if isinstance(value, Exception):
            raise value
        return [value]

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def metric(**extra: Any) -> dict[str, Any]:
    return {"name": "m", "interval": "10s", "count": 3, "successCondition": "result[0] < 1",
            "provider": {"prometheus": {"address": "http://x", "query": "up"}}, **extra}


def run(values: list[Any], **extra: Any) -> tuple[Any, Script]:
    script = Script(values)
    result = run_analysis([metric(**extra)], query=script.query, clock=lambda: script.now,
                          sleep=script.sleep)
    return result, script


def test_count_measurements_interval_apart() -> None:
    result, script = run([0.1, 0.2, 0.3])
    assert result.phase == "Successful" and script.calls == 3
    assert script.now == pytest.approx(20.0)  # three measurements, two intervals


def test_failure_limit_tolerates_that_many_failures() -> None:
    assert run([5, 0.1, 0.1], failureLimit=1)[0].phase == "Successful"
    result, script = run([5, 5, 0.1], failureLimit=1)
    assert result.phase == "Failed" and script.calls == 2  # decided: no third measurement
    assert run([5, 0.1, 0.1])[0].phase == "Failed"  # default failureLimit 0


def test_errors_do_not_count_and_fail_after_the_consecutive_limit() -> None:
    from churnctl.deploy.rollouts.conditions import ConditionError as Boom

    ok, script = run([Boom("down"), 0.1, 0.1, 0.1])
    assert ok.phase == "Successful" and script.calls == 4 and ok.metrics[0].count == 3
    result, script = run([Boom("down")] * 3, consecutiveErrorLimit=2)
    assert result.phase == "Error" and script.calls == 3


def test_no_count_no_interval_is_one_measurement_and_nan_fails() -> None:
    assert effective_count({"name": "m"}) == 1 and effective_count({"interval": "1m"}) is None
    result, _ = run([math.nan], interval=None, count=None)
    assert result.phase == "Failed"


def test_the_run_stops_at_the_first_failed_metric() -> None:
    script = Script([0.1, 5])
    metrics = [metric(name="slow", interval="10s", count=5), metric(name="fast", count=1)]
    result = run_analysis(metrics, query=script.query, clock=lambda: script.now,
                          sleep=script.sleep)
    assert result.phase == "Failed" and script.calls == 2
    assert {m.name: m.phase for m in result.metrics} == {"slow": "Running", "fast": "Failed"}
