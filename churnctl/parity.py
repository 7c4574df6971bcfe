"""Parity: the same data through several profiles, compared at every stage boundary.

Each profile runs its pipeline in a scratch workspace of its own, on the same data (every
profile gets the ingest binding of the first, so a v2 whose ingest differs still reads what v1
read). Then each stage's output is compared with the first profile's: schemas and row counts
of every table both declare, values (numeric columns within a tolerance, others exactly, rows
aligned on their keys), labels exactly, the validation verdict, and the stage metrics within a
tolerance. `profile upgrade --gate` uses it to prove a features backend swap changes nothing.

Heavy libraries (pandas, numpy) are imported inside the comparing functions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from churnctl.artifacts import ArtifactRef
from churnctl.environ import scoped_environ
from churnctl.errors import ChurnctlError
from churnctl.profile import Profile
from churnctl.stages import PIPELINE_STAGES

LABEL = "churn_label"
KEYS = ("user_id", "as_of", "customer_id", "event_id")  # row keys, whichever a table has
# Metrics that describe how long or how much, not what: never compared.
UNCOMPARED_METRICS = ("seconds",)


@dataclass(frozen=True)
class Tolerance:
    features_rtol: float = 1e-6  # relative, for numeric feature values
    features_atol: float = 1e-9
    metrics_atol: float = 1e-3  # absolute, for stage metrics (pr_auc, row counts...)


@dataclass
class ProfileRun:
    """One profile's pipeline in its scratch workspace: outputs by stage, or where it stopped."""

    profile: str
    root: Path
    outputs: dict[str, ArtifactRef] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # stage -> metrics
    backends: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    failed_stage: str | None = None
    gate_failed: bool = False  # stopped by a quality gate (validation, leakage), not a crash


@dataclass(frozen=True)
class Check:
    stage: str
    kind: str  # schema | rows | values | labels | verdict | metrics | run
    subject: str  # table or metric group
    profile: str  # the profile compared with the reference
    ok: bool | None  # None: could not be compared (a stage did not run)
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def same_data(profiles: list[Profile]) -> list[Profile]:
    """Every profile with the first one's ingest binding: the same data through each."""
    ingest = profiles[0].stages["ingest"]
    return [p if p is profiles[0] else
            p.model_copy(update={"stages": {**p.stages, "ingest": ingest.model_copy()}})
            for p in profiles]


def run_profile(profile: Profile, root: Path, log: Any) -> ProfileRun:
    """Run the pipeline of `profile` in the (scratch) workspace `root`; never raises for a
    failed stage: the failure is part of the result. Its tracking store is inside `root`
    (`scratch_tracking`)."""
    from churnctl.errors import GateFailed
    from churnctl.runner import Runner
    from churnctl.tracking.mlflow_tracker import URI_ENV
    from churnctl.workspace import Workspace

    run = ProfileRun(profile.name, root,
                     backends={s: profile.stages[s].backend for s in PIPELINE_STAGES})
    root.mkdir(parents=True, exist_ok=True)
    runner = Runner(scratch_tracking(profile), Workspace(root.resolve()), log=log)
    record: dict[str, Any] = {"stages": []}
    try:
        with scoped_environ(dict.fromkeys(URI_ENV)):  # the team's store, if set
            record = runner.execute()
    except ChurnctlError as exc:
        run.error = (str(exc).splitlines() or [type(exc).__name__])[0]
        run.gate_failed = isinstance(exc, GateFailed) or run.error.startswith(
            ("validation failed", "leakage guard"))
        record = _last_record(root) or record
    for row in record.get("stages", []):
        if row.get("status") == "failed":
            run.failed_stage = row["name"]
        elif row.get("artifact"):
            path = Path(row["artifact"])
            run.outputs[row["name"]] = ArtifactRef.load(path if path.is_absolute()
                                                        else root / path)
            run.metrics[row["name"]] = dict(row.get("metrics", {}))
    if run.error and run.failed_stage is None:
        run.failed_stage = next((s for s in PIPELINE_STAGES if s not in run.outputs), None)
    return run


def scratch_tracking(profile: Profile) -> Profile:
    """`profile` with its tracking store inside the workspace (the backend's default): a
    scratch run must not register models in, or move the aliases of, the team's MLflow (the
    profile's server, or MLFLOW_TRACKING_URI, which `run_profile` hides from it)."""
    tracking = profile.tracking
    if tracking is None or "tracking_uri" not in tracking.options:
        return profile
    options = {k: v for k, v in tracking.options.items() if k != "tracking_uri"}
    return profile.model_copy(update={"tracking": tracking.model_copy(
        update={"options": options})})


