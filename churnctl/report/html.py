"""One self-contained HTML page: plotly.js inlined once, each figure's JSON beside its div.

No CDN and no network: the page opens offline from a mail attachment or a shared drive.
Each figure is a `<script type="application/json" class="plotly-figure">` block rendered by
one small loader at the end, which also lets tests read the plotted numbers back.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from churnctl.report import figures

SECTIONS = ("summary", "data-profile", "dropped", "validation", "roc", "precision-recall",
            "calibration", "confusion", "gain", "importance", "comparison")

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222}
header{background:#17324d;color:#fff;padding:18px 32px}header p{margin:4px 0 0;opacity:.85}
main{max-width:1100px;margin:0 auto;padding:8px 32px 48px}
section{margin:28px 0;border-bottom:1px solid #eee;padding-bottom:16px}
h2{font-size:1.25rem;margin-bottom:6px}p.lead{color:#555;margin-top:0}
table{border-collapse:collapse;font-size:.9rem;margin:8px 0}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}th{background:#f5f7fa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{background:#f5f7fa;border-radius:8px;
padding:10px 16px;min-width:140px}.card b{display:block;font-size:1.4rem}
.figure{width:100%;min-height:420px}nav a{color:#cfe3ff;margin-right:12px;font-size:.85rem}
"""

_LOADER = """
document.querySelectorAll('script.plotly-figure').forEach(function (node) {
  var fig = JSON.parse(node.textContent);
  Plotly.newPlot(node.dataset.target, fig.data, fig.layout,
                 {responsive: true, displaylogo: false});
});
"""


def _figure(name: str, fig: Any) -> str:
    if fig is None:
        return ""
    payload = fig.to_json().replace("</", "<\\/")  # never end the script block early
    return (f'<div class="figure" id="fig-{name}"></div>\n'
            f'<script type="application/json" class="plotly-figure" data-figure="{name}" '
            f'data-target="fig-{name}">{payload}</script>\n')


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f'<td class="num">{value:.4f}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="num">{value:,}</td>'
    return f"<td>{escape('' if value is None else str(value))}</td>"


