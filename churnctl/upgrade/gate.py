"""The upgrade gates: the target profile, run on the project's data in a scratch workspace,
must be as good as the current one before churnctl.yaml changes.

Gates, in order:
- validate: the target's validate stage passes on the data;
- features: where the features backend changes, its tables equal the current backend's
  within tolerance (parity.py);
- model: the candidate is not worse than the current model beyond the margin, by the core
  promotion rule (promotion.decide) on the paired bootstrap interval of both models' scores on
  the same test rows: "promote" with a margin of minus the allowed loss;
- scan: where the target profile has scanning, `churnctl scan` of the project is clean at its
  configured severity.

A gate that cannot run (the current profile fails on this data, a backend is missing) is bad
input (UserError, exit 2), not a failed gate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from churnctl.errors import UserError
from churnctl.parity import ProfileRun, Tolerance, compare_stage, run_profile, same_data
from churnctl.profile import Profile

GATES = ("validate", "features", "model", "scan")


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool | None  # None: not applicable to this upgrade (skipped, with the reason)
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def require_runnable(target: Profile) -> None:
    """Every binding of the target is implemented and installed, or one line naming the pip
    install that fixes it (exit 2)."""
    from churnctl.registry import describe

    for kind, binding in target.bindings().items():
        info = describe(kind, binding.backend)
        if not info.implemented:
            raise UserError(f"gate cannot run: {kind} backend {binding.backend!r} of "
                            f"{target.name} is planned, not in this release")
        if not info.installed:
            raise UserError(f"target {target.name} needs {', '.join(info.missing)} for "
                            f"{kind}.{binding.backend}; install it: {info.install_hint}")


def run_gates(current: Profile, target: Profile, project: Path, scratch: Path,
              margin: float, tolerance: Tolerance = Tolerance(),
              log: Any = lambda _m: None) -> list[Gate]:
    require_runnable(target)
    current, target = same_data([current, target])
    log(f"running {current.name} (current) in {scratch / 'current'}")
    base = run_profile(current, scratch / "current", log=lambda _m: None)
    if base.error:
        raise UserError(f"gate cannot run: the current profile {current.name} fails at "
                        f"{base.failed_stage} on this data ({base.error}); fix that first")
    log(f"running {target.name} (target) in {scratch / 'target'}")
    candidate = run_profile(target, scratch / "target", log=lambda _m: None)
    gates = [validate_gate(candidate), features_gate(base, candidate, tolerance),
             model_gate(base, candidate, target, margin)]
    gates.append(scan_gate(target, project, log) if target.scan is not None else
                 Gate("scan", None, f"{target.name} has no scan binding"))
    return gates


def validate_gate(candidate: ProfileRun) -> Gate:
    if "validate" in candidate.outputs:
        return Gate("validate", True, f"{candidate.backends['validate']} passed")
    stopped = candidate.failed_stage or "ingest"
    return Gate("validate", False, f"{candidate.profile} stopped at {stopped}: "
                f"{candidate.error or 'no validate output'}")


def features_gate(base: ProfileRun, candidate: ProfileRun, tolerance: Tolerance) -> Gate:
    before, after = base.backends["features"], candidate.backends["features"]
    if before == after:
        return Gate("features", None, f"features backend unchanged ({after})")
    checks = compare_stage("features", base, candidate, tolerance)
    failed = [c for c in checks if c.ok is not True]
    if failed:
        first = failed[0]
        return Gate("features", False, f"{before} -> {after}: {first.kind} of {first.subject} "
                    f"differs ({first.detail})" + (f" +{len(failed) - 1} more" if
                                                   len(failed) > 1 else ""))
    return Gate("features", True, f"{before} -> {after}: {len(checks)} checks equal within "
                f"rtol {tolerance.features_rtol:g}")


def model_gate(base: ProfileRun, candidate: ProfileRun, target: Profile, margin: float) -> Gate:
    """Not worse than the current model beyond `margin`: promotion.decide with margin
    -`margin` on the paired interval of both models' scores on the same test rows."""
    import pandas as pd

    from churnctl.domain.bootstrap import paired_difference
    from churnctl.domain.metrics import classification_metrics
    from churnctl.promotion import decide

    if "train" not in candidate.outputs:
        return Gate("model", False, f"{candidate.profile} trained no model "
                    f"(stopped at {candidate.failed_stage}: {candidate.error})")
    options = target.stages["train"].options
    metric = str(options.get("primary_metric", "pr_auc"))
    ours, theirs = candidate.outputs["train"], base.outputs["train"]
    cannot, interval, scores = None, None, ({}, {})
    if not (ours.has_table("test_predictions") and theirs.has_table("test_predictions")):
        cannot = "a model without per-row test scores"
    else:
        a = pd.read_parquet(theirs.table("test_predictions"))
        b = pd.read_parquet(ours.table("test_predictions"))
        keys = [k for k in a.columns if k not in ("y_true", "proba") and k in b.columns]
        joined = a.merge(b, on=keys, suffixes=("_current", "_target")) if keys else a.iloc[:0]
        # Every test row of the current model must be scored by the target too; a target
        # with more test rows (a longer feature history) is judged on the current's rows.
        if len(joined) != len(a):
            cannot = (f"the target scored {len(joined):,} of the current model's {len(a):,} "
                      "test rows")
        elif (joined["y_true_current"] != joined["y_true_target"]).any():
            cannot = "the test labels differ"
        else:
            y = joined["y_true_target"].to_numpy()
            scores = (classification_metrics(y, joined["proba_target"].to_numpy()),
                      classification_metrics(y, joined["proba_current"].to_numpy()))
            interval = paired_difference(
                metric, y, joined["proba_target"].to_numpy(),
                joined["proba_current"].to_numpy(), int(options.get("bootstrap_resamples", 1000)),
                float(options.get("promotion_level", 0.9)),
                int(options.get("seed", 42))).to_dict()
    decision = decide(metric, -margin, scores[0], scores[1], production_version=0,
                      cannot_compare=cannot, interval=interval)
    if not decision.compared:
        return Gate("model", False, f"cannot compare the models: {cannot}")
    now = decision.production.get(metric, float("nan")) if decision.production else float("nan")
    new = decision.candidate.get(metric, float("nan"))
    assert interval is not None
    verdict = "not worse" if decision.promote else "worse"
    return Gate("model", decision.promote,
                f"{metric} {now:.4f} -> {new:.4f}; difference {interval['difference']:+.4f}, "
                f"{interval['level']:.0%} interval {interval['lower']:+.4f}..."
                f"{interval['upper']:+.4f} over {interval['rows']:,} rows: {verdict} than "
                f"{base.profile} beyond the margin {margin}")


def scan_gate(target: Profile, project: Path, log: Any) -> Gate:
    from churnctl.scan.core import TOOLS, run_scan

    assert target.scan is not None
    opts = target.scan.options
    fail_on = str(opts.get("fail_on", "HIGH"))
    ignore = project / str(opts["ignore_file"]) if opts.get("ignore_file") else None
    log(f"scanning {project} at {fail_on} ({target.name}'s scan binding)")
    result = run_scan(project, fail_on=fail_on, tools=tuple(opts.get("tools") or TOOLS),
                      ignore_file=ignore if ignore and ignore.is_file() else None,
                      skip=list(opts.get("skip", [])), overlays=list(opts.get("overlays", [])))
    if result.verdict == "fail":
        first = result.blocking[0]
        return Gate("scan", False, f"{len(result.blocking)} finding(s) at {fail_on} or above, "
                    f"first: {first.tool} {first.rule} ({first.severity})")
    note = f"; not checked: {', '.join(result.not_checked)}" if result.not_checked else ""
    return Gate("scan", True, f"clean at {fail_on}{note}")
