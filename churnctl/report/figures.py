"""Plotly figures of the report, each built from the report numbers and nothing else.

Data go in as plain lists (never numpy arrays, which plotly would base64-encode), so the
figure JSON in the page holds the very numbers of the run record and tests can compare them.
"""

from __future__ import annotations

from typing import Any

MODEL_COLOUR = "#1f77b4"
REFERENCE_COLOUR = "#9e9e9e"
INCUMBENT_COLOUR = "#ff7f0e"


def _layout(fig: Any, title: str, x: str, y: str, **extra: Any) -> Any:
    # A plain look set directly: plotly's named templates deep-copy ~10 KB per figure,
    # which was most of the time a report took to render.
    axis = {"gridcolor": "#e5e5e5", "zerolinecolor": "#cccccc", "linecolor": "#999999"}
    settings = {"height": 420, "margin": {"l": 60, "r": 20, "t": 60, "b": 50},
                "legend": {"orientation": "h", "y": -0.2}, "template": "none",
                "paper_bgcolor": "white", "plot_bgcolor": "white",
                "font": {"family": "system-ui, sans-serif", "size": 12}, **extra}
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, **settings)
    fig.update_xaxes(**axis)
    fig.update_yaxes(**axis)
    return fig


def roc(numbers: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    data = numbers["roc"]
    fig = go.Figure([
        go.Scatter(x=data["fpr"], y=data["tpr"], mode="lines",
                   name=f"model (AUC {data['auc']:.3f})", line={"color": MODEL_COLOUR}),
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="random",
                   line={"color": REFERENCE_COLOUR, "dash": "dash"}),
    ])
    return _layout(fig, "ROC curve (test set)", "false positive rate", "true positive rate")