def _table(headers: list[str], rows: list[list[Any]], table_id: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(ident: str, title: str, lead: str, body: str) -> str:
    return (f'<section id="{ident}"><h2>{escape(title)}</h2>'
            f'<p class="lead">{escape(lead)}</p>{body}</section>\n')


def _summary(n: dict[str, Any]) -> str:
    m, conf, top = n["metrics"], n["confusion"], n["gain"][0]
    cards = [("ROC AUC", f"{m['roc_auc']:.3f}"), ("PR AUC", f"{m['pr_auc']:.3f}"),
             ("Brier", f"{m['brier']:.3f}"), ("threshold", f"{conf['threshold']:.3f}"),
             ("top-decile lift", f"{top['lift']:.1f}x")]
    html = '<div class="cards">' + "".join(
        f'<div class="card">{escape(k)}<b>{escape(v)}</b></div>' for k, v in cards) + "</div>"
    decision = n["comparison"].get("decision") or ""
    version = n["comparison"].get("model_version")
    lead = (f"Model: {n['model']['chosen']} (chosen by {n['model']['selection']}). Calling the "
            f"10% of customers most at risk reaches {top['cumulative_gain']:.0%} of churners.")
    extra = f"<p>Model v{version}: {escape(decision)}</p>" if version else ""
    return _section("summary", "Summary", lead, html + extra)


def _data(n: dict[str, Any]) -> str:
    d = n["data"]
    facts = [["source", d["source"].get("path") or d["source"].get("format")],
             ["format", d["source"].get("format")], ["rows", d["rows"]],
             ["columns", d["columns"]], ["target", d["target"]],
             ["churn value", d.get("positive")], ["churn rate", d["target_rate"]],
             ["split", d.get("split")], ["train rows", d.get("train_rows")],
             ["test rows", d.get("test_rows")]]
    if d["source"].get("encoding"):
        facts[2:2] = [["encoding", d["source"]["encoding"]],
                      ["delimiter", d["source"].get("delimiter")]]
    columns = [[c["name"], c["kind"], c["role"], c.get("missing", 0), c.get("distinct", 0),
                c.get("reason", "")] for c in d["columns_table"]]
    body = (_table(["", "value"], facts, "data-facts")
            + _table(["column", "type", "role", "blank", "distinct", "note"], columns,
                     "data-columns")
            + _figure("missing", figures.missing(n)))
    lead = "What was read, what each column was inferred to be, and how the rows were split."
    return _section("data-profile", "Data profile", lead, body)


def _dropped(n: dict[str, Any]) -> str:
    rows = [[c["name"], c["reason"]] for c in n["data"]["dropped"]]
    body = _table(["column", "why"], rows, "dropped-columns") if rows else \
        "<p>No column was left out.</p>"
    notices = n["data"].get("notices") or []
    if notices:
        body += "<ul>" + "".join(f"<li>{escape(x)}</li>" for x in notices) + "</ul>"
    return _section("dropped", "Left out, and why",
                    "Identifiers, constant and blank columns cannot help a model.", body)


def _validation(n: dict[str, Any]) -> str:
    v = n["validation"]
    leak = n["leakage"]
    lines = []
    if v is not None:
        lines.append(f"<p>{v['checks']} checks, {'passed' if v['passed'] else 'failed'}.</p>")
        rows = [[c["column"], c["check"], c["severity"], c["detail"]] for c in v["not_passed"]]
        if rows:
            lines.append(_table(["column", "check", "severity", "detail"], rows, "checks"))
    if n.get("data_docs"):  # pages live in reports/, the docs in the validate artifact
        lines.append(f'<p>Every expectation and its result: <a id="data-docs" href="../'
                     f'{escape(n["data_docs"])}">Great Expectations Data Docs</a>.</p>')
    if leak["feature"]:
        lines.append(f"<p>Leakage guard: the strongest single feature is {escape(leak['feature'])}"
                     f" with ROC AUC {leak['auc']:.3f} on its own.</p>")
    return _section("validation", "Validation", "The data gate and the leakage guard.",
                    "".join(lines))


def _evaluation(n: dict[str, Any]) -> str:
    conf = n["confusion"]
    out = _section("roc", "ROC curve", "How well the model ranks churners above stayers.",
                   _figure("roc", figures.roc(n)))
    out += _section("precision-recall", "Precision and recall",
                    "Of those flagged, how many churn; of those who churn, how many are flagged.",
                    _figure("pr", figures.precision_recall(n)))
    out += _section("calibration", "Calibration",
                    "Whether a predicted 30% means 30% of such customers churn.",
                    _figure("calibration", figures.calibration(n)))
    rows = [[k, conf[k]] for k in ("precision", "recall", "f1", "accuracy", "flagged_share")]
    out += _section("confusion", "Confusion matrix",
                    f"At threshold {conf['threshold']:.3f} ({n['model']['threshold']['how']}).",
                    _figure("confusion", figures.confusion(n))
                    + _table(["measure", "value"], rows, "confusion-measures"))
    deciles = [[r["decile"], r["customers"], r["churners"], r["churn_rate"], r["lift"],
                r["cumulative_gain"], r["min_probability"]] for r in n["gain"]]
    out += _section("gain", "Cumulative gain and lift by decile",
                    "Rank customers by churn probability and call from the top: how many "
                    "churners each decile reaches.",
                    _figure("gain", figures.gain(n)) + _figure("lift", figures.lift(n))
                    + _table(["decile", "customers", "churners", "churn rate", "lift",
                              "cumulative gain", "lowest probability"], deciles, "deciles"))
    out += _section("importance", "Feature importance",
                    "Permutation importance on the test set: larger means the model leans on "
                    "the column more.", _figure("importance", figures.importance(n)))
    return out


def _comparison(n: dict[str, Any]) -> str:
    c = n["comparison"]
    incumbent = c.get("incumbent") or {}
    metric = n["model"]["primary_metric"]
    algorithms = [[a, (v["cv"] or {}).get("mean", {}).get(metric),
                   (v["test"] or {}).get(metric, "not measured"),
                   (v["test"] or {}).get("roc_auc", "not measured")]
                  for a, v in n["model"]["algorithms"].items()]
    body = _table(["algorithm", f"validation-fold {metric}", f"test {metric}", "test roc_auc"],
                  algorithms, "algorithms") + _figure("models", figures.models(n))
    body += _search(n)
    if incumbent.get("production"):
        rows = [[m, incumbent["candidate"][m], incumbent["production"][m]]
                for m in ("pr_auc", "roc_auc", "brier")]
        body += _table(["metric", "this model", f"production v{incumbent['version']}"], rows,
                       "incumbent") + _figure("comparison", figures.comparison(n))
    body += _gate(incumbent)
    lead = c.get("decision") or "No promotion decision recorded."
    return _section("comparison", "Comparison with the incumbent model", lead, body)


def _search(n: dict[str, Any]) -> str:
    """How the model was chosen: the folds, every setting tried and its fold score."""
    search = n["model"].get("search")
    if not search:
        return ""
    folds, metric = search["folds"], n["model"]["primary_metric"]
    rows = [[t["algorithm"], ", ".join(f"{k}={v}" for k, v in t["params"].items()) or "defaults",
             t["mean"].get(metric), t["std"].get(metric),
             ", ".join(map(str, t["iterations"])) or "", t["seconds"]]
            for t in search["trials"]]
    budget = " (stopped by the time budget)" if search["stopped_by_budget"] else ""
    lead = (f"{len(search['trials'])} setting(s) on {folds['folds']} {folds['kind']} folds of "
            f"the training set{budget}. {folds.get('note') or ''}")
    platt = n["model"].get("platt")
    calibrated = (f"Probabilities are Platt-scaled on out-of-fold scores (slope {platt[0]:.3f}, "
                  f"intercept {platt[1]:.3f})." if platt else "Probabilities are not recalibrated.")
    return (f"<p>{escape(lead)}</p>"
            + _table(["algorithm", "settings", f"mean {metric}", "std", "early-stopped rounds",
                      "seconds"], rows, "search")
            + f"<p>{escape(calibrated)}</p>")


def _gate(incumbent: dict[str, Any]) -> str:
    """The promotion gate's paired bootstrap interval, when one was computed."""
    interval = incumbent.get("interval")
    if not interval:
        return ""
    rows = [["difference (this model minus production)", interval["difference"]],
            [f"{interval['level']:.0%} interval, lower", interval["lower"]],
            [f"{interval['level']:.0%} interval, upper", interval["upper"]],
            ["margin the lower bound must exceed", incumbent.get("margin")],
            ["test rows (paired)", interval["rows"]],
            ["bootstrap resamples", interval["resamples"]]]
    return (f"<p>Gate on {escape(interval['metric'])}: promote only when the lower bound of the "
            "interval is above the margin.</p>" + _table(["", "value"], rows, "gate"))


def render_html(numbers: dict[str, Any], plotly_src: str | None = None) -> str:
    """The page. With `plotly_src` (a relative path to the shared, versioned plotly.js beside
    the page) it is ~100 KB instead of ~5 MB; without, plotly.js is inlined."""
    from plotly.offline import get_plotlyjs

    title = f"churnctl report · run {numbers['run_id']}"
    nav = "".join(f'<a href="#{s}">{s.replace("-", " ")}</a>' for s in SECTIONS)
    data = json.dumps(numbers, sort_keys=True, default=str).replace("</", "<\\/")
    body = (_summary(numbers) + _data(numbers) + _dropped(numbers) + _validation(numbers)
            + _evaluation(numbers) + _comparison(numbers))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title><style>{_STYLE}</style>"
        + (f'<script type="text/javascript" src="{escape(plotly_src)}"></script>' if plotly_src
           else f"<script type=\"text/javascript\">{get_plotlyjs()}</script>")
        + "</head><body>"
        f"<header><h1>{escape(title)}</h1><p>profile {escape(str(numbers.get('profile')))} · "
        f"started {escape(str(numbers.get('started_at')))}</p><nav>{nav}</nav></header>"
        f"<main>{body}</main>"
        f'<script type="application/json" id="report-data">{data}</script>'
        f"<script>{_LOADER}</script></body></html>\n"
    )
