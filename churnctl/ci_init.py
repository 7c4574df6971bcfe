"""GitHub Actions workflows for a churnctl project, from the templates shipped in the package.

Three workflows: ci.yml (lint, tests, `churnctl run`), security.yml (`churnctl scan`, SARIF per
tool) and upgrade.yml (`profile upgrade --gate --format markdown` on a pull request that changes
churnctl.yaml, or on a schedule). Placeholders are plain tokens (`__EXTRAS__`), not a template
language, because the workflows themselves are full of `${{ }}` expressions.
"""

from __future__ import annotations

from pathlib import Path

from churnctl.atomic import write_text
from churnctl.errors import UserError

TEMPLATES = Path(__file__).parent / "ci_templates" / "github"
WORKFLOWS = ("ci.yml", "security.yml", "upgrade.yml")
TARGET_DIR = Path(".github") / "workflows"


def render(name: str, package: str, extras: str, python: str) -> str:
    """One workflow with the install line `pip install 'PACKAGE[EXTRAS]'` filled in."""
    scan_extras = ",".join(dict.fromkeys([*extras.split(","), "scan"]))
    text = (TEMPLATES / name).read_text(encoding="utf-8")
    for token, value in (("__PACKAGE__", package), ("__SCAN_EXTRAS__", scan_extras),
                         ("__EXTRAS__", extras), ("__PYTHON__", python)):
        text = text.replace(token, value)
    return text


def default_extras(profile: str) -> str:
    """The extra named after the shipped profile the project uses (or extends), else v1."""
    from churnctl.profile_files import find_profile, read_yaml, shipped_names

    shipped = set(shipped_names())
    seen = 0
    name = profile
    while seen < 10:
        if name in shipped:
            return name
        try:
            raw = read_yaml(find_profile(name))
        except UserError:
            return "v1"
        parent = raw.get("extends")
        if not parent:
            return "v1"
        name, seen = str(parent), seen + 1
    return "v1"


def write_workflows(root: Path, package: str, extras: str, python: str,
                    force: bool = False) -> list[Path]:
    """Write the three workflows under root/.github/workflows; refuse (writing nothing) when
    one exists and `force` is not set."""
    targets = [root / TARGET_DIR / name for name in WORKFLOWS]
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        raise UserError(f"{existing[0]} exists; pass --force to overwrite "
                        f"({len(existing)} of {len(targets)} workflows exist)")
    texts = [render(name, package, extras, python) for name in WORKFLOWS]
    targets[0].parent.mkdir(parents=True, exist_ok=True)
    for path, text in zip(targets, texts, strict=True):
        write_text(path, text)
    return targets