def precision_recall(numbers: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    data = numbers["pr"]
    fig = go.Figure([
        go.Scatter(x=data["recall"], y=data["precision"], mode="lines",
                   name=f"model (AP {data['average_precision']:.3f})",
                   line={"color": MODEL_COLOUR}),
        go.Scatter(x=[0, 1], y=[data["base_rate"], data["base_rate"]], mode="lines",
                   name=f"churn rate {data['base_rate']:.1%}",
                   line={"color": REFERENCE_COLOUR, "dash": "dash"}),
    ])
    return _layout(fig, "Precision-recall curve (test set)", "recall", "precision")


def calibration(numbers: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    data, before = numbers["calibration"], numbers.get("calibration_before")
    top = max([*data["predicted"], *data["observed"], *(before or {}).get("predicted", []), 0.05])
    traces = [go.Scatter(x=data["predicted"], y=data["observed"], mode="lines+markers",
                         name="model (calibrated)" if before else "model",
                         text=[f"{n} customers" for n in data["customers"]],
                         line={"color": MODEL_COLOUR})]
    if before:  # what Platt scaling on out-of-fold scores changed
        traces.append(go.Scatter(x=before["predicted"], y=before["observed"],
                                 mode="lines+markers", name="before calibration",
                                 line={"color": INCUMBENT_COLOUR, "dash": "dot"}))
    traces.append(go.Scatter(x=[0, top], y=[0, top], mode="lines", name="perfectly calibrated",
                             line={"color": REFERENCE_COLOUR, "dash": "dash"}))
    fig = go.Figure(traces)
    return _layout(fig, "Calibration: predicted vs observed churn (10 equal-size bins)",
                   "mean predicted probability", "observed churn rate")


def confusion(numbers: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    data = numbers["confusion"]
    z = [[data["tn"], data["fp"]], [data["fn"], data["tp"]]]
    fig = go.Figure(go.Heatmap(
        z=z, x=["predicted stay", "predicted churn"], y=["stayed", "churned"],
        text=[[str(v) for v in row] for row in z], texttemplate="%{text}",
        colorscale="Blues", showscale=False))
    return _layout(fig, f"Confusion matrix at threshold {data['threshold']:.3f} (test set)",
                   "prediction", "actual", yaxis={"autorange": "reversed"})


def gain(numbers: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    rows = numbers["gain"]
    share = [0.0] + [r["cumulative_share"] for r in rows]
    caught = [0.0] + [r["cumulative_gain"] for r in rows]
    fig = go.Figure([
        go.Scatter(x=share, y=caught, mode="lines+markers", name="model",
                   line={"color": MODEL_COLOUR}),
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="random calling",
                   line={"color": REFERENCE_COLOUR, "dash": "dash"}),
    ])
    return _layout(fig, "Cumulative gain: share of churners reached by calling the riskiest",
                   "share of customers called (highest churn probability first)",
                   "share of churners reached", xaxis={"tickformat": ".0%"},
                   yaxis={"tickformat": ".0%"})


def lift(numbers: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    rows = numbers["gain"]
    fig = go.Figure([
        go.Bar(x=[r["decile"] for r in rows], y=[r["lift"] for r in rows], name="lift",
               marker={"color": MODEL_COLOUR}),
        go.Scatter(x=[0.5, 10.5], y=[1, 1], mode="lines", name="no model",
                   line={"color": REFERENCE_COLOUR, "dash": "dash"}),
    ])
    return _layout(fig, "Lift by decile (1 = the 10% most at risk)", "decile",
                   "churn rate / overall churn rate", xaxis={"dtick": 1})


def importance(numbers: dict[str, Any], top: int = 25) -> Any:
    import plotly.graph_objects as go

    rows = numbers["importance"][:top][::-1]  # largest at the top of a horizontal bar chart
    fig = go.Figure(go.Bar(
        x=[r["mean"] for r in rows], y=[r["feature"] for r in rows], orientation="h",
        error_x={"type": "data", "array": [r["std"] for r in rows]},
        marker={"color": MODEL_COLOUR}))
    metric = numbers["model"]["primary_metric"]
    return _layout(fig, f"Permutation importance: drop in {metric} when a column is shuffled",
                   f"drop in {metric}", "", height=max(420, 24 * len(rows) + 120))


def comparison(numbers: dict[str, Any]) -> Any | None:
    import plotly.graph_objects as go

    incumbent = (numbers["comparison"] or {}).get("incumbent") or {}
    production, candidate = incumbent.get("production"), incumbent.get("candidate")
    if not production or not candidate:
        return None
    metrics = ["pr_auc", "roc_auc", "brier"]
    fig = go.Figure([
        go.Bar(x=metrics, y=[candidate[m] for m in metrics], name="this model",
               marker={"color": MODEL_COLOUR}),
        go.Bar(x=metrics, y=[production[m] for m in metrics],
               name=f"production v{incumbent['version']}", marker={"color": INCUMBENT_COLOUR}),
    ])
    return _layout(fig, "This model vs production on the same test data (brier: lower is better)",
                   "metric", "value", barmode="group")


def models(numbers: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    metric = numbers["model"]["primary_metric"]
    algorithms = list(numbers["model"]["algorithms"])
    cv = [numbers["model"]["algorithms"][a]["cv"] for a in algorithms]
    traces = []
    if any(c and c.get("folds") for c in cv):
        traces.append(go.Bar(
            x=algorithms, y=[c["mean"].get(metric) if c else None for c in cv],
            error_y={"type": "data", "array": [c["std"].get(metric) if c else None for c in cv]},
            name=f"cross-validation mean {metric}", marker={"color": REFERENCE_COLOUR}))
    tests = [numbers["model"]["algorithms"][a]["test"] for a in algorithms]
    traces.append(go.Bar(x=algorithms, y=[t[metric] if t else None for t in tests],
                         name=f"test {metric} (chosen model only)",
                         marker={"color": MODEL_COLOUR}))
    return _layout(go.Figure(traces), f"Candidate algorithms by {metric}", "algorithm", metric,
                   barmode="group")


def missing(numbers: dict[str, Any]) -> Any | None:
    import plotly.graph_objects as go

    columns = [c for c in numbers["data"]["columns_table"] if c.get("missing")]
    if not columns:
        return None
    fig = go.Figure(go.Bar(x=[c["name"] for c in columns], y=[c["missing"] for c in columns],
                           marker={"color": MODEL_COLOUR}))
    return _layout(fig, "Blank cells per column", "column", "blank cells")
