"""The model report: one self-contained HTML file per run, its numbers in the run record.

`write_run_report` is what `churnctl run` calls after a run that trained and what
`churnctl report` calls for any past run. Plotly is imported only when a page is rendered.

The page belongs to the run that trained: a run whose train stage was cached links the page of
the run that trained that model instead of writing another. Pages share one versioned
plotly.js beside them (`assets/plotly-<version>.min.js`, 4.7 MB once per folder instead of
per page), so they still open offline from the file system.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from churnctl.workspace import Workspace

LATEST = "latest.html"
ASSETS = "assets"
RUN_FIELDS = ("run_id", "started_at")  # what differs between runs of the same model


def plotly_asset(folder: Path) -> str:
    """Write the shared plotly.js into `folder/assets/` once; its path relative to `folder`."""
    from plotly.offline import get_plotlyjs, get_plotlyjs_version

    from churnctl.atomic import atomic_path

    name = f"{ASSETS}/plotly-{get_plotlyjs_version()}.min.js"
    target = folder / name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            tmp.write_text(get_plotlyjs(), encoding="utf-8")
    return name


def _train_row(record: dict[str, Any]) -> dict[str, Any] | None:
    return next((r for r in record["stages"] if r["name"] == "train"), None)


def _page_index(workspace: Workspace, train_artifact: str) -> Path:
    """Where the report of the run that trained `train_artifact` is indexed: a no-op run finds
    its page in one read, whatever the number of runs."""
    return workspace.reports / ".pages" / "by-train" / f"{Path(train_artifact).name}.json"


def _trained_by(workspace: Workspace, record: dict[str, Any]) -> dict[str, Any] | None:
    """The report of the earlier run that trained this run's (cached) model, if its page is
    still there."""
    train = _train_row(record)
    if train is None or train.get("status") != "cached" or not train.get("artifact"):
        return None
    index = _page_index(workspace, train["artifact"])
    if index.is_file():
        report = json.loads(index.read_text())
        if (workspace.root / report["html"]).is_file():
            return report
    return _trained_by_scan(workspace, record, train["artifact"])


def _trained_by_scan(workspace: Workspace, record: dict[str, Any],
                     artifact: str) -> dict[str, Any] | None:
    """The same answer from every run record: for pages written before the index existed."""
    from churnctl.runs import list_records

    for earlier in list_records(workspace):
        report = earlier.get("report") or {}
        if earlier["run_id"] == record["run_id"] or not report.get("html"):
            continue
        row = _train_row(earlier)
        if row and row.get("artifact") == artifact and (workspace.root / report["html"]).is_file():
            _index_page(workspace, earlier)
            return report
    return None


def _index_page(workspace: Workspace, record: dict[str, Any]) -> None:
    from churnctl.atomic import write_json

    train = _train_row(record)
    if train and train.get("artifact") and (record.get("report") or {}).get("html"):
        write_json(_page_index(workspace, train["artifact"]), record["report"])


def write_run_report(workspace: Workspace, record: dict[str, Any],
                     out: Path | None = None) -> Path:
    """Write the run's report atomically and keep its numbers in the run record.

    Without `out`: `reports/<run_id>.html` and `reports/latest.html`. Returns the page's path.
    """
    from churnctl.atomic import atomic_path, write_json
    from churnctl.hashing import value_sha256
    from churnctl.report.collect import report_numbers
    from churnctl.runs import save_record

    if out is None and (earlier := _trained_by(workspace, record)) is not None:
        _link(workspace.root / earlier["html"], workspace.reports / LATEST)
        record["report"] = earlier
        save_record(workspace, record)
        return workspace.root / earlier["html"]
    numbers = report_numbers(workspace, record)
    path = out if out is not None else workspace.reports / f"{record['run_id']}.html"
    src = plotly_asset(path.parent)
    # The rendered page is cached by its content minus the run's identity, which is filled in
    # per run: a cached re-run does not pay for plotly again (~0.3-0.9 s).
    per_run = {key: numbers[key] for key in RUN_FIELDS if key in numbers}
    template_numbers = {**numbers, **{key: f"@@{key}@@" for key in per_run}}
    key = value_sha256({"numbers": template_numbers, "plotly": src})[:16]
    template = workspace.reports / ".pages" / f"{key}.html"
    offsets = template.with_suffix(".offsets.json")
    if not (template.exists() and offsets.exists()):
        from churnctl.report.html import render_html

        rendered = render_html(template_numbers, src).encode()
        write_json(offsets, _token_offsets(rendered, list(per_run)))
        with atomic_path(template) as tmp:
            tmp.write_bytes(rendered)
    # Splice the run's values in at offsets found once per template, write once, and make
    # latest.html a hard link: a cached re-run spends a few ms here, not ~80.
    page = _splice(template.read_bytes(), json.loads(offsets.read_text()),
                   {key: str(value) for key, value in per_run.items()})
    with atomic_path(path) as tmp:
        tmp.write_bytes(page)
    if out is None:
        _link(path, workspace.reports / LATEST)
    shown = path.relative_to(workspace.root) if path.is_relative_to(workspace.root) else path
    record["report"] = {"html": str(shown), **numbers}
    save_record(workspace, record)
    if out is None:
        _index_page(workspace, record)
    return path




def _link(source: Path, target: Path) -> None:
    """Make `target` the same file as `source`, atomically (a copy where links fail)."""
    import os
    import shutil

    if target.exists() and os.path.samefile(source, target):
        return  # rename(2) of a link onto its own file does nothing and would leave tmp
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)



def _token_offsets(page: bytes, keys: list[str]) -> list[tuple[int, str]]:
    found = []
    for key in keys:
        token = f"@@{key}@@".encode()
        start = page.find(token)
        while start != -1:
            found.append((start, key))
            start = page.find(token, start + len(token))
    return sorted(found)


def _splice(page: bytes, offsets: list[list[Any]], values: dict[str, str]) -> bytes:
    parts, position = [], 0
    for start, key in offsets:
        parts += [page[position:start], values[key].encode()]
        position = start + len(f"@@{key}@@")
    parts.append(page[position:])
    return b"".join(parts)
