"""Writing the new profile into churnctl.yaml: only the `profile:` value changes.

The rest of the file (other keys, comments, order) is kept byte for byte; the new text is
checked to parse to the same mapping with the new profile before it replaces the old file
atomically (temp file, fsync, rename), so a reader sees the old file or the new, never half.
"""

from __future__ import annotations

import re
from pathlib import Path

from churnctl.atomic import write_text
from churnctl.errors import UserError
from churnctl.settings import PROJECT_CONFIG

# A top-level `profile:` line: its value (plain or quoted) and an optional trailing comment.
_LINE = re.compile(r"^profile:[ \t]*(?P<value>\"[^\"]*\"|'[^']*'|[^#\n]*?)"
                   r"(?P<comment>[ \t]+#[^\n]*)?[ \t]*$", re.MULTILINE)


def with_profile(text: str, value: str) -> str:
    """`text` of churnctl.yaml with its profile set to `value` (appended when absent)."""
    import json

    shown = value if re.fullmatch(r"[A-Za-z0-9_./-]+", value) else json.dumps(value)
    matches = list(_LINE.finditer(text))
    if len(matches) > 1:
        raise UserError(f"{PROJECT_CONFIG}: `profile:` appears {len(matches)} times; keep one")
    if not matches:
        sep = "" if not text or text.endswith("\n") else "\n"
        return f"{text}{sep}profile: {shown}\n"
    found = matches[0]
    return (text[:found.start()] + f"profile: {shown}" + (found.group("comment") or "")
            + text[found.end():])


def write_profile(root: Path, value: str) -> Path:
    """Set `profile: value` in root/churnctl.yaml, atomically, keeping everything else."""
    import yaml

    path = root / PROJECT_CONFIG
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    try:
        before = yaml.safe_load(text) or {} if text else {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({getattr(exc, 'problem', exc)}); fix it "
                        "before upgrading") from None
    if not isinstance(before, dict):
        raise UserError(f"{path}: expected a mapping such as `profile: v2`")
    new = with_profile(text, value)
    after = yaml.safe_load(new)
    if after != {**before, "profile": value}:
        raise UserError(f"{path}: could not set `profile:` without changing other keys; "
                        f"set `profile: {value}` by hand")
    write_text(path, new)
    return path
