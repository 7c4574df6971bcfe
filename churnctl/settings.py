"""Settings: CLI flags > environment (CHURNCTL_*) > project config (churnctl.yaml) > defaults."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from churnctl.workspace import Workspace

PROJECT_CONFIG = "churnctl.yaml"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHURNCTL_", extra="ignore")

    profile: str = "v1"
    debug: bool = False


def _project_config(workspace: Workspace) -> dict[str, object]:
    path: Path = workspace.root / PROJECT_CONFIG
    if not path.is_file():
        return {}
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return data if isinstance(data, dict) else {}


def load_settings(workspace: Workspace) -> Settings:
    """Environment wins over the project file; flags are applied by the caller."""
    project = {k: v for k, v in _project_config(workspace).items() if k in Settings.model_fields}
    env = Settings()
    explicit = env.model_fields_set
    return Settings.model_validate({**project, **env.model_dump(include=explicit)})


def resolve_profile_name(flag: str | None, workspace: Workspace) -> str:
    return flag or load_settings(workspace).profile
