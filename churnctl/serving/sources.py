"""Where the API finds its production model: the local registry (v1) or MLflow's alias (v2).

Both are seen through the local registry's interface (`production()`, `model_path()`,
`load_model()`, `index_path`, `root`), so the hot-reloading holder is the same for either.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from churnctl.domain.model_registry import ModelRegistry, ModelVersion
from churnctl.errors import UserError
from churnctl.workspace import Workspace

if TYPE_CHECKING:
    from churnctl.domain.model import ChurnModel


class MlflowAliasRegistry:
    """The version of a registered MLflow model that holds an alias (`champion`).

    It has no index file to watch, so the holder asks MLflow on every poll: one registry
    call; a version's files are downloaded once, when the alias first points at it.
    """

    def __init__(self, workspace: Workspace, tracking_uri: str, name: str, alias: str,
                 version: int | None = None) -> None:
        self.tracking_uri, self.name, self.alias, self.version = tracking_uri, name, alias, version
        where = f"models:/{name}@{alias}" if version is None else f"models:/{name}/{version}"
        self.root = f"{tracking_uri} ({where})"
        self.index_path = workspace.state / "mlflow-alias-has-no-index-file"
        self.cache_dir = workspace.state / "mlflow-models"
        self._versions: dict[int, tuple[ModelVersion, Path]] = {}
        self._fresh: tuple[int, ChurnModel] | None = None  # read by production(), not yet used

    def production(self) -> ModelVersion | None:
        from churnctl.tracking.mlflow_registry import NoChampion, champion_version

        try:
            version, path = champion_version(self.tracking_uri, self.name, self.alias,
                                             cache_dir=self.cache_dir, version=self.version)
        except NoChampion:
            return None  # no version holds the alias yet: not ready, as with an empty registry
        except Exception as exc:  # mlflow raises its own types for an unreachable server
            raise OSError(f"MLflow at {self.tracking_uri}: {exc}") from exc
        if version not in self._versions:
            from churnctl.domain.model import ChurnModel

            model = ChurnModel.load(path)
            self._versions[version] = (self._describe(version, model), path)
            self._fresh = (version, model)
        return self._versions[version][0]

    def model_path(self, version: int) -> Path:
        return self._versions[version][1]

    def load_model(self, version: int) -> ChurnModel:
        """The model of `version`: the one `production()` just read to describe it (a skops
        load of a large model takes ~0.1 s), else read again."""
        from churnctl.domain.model import ChurnModel

        fresh, self._fresh = self._fresh, None
        if fresh is not None and fresh[0] == version:
            return fresh[1]
        return ChurnModel.load(self.model_path(version))

    @staticmethod
    def _describe(version: int, model: ChurnModel) -> ModelVersion:
        return ModelVersion(version=version, artifact="", algorithm=model.algorithm,
                            metrics=dict(model.metrics), created_at="", status="production",
                            decision="holds the MLflow alias", feature_schema=model.schema)


class PinnedVersionRegistry:
    """One version of the local registry, whatever production is (`serve --model-version N`).

    Seen through the same interface, so the holder loads, verifies and watches it as usual.
    """

    def __init__(self, registry: ModelRegistry, version: int) -> None:
        self._registry, self.version = registry, version
        self.root, self.index_path = registry.root, registry.index_path

    def production(self) -> ModelVersion | None:
        if not self.index_path.is_file():
            return None
        if all(v.version != self.version for v in self._registry.versions()):
            raise ValueError(f"model version {self.version} is not in it")
        return self._registry.get(self.version)

    def model_path(self, version: int) -> Path:
        return self._registry.model_path(version)

    def load_model(self, version: int) -> ChurnModel:
        return self._registry.load_model(version)


def model_registry_for(workspace: Workspace, options: Any
                       ) -> ModelRegistry | MlflowAliasRegistry | PinnedVersionRegistry:
    """The registry the serve options name."""
    if options.model_source == "registry":
        pinned = getattr(options, "model_version", None)
        if pinned is not None:
            return PinnedVersionRegistry(ModelRegistry(workspace.registry), pinned)
        return ModelRegistry(workspace.registry)
    if not options.mlflow_tracking_uri:
        raise UserError("serve option model_source=mlflow needs mlflow_tracking_uri (or a "
                        "profile with `tracking: {backend: mlflow}`)")
    return MlflowAliasRegistry(workspace, options.mlflow_tracking_uri, options.mlflow_model_name,
                               options.mlflow_alias, getattr(options, "model_version", None))
