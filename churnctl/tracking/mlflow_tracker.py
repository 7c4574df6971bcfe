"""MLflow tracking: one MLflow run per churnctl run, and the promotion decision mirrored to
the MLflow Model Registry as aliases (`champion`, `challenger`).

What a run logs: every stage option as a parameter, every stage metric, the data report
(per stage: files, their sha256 and size, row counts), the validation and leakage reports,
the evaluation, the train/test sets as MLflow datasets, and the model as a pyfunc with a
signature and an input example.

The store is a SQLite file in the workspace unless `MLFLOW_TRACKING_URI` (which wins) or the
profile's `tracking_uri` names another, such as an MLflow server. mlflow is imported only
inside the methods: `plan`, `--help` and a no-op run never pay its ~4 s import.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import Field

from churnctl import __version__
from churnctl.errors import ChurnctlError
from churnctl.stages import ArtifactRef, StrictOptions, Tracker
from churnctl.workspace import Workspace

ENV_URI = "MLFLOW_TRACKING_URI"
# A tracker must fail within seconds when its server is down, not after MLflow's default
# 7 retries with exponential backoff (minutes); no progress bars in a pipeline's log. Users
# who set these keep their values.
_ENV_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
                 "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
                 # stdout belongs to churnctl (`run --json` prints one JSON object there)
                 "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}


# mlflow.set_tracking_uri/set_registry_uri also export these (for subprocesses): put back as
# they were once the run is logged, or the next run in this process would take this run's
# store for the user's (ENV_URI wins over a profile's).
URI_ENV = (ENV_URI, "MLFLOW_REGISTRY_URI")


class TrackingUnavailable(ChurnctlError):
    """The tracking store cannot be reached; the run is kept locally."""


class MlflowTrackerOptions(StrictOptions):
    tracking_uri: str = Field("sqlite:///.churnctl/mlflow.db",
                              description="relative paths are inside the workspace; "
                                          "MLFLOW_TRACKING_URI wins")
    experiment: str = "churnctl"
    model_name: str = Field("churn", description="registered model name in the MLflow registry")
    log_model: bool = True
    connect_timeout: float = Field(3.0, gt=0, description="seconds to wait for a server")


def redact(uri: str) -> str:
    """The URI without user:password, so it can go into records and messages."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def resolve_tracking_uri(uri: str, workspace: Workspace) -> str:
    """Environment first; relative SQLite paths and bare paths are inside the workspace."""
    uri = os.environ.get(ENV_URI) or uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str((workspace.root / uri[len("sqlite:///"):]).resolve())
    if "://" not in uri:
        return (workspace.root / uri).resolve().as_uri()
    return uri


def is_local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:"))


