"""Build the churnctl Grafana dashboard with Grafana's own grafana-foundation-sdk.

The JSON it writes (churnctl-dashboard.json beside this file) is checked in, so nobody needs
the SDK to import the dashboard; tests/test_monitoring_infra.py regenerates it and fails when
the two differ. Regenerate after editing:

    pip install grafana-foundation-sdk
    python infra/monitoring/grafana/build_dashboard.py

Metric names are those the serving app's /metrics exports (docs/monitoring.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import bargauge, common, heatmap, stat, timeseries
from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DatasourceVariable,
    QueryVariable,
    Row,
    ThresholdsConfig,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    BarGaugeDisplayMode,
    BigValueGraphMode,
    LegendDisplayMode,
    LegendPlacement,
    SortOrder,
    TooltipDisplayMode,
    VizOrientation,
)
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
    VariableRefresh,
)

OUT = Path(__file__).with_name("churnctl-dashboard.json")
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
# Every query selects the API job and the chosen namespaces (staging, production, ...).
SEL = 'job="churnctl-api", namespace=~"$namespace"'
# Request metrics without scrapes and probes, like the alert rules: what callers see.
REQ = SEL + ', handler!~"/metrics|/live|/ready"'


def query(expr: str, legend: str = "", instant: bool = False, ref: str = "A") -> Dataquery:
    # Grafana keys a panel's queries by refId: each must be set and unique in its panel.
    q = Dataquery().expr(expr).datasource(DATASOURCE).ref_id(ref)
    if legend:
        q = q.legend_format(legend)
    return q.instant() if instant else q.range()


def steps(*pairs: tuple[float | None, str]) -> ThresholdsConfig:
    return ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(
        [Threshold(value=v, color=c) for v, c in pairs])


def last_value() -> common.ReduceDataOptions:
    return common.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def legend() -> common.VizLegendOptions:
    return (common.VizLegendOptions().display_mode(LegendDisplayMode.LIST)
            .placement(LegendPlacement.BOTTOM).show_legend(True))


def tooltip() -> common.VizTooltipOptions:
    return common.VizTooltipOptions().mode(TooltipDisplayMode.MULTI).sort(SortOrder.DESCENDING)


def big_number() -> stat.Panel:
    return (stat.Panel().datasource(DATASOURCE).height(4).span(6).reduce_options(last_value())
            .graph_mode(BigValueGraphMode.NONE))


def graph() -> timeseries.Panel:
    return timeseries.Panel().datasource(DATASOURCE).legend(legend()).tooltip(tooltip())


def overview() -> list:
    version = (
        big_number().title("Model version in production")
        .description("Registry version the API is serving (changes when a promoted model is "
                     "hot-reloaded).")
        .with_target(query(f"max(churn_model_version{{{SEL}}})", instant=True))
        .decimals(0).unit("none")
    )
    drift = (
        big_number().title("Drift status (last check)")
        .description("From the daily `churnctl monitor drift`: 0 ok, 1 warn, 2 fail.")
        .with_target(query(f"max(churn_drift_status{{{SEL}}})", instant=True))
        .mappings([ValueMap(options={
            "0": ValueMappingResult(text="ok", color="green"),
            "1": ValueMappingResult(text="warn", color="yellow"),
            "2": ValueMappingResult(text="fail", color="red")})])
        .thresholds(steps((None, "green"), (1, "yellow"), (2, "red")))
    )
    retrain = (
        big_number().title("Since last successful retrain")
        .with_target(query(
            f"time() - max(churn_last_successful_retrain_timestamp_seconds{{{SEL}}})",
            instant=True))
        .unit("s").thresholds(steps((None, "green"), (7 * 86400, "yellow"), (8 * 86400, "red")))
    )
    errors = (
        big_number().title("Error rate (5xx, 5m)")
        .with_target(query(
            f'sum(rate(churn_http_requests_total{{{REQ}, status=~"5.."}}[5m])) '
            f"/ sum(rate(churn_http_requests_total{{{REQ}}}[5m]))", instant=True))
        .unit("percentunit").thresholds(steps((None, "green"), (0.01, "yellow"), (0.05, "red")))
    )
    return [version, drift, retrain, errors]


def serving() -> list:
    traffic = (
        graph().title("Traffic by status").height(8).span(12)
        .with_target(query(
            f"sum by (status) (rate(churn_http_requests_total{{{REQ}}}[$__rate_interval]))",
            "{{status}}"))
        .unit("reqps").min(0)
    )
    latency = (
        graph().title("Latency").height(8).span(12).unit("s")
        .min(0)
    )
    for ref, q in zip("ABC", (0.5, 0.95, 0.99), strict=True):
        latency = latency.with_target(query(
            f"histogram_quantile({q}, sum by (le) "
            f"(rate(churn_http_request_duration_seconds_bucket{{{REQ}}}[$__rate_interval])))",
            f"p{round(q * 100)}", ref=ref))
    errors = (
        graph().title("Error rate (5xx)").height(8).span(12)
        .with_target(query(
            f'sum(rate(churn_http_requests_total{{{REQ}, status=~"5.."}}[$__rate_interval])) '
            f"/ sum(rate(churn_http_requests_total{{{REQ}}}[$__rate_interval]))", "5xx share"))
        .unit("percentunit").min(0)
        .thresholds(steps((None, "green"), (0.05, "red")))
    )
    predictions = (
        graph().title("Predictions").height(8).span(12)
        .with_target(query(
            f"sum(rate(churn_predictions_total{{{SEL}}}[$__rate_interval]))", "predictions/s"))
        .unit("ops").min(0)
    )
    return [traffic, latency, errors, predictions]


def model() -> list:
    distribution = (
        heatmap.Panel().title("Prediction distribution (churn probability)")
        .datasource(DATASOURCE).height(9).span(12)
        .description("How many predictions fell in each probability bucket over time; a "
                     "shifting mass means the inputs or the model changed.")
        .with_target(query(
            f"sum by (le) (increase(churn_prediction_probability_bucket{{{SEL}}}"
            f"[$__rate_interval]))", "{{le}}").format("heatmap"))
        .calculate(False).show_legend().show_tooltip()
    )
    quantiles = (
        graph().title("Churn probability quantiles").height(9).span(12).min(0).max(1)
    )
    for ref, q in zip("ABC", (0.1, 0.5, 0.9), strict=True):
        quantiles = quantiles.with_target(query(
            f"histogram_quantile({q}, sum by (le) "
            f"(rate(churn_prediction_probability_bucket{{{SEL}}}[$__rate_interval])))",
            f"p{round(q * 100)}", ref=ref))
    psi_now = (
        bargauge.Panel().title("PSI per feature (last drift check)").datasource(DATASOURCE)
        .height(12).span(12)
        .description("Population Stability Index of each model feature, current data vs the "
                     "production model's reference. Warn at 0.1, fail at 0.25 by default.")
        .with_target(query(f"sort_desc(max by (feature) (churn_feature_psi{{{SEL}}}))",
                           "{{feature}}", instant=True))
        .min(0).thresholds(steps((None, "green"), (0.1, "yellow"), (0.25, "red")))
        .display_mode(BarGaugeDisplayMode.GRADIENT).orientation(VizOrientation.HORIZONTAL)
        .reduce_options(last_value())
    )
    psi_history = (
        graph().title("PSI per feature over time").height(12)
        .span(12)
        .with_target(query(f"max by (feature) (churn_feature_psi{{{SEL}}})", "{{feature}}"))
        .min(0).thresholds(steps((None, "green"), (0.1, "yellow"), (0.25, "red")))
    )
    version_history = (
        graph().title("Model version over time").height(8)
        .span(24)
        .with_target(query(f"max by (pod) (churn_model_version{{{SEL}}})", "{{pod}}"))
        .decimals(0)
    )
    return [distribution, quantiles, psi_now, psi_history, version_history]


def build() -> Dashboard:
    board = (
        Dashboard("churnctl: churn model service")
        .uid("churnctl-overview")
        .description("Traffic, latency and errors of the churn API; predictions, feature drift "
                     "and the model version in production.")
        .tags(["churnctl", "ml"])
        .time("now-24h", "now").refresh("1m").timezone("utc")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .with_variable(DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
        .with_variable(
            QueryVariable("namespace").label("Namespace").datasource(DATASOURCE)
            .query('label_values(churn_http_requests_total{job="churnctl-api"}, namespace)')
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .include_all(True).multi(True).all_value(".*"))
    )
    # Explicit, stable panel ids: Grafana reassigns missing (or 0) ids on every load, which
    # breaks links to a panel and makes diffs of exported dashboards noisy.
    next_id = 1
    for title, panels in (("Overview", overview()), ("Serving", serving()),
                          ("Model and drift", model())):
        board = board.with_row(Row(title).id(next_id))
        next_id += 1
        for panel in panels:
            board = board.with_panel(panel.id(next_id))
            next_id += 1
    return board


def render() -> str:
    return JSONEncoder(sort_keys=True, indent=2).encode(build().build()) + "\n"


if __name__ == "__main__":
    text = render()
    json.loads(text)  # never write something that is not JSON
    if "--check" in sys.argv[1:]:
        sys.exit(0 if OUT.read_text() == text else f"{OUT} is stale; regenerate it")
    OUT.write_text(text)
    print(f"wrote {OUT}")