def _last_record(root: Path) -> dict[str, Any] | None:
    import json

    runs = sorted((root / ".churnctl" / "runs").glob("*.json"))
    return json.loads(runs[-1].read_text()) if runs else None


def compare_runs(runs: list[ProfileRun], tolerance: Tolerance = Tolerance(),
                 stages: tuple[str, ...] = PIPELINE_STAGES) -> list[Check]:
    """Every check of runs[1:] against runs[0], stage by stage."""
    reference, checks = runs[0], []
    for other in runs[1:]:
        for stage in stages:
            checks += compare_stage(stage, reference, other, tolerance)
    return checks


def compare_stage(stage: str, a: ProfileRun, b: ProfileRun, tolerance: Tolerance) -> list[Check]:
    left, right = a.outputs.get(stage), b.outputs.get(stage)
    if left is None or right is None:
        who = ", ".join(r.profile for r, out in ((a, left), (b, right)) if out is None)
        why = next((r.error for r in (a, b) if r.failed_stage == stage and r.error), None)
        return [Check(stage, "run", "-", b.profile, None,
                      f"no {stage} output from {who}" + (f": {why}" if why else ""))]
    checks: list[Check] = []
    tables = sorted(set(left.contents.get("tables", {})) & set(right.contents.get("tables", {})))
    only = sorted(set(left.contents.get("tables", {})) ^ set(right.contents.get("tables", {})))
    if only:
        checks.append(Check(stage, "schema", "tables", b.profile, True,
                            f"tables in one output only (not compared): {', '.join(only)}"))
    for name in tables:
        checks += compare_table(stage, name, left, right, b.profile, tolerance)
    if stage == "validate":
        checks.append(compare_verdict(left, right, b.profile))
    metrics = compare_metrics(stage, a.metrics.get(stage, {}), b.metrics.get(stage, {}),
                              b.profile, tolerance)
    return checks + ([metrics] if metrics is not None else [])


def _frame(ref: ArtifactRef, name: str) -> Any:
    import pandas as pd

    return pd.read_parquet(ref.table(name))


def compare_table(stage: str, name: str, left: ArtifactRef, right: ArtifactRef, profile: str,
                  tolerance: Tolerance) -> list[Check]:
    a, b = _frame(left, name), _frame(right, name)
    subject = f"{name}"
    checks = []
    schema_a = {c: str(t) for c, t in a.dtypes.items()}
    schema_b = {c: str(t) for c, t in b.dtypes.items()}
    missing, added = sorted(set(schema_a) - set(schema_b)), sorted(set(schema_b) - set(schema_a))
    retyped = sorted(c for c in set(schema_a) & set(schema_b)
                     if not _same_kind(schema_a[c], schema_b[c]))
    problems = ([f"missing {', '.join(missing)}"] if missing else []) + \
               ([f"added {', '.join(added)}"] if added else []) + \
               [f"{c}: {schema_a[c]} -> {schema_b[c]}" for c in retyped]
    checks.append(Check(stage, "schema", subject, profile, not problems,
                        "; ".join(problems) or f"{len(schema_a)} columns"))
    rows_ok = len(a) == len(b)
    checks.append(Check(stage, "rows", subject, profile, rows_ok,
                        f"{len(a):,}" if rows_ok else f"{len(a):,} -> {len(b):,}"))
    if not rows_ok:
        return checks
    common = [c for c in schema_a if c in schema_b]
    a, b = _aligned(a, b, common)
    values = [c for c in common if c != LABEL]
    checks.append(compare_values(stage, subject, a, b, values, profile, tolerance))
    if LABEL in common:
        differ = int((a[LABEL].to_numpy() != b[LABEL].to_numpy()).sum())
        checks.append(Check(stage, "labels", subject, profile, differ == 0,
                            "identical" if not differ else f"{differ:,} of {len(a):,} differ"))
    return checks


def _same_kind(left: str, right: str) -> bool:
    """int64 vs Int64, float32 vs float64, object vs string: the same kind of column."""
    def kind(dtype: str) -> str:
        low = dtype.lower()
        for family in ("int", "float", "bool", "datetime"):
            if low.startswith(family) or low.startswith(f"u{family}"):
                return "number" if family in ("int", "float") else family
        return "text"

    return kind(left) == kind(right)