def probe(uri: str, timeout: float) -> None:
    """Fail fast and in one line when an MLflow server does not answer its /health."""
    import urllib.error
    import urllib.request

    if not uri.startswith(("http://", "https://")):
        return
    # Credentials in the URI are MLflow's basic auth (it reads them the same way): send them as
    # a header; urllib would otherwise take `user:pass@host` for the host name.
    parts = urlsplit(uri)
    request = urllib.request.Request(redact(uri).rstrip("/") + "/health")
    if parts.username is not None:
        token = base64.b64encode(
            f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return
    except urllib.error.HTTPError:
        return  # the server answered (perhaps 401 behind auth): it is reachable
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingUnavailable(f"MLflow server at {redact(uri)} is unreachable ({reason})"
                                  ) from None


class MlflowTracker(Tracker):
    name = "mlflow"
    description = "MLflow runs (params, metrics, reports, datasets, model) + registry aliases"
    Options = MlflowTrackerOptions
    extra = "mlflow"
    modules = ("mlflow",)

    def __init__(self) -> None:
        self._env: dict[str, str | None] = {}
        self._bundle: Path | None = None
        self.run_id = ""

    def store(self, options: MlflowTrackerOptions, workspace: Workspace) -> str:
        return redact(resolve_tracking_uri(options.tracking_uri, workspace))

    def start(self, options: MlflowTrackerOptions, workspace: Workspace,
              record: dict[str, Any]) -> None:
        self.options, self.workspace = options, workspace
        self.uri = resolve_tracking_uri(options.tracking_uri, workspace)
        probe(self.uri, options.connect_timeout)
        self._env = {k: os.environ.get(k) for k in (*_ENV_DEFAULTS, *URI_ENV)}
        os.environ.update({k: v for k, v in _ENV_DEFAULTS.items() if self._env[k] is None})
        if self.uri.startswith("sqlite:"):
            Path(self.uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)

        # MLflow's hints (integer columns, dataset sources) and INFO lines are about its own
        # choices, not the user's run: one summary line says what was logged instead.
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.filterwarnings("ignore", module=r"mlflow(\.|$)")
        warnings.filterwarnings("ignore", category=UserWarning, message=r".*[Tt]ype hint")

        import mlflow
        from mlflow import MlflowClient
        from mlflow.entities import Param

        # After the import: importing mlflow sets its logger to INFO.
        self._level = logging.getLogger("mlflow").level
        logging.getLogger("mlflow").setLevel(logging.WARNING)

        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        experiment = self._experiment_id(options.experiment)
        run = self.client.create_run(experiment, run_name=record["run_id"], tags={
            "churnctl.run_id": record["run_id"], "churnctl.profile": record["profile"],
            "churnctl.version": __version__, "mlflow.source.name": "churnctl",
            "churnctl.orchestrator": record.get("orchestrator", "local"),
        })
        self.run_id = run.info.run_id
        params = [Param(k, v) for k, v in _flat_params(record).items()]
        for chunk in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[chunk:chunk + 100])
        self._bundle = Path(tempfile.mkdtemp(prefix="churnctl-mlflow-"))
        self._rows: dict[str, dict[str, Any]] = {}
        self._artifacts: dict[str, ArtifactRef] = {}

    def pull_production(self, options: MlflowTrackerOptions, workspace: Workspace,
                        log: Any) -> None:
        if not options.log_model:
            return  # the registry is not mirrored to MLflow: the local one is of record
        uri = resolve_tracking_uri(options.tracking_uri, workspace)
        probe(uri, options.connect_timeout)
        from churnctl.tracking.mlflow_registry import pull_champion

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"mlflow(\.|$)")
            pull_champion(uri, options.model_name, workspace, log)

    def _experiment_id(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                self.client.restore_experiment(found.experiment_id)
            return found.experiment_id
        # A local store keeps artifacts beside its database, not in ./mlruns of whatever
        # directory the command ran from; a server decides for itself.
        location = ((self.workspace.state / "mlartifacts").resolve().as_uri()
                    if is_local_store(self.uri) else None)
        return self.client.create_experiment(name, artifact_location=location)

    def stage_done(self, row: dict[str, Any], artifact: ArtifactRef | None) -> None:
        from mlflow.entities import Metric

        assert self._bundle is not None
        stamp = int(time.time() * 1000)
        metrics = [Metric(key, float(value), stamp, 0)
                   for key, value in row.get("metrics", {}).items()
                   if isinstance(value, int | float) and not isinstance(value, bool)]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)
        self._rows[row["name"]] = row
        # A gate that stopped the run left its report in the workspace, not in an artifact.
        gate_report = {"validate": "validation.json", "train": "leakage.json"}.get(row["name"])
        if row.get("status") == "failed" and gate_report:
            source = self.workspace.reports / gate_report
            if source.exists():
                (self._bundle / "reports").mkdir(exist_ok=True)
                shutil.copy2(source, self._bundle / "reports" / gate_report)
            docs = self.workspace.reports / "data_docs"  # validate.gx keeps a failed run's
            if row["name"] == "validate" and (docs / "index.html").is_file():
                shutil.copytree(docs, self._bundle / "reports" / "data_docs",
                                dirs_exist_ok=True)
        if artifact is None:
            return
        self._artifacts[row["name"]] = artifact
        folder = self._bundle / "stages" / row["name"]
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(artifact.path / "manifest.json", folder / "manifest.json")
        reports = self._bundle / "reports"
        reports.mkdir(exist_ok=True)
        for name in artifact.contents.get("reports", {}):
            source = artifact.report(name)
            if source is not None and source.suffix == ".json":
                shutil.copy2(source, reports / f"{name}.json")
            elif source is not None and source.name == "index.html":  # a site: Data Docs
                shutil.copytree(source.parent, reports / name, dirs_exist_ok=True)
        schema = artifact.meta("feature_schema", None)
        if schema is not None:
            (reports / "feature_schema.json").write_text(json.dumps(schema, indent=2))
        leakage = self.workspace.reports / "leakage.json"
        if row["name"] == "train" and leakage.exists():
            shutil.copy2(leakage, reports / "leakage.json")

    def finish(self, record: dict[str, Any]) -> dict[str, Any]:
        import mlflow

        assert self._bundle is not None
        (self._bundle / "reports").mkdir(exist_ok=True)
        (self._bundle / "reports" / "data.json").write_text(json.dumps(
            _data_report(self._rows, self._artifacts), indent=2, default=str))
        self._log_gate()
        self.client.log_artifacts(self.run_id, str(self._bundle))
        result: dict[str, Any] = {"tracker_run": self.run_id}
        features, train = self._artifacts.get("features"), self._artifacts.get("train")
        with mlflow.start_run(run_id=self.run_id):
            example = _log_datasets(features) if features is not None else None
            if train is not None and self.options.log_model and train.has_model():
                from churnctl.tracking.mlflow_registry import mirror_promotion

                result.update(mirror_promotion(self.client, self.options.model_name,
                                               self.workspace, train, example,
                                               self._rows["train"], self.run_id))
        if record.get("status") != "succeeded":
            self.client.set_terminated(self.run_id, "FAILED")
        self._cleanup()
        return result

    def _log_gate(self) -> None:
        """The promotion decision, its bootstrap interval and the rows it used: a report,
        `gate.*` metrics and a tag, so the MLflow UI shows why a version was (not) promoted."""
        from mlflow.entities import Metric, RunTag

        assert self._bundle is not None
        summary = self._rows.get("train", {}).get("summary", {})
        if "decision" not in summary:
            return
        gate = {k: summary.get(k) for k in ("model_version", "promoted", "decision",
                                            "incumbent")}
        (self._bundle / "reports" / "promotion.json").write_text(
            json.dumps(gate, indent=2, default=str))
        interval = (summary.get("incumbent") or {}).get("interval") or {}
        stamp = int(time.time() * 1000)
        metrics = [Metric(f"gate.{k}", float(interval[k]), stamp, 0)
                   for k in ("difference", "lower", "upper", "rows") if k in interval]
        self.client.log_batch(self.run_id, metrics=metrics, tags=[
            RunTag("churnctl.promotion", str(summary.get("decision"))[:5000])])

    def abort(self) -> None:
        try:
            if self.run_id:
                self.client.set_terminated(self.run_id, "FAILED")
        finally:
            self._cleanup()

    def _cleanup(self) -> None:
        logging.getLogger("mlflow").setLevel(getattr(self, "_level", logging.NOTSET))
        if getattr(self, "_warnings", None) is not None:
            self._warnings.__exit__(None, None, None)
            self._warnings = None
        for key, value in self._env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._env = {}
        if self._bundle is not None:
            shutil.rmtree(self._bundle, ignore_errors=True)
            self._bundle = None


