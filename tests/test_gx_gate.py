"""validate.gx: the suite from the contract in a file-mode GX project, the checkpoint gate,
offline Data Docs, severity by profile option, broken suite files, and lazy imports.

One workspace runs ingest + validate with GX per module; tests that change it work on a copy.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from churnctl.cli.main import app
from churnctl.domain.generator import GeneratorConfig, generate
from churnctl.quality_gx.contract import DEFAULT_SEVERITY
from churnctl.quality_gx.docs import external_references
from tests.conftest import SMALL

GX = ["--set", "validate.backend=gx", "--only", "ingest", "--only", "validate"]


def invoke(root: Path, *args: str) -> Any:
    return CliRunner().invoke(app, [*args, "--workspace", str(root)], catch_exceptions=False)


def error_lines(result: Any) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def gx_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("gx_run")
    result = invoke(root, "run", *GX, *SMALL, "--json")
    assert result.exit_code == 0, result.output
    return root, json.loads(result.stdout)


@pytest.fixture
def gx_copy(gx_run: tuple[Path, dict[str, Any]], tmp_path: Path) -> Path:
    target = tmp_path / "ws"
    shutil.copytree(gx_run[0], target)
    return target


def _suite(root: Path, table: str) -> dict[str, Any]:
    return json.loads((root / "gx" / "expectations" / f"churnctl_{table}.json").read_text())


def test_suite_project_and_checkpoints_in_the_workspace(gx_run) -> None:
    root, record = gx_run
    gx_dir = root / "gx"
    assert (gx_dir / "great_expectations.yml").is_file()
    for table in ("users", "events"):
        assert (gx_dir / "checkpoints" / f"churnctl_{table}.json").is_file()
        assert (gx_dir / "validation_definitions" / f"churnctl_{table}.json").is_file()
    kinds = {e["meta"]["churnctl"]["kind"]: e["severity"]
             for t in ("users", "events") for e in _suite(root, t)["expectations"]}
    assert set(kinds) == set(DEFAULT_SEVERITY)  # every kind of the contract is checked
    assert kinds["known_user"] == "critical" and kinds["null_fraction"] == "warning"
    events = {(e["type"], e["kwargs"].get("column"))
              for e in _suite(root, "events")["expectations"]}
    assert ("expect_column_values_to_be_unique", "event_id") in events
    assert ("expect_column_values_to_be_between", "quiz_score") in events
    validate = next(r for r in record["stages"] if r["name"] == "validate")
    assert validate["backend"] == "gx" and validate["status"] == "ran"
    docs = Path(validate["summary"]["data_docs"])
    assert docs.is_file() and docs.name == "index.html"
    assert docs.is_relative_to(root / ".churnctl" / "artifacts" / "validate")
    report = json.loads((root / "reports" / "validation.json").read_text())
    assert report["passed"] and len(report["checks"]) == sum(
        len(_suite(root, t)["expectations"]) for t in ("users", "events"))


def test_regeneration_is_idempotent_and_keeps_what_users_added(gx_copy: Path) -> None:
    gx_dir = gx_copy / "gx"
    suite_path = gx_dir / "expectations" / "churnctl_events.json"
    suite = json.loads(suite_path.read_text())
    suite["expectations"].append({"type": "expect_column_values_to_be_between",
                                  "kwargs": {"column": "watch_minutes", "max_value": 100000},
                                  "meta": {"owner": "team"}, "severity": "warning"})
    suite_path.write_text(json.dumps(suite, indent=2))
    team = gx_dir / "expectations" / "team_suite.json"
    team.write_text(json.dumps({"name": "team_suite", "expectations": [], "meta": {}}))
    team_bytes = team.read_bytes()
    assert invoke(gx_copy, "run", *GX, *SMALL, "--force").exit_code == 0
    kept = [e for e in _suite(gx_copy, "events")["expectations"]
            if e.get("meta", {}).get("owner") == "team"]
    assert len(kept) == 1 and kept[0]["kwargs"]["max_value"] == 100000
    assert team.read_bytes() == team_bytes
    report = json.loads((gx_copy / "reports" / "validation.json").read_text())
    assert any(c["check"] == "expect_column_values_to_be_between" and c["severity"] == "warning"
               for c in report["checks"])  # the user's expectation ran in the gate
    before = tree_digest(gx_dir / "expectations") | tree_digest(gx_dir / "checkpoints")
    assert invoke(gx_copy, "run", *GX, *SMALL, "--force").exit_code == 0
    assert tree_digest(gx_dir / "expectations") | tree_digest(gx_dir / "checkpoints") == before


class _DocsPage(HTMLParser):
    """Section headings (h5) and the expectation rows of each section's result table."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, int] = {}
        self._heading: str | None = None
        self._in_h5 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "h5":
            self._in_h5 = True
        cell = dict(attrs).get("id") or ""
        if tag == "td" and cell.endswith("-2") and "-cell-" in cell and self._heading and \
                not cell.startswith("section-1-"):
            self.rows[self._heading] = self.rows.get(self._heading, 0) + 1

    def handle_endtag(self, tag: str) -> None:
        self._in_h5 = False if tag == "h5" else self._in_h5

    def handle_data(self, data: str) -> None:
        if self._in_h5 and data.strip():
            self._heading = data.strip()


