"""Where the two sides of a drift check come from: a run's features and the current data.

The reference is the features artifact of a finished run: by default the run that trained
the production model, because that model is what drifting data hurts. The current side is
raw users + events (turned into the same features the pipeline computes), or a features
table given directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from churnctl.artifacts import MANIFEST, ArtifactRef
from churnctl.errors import DataError, UserError
from churnctl.workspace import Workspace

REFERENCE_SETS = ("latest", "train", "test")
RAW_SUFFIXES = (".parquet", ".pq", ".csv")
FEATURE_SUFFIXES = (".parquet", ".pq", ".csv")


@dataclass
class Reference:
    run_id: str
    artifact: Path
    split: str
    why: str  # how this run was chosen, for the report
    schema: dict[str, Any]
    feature_options: dict[str, Any]

    @property
    def features(self) -> list[str]:
        return [*self.schema["numeric"], *self.schema["categorical"]]

    def frame(self) -> pd.DataFrame:
        return pd.read_parquet(ArtifactRef.load(self.artifact).table(self.split))


@dataclass
class Current:
    frame: pd.DataFrame
    source: str
    kind: str  # raw | features
    raw: dict[str, Path] | None = None  # users/events files when kind == raw (retraining input)
    as_of: str | None = None
    notes: list[str] = field(default_factory=list)


def _features_row(record: dict[str, Any]) -> dict[str, Any] | None:
    for row in record.get("stages", []):
        if row["name"] == "features" and row.get("status") in ("ran", "cached") \
                and row.get("artifact"):
            return row
    return None


def _production_run(workspace: Workspace, records: list[dict[str, Any]]) -> tuple[dict, str] | None:
    """The run whose train artifact became the production model, if the registry has one."""
    from churnctl.domain.model_registry import ModelRegistry
    from churnctl.hashing import value_sha256

    production = ModelRegistry(workspace.registry).production()
    if production is None:
        return None
    for record in records:
        for row in record.get("stages", []):
            if row["name"] == "train" and row.get("outputs") and \
                    value_sha256(row["outputs"]) == production.artifact and _features_row(record):
                return record, f"trained production model v{production.version}"
    return None


def resolve_reference(workspace: Workspace, run: str | None, split: str) -> Reference:
    from churnctl.runs import list_records, load_record

    if split not in REFERENCE_SETS:
        raise UserError(f"--reference-set {split!r}: use one of {', '.join(REFERENCE_SETS)}")
    if run:
        record, why = load_record(workspace, run), "chosen with --reference"
    else:
        records = [r for r in list_records(workspace) if r.get("status") == "succeeded"]
        found = _production_run(workspace, records)
        if found is None:
            newest = next((r for r in records if _features_row(r)), None)
            if newest is None:
                raise UserError(f"no finished run with features in {workspace.root}; run "
                                "`churnctl run` first or pass --reference RUN")
            found = newest, "newest run with features (no production model found)"
        record, why = found
    row = _features_row(record)
    if row is None:
        raise UserError(f"run {record['run_id']} has no features output; pick another with "
                        "--reference (see `churnctl runs list`)")
    artifact = workspace.root / row["artifact"]
    if not (artifact / MANIFEST).is_file() or ArtifactRef.load(artifact).missing_files():
        raise UserError(f"features of run {record['run_id']} are gone from {artifact}; "
                        f"re-run `churnctl run` or pick another run with --reference")
    ref = ArtifactRef.load(artifact)
    if not ref.has_table(split):
        have = sorted(s for s in REFERENCE_SETS if ref.has_table(s))
        raise UserError(f"features of run {record['run_id']} have no {split} table; use "
                        f"--reference-set {' or '.join(have) or '(none found)'}")
    schema = ref.meta("feature_schema")
    options = record.get("parameters", {}).get("features", {})
    return Reference(record["run_id"], artifact, split, why, schema, options)


def select_features(reference: Reference, wanted: list[str] | None) -> tuple[list[str], list[str]]:
    """(numeric, categorical) to check; names the model does not have are an error."""
    numeric, categorical = reference.schema["numeric"], reference.schema["categorical"]
    if not wanted:
        return list(numeric), list(categorical)
    unknown = [w for w in wanted if w not in numeric and w not in categorical]
    if unknown:
        raise UserError(f"--features: unknown feature(s) {', '.join(unknown)}; the model's "
                        f"features are {', '.join(reference.features)}")
    return [n for n in numeric if n in wanted], [c for c in categorical if c in wanted]


def _table_file(folder: Path, stem: str) -> Path | None:
    return next((folder / f"{stem}{s}" for s in RAW_SUFFIXES if (folder / f"{stem}{s}").is_file()),
                None)


def raw_files(folder: Path) -> dict[str, Path] | None:
    """users + events files in a folder (Parquet preferred over CSV), or None."""
    users, events = _table_file(folder, "users"), _table_file(folder, "events")
    return {"users": users, "events": events} if users and events else None


def snapshot_from_features(workspace: Workspace, latest: Path) -> Current:
    """A features artifact's newest snapshot, read through the backend that made it: a Feast
    artifact's from its online store (what `/predict` serves now), else its `latest` table."""
    from churnctl.serving.lookup import read_latest_frame

    frame, source = read_latest_frame(workspace, latest)
    online = source != str(latest)
    as_of = (str(pd.to_datetime(frame["as_of"]).max().date())
             if "as_of" in frame.columns and len(frame) else None)
    return Current(frame, f"{source} of {latest.parent}" if online else source,
                   "online" if online else "features", as_of=as_of)


