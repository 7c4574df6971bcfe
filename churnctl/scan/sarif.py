"""One SARIF 2.1.0 log with one run per tool, for GitHub code scanning (`upload-sarif`)."""

from __future__ import annotations

from typing import Any

from churnctl.scan.model import ToolResult

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"CRITICAL": "error", "HIGH": "error", "MEDIUM": "warning", "LOW": "note",
          "UNKNOWN": "note"}
# GitHub orders alerts by this number (0.0-10.0).
_SCORE = {"CRITICAL": "9.5", "HIGH": "8.0", "MEDIUM": "5.5", "LOW": "2.0", "UNKNOWN": "0.0"}


def _run(tool: ToolResult) -> dict[str, Any]:
    rule_ids = sorted({f.rule for f in tool.findings} | set(tool.rules))
    index = {rule: i for i, rule in enumerate(rule_ids)}
    worst: dict[str, str] = {}
    for f in tool.findings:
        if _SCORE[f.severity if f.severity in _SCORE else "UNKNOWN"] > _SCORE.get(
                worst.get(f.rule, "UNKNOWN"), "0.0"):
            worst[f.rule] = f.severity
    rules = [{
        "id": rule,
        "shortDescription": {"text": tool.rules.get(rule) or rule},
        "properties": {"security-severity": _SCORE.get(worst.get(rule, "UNKNOWN"), "0.0")},
    } for rule in rule_ids]
    results = []
    for f in tool.findings:
        location: dict[str, Any] = {"artifactLocation": {"uri": f.path or "."}}
        if f.line > 0:
            location["region"] = {"startLine": f.line}
        result: dict[str, Any] = {
            "ruleId": f.rule,
            "ruleIndex": index[f.rule],
            "level": _LEVEL.get(f.severity, "note"),
            "message": {"text": f.message or f.rule},
            "locations": [{"physicalLocation": location}],
            "properties": {"severity": f.severity, "category": f.category},
        }
        if f.ignored:
            result["suppressions"] = [{"kind": "external", "justification": f.ignored}]
        results.append(result)
    driver: dict[str, Any] = {"name": tool.tool, "rules": rules}
    if tool.version:
        driver["version"] = tool.version
    if tool.info_uri:
        driver["informationUri"] = tool.info_uri
    notifications = [{"level": "warning" if c.status != "checked" else "note",
                      "message": {"text": f"{c.name}: {c.status}"
                                  + (f" ({c.detail})" if c.detail else "")}}
                     for c in tool.checks]
    return {
        "tool": {"driver": driver},
        "automationDetails": {"id": f"churnctl-scan/{tool.tool}/"},
        "invocations": [{"executionSuccessful": all(c.status == "checked" for c in tool.checks),
                         "toolExecutionNotifications": notifications}],
        "results": results,
    }


def to_sarif(tools: list[ToolResult]) -> dict[str, Any]:
    """The merged log: `runs[i]` is tool i, its category `churnctl-scan/<tool>/`."""
    return {"$schema": SCHEMA, "version": "2.1.0", "runs": [_run(t) for t in tools]}