def test_data_docs_open_offline_and_list_every_expectation(gx_run) -> None:
    root, record = gx_run
    index = Path(next(r for r in record["stages"] if r["name"] == "validate")
                 ["summary"]["data_docs"])
    site = index.parent
    pages = list(site.rglob("*.html"))
    assert pages and all(external_references(p.read_text()) == [] for p in pages)
    text = index.read_text()
    for table in ("users", "events"):
        assert f"churnctl_{table}" in text
        [page] = (site / "validations" / f"churnctl_{table}").rglob("*.html")
        parsed = _DocsPage()
        parsed.feed(page.read_text())
        expectations = _suite(root, table)["expectations"]
        assert sum(parsed.rows.values()) == len(expectations)
        columns = {e["kwargs"]["column"] for e in expectations if "column" in e["kwargs"]}
        assert columns <= set(parsed.rows)


@pytest.fixture(scope="module")
def clean_tables() -> tuple[Any, Any]:
    return generate(GeneratorConfig(users=60, days=70, seed=3))


def _files(root: Path, users: Any, events: Any) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    users.to_csv(root / "users.csv", index=False)
    events.to_csv(root / "events.csv", index=False)
    return ["--set", "ingest.backend=files", "--set", f"ingest.users={root / 'users.csv'}",
            "--set", f"ingest.events={root / 'events.csv'}"]


def test_failed_critical_expectation_stops_with_one_line_and_docs(tmp_path, clean_tables):
    users, events = clean_tables
    events = events.assign(user_id=events.user_id.where(events.index != 0, 999999),
                           amount=events.amount.where(events.index != 1, -5.0))
    result = invoke(tmp_path, "run", *GX, *_files(tmp_path / "in", users, events))
    assert result.exit_code == 2, result.output
    [line] = error_lines(result)
    assert "events.csv" in line and "known_user" in line and "999999" in line
    assert "column amount: range" in line  # every failed expectation is named
    docs = Path(line.split("Data Docs: ")[1].split(";")[0])
    assert docs == tmp_path / "reports" / "data_docs" / "index.html" and docs.is_file()
    assert "Traceback" not in result.output


def test_severity_option_makes_an_expectation_a_warning(tmp_path, clean_tables) -> None:
    users, events = clean_tables
    events = events.assign(user_id=events.user_id.where(events.index != 0, 999999))
    result = invoke(tmp_path, "run", *GX, *_files(tmp_path / "in", users, events),
                    "--set", "validate.severity={known_user: warning}")
    assert result.exit_code == 0, result.output
    assert "warning: events.user_id" in result.stderr


@pytest.mark.parametrize("damage", ["invalid_json", "unknown_type"])
def test_broken_suite_file_is_one_line_and_nothing_written(gx_copy: Path, damage: str) -> None:
    gx_dir = gx_copy / "gx"
    if damage == "invalid_json":
        broken = gx_dir / "expectations" / "churnctl_events.json"
        broken.write_text(broken.read_text()[:-40])
        needles = [str(broken), "not valid JSON", "line"]
    else:
        broken = gx_dir / "expectations" / "team_suite.json"
        broken.write_text(json.dumps({"name": "team_suite", "meta": {}, "expectations": [
            {"type": "expect_column_values_to_be_not_null", "kwargs": {"column": "plan"}}]}))
        needles = [str(broken), "expectation 1", "expect_column_values_to_be_not_null"]
    before = tree_digest(gx_dir)
    result = invoke(gx_copy, "run", *GX, *SMALL, "--force")
    assert result.exit_code == 2, result.output
    [line] = error_lines(result)
    assert all(needle in line for needle in needles), line
    assert tree_digest(gx_dir) == before


def test_help_and_plan_do_not_import_great_expectations(tmp_path: Path) -> None:
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom churnctl.cli.main import app\n"
            "r = CliRunner()\nassert r.invoke(app, ['--help']).exit_code == 0\n"
            f"out = r.invoke(app, ['plan', '--profile', 'v3', '--workspace', {str(tmp_path)!r}])\n"
            "assert out.exit_code == 0, out.output\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('great_expectations', 'pandas')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


def test_validate_suite_shows_what_the_run_checks(gx_run, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    root, _record = gx_run
    monkeypatch.setenv("COLUMNS", "250")
    result = invoke(root, "validate", "suite", "--profile", "v3", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    suites = [e for t in ("users", "events") for e in _suite(root, t)["expectations"]]
    assert len(rows) == len(suites) and {r["owner"] for r in rows} == {"churnctl"}
    assert {"known_user", "date_range", "row_count"} <= {r["kind"] for r in rows}
    table = invoke(root, "validate", "suite", "--profile", "v3")
    assert table.exit_code == 0 and "datetime64[ns]" in table.stdout  # markup-safe
    # No run yet: the suite the contract would generate, with the profile's severities.
    custom = tmp_path / "mine.yaml"
    custom.write_text("name: mine\nextends: v3\nstages:\n  validate:\n    backend: gx\n"
                      "    options: {severity: {null_fraction: critical}}\n")
    fresh = invoke(tmp_path / "empty", "validate", "suite", "--profile", str(custom), "--json")
    assert fresh.exit_code == 0, fresh.output
    kinds = {r["kind"]: r["severity"] for r in json.loads(fresh.stdout)}
    assert kinds["null_fraction"] == "critical" and kinds["unique"] == "critical"


def test_validate_suite_edit_checks_the_edited_file(gx_copy: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nprintf '{broken' > \"$1\"\n")
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.delenv("VISUAL", raising=False)
    result = invoke(gx_copy, "validate", "suite", "--edit", "--table", "users")
    assert result.exit_code == 2, result.output
    [line] = error_lines(result)
    assert "churnctl_users.json" in line and "not valid JSON" in line
