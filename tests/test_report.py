"""The HTML model report: parses, has every section, opens offline, figures match the record."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from churnctl.cli.main import app as cli_app
from churnctl.report.html import SECTIONS
from tests.fixtures_tables import bank_like, run_table


class _Page(HTMLParser):
    """Section ids, scripts (attributes + text), tables by id, and any external reference."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.scripts: list[tuple[dict[str, str], str]] = []
        self.external: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._script: dict[str, str] | None = None
        self._text: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        for key in ("src", "href"):
            if found.get(key, "").startswith(("http:", "https:", "//")):
                self.external.append(found[key])
        if tag == "section":
            self.sections.append(found.get("id", ""))
        elif tag == "script":
            self._script, self._text = found, []
        elif tag == "table" and found.get("id"):
            self._table = found["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._text)))
            self._script = None
        elif tag in ("td", "th") and self._table and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def _figures(page: _Page) -> dict[str, dict[str, Any]]:
    return {attrs["data-figure"]: json.loads(text) for attrs, text in page.scripts
            if attrs.get("class") == "plotly-figure"}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """A bank-like table trained twice (another split the second time): the second run has an
    incumbent to be compared with."""
    root = tmp_path_factory.mktemp("report")
    bank_like(1500, seed=4).to_csv(root / "bank.csv", index=False)
    first = run_table(root, root / "bank.csv", "--target", "Exited")
    assert first.exit_code == 0, first.output
    second = run_table(root, root / "bank.csv", "--target", "Exited", "--set", "features.seed=7")
    assert second.exit_code == 0, second.output
    return root, json.loads(first.stdout), json.loads(second.stdout)


def test_page_has_every_section_and_opens_offline(two_runs) -> None:
    root, _, record = two_runs
    page = _parse(root / record["report"]["html"])
    assert page.sections == list(SECTIONS)
    assert page.external == []
    # One shared, versioned plotly.js beside the pages, not 4.8 MB inlined in each.
    sources = [attrs["src"] for attrs, _ in page.scripts if attrs.get("src")]
    assert len(sources) == 1 and sources[0].startswith("assets/plotly-")
    asset = (root / record["report"]["html"]).parent / sources[0]
    assert asset.read_text()[:200].lstrip().startswith("/**\n* plotly.js v")
    assert (root / record["report"]["html"]).stat().st_size < 500_000
    assert len(_figures(page)) >= 9  # each figure is data for the one library
    assert (root / "reports" / "latest.html").read_text() == \
        (root / record["report"]["html"]).read_text()


def test_figures_match_the_run_record(two_runs) -> None:
    root, _, record = two_runs
    saved = json.loads((root / ".churnctl" / "runs" / f"{record['run_id']}.json").read_text())
    numbers = saved["report"]
    assert numbers == record["report"]  # the --json output is the saved record
    page = _parse(root / numbers["html"])
    figures = _figures(page)
    roc = figures["roc"]["data"][0]
    assert roc["x"] == numbers["roc"]["fpr"] and roc["y"] == numbers["roc"]["tpr"]
    assert numbers["roc"]["auc"] == pytest.approx(numbers["metrics"]["roc_auc"], abs=1e-6)
    pr = figures["pr"]["data"][0]
    assert pr["x"] == numbers["pr"]["recall"] and pr["y"] == numbers["pr"]["precision"]
    calibration = figures["calibration"]["data"][0]
    assert calibration["x"] == numbers["calibration"]["predicted"]
    assert calibration["y"] == numbers["calibration"]["observed"]
    c = numbers["confusion"]
    assert figures["confusion"]["data"][0]["z"] == [[c["tn"], c["fp"]], [c["fn"], c["tp"]]]
    assert c["tn"] + c["fp"] + c["fn"] + c["tp"] == numbers["data"]["test_rows"]
    gain = figures["gain"]["data"][0]
    assert gain["y"] == [0.0] + [r["cumulative_gain"] for r in numbers["gain"]]
    assert figures["lift"]["data"][0]["y"] == [r["lift"] for r in numbers["gain"]]
    bars = figures["importance"]["data"][0]
    top = numbers["importance"][: len(bars["y"])][::-1]
    assert bars["y"] == [r["feature"] for r in top] and bars["x"] == [r["mean"] for r in top]
    deciles = page.tables["deciles"][1:]
    assert [int(row[2].replace(",", "")) for row in deciles] == [
        r["churners"] for r in numbers["gain"]]
    embedded = next(json.loads(text) for attrs, text in page.scripts
                    if attrs.get("id") == "report-data")
    assert embedded["roc"] == numbers["roc"]


def test_profile_dropped_and_incumbent_sections(two_runs) -> None:
    root, first, second = two_runs
    numbers = second["report"]
    data = numbers["data"]
    assert data["rows"] == 1500 and data["target"] == "Exited" and data["positive"] == "1"
    assert {d["name"] for d in data["dropped"]} == {"RowNumber", "Surname"}
    assert data["id"] == "CustomerId"
    page = _parse(root / numbers["html"])
    assert [r[0] for r in page.tables["dropped-columns"][1:]] == ["RowNumber", "Surname"]
    assert first["report"]["comparison"]["incumbent"]["production"] is None
    incumbent = numbers["comparison"]["incumbent"]
    assert incumbent["version"] == 1 and incumbent["production"]["roc_auc"] > 0.5
    bars = _figures(page)["comparison"]["data"]
    assert bars[1]["y"] == [incumbent["production"][m] for m in ("pr_auc", "roc_auc", "brier")]
    assert numbers["comparison"]["decision"] in page.tables["incumbent"][0][2] or \
        "production v1" in page.tables["incumbent"][0][2]
    # The gate's paired bootstrap interval, on the second run's own test rows.
    interval = incumbent["interval"]
    assert interval["rows"] == data["test_rows"] and interval["lower"] <= interval["upper"]
    gate = dict((row[0], row[1]) for row in page.tables["gate"][1:])
    assert float(gate["90% interval, lower"]) == pytest.approx(interval["lower"], abs=1e-3)
    assert f"{interval['lower']:+.4f}" in numbers["comparison"]["decision"]
    # How the model was chosen: one row per setting tried on the validation folds.
    trials = numbers["model"]["search"]["trials"]
    assert len(page.tables["search"]) == 1 + len(trials)
    assert {t["algorithm"] for t in trials} == {"logistic_regression", "hist_gradient_boosting"}


def test_report_command(two_runs, tmp_path: Path) -> None:
    root, first, second = two_runs
    runner = CliRunner()
    latest = runner.invoke(cli_app, ["report", "--workspace", str(root), "--json"])
    assert latest.exit_code == 0, latest.output
    assert json.loads(latest.stdout)["run_id"] == second["run_id"]
    out = tmp_path / "shared" / "churn.html"
    older = runner.invoke(cli_app, ["report", first["run_id"][:17], "--workspace", str(root),
                                   "--out", str(out)])
    assert older.exit_code == 0, older.output
    assert _parse(out).sections == list(SECTIONS) and first["run_id"] in out.read_text()[:200_000]
    assert (out.parent / "assets").is_dir()  # the page elsewhere brings its plotly.js along
    empty = runner.invoke(cli_app, ["report", "--workspace", str(tmp_path)])
    assert empty.exit_code == 2 and "no finished run" in empty.stderr


def test_a_cached_run_links_the_page_of_the_run_that_trained(two_runs, monkeypatch) -> None:
    import churnctl.runs

    root, _, second = two_runs
    pages = sorted((root / "reports").glob("*.html"))

    def no_scan(*_args: object) -> None:
        raise AssertionError("a no-op run read every run record to find its page")

    # The page is indexed by the model it reports on: found in one read, however many runs.
    monkeypatch.setattr(churnctl.runs, "list_records", no_scan)
    again = run_table(root, root / "bank.csv", "--target", "Exited", "--set", "features.seed=7")
    assert again.exit_code == 0, again.output
    record = json.loads(again.stdout)
    assert {s["status"] for s in record["stages"]} == {"cached"}
    assert record["report"]["html"] == second["report"]["html"]
    assert sorted((root / "reports").glob("*.html")) == pages  # no new page written
    assert (root / "reports" / "latest.html").samefile(root / second["report"]["html"])
    assert not list((root / "reports").glob(".*.tmp"))


def test_event_data_runs_write_a_report_too(small_run) -> None:
    root, record = small_run
    assert record["report"]["data"]["source"]["format"].startswith("event data")
    page = _parse(root / record["report"]["html"])
    assert page.sections == list(SECTIONS)
    assert _figures(page)["roc"]["data"][0]["x"] == record["report"]["roc"]["fpr"]
