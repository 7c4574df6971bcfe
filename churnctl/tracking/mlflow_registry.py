"""The MLflow Model Registry as the production pointer of record (v2+), and the champion
lookup serving polls.

With tracking on, the `champion` alias is the one production pointer; the local registry
(`.churnctl/registry`) is a cache of it that every run refreshes:

- before the gate compares, `pull_champion` makes the local production the alias holder
  (downloading its model into the local registry when this workspace never had it, as in a
  Kubeflow pod or a teammate's clone), so the candidate is judged against the real production;
- after the run, `mirror_promotion` moves the alias to a promoted candidate only if the alias
  still points at the model the candidate was compared with (compare-and-set): a champion
  that moved in between is never replaced by a model that was not compared with it. The local
  cache then follows whatever the alias holds.

`challenger` marks the runner-up. Versions carry the training artifact's content hash and the
model file's sha256 as tags: logging the same model twice registers it once, and a downloaded
model is checked against the hash recorded when it was registered.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from churnctl.environ import scoped_environ
from churnctl.errors import UserError
from churnctl.stages import ArtifactRef
from churnctl.workspace import Workspace


class NoChampion(UserError):
    """No version of the registered model holds the alias yet."""


ARTIFACT_TAG = "churnctl.artifact"
SHA256_TAG = "churnctl.sha256"
CHAMPION, CHALLENGER = "champion", "challenger"


def find_version(client: Any, name: str, artifact: str) -> Any | None:
    """The registered version made from this training artifact, if any."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name='{name}'")
    except MlflowException:
        return None  # no such registered model yet
    return next((v for v in versions if v.tags.get(ARTIFACT_TAG) == artifact), None)


