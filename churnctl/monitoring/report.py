"""The drift check as one self-contained HTML page: a summary table and a plot per feature.

plotly.js is embedded once in <head> (each figure only carries its data), so the page opens
offline, e.g. from a CI artifact or a pod's volume, at ~5 MB instead of 5 MB per figure.
"""

from __future__ import annotations

import html
from typing import Any

STATUS_COLOUR = {"ok": "#1a7f37", "warn": "#9a6700", "fail": "#cf222e"}


def _feature_figure(feature: dict[str, Any]) -> str:
    import plotly.graph_objects as go

    figure = go.Figure()
    for side, colour in (("reference", "#6e7781"), ("current", "#0969da")):
        figure.add_bar(x=feature["bins"], y=feature[f"{side}_share"], name=side,
                       marker_color=colour)
    figure.update_layout(
        barmode="group", height=300, margin={"l": 50, "r": 20, "t": 30, "b": 80},
        yaxis={"title": "share of rows", "tickformat": ".0%"},
        xaxis={"title": "reference deciles" if feature["kind"] == "numeric" else "category",
               "type": "category"},
        legend={"orientation": "h", "y": 1.12},
    )
    return figure.to_html(full_html=False, include_plotlyjs=False,
                          div_id=f"plot-{_slug(feature['name'])}")


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)


def _number(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "–"
    return f"{value:.2e}" if 0 < abs(value) < 10 ** -digits else f"{value:.{digits}f}"


def _badge(status: str) -> str:
    return (f'<span class="badge" style="background:{STATUS_COLOUR[status]}">'
            f"{html.escape(status)}</span>")


def _section(feature: dict[str, Any]) -> str:
    name = html.escape(feature["name"])
    facts = [f"PSI <b>{_number(feature['psi'])}</b>",
             f"rows: reference {feature['n_reference']:,}, current {feature['n_current']:,}"]
    if feature["kind"] == "numeric":
        facts += [f"KS statistic {_number(feature['ks_statistic'])}, "
                  f"p-value {_number(feature['ks_pvalue'])}",
                  f"mean: reference {_number(feature['reference_mean'])}, "
                  f"current {_number(feature['current_mean'])}"]
    if feature.get("new_categories"):
        facts.append("new categories: " + html.escape(", ".join(feature["new_categories"])))
    items = "".join(f"<li>{fact}</li>" for fact in facts)
    return (f'<section class="feature" id="feature-{_slug(feature["name"])}" '
            f'data-feature="{name}" data-status="{feature["status"]}">'
            f"<h3>{name} {_badge(feature['status'])} <small>{feature['kind']}</small></h3>"
            f"<ul>{items}</ul>{_feature_figure(feature)}</section>")


def _summary_rows(features: list[dict[str, Any]]) -> str:
    rows = []
    for f in sorted(features, key=lambda f: -f["psi"]):
        ks = _number(f["ks_pvalue"]) if f["kind"] == "numeric" else "–"
        rows.append(f'<tr><td><a href="#feature-{_slug(f["name"])}">{html.escape(f["name"])}</a>'
                    f"</td><td>{f['kind']}</td><td>{_number(f['psi'])}</td><td>{ks}</td>"
                    f"<td>{_badge(f['status'])}</td></tr>")
    return "".join(rows)


STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px;color:#1f2328}
table{border-collapse:collapse}td,th{padding:.25rem .75rem;border-bottom:1px solid #d0d7de;
text-align:left}.badge{color:#fff;border-radius:.6rem;padding:.05rem .5rem;font-size:.8rem}
section.feature{border-top:1px solid #d0d7de;margin-top:1.5rem}small{color:#656d76}
"""


def render_html(result: dict[str, Any]) -> str:
    from plotly.offline import get_plotlyjs

    ref, cur, limits = result["reference"], result["current"], result["thresholds"]
    title = f"Drift check {result['check_id']}: {result['status']}"
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in cur.get("notes", []))
    header = (
        f"<h1>Feature drift {_badge(result['status'])}</h1>"
        f"<p>Checked {html.escape(result['checked_at'])}. PSI warn ≥ {limits['warn']}, "
        f"fail ≥ {limits['fail']}; KS p-values are reported, not gated (with thousands of rows "
        f"any visible difference is significant).</p>"
        f"<ul><li>reference: run {html.escape(ref['run_id'])} ({html.escape(ref['why'])}), "
        f"set <code>{html.escape(ref['set'])}</code>, {ref['rows']:,} rows</li>"
        f"<li>current: {html.escape(cur['source'])}"
        f"{' as of ' + html.escape(cur['as_of']) if cur.get('as_of') else ''}, "
        f"{cur['rows']:,} rows</li>{notes}</ul>"
    )
    table = ("<h2>Features by PSI</h2><table><thead><tr><th>feature</th><th>kind</th><th>PSI</th>"
             f"<th>KS p-value</th><th>status</th></tr></thead><tbody>"
             f"{_summary_rows(result['features'])}</tbody></table>")
    sections = "".join(_section(f) for f in result["features"])
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style>"
            f"<script type=\"text/javascript\">{get_plotlyjs()}</script></head><body>"
            f"{header}{table}<h2>Per feature</h2>{sections}</body></html>\n")
