"""The AnalysisTemplates of a churnctl canary: HTTP health and model health, as PromQL.

Canary and stable pods are told apart by the `rollouts-pod-template-hash` label Argo Rollouts
puts on every pod (Prometheus sees it as `rollouts_pod_template_hash`: the PodMonitor's
podTargetLabels). The hashes come in as template args filled by Argo itself
(`valueFrom.podTemplateHashValue: Latest | Stable`), so one template serves an image canary
and a model canary alike, and no metric needs a per-version label.

Model health compares the canary's distribution of churn probabilities with the stable pods'
over the same window, from the API's histogram `churn_prediction_probability`:
- PSI over the histogram's bins (each bin's share is the difference of two cumulative buckets);
- the change in the share of high-risk predictions (probability above a bucket bound).
"""

from __future__ import annotations

from typing import Any

from churnctl.deploy.rollouts import ROLLOUTS_API

HASH_LABEL = "rollouts_pod_template_hash"
CANARY_ARG, STABLE_ARG = "canary-hash", "stable-hash"
HTTP_TEMPLATE, MODEL_TEMPLATE = "churnctl-canary-http", "churnctl-canary-model"
PREDICT_HANDLERS = "/predict|/predict/batch"
# The bucket bounds of churn_prediction_probability (churnctl.serving.metrics), as exposed.
PROBABILITY_BOUNDS = ("0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1.0")
# A bin with no predictions would make PSI infinite: shares are floored at this.
PSI_FLOOR = 0.0001


def _arg(name: str) -> str:
    return "{{args." + name + "}}"


def _sum_increase(metric: str, selector: str, window: str) -> str:
    return f"sum(increase({metric}{{{selector}}}[{window}]))"


def _pods(arg: str) -> str:
    return f'{HASH_LABEL}="{_arg(arg)}"'


def error_ratio_query(window: str, arg: str = CANARY_ARG) -> str:
    """5xx answers over all answers of the prediction endpoints; 0 when there were no 5xx."""
    base = f'{_pods(arg)}, handler=~"{PREDICT_HANDLERS}"'
    errors = _sum_increase("churn_http_requests_total", f'{base}, status=~"5.."', window)
    total = _sum_increase("churn_http_requests_total", base, window)
    return f"({errors} or vector(0)) / {total}"


def p95_latency_query(window: str, arg: str = CANARY_ARG) -> str:
    selector = f'{_pods(arg)}, handler=~"{PREDICT_HANDLERS}"'
    return (
        "histogram_quantile(0.95, sum by (le) "
        f"(rate(churn_http_request_duration_seconds_bucket{{{selector}}}[{window}])))"
    )


def _bucket(le: str, arg: str, window: str) -> str:
    return _sum_increase("churn_prediction_probability_bucket", f'{_pods(arg)}, le="{le}"', window)


def _bin_share(index: int, arg: str, window: str) -> str:
    """Share of predictions in bin `index` (between bound index-1 and bound index)."""
    upper = _bucket(PROBABILITY_BOUNDS[index], arg, window)
    count = _sum_increase("churn_prediction_probability_count", _pods(arg), window)
    if index == 0:
        return f"clamp_min({upper} / {count}, {PSI_FLOOR})"
    lower = _bucket(PROBABILITY_BOUNDS[index - 1], arg, window)
    return f"clamp_min(({upper} - {lower}) / {count}, {PSI_FLOOR})"


def score_psi_query(window: str) -> str:
    """PSI of the canary's score distribution against the stable one: sum (c-s)*ln(c/s)."""
    terms = []
    for index in range(len(PROBABILITY_BOUNDS)):
        canary = _bin_share(index, CANARY_ARG, window)
        stable = _bin_share(index, STABLE_ARG, window)
        terms.append(f"(({canary} - {stable}) * ln({canary} / {stable}))")
    return " + ".join(terms)


def high_risk_shift_query(window: str, threshold: str) -> str:
    """|canary share above threshold - stable share above threshold|."""
    if threshold not in PROBABILITY_BOUNDS:
        raise ValueError(f"high-risk threshold {threshold} is not a bucket bound: use one of "
                         + ", ".join(PROBABILITY_BOUNDS[:-1]))

    def at_or_below(arg: str) -> str:
        count = _sum_increase("churn_prediction_probability_count", _pods(arg), window)
        return f"({_bucket(threshold, arg, window)} / {count})"

    return f"abs({at_or_below(STABLE_ARG)} - {at_or_below(CANARY_ARG)})"


def _metric(name: str, query: str, condition: str, analysis: Any, address: str) -> dict[str, Any]:
    return {
        "name": name,
        "interval": analysis.interval,
        "count": analysis.count,
        "failureLimit": analysis.failure_limit,
        # Argo: with a vector result, `result` is the list of sample values.
        "successCondition": condition,
        "provider": {"prometheus": {"address": address, "query": query}},
    }


def _template(name: str, metrics: list[dict[str, Any]], args: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": ROLLOUTS_API,
        "kind": "AnalysisTemplate",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/name": "churnctl",
                       "app.kubernetes.io/component": "canary-analysis"},
        },
        "spec": {"args": [{"name": arg} for arg in args], "metrics": metrics},
    }


def analysis_templates(analysis: Any, namespace: str | None = None) -> list[dict[str, Any]]:
    """The two templates (HTTP health, model health) with the profile's thresholds."""
    window, address = analysis.window, analysis.prometheus_address
    http = [
        _metric("error-ratio", error_ratio_query(window),
                f"len(result) > 0 && result[0] <= {analysis.max_error_ratio}", analysis, address),
        _metric("p95-latency", p95_latency_query(window),
                f"len(result) > 0 && result[0] <= {analysis.max_p95_latency_seconds}",
                analysis, address),
    ]
    model = [
        _metric("score-psi", score_psi_query(window),
                f"len(result) > 0 && result[0] <= {analysis.max_score_psi}", analysis, address),
        _metric("high-risk-shift", high_risk_shift_query(window, analysis.high_risk_threshold),
                f"len(result) > 0 && result[0] <= {analysis.max_high_risk_shift}",
                analysis, address),
    ]
    templates = [_template(HTTP_TEMPLATE, http, [CANARY_ARG]),
                 _template(MODEL_TEMPLATE, model, [CANARY_ARG, STABLE_ARG])]
    if namespace:
        for template in templates:
            template["metadata"]["namespace"] = namespace
    return templates


def analysis_step() -> dict[str, Any]:
    """A canary step running both templates, with the pod hashes Argo fills in."""
    return {
        "analysis": {
            "templates": [{"templateName": HTTP_TEMPLATE}, {"templateName": MODEL_TEMPLATE}],
            "args": [
                {"name": CANARY_ARG, "valueFrom": {"podTemplateHashValue": "Latest"}},
                {"name": STABLE_ARG, "valueFrom": {"podTemplateHashValue": "Stable"}},
            ],
        }
    }


def resolve_args(template: dict[str, Any], args: dict[str, str]) -> list[dict[str, Any]]:
    """The template's metrics with `{{args.X}}` replaced, as the controller does for a run."""
    import copy

    declared = {a["name"] for a in template["spec"].get("args") or []}
    missing = declared - set(args)
    if missing:
        raise ValueError(f"{template['metadata']['name']}: no value for args {sorted(missing)}")
    metrics = copy.deepcopy(template["spec"]["metrics"])
    for metric in metrics:
        query = metric["provider"]["prometheus"]["query"]
        for name, value in args.items():
            query = query.replace(_arg(name), value)
        metric["provider"]["prometheus"]["query"] = query
    return metrics
