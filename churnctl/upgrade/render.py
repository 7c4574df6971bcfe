"""The upgrade plan as a terminal table or as Markdown (a pull-request comment)."""

from __future__ import annotations

from typing import Any

from churnctl.upgrade.plan import UpgradePlan

MARKER = "<!-- churnctl-profile-upgrade -->"  # lets a workflow find and update its comment


def backend_text(row: dict[str, Any]) -> str:
    if row["from"] == row["to"]:
        return str(row["to"])
    return f"{row['from'] or '-'} -> {row['to'] or '-'}"


def options_text(row: dict[str, Any]) -> str:
    """A backend change: the new backend's options once; else each changed option."""
    if row["options_of_new_backend"] is not None:
        return "with " + (", ".join(f"{k}={v!r}" for k, v in row["options_of_new_backend"].items())
                          or "defaults")
    if row["to"] is None:
        return "removed"
    return ", ".join(f"{k}: {v[0]!r} -> {v[1]!r}" for k, v in row["options"].items())


def gate_mark(passed: bool | None) -> str:
    return {True: "pass", False: "FAIL", None: "skipped"}[passed]


def kubernetes_text(k8s: dict[str, Any]) -> list[str]:
    if not k8s:
        return []
    if "error" in k8s:
        return [f"not rendered: {k8s['error']}"]
    lines = [f"+ {name}" for name in k8s["appear"]] + [f"- {name}" for name in k8s["go_away"]]
    return [*lines, f"{k8s['unchanged']} object(s) unchanged"]


def markdown(plan: UpgradePlan) -> str:
    out = [MARKER, f"### churnctl profile upgrade: `{plan.current}` → `{plan.target}`", ""]
    if plan.gates:
        failed = [g["name"] for g in plan.gates if g["passed"] is False]
        out += [f"**Gates: {'failed: ' + ', '.join(failed) if failed else 'all passed'}**", "",
                "| gate | result | detail |", "|---|---|---|"]
        out += [f"| {g['name']} | {gate_mark(g['passed'])} | {_cell(g['detail'])} |"
                for g in plan.gates]
        out.append("")
    out += ["| binding | backend | options |", "|---|---|---|"]
    out += [f"| {r['binding']} | {_cell(backend_text(r))} | {_cell(options_text(r))} |"
            for r in plan.changes]
    sections = {
        "Extras to install": [f"`{e['install']}` ({', '.join(e['for'])})"
                              + ("" if e["installed"] else " — not installed here")
                              for e in plan.extras],
        "Services": [f"{s['name']}: {s['why']}" for s in plan.services],
        "Environment variables": [f"`{v['name']}`{' (secret)' if v['secret'] else ''}: "
                                  f"{v['why']}" for v in plan.env],
        "Binaries": [f"`{b['name']}`{'' if b['found'] else ' — not found here'}"
                     for b in plan.binaries],
        "Kubernetes objects": [f"`{line}`" if line[:2] in ("+ ", "- ") else line
                               for line in kubernetes_text(plan.kubernetes)],
    }
    for title, lines in sections.items():
        if lines:
            out += ["", f"**{title}**", "", *(f"- {line}" for line in lines)]
    if plan.written:
        out += ["", f"Wrote `profile: {plan.target}` to `{plan.written}`."]
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def print_table(plan: UpgradePlan, console: Any, new_table: Any, escape: Any) -> None:
    table = new_table(title=f"profile upgrade {plan.current} -> {plan.target}")
    for column in ("binding", "backend", "options"):
        table.add_column(column)
    for row in plan.changes:
        table.add_row(row["binding"], escape(backend_text(row)), escape(options_text(row)))
    console.print(table)
    lists = {
        "extras to install": [e["install"] + ("" if e["installed"] else " (not installed here)")
                              for e in plan.extras],
        "services": [f"{s['name']}: {s['why']}" for s in plan.services],
        "environment variables": [f"{v['name']}{' (secret)' if v['secret'] else ''}: "
                                  f"{v['why']}" for v in plan.env],
        "binaries": [f"{b['name']}{'' if b['found'] else ' (not found here)'}"
                     for b in plan.binaries],
        "kubernetes objects": kubernetes_text(plan.kubernetes),
    }
    for title, lines in lists.items():
        if lines:
            console.print(f"[bold]{title}[/]")
            for line in lines:
                console.print(f"  {escape(line)}", soft_wrap=True)
    if plan.gates:
        gates = new_table(title="gates")
        for column in ("gate", "result", "detail"):
            gates.add_column(column)
        style = {True: "green", False: "red", None: "dim"}
        for g in plan.gates:
            gates.add_row(g["name"], f"[{style[g['passed']]}]{gate_mark(g['passed'])}[/]",
                          escape(g["detail"]))
        console.print(gates)
    if plan.written:
        console.print(f"wrote profile: {escape(plan.target)} to {escape(plan.written)}")
