"""Variants are registry aliases: `champion` is the production pointer, others name versions.

Local registry: `champion` is the registry's production version; other aliases live in
REGISTRY/aliases.json ({"challenger": 3}), written atomically. MLflow (model_source mlflow):
the registered model's own aliases, which training already sets (champion, challenger).
Either way `ab promote VARIANT` moves `champion` to the version the variant's alias holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from churnctl.domain.model_registry import ModelRegistry, ModelVersion
from churnctl.errors import UserError
from churnctl.workspace import Workspace

CHAMPION = "champion"
ALIAS_FILE = "aliases.json"


class LocalAliases:
    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self.path = Path(registry.root) / ALIAS_FILE

    def _read(self) -> dict[str, int]:
        import json

        if not self.path.is_file():
            return {}
        data = json.loads(self.path.read_text(encoding="utf-8"))
        return {str(k): int(v) for k, v in data.items()}

    def version_of(self, alias: str) -> int | None:
        if alias == CHAMPION:
            production = self.registry.production()
            return production.version if production else None
        return self._read().get(alias)

    def set(self, alias: str, version: int) -> None:
        """Point `alias` at `version` (champion: the production pointer)."""
        from churnctl.atomic import write_json

        self.registry.get(version)  # an unknown version is a UserError, nothing written
        if alias == CHAMPION:
            self.registry.set_production(version)
            return
        write_json(self.path, {**self._read(), alias: version})


class AliasRegistry:
    """The local registry seen through one alias, for the serving holder (hot reload)."""

    def __init__(self, aliases: LocalAliases, alias: str) -> None:
        self.aliases, self.alias = aliases, alias
        registry = aliases.registry
        self.root = f"{registry.root} (alias {alias})"
        # What changes when the alias moves: the index (production) or the alias file.
        self.index_path = registry.index_path if alias == CHAMPION else aliases.path

    def production(self) -> ModelVersion | None:
        version = self.aliases.version_of(self.alias)
        return None if version is None else self.aliases.registry.get(version)

    def model_path(self, version: int) -> Path:
        return self.aliases.registry.model_path(version)

    def load_model(self, version: int) -> Any:
        return self.aliases.registry.load_model(version)


def variant_registry(workspace: Workspace, options: Any, alias: str) -> Any:
    """Where a variant's model comes from, under the serve options' model source."""
    if options.model_source == "mlflow":
        from churnctl.serving.sources import MlflowAliasRegistry

        return MlflowAliasRegistry(workspace, options.mlflow_tracking_uri,
                                   options.mlflow_model_name, alias)
    return AliasRegistry(LocalAliases(ModelRegistry(workspace.registry)), alias)


def promote_variant(workspace: Workspace, options: Any, variant: str) -> tuple[int, int | None]:
    """Move champion to the variant's version: (new champion version, previous one)."""
    if variant not in options.variants:
        raise UserError(f"unknown variant {variant!r}: the profile's variants are "
                        f"{', '.join(options.variants)}")
    if options.model_source == "mlflow":
        return _promote_mlflow(options, variant)
    aliases = LocalAliases(ModelRegistry(workspace.registry))
    version = aliases.version_of(variant)
    if version is None:
        raise UserError(f"variant {variant!r}: no model version holds alias {variant!r}; set "
                        f"it with `churnctl ab alias {variant} VERSION`")
    previous = aliases.version_of(CHAMPION)
    if previous == version:
        raise UserError(f"variant {variant!r} (v{version}) is already the champion")
    aliases.set(CHAMPION, version)
    return version, previous


def _promote_mlflow(options: Any, variant: str) -> tuple[int, int | None]:
    from mlflow import MlflowClient

    from churnctl.tracking.mlflow_registry import alias_holder

    client = MlflowClient(tracking_uri=options.mlflow_tracking_uri)
    name = options.mlflow_model_name
    holder = alias_holder(client, name, variant)
    if holder is None:
        raise UserError(f"variant {variant!r}: no version of MLflow model {name!r} holds "
                        f"alias {variant!r}")
    previous = alias_holder(client, name, CHAMPION)
    if previous is not None and previous.version == holder.version:
        raise UserError(f"variant {variant!r} (v{holder.version}) is already the champion")
    client.set_registered_model_alias(name, CHAMPION, holder.version)
    return int(holder.version), int(previous.version) if previous is not None else None
