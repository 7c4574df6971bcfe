"""The MLflow Model Registry as a mirror of churnctl's promotion decision, and the champion
lookup serving polls.

The local registry (`.churnctl/registry`) decides, as in v1: a candidate is promoted only
when it beats production on the same test data by the margin. MLflow gets the outcome as
aliases: `champion` on the production model, `challenger` on the runner-up (the rejected
candidate, or the champion a promoted candidate displaced). Versions carry the training
artifact's content hash as a tag, so logging the same model twice registers it once.
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

from churnctl.errors import UserError
from churnctl.stages import ArtifactRef
from churnctl.workspace import Workspace

ARTIFACT_TAG = "churnctl.artifact"
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
            "churnctl.mlflow_run": run_id}


def mirror_promotion(client: Any, name: str, workspace: Workspace, train: ArtifactRef,
                     example: Any, row: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Register the run's model and set the aliases from the local registry's decision."""
    from churnctl.domain.model_registry import ModelRegistry

    registry = ModelRegistry(workspace.registry)
    local = registry.find_by_artifact(train.content_hash)
    candidate = ensure_version(client, name, train.content_hash, train.file("model.pkl"),
                               example, _tags(local, run_id))
    production = registry.production()
    champion = None
    if production is not None and production.artifact == train.content_hash:
        champion = candidate
    elif production is not None:
        # Production came from an earlier run (or from v1, before MLflow): mirror it too, so
        # `models:/<name>@champion` always means what the local registry calls production.
        champion = ensure_version(client, name, production.artifact,
                                  registry.model_path(production.version), example,
                                  _tags(production, run_id))
    previous = alias_holder(client, name, CHAMPION)
    aliases: dict[str, int] = {}
    if champion is not None:
        client.set_registered_model_alias(name, CHAMPION, champion.version)
        aliases[CHAMPION] = int(champion.version)
    runner_up = previous if champion is candidate else candidate
    if runner_up is not None and (champion is None or runner_up.version != champion.version):
        client.set_registered_model_alias(name, CHALLENGER, runner_up.version)
        aliases[CHALLENGER] = int(runner_up.version)
    return {"model_name": name, "model_version": int(candidate.version), "aliases": aliases,
            "local_version": local.version if local else None}


def champion_version(tracking_uri: str, name: str = "churn", alias: str = CHAMPION,
                     cache_dir: Path | None = None) -> tuple[int, Path]:
    """(version, local path of its `model.pkl`) of the model that holds `alias`.

    Serving polls this: one registry call per poll; the model's files are downloaded only
    when the alias moved to a version not yet downloaded (kept under `cache_dir`). The
    file is a pickled `ChurnModel`, loadable with `ChurnModel.load`.
    """
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts

    from churnctl.tracking.mlflow_model import MODEL_ARTIFACT

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    holder = alias_holder(client, name, alias)
    if holder is None:
        raise UserError(f"no model version has alias {alias!r} in registered model {name!r}; "
                        "train one with `churnctl run --profile v2`")
    digest = hashlib.sha256(tracking_uri.encode()).hexdigest()[:12]
    root = cache_dir or Path(tempfile.gettempdir()) / "churnctl-mlflow-models" / digest
    target = root / f"{name}-v{holder.version}"
    model_file = target / "artifacts" / MODEL_ARTIFACT
    if not model_file.exists():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=root))
        try:
            quiet = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}  # no bars in a server log
            saved = {k: os.environ.get(k) for k in quiet}
            os.environ.update({k: v for k, v in quiet.items() if saved[k] is None})
            try:
                download_artifacts(artifact_uri=f"models:/{name}/{holder.version}",
                                   dst_path=str(tmp), tracking_uri=tracking_uri)
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
            if not target.exists():
                os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if not model_file.exists():
        raise UserError(f"model {name} v{holder.version} has no {MODEL_ARTIFACT}; it was not "
                        "logged by churnctl")
    return int(holder.version), model_file
