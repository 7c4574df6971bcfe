"""Settings: CLI flags > environment (CHURNCTL_*) > project config (churnctl.yaml) > defaults.

A plain pydantic model rather than pydantic-settings: the latter imports asyncio and costs
~0.1 s at start-up, a third of the no-op `run` budget, for two fields.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from churnctl.errors import UserError
from churnctl.workspace import Workspace

PROJECT_CONFIG = "churnctl.yaml"
ENV_PREFIX = "CHURNCTL_"


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore")

    profile: str = "v1"
    debug: bool = False


def _project_config(workspace: Workspace) -> dict[str, Any]:
    path = workspace.root / PROJECT_CONFIG
    if not path.is_file():
        return {}
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping such as `profile: v2`")
    return data


def load_settings(workspace: Workspace) -> Settings:
    """Environment wins over the project file; flags are applied by the caller."""
    values = _project_config(workspace)
    for name in Settings.model_fields:
        env = os.environ.get(f"{ENV_PREFIX}{name.upper()}")
        if env not in (None, ""):
            values[name] = env
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(map(str, err["loc"]))
        raise UserError(f"setting {key}: {err['msg']} (from {ENV_PREFIX}{key.upper()} or "
                        f"{workspace.root / PROJECT_CONFIG})") from None


def resolve_profile_name(flag: str | None, workspace: Workspace) -> str:
    return flag or load_settings(workspace).profile