def _flat_params(record: dict[str, Any]) -> dict[str, str]:
    """`stage.option` -> value as text (MLflow params are strings of at most 6000 chars)."""
    params = {"profile": record["profile"]}
    for stage, options in record.get("parameters", {}).items():
        for key, value in options.items():
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            params[f"{stage}.{key}"] = text[:6000]
    return params


def _data_report(rows: dict[str, dict[str, Any]], artifacts: dict[str, ArtifactRef]
                 ) -> dict[str, Any]:
    """Per stage: what it read and wrote (content hashes, sizes) and its row counts."""
    report: dict[str, Any] = {}
    for stage, row in rows.items():
        entry: dict[str, Any] = {"status": row.get("status"), "key": row.get("key"),
                                 "inputs": row.get("inputs", {}),
                                 "summary": row.get("summary", {})}
        artifact = artifacts.get(stage)
        if artifact is not None:
            entry["files"] = {
                name: {"sha256": digest, "bytes": (artifact.path / name).stat().st_size}
                for name, digest in artifact.files.items() if (artifact.path / name).exists()}
        report[stage] = entry
    return report


def parquet_parts(path: Path) -> list[Path]:
    """The Parquet files of a table: the file itself, or a directory's part files in name
    order (features.spark writes `train.parquet/part-*.parquet`)."""
    if not path.is_dir():
        return [path]
    return sorted(p for p in path.rglob("*.parquet") if p.is_file())


def table_digest(features: ArtifactRef, path: Path) -> str:
    """churnctl's sha256 of a table's file, or of its parts' digests for a directory."""
    from churnctl.hashing import value_sha256

    base = features.path.resolve()
    names = [p.resolve().relative_to(base).as_posix() for p in parquet_parts(path)]
    if not path.is_dir():
        return features.files.get(names[0], "")
    return value_sha256({name: features.files.get(name, "") for name in names})


def _arrow_schema(path: Path) -> Any:
    """The MLflow schema of a parquet file (or part directory), from the first part's footer
    (no data is read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from mlflow.types import ColSpec, DataType, Schema

    def kind(arrow: Any) -> Any:
        if pa.types.is_boolean(arrow):
            return DataType.boolean
        if pa.types.is_integer(arrow):
            return DataType.long
        if pa.types.is_floating(arrow):
            return DataType.double
        if pa.types.is_timestamp(arrow) or pa.types.is_date(arrow):
            return DataType.datetime
        return DataType.string

    first = parquet_parts(path)[0]
    return Schema([ColSpec(kind(field.type), field.name) for field in pq.read_schema(first)])


def _log_datasets(features: ArtifactRef) -> Any:
    """Log train/test as MLflow datasets; returns a few test rows as the model's input example.

    Metadata datasets (source, schema, row count, churnctl's file hash as digest): building a
    pandas dataset would re-read and profile every row, seconds per run for nothing new.
    """
    import mlflow
    import pyarrow.parquet as pq
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    example = None
    for split in ("train", "test"):
        if not features.has_table(split):
            continue
        path = features.table(split).resolve()
        parts = parquet_parts(path)
        dataset = MetaDataset(resolve_dataset_source(path.as_uri()), name=f"features-{split}",
                              digest=table_digest(features, path)[:12],
                              schema=_arrow_schema(path))
        rows = sum(pq.ParquetFile(part).metadata.num_rows for part in parts)
        mlflow.log_input(dataset, context="training" if split == "train" else "evaluation",
                         tags={"rows": str(rows)})
        nonempty = [part for part in parts if pq.ParquetFile(part).metadata.num_rows]
        if split == "test" and nonempty:
            example = next(pq.ParquetFile(nonempty[0]).iter_batches(batch_size=5)).to_pandas()
    return example
