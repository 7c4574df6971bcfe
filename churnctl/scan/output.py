"""The scan's result as a rich table, a JSON object and a self-contained HTML page."""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from churnctl.scan.model import NOT_CHECKED, SEVERITIES, Finding, ToolResult, rank


@dataclass
class ScanResult:
    root: str
    fail_on: str
    tools: list[ToolResult]
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def findings(self) -> list[Finding]:
        return [f for t in self.tools for f in t.findings]

    @property
    def blocking(self) -> list[Finding]:
        """Findings at or above --fail-on that no reasoned ignore covers."""
        bar = rank(self.fail_on)
        return [f for f in self.findings if not f.ignored and rank(f.severity) >= bar]

    @property
    def not_checked(self) -> list[str]:
        return [f"{c.name}: {c.status}" + (f" ({c.detail})" if c.detail else "")
                for t in self.tools for c in t.checks if c.status == NOT_CHECKED]

    @property
    def verdict(self) -> str:
        """fail: a blocking finding; incomplete: none, but some check did not run; else pass."""
        if self.blocking:
            return "fail"
        return "incomplete" if self.not_checked else "pass"

    def vulnerabilities_status(self) -> str:
        for t in self.tools:
            for c in t.checks:
                if t.tool == "trivy" and c.name == "vulnerabilities":
                    return "checked" if c.status != NOT_CHECKED else "not checked (no database)"
        return "not checked (trivy did not run)"

    def as_dict(self) -> dict[str, Any]:
        counts = Counter(f.severity for f in self.findings if not f.ignored)
        return {
            "root": self.root,
            "fail_on": self.fail_on,
            "verdict": self.verdict,
            "vulnerabilities": self.vulnerabilities_status(),
            "seconds": round(self.seconds, 2),
            "counts": {s: counts.get(s, 0) for s in reversed(SEVERITIES)},
            "blocking": len(self.blocking),
            "ignored": sum(bool(f.ignored) for f in self.findings),
            "not_checked": self.not_checked,
            "warnings": self.warnings,
            "tools": [{"tool": t.tool, "version": t.version,
                       "checks": [c.as_dict() for c in t.checks]} for t in self.tools],
            "findings": [f.as_dict() for f in _ordered(self.findings)],
        }


def _ordered(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (-rank(f.severity), f.tool, f.path, f.line, f.rule))


def print_table(result: ScanResult, console: Any) -> None:
    from rich.table import Table

    from churnctl.cli.common import escape

    shown = [f for f in _ordered(result.findings) if not f.ignored]
    table = Table(title=f"churnctl scan {result.root}: {len(shown)} finding(s)")
    for column in ("severity", "tool", "rule", "where", "message"):
        table.add_column(column, overflow="fold")
    previous = None
    for f in shown:
        group = (f.severity, f.tool)
        if previous is not None and group != previous:
            table.add_section()
        previous = group
        where = f"{f.path}:{f.line}" if f.line else f.path
        table.add_row(f.severity, f.tool, escape(f.rule), escape(where), escape(f.message[:160]))
    if shown:
        console.print(table)
    for tool in result.tools:
        for check in tool.checks:
            mark = "[green]checked[/]" if check.status != NOT_CHECKED else "[yellow]not checked[/]"
            detail = f" ({escape(check.detail)})" if check.detail else ""
            console.print(f"  {tool.tool} {escape(check.name)}: {mark}{detail}")
    console.print(f"vulnerabilities: {result.vulnerabilities_status()}")
    ignored = sum(bool(f.ignored) for f in result.findings)
    colour = {"pass": "green", "incomplete": "yellow", "fail": "red"}[result.verdict]
    console.print(f"[bold {colour}]{result.verdict}[/]: {len(result.blocking)} finding(s) at or "
                  f"above {result.fail_on}, {ignored} ignored with a reason, "
                  f"{len(result.not_checked)} check(s) not run, {result.seconds:.1f} s")


_CSS = """body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{font-size:1.5rem}table{border-collapse:collapse;width:100%;font-size:.9rem}
td,th{border-bottom:1px solid #ddd;padding:.35rem .5rem;text-align:left;vertical-align:top}
.CRITICAL{color:#fff;background:#8b0000}.HIGH{color:#fff;background:#c0392b}
.MEDIUM{background:#f5b041}.LOW{background:#d6eaf8}.UNKNOWN{background:#eee}
.sev{padding:.1rem .4rem;border-radius:3px;font-weight:600}.nc{color:#b9770e}
.verdict{font-size:1.2rem;font-weight:700}"""


def _ignored(why: str) -> str:
    return f"<br><i>ignored: {html.escape(why)}</i>" if why else ""


def to_html(result: ScanResult) -> str:
    """One self-contained page: verdict, checks (not checked shown as such), findings."""
    e = html.escape
    data = result.as_dict()
    rows = "".join(
        f"<tr><td><span class='sev {e(f['severity'])}'>{e(f['severity'])}</span></td>"
        f"<td>{e(f['tool'])}</td><td>{e(f['rule'])}</td>"
        f"<td>{e(f['path'])}{':' + str(f['line']) if f['line'] else ''}</td>"
        f"<td>{e(f['message'])}{_ignored(f['ignored'])}</td></tr>" for f in data["findings"])
    checks = "".join(
        f"<li class='{'nc' if c['status'] == NOT_CHECKED else ''}'>{e(t['tool'])} "
        f"{e(c['name'])}: {e(c['status'])} {e(c['detail'])}</li>"
        for t in data["tools"] for c in t["checks"])
    counts = ", ".join(f"{n} {s}" for s, n in data["counts"].items() if n)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>churnctl scan</title>"
            f"<style>{_CSS}</style></head><body><h1>Security scan of {e(data['root'])}</h1>"
            f"<p class='verdict'>{e(data['verdict'])} at {e(data['fail_on'])}</p>"
            f"<p>{e(counts or 'no findings')}; vulnerabilities: {e(data['vulnerabilities'])}; "
            f"{data['ignored']} ignored; {data['seconds']} s</p><h2>Checks</h2><ul>{checks}</ul>"
            f"<h2>Findings</h2><table><tr><th>severity</th><th>tool</th><th>rule</th>"
            f"<th>where</th><th>message</th></tr>{rows}</table></body></html>")