def _aligned(a: Any, b: Any, columns: list[str]) -> tuple[Any, Any]:
    """Both frames in the same row order: sorted by their key columns when they have any."""
    keys = [k for k in KEYS if k in columns]
    if not keys:
        return a.reset_index(drop=True), b.reset_index(drop=True)
    return (a.sort_values(keys, kind="stable").reset_index(drop=True),
            b.sort_values(keys, kind="stable").reset_index(drop=True))


def compare_values(stage: str, subject: str, a: Any, b: Any, columns: list[str], profile: str,
                   tolerance: Tolerance) -> Check:
    import numpy as np
    import pandas as pd

    differing: list[str] = []
    worst = 0.0
    for column in columns:
        x, y = a[column], b[column]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y) \
                and not pd.api.types.is_bool_dtype(x):
            xs = x.to_numpy(dtype="float64", na_value=np.nan)
            ys = y.to_numpy(dtype="float64", na_value=np.nan)
            close = np.isclose(xs, ys, rtol=tolerance.features_rtol,
                               atol=tolerance.features_atol, equal_nan=True)
            if not close.all():
                differing.append(f"{column} ({int((~close).sum()):,} rows)")
            both = ~(np.isnan(xs) | np.isnan(ys))
            if both.any():
                worst = max(worst, float(np.max(np.abs(xs[both] - ys[both]))))
        else:
            same = (x.astype("string").fillna("\0") == y.astype("string").fillna("\0"))
            if not bool(same.all()):
                differing.append(f"{column} ({int((~same).sum()):,} rows)")
    if differing:
        shown = ", ".join(differing[:4]) + (f" +{len(differing) - 4} more" if
                                            len(differing) > 4 else "")
        return Check(stage, "values", subject, profile, False, f"differ: {shown}")
    return Check(stage, "values", subject, profile, True,
                 f"{len(columns)} columns within rtol {tolerance.features_rtol:g} "
                 f"(max abs diff {worst:.2g})")


def compare_verdict(left: ArtifactRef, right: ArtifactRef, profile: str) -> Check:
    """Validation: both passed, and the same checks failed as warnings."""
    import json

    def verdict(ref: ArtifactRef) -> tuple[bool, set[tuple[str, str]]]:
        path = ref.report("validation")
        if path is None or not path.exists():
            return True, set()
        report = json.loads(path.read_text())
        return bool(report.get("passed")), {(c.get("table"), c.get("column")) for c in
                                            report.get("checks", []) if not c.get("passed")}

    (pass_a, warn_a), (pass_b, warn_b) = verdict(left), verdict(right)
    ok = pass_a == pass_b and warn_a == warn_b
    detail = "both passed" if ok and pass_a else \
        f"passed {pass_a} -> {pass_b}; flagged {sorted(warn_a)} -> {sorted(warn_b)}"
    return Check("validate", "verdict", "report", profile, ok, detail)


def compare_metrics(stage: str, a: dict[str, Any], b: dict[str, Any], profile: str,
                    tolerance: Tolerance) -> Check | None:
    """Metrics both stages report, within an absolute tolerance; counts of checks are the
    validators' own business (GX and pandas count differently) and are not compared."""
    names = sorted(k for k in set(a) & set(b) if not k.startswith("validation_checks")
                   and k not in UNCOMPARED_METRICS and _number(a[k]) and _number(b[k]))
    differ = [f"{k} {a[k]:.4g} -> {b[k]:.4g}" for k in names
              if not math.isclose(float(a[k]), float(b[k]), rel_tol=0,
                                  abs_tol=tolerance.metrics_atol)]
    if not names:
        return None
    return Check(stage, "metrics", ", ".join(names[:3]) + ("..." if len(names) > 3 else ""),
                 profile, not differ,
                 "; ".join(differ[:3]) if differ else
                 f"{len(names)} within {tolerance.metrics_atol:g}")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and \
        math.isfinite(float(value))


def parity(profiles: list[Profile], scratch: Path, tolerance: Tolerance = Tolerance(),
           log: Any = lambda _m: None) -> tuple[list[ProfileRun], list[Check]]:
    """Run each profile on the same data in scratch/<n>-<name>, then compare with the first."""
    runs = [run_profile(p, scratch / f"{i}-{_safe(p.name)}", log)
            for i, p in enumerate(same_data(profiles))]
    return runs, compare_runs(runs, tolerance)


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)[:40]
