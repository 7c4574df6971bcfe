"""Reasoned ignores: one YAML file of `{rule, path, why, expires}` entries.

`path` is a glob (fnmatch) on the finding's path; `why` is required; an entry past its
`expires` date (YYYY-MM-DD) no longer applies, so an ignore is a decision with a review date,
not a permanent mute.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from churnctl.errors import UserError
from churnctl.scan.model import Finding

DEFAULT_NAME = "scan-ignore.yaml"


@dataclass(frozen=True)
class Ignore:
    rule: str
    path: str
    why: str
    expires: dt.date

    def matches(self, finding: Finding) -> bool:
        return finding.rule == self.rule and fnmatch(finding.path, self.path)


def load_ignores(path: Path) -> list[Ignore]:
    """The entries of an ignore file; every malformed entry is one line of the UserError."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read ignore file {path}: {exc}") from None
    entries = raw.get("ignores", []) if isinstance(raw, dict) else None
    if not isinstance(entries, list):
        raise UserError(f"{path}: expected a mapping with an `ignores:` list")
    out, problems = [], []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append(f"{path}: ignores[{i}] is not a mapping")
            continue
        absent = [k for k in ("rule", "path", "why", "expires") if not entry.get(k)]
        if absent:
            problems.append(f"{path}: ignores[{i}] lacks {', '.join(absent)}")
            continue
        try:
            expires = dt.date.fromisoformat(str(entry["expires"]))
        except ValueError:
            problems.append(f"{path}: ignores[{i}].expires is not YYYY-MM-DD")
            continue
        out.append(Ignore(str(entry["rule"]), str(entry["path"]), str(entry["why"]), expires))
    if problems:
        raise UserError("\n".join(problems))
    return out


def apply_ignores(findings: list[Finding], ignores: list[Ignore],
                  today: dt.date | None = None) -> list[str]:
    """Mark matched findings ignored (with the reason); return warnings for expired entries."""
    today = today or dt.date.today()
    live = [i for i in ignores if i.expires >= today]
    warnings = [f"ignore for {i.rule} on {i.path} expired {i.expires}: it no longer applies"
                for i in ignores if i.expires < today]
    for finding in findings:
        for entry in live:
            if entry.matches(finding):
                finding.ignored = entry.why
                break
    return warnings