def current_from_profile_store(workspace: Workspace) -> Current | None:
    """With a Feast features backend, the current side by default: the online store of the
    newest features artifact. None when the newest artifact was not made by Feast."""
    from churnctl.serving.lookup import latest_features_path

    latest = latest_features_path(workspace)
    if latest is None:
        return None
    current = snapshot_from_features(workspace, latest)
    return current if current.kind == "online" else None


def load_current(path: Path, reference: Reference, workspace: Workspace) -> Current:
    """The current snapshot from a raw-data folder, a features artifact folder or a file."""
    if path.is_dir():
        raw = raw_files(path)
        if raw is not None:
            return snapshot_from_raw(raw, reference)
        if (path / "latest.parquet").is_file():
            return snapshot_from_features(workspace, path / "latest.parquet")
        raise DataError(f"{path}: expected users + events files (users.parquet/events.parquet "
                        "or .csv) or a features folder with latest.parquet")
    if path.is_file():
        if path.suffix.lower() not in FEATURE_SUFFIXES:
            raise DataError(f"{path}: unsupported file type {path.suffix!r}; give a features "
                            "table as .parquet or .csv, or a folder with users + events")
        from churnctl.domain.tables import read_raw

        return Current(read_raw(path), str(path), "features")
    raise DataError(f"{path}: not found; give a folder with users + events files or a "
                    "features table (.parquet or .csv)")


def feature_config(options: dict[str, Any]) -> Any:
    """The reference run's feature settings, so the current snapshot is computed the same way."""
    from dataclasses import fields

    from churnctl.domain.features import FeatureConfig

    known = {f.name for f in fields(FeatureConfig)}
    values = {k: v for k, v in options.items() if k in known}
    if "windows" in values:
        values["windows"] = tuple(sorted(values["windows"]))
    if "activity_events" in values:
        values["activity_events"] = tuple(values["activity_events"])
    return FeatureConfig(**values)


def snapshot_from_raw(raw: dict[str, Path], reference: Reference) -> Current:
    """Features of every active user as of the newest day in the events, like `latest.parquet`."""
    from churnctl.domain import features as F
    from churnctl.domain.schema import TABLES
    from churnctl.domain.tables import conform, read_raw

    users, notes = conform(read_raw(raw["users"]), TABLES["users"], raw["users"])
    events, more = conform(read_raw(raw["events"]), TABLES["events"], raw["events"])
    notes += more
    if events.empty:
        raise DataError(f"{raw['events']}: no events; nothing to compute features from")
    keys = ["user_id", *([F.HISTORY_COLUMN] if F.HISTORY_COLUMN in users.columns else [])]
    if users.duplicated(keys).any():
        raise DataError(f"{raw['users']}: column {'+'.join(keys)} has duplicates; keep one row "
                        "per user (per valid_from date in a history)")
    unknown = ~events["user_id"].isin(users["user_id"])
    if unknown.any():
        # Events of users missing from the users table cannot get static features.
        notes.append(f"{raw['events'].name}: ignored {int(unknown.sum())} event(s) of users "
                     f"not in {raw['users'].name}")
        events = events[~unknown]
    config = feature_config(reference.feature_options)
    activity = F.daily_activity(users, events, config.activity_events)
    frame = F.snapshots(activity, users, [activity.days - 1], config, with_labels=False)
    as_of = (activity.start + pd.Timedelta(days=activity.days - 1)).date().isoformat()
    source = f"{raw['users']} + {raw['events']}"
    return Current(frame, source, "raw", raw=raw, as_of=as_of, notes=notes)