def alias_holder(client: Any, name: str, alias: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def pinned_version(client: Any, name: str, version: int) -> Any:
    """A registered version by number; a missing one is an error, never "no champion yet"."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, str(version))
    except MlflowException:
        raise UserError(f"registered model {name!r} has no version {version}") from None


def ensure_version(client: Any, name: str, artifact: str, model_file: Path, example: Any,
                   tags: dict[str, str]) -> Any:
    """Register the model once (in the active run); the existing version when it already is."""
    import mlflow

    from churnctl.tracking.mlflow_model import log_churn_model

    found = find_version(client, name, artifact)
    if found is not None:
        return found
    info = log_churn_model(model_file, example)
    # register_model prints "Successfully registered ..." to stderr; the tracker's own
    # summary line says it once.
    with contextlib.redirect_stderr(io.StringIO()):
        return mlflow.register_model(info.model_uri, name, tags={ARTIFACT_TAG: artifact, **tags})


def _tags(entry: Any, run_id: str) -> dict[str, str]:
    if entry is None:
        return {"churnctl.mlflow_run": run_id}
    return {"churnctl.local_version": str(entry.version), "churnctl.status": entry.status,
            "churnctl.algorithm": entry.algorithm, "churnctl.decision": entry.decision[:4000],
            "churnctl.mlflow_run": run_id, SHA256_TAG: entry.sha256}


def mirror_promotion(client: Any, name: str, workspace: Workspace, train: ArtifactRef,
                     example: Any, row: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Register the run's model; move `champion` to it only when the gate promoted it against
    the model that still holds the alias. The local production then follows the alias."""
    from churnctl.domain.model_registry import ModelRegistry

    registry = ModelRegistry(workspace.registry)
    local = registry.find_by_artifact(train.content_hash)
    candidate = ensure_version(client, name, train.content_hash, train.model(), example,
                               _tags(local, run_id))
    previous = alias_holder(client, name, CHAMPION)
    compared_with = _compared_with(workspace, train)
    aliases: dict[str, int] = {}
    note = ""
    champion = previous
    if local is not None and local.promoted:
        holder_artifact = previous.tags.get(ARTIFACT_TAG) if previous is not None else None
        if previous is None or holder_artifact == compared_with or (
                previous.version == candidate.version):
            champion = candidate
        else:
            note = (f"not promoted in MLflow: @{CHAMPION} moved to v{previous.version} after "
                    "the comparison; rerun to compare against it")
    elif previous is None:
        production = registry.production()
        if production is not None:  # production from before MLflow (a v1 workspace)
            champion = ensure_version(client, name, production.artifact,
                                      registry.model_path(production.version), example,
                                      _tags(production, run_id))
    if champion is not None:
        if previous is None or previous.version != champion.version:
            client.set_registered_model_alias(name, CHAMPION, champion.version)
        aliases[CHAMPION] = int(champion.version)
        _follow(registry, champion)
    runner_up = previous if champion is candidate else candidate
    if runner_up is not None and (champion is None or runner_up.version != champion.version):
        client.set_registered_model_alias(name, CHALLENGER, runner_up.version)
        aliases[CHALLENGER] = int(runner_up.version)
    return {"model_name": name, "model_version": int(candidate.version), "aliases": aliases,
            "local_version": local.version if local else None, **({"note": note} if note else {})}


def _compared_with(workspace: Workspace, train: ArtifactRef) -> str | None:
    """The training-artifact hash of the production model the gate compared this one with."""
    import json

    from churnctl.domain.model_registry import ModelRegistry

    path = workspace.state / "comparisons" / f"{train.content_hash[:16]}.json"
    if not path.exists():
        return None
    version = json.loads(path.read_text()).get("version")
    if version is None:
        return None
    try:
        return ModelRegistry(workspace.registry).get(int(version)).artifact
    except UserError:
        return None


def _follow(registry: Any, champion: Any) -> None:
    """Point the local cache at the alias holder, when this workspace has that model."""
    artifact = champion.tags.get(ARTIFACT_TAG)
    local = registry.find_by_artifact(artifact) if artifact else None
    production = registry.production()
    if local is not None and (production is None or production.version != local.version):
        registry.set_production(local.version)


def pull_champion(tracking_uri: str, name: str, workspace: Workspace, log: Any) -> Any:
    """Make the local production the model that holds `champion` (the pointer of record),
    downloading and registering it locally when this workspace never had it. Returns the
    local production entry (None when MLflow has no champion yet)."""
    from mlflow import MlflowClient

    from churnctl.domain.model_registry import ModelRegistry

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    holder = alias_holder(client, name, CHAMPION)
    registry = ModelRegistry(workspace.registry)
    if holder is None:
        return registry.production()
    artifact = holder.tags.get(ARTIFACT_TAG)
    local = registry.find_by_artifact(artifact) if artifact else None
    if local is None:
        _version, path = champion_version(tracking_uri, name, CHAMPION,
                                          workspace.state / "cache" / "mlflow-models")
        expected = holder.tags.get(SHA256_TAG)
        from churnctl.hashing import file_sha256

        if not expected or file_sha256(path) != expected:
            raise UserError(f"MLflow model {name} v{holder.version} (@{CHAMPION}) does not match "
                            f"the sha256 recorded when it was registered; re-register it with "
                            "`churnctl run --profile v2 --promote`")
        from churnctl.domain.model import ChurnModel

        model = ChurnModel.load(path, expected_sha256=expected)
        log(f"production is MLflow {name} v{holder.version} (@{CHAMPION}): copied into the "
            "local registry")
        local = registry.register(path, artifact or f"mlflow:{name}:{holder.version}",
                                  model.algorithm, model.metrics, model.schema, promote=True,
                                  decision=f"production from MLflow {name} v{holder.version}")
    _follow(registry, holder)
    return registry.get(local.version)


def champion_version(tracking_uri: str, name: str = "churn", alias: str = CHAMPION,
                     cache_dir: Path | None = None, version: int | None = None
                     ) -> tuple[int, Path]:
    """(version, local path of its model file) of the model that holds `alias`, or of
    `version` when one is pinned (a canary's `serve --model-version N`).

    Serving polls this: one registry call per poll; the model's files are downloaded only
    when the alias moved to a version not yet downloaded (kept under `cache_dir`). The file
    (a skops archive, `ChurnModel.load`) is checked against the sha256 recorded as the
    version's tag when it was registered: a file that differs is refused, never loaded.
    """
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts

    from churnctl.tracking.mlflow_model import MODEL_ARTIFACT

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    holder = (alias_holder(client, name, alias) if version is None
              else pinned_version(client, name, version))
    if holder is None:
        raise NoChampion(f"no model version has alias {alias!r} in registered model {name!r}; "
                         "train one with `churnctl run --profile v2`")
    digest = hashlib.sha256(tracking_uri.encode()).hexdigest()[:12]
    root = cache_dir or Path(tempfile.gettempdir()) / "churnctl-mlflow-models" / digest
    target = root / f"{name}-v{holder.version}"
    model_file = target / "artifacts" / MODEL_ARTIFACT
    if not model_file.exists():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=root))
        try:
            bars = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"  # none in a server log, unless asked
            with scoped_environ({bars: os.environ.get(bars, "false")}):
                download_artifacts(artifact_uri=f"models:/{name}/{holder.version}",
                                   dst_path=str(tmp), tracking_uri=tracking_uri)
            if not target.exists():
                os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if not model_file.exists():
        raise UserError(f"model {name} v{holder.version} has no {MODEL_ARTIFACT}; it was not "
                        "logged by churnctl")
    expected = holder.tags.get(SHA256_TAG)
    if expected:
        from churnctl.hashing import file_sha256

        actual = file_sha256(model_file)
        if actual != expected:
            raise UserError(f"model {name} v{holder.version} ({model_file}): sha256 {actual} "
                            f"is not the {expected} recorded at registration; refusing it")
    return int(holder.version), model_file
