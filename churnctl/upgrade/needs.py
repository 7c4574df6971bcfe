"""What a binding needs from the world besides Python packages: services to reach and
environment variables (secrets among them) that it reads.

Each entry names what the backend's own code reads (churnctl/tracking/mlflow_tracker.py reads
MLFLOW_TRACKING_URI, churnctl/tracing.py the OTEL_* variables, churnctl/serving/security.py
CHURNCTL_API_TOKEN, ...), so an upgrade plan can list what a team must provide before the
target profile runs in CI or in a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from churnctl.profile import Profile, StageBinding


@dataclass(frozen=True)
class EnvVar:
    name: str
    secret: bool
    why: str


@dataclass(frozen=True)
class Service:
    name: str
    why: str


_ENV: dict[str, tuple[EnvVar, ...]] = {
    "tracking.mlflow": (
        EnvVar("MLFLOW_TRACKING_URI", False, "an MLflow server instead of the SQLite file"),
        EnvVar("MLFLOW_TRACKING_USERNAME", True, "basic auth of an MLflow server"),
        EnvVar("MLFLOW_TRACKING_PASSWORD", True, "basic auth of an MLflow server"),
    ),
    "tracing.otlp": (
        EnvVar("OTEL_EXPORTER_OTLP_ENDPOINT", False, "the collector (no endpoint: tracing off)"),
        EnvVar("OTEL_EXPORTER_OTLP_PROTOCOL", False, "http/protobuf or grpc"),
        EnvVar("OTEL_EXPORTER_OTLP_HEADERS", True, "collector credentials"),
    ),
    "serve.fastapi": (
        EnvVar("CHURNCTL_API_TOKEN", True, "bearer token of the scoring API"),
    ),
}


def _remote_env(remote: str) -> tuple[EnvVar, ...]:
    """Credentials of a DVC remote (by URL scheme), read by DVC itself."""
    if remote.startswith("s3://"):
        return (EnvVar("AWS_ACCESS_KEY_ID", True, f"DVC remote {remote}"),
                EnvVar("AWS_SECRET_ACCESS_KEY", True, f"DVC remote {remote} (or IRSA)"))
    if remote.startswith("gs://"):
        return (EnvVar("GOOGLE_APPLICATION_CREDENTIALS", True, f"DVC remote {remote}"),)
    if remote.startswith("azure://"):
        return (EnvVar("AZURE_STORAGE_CONNECTION_STRING", True, f"DVC remote {remote}"),)
    return ()


def env_vars(kind: str, binding: StageBinding) -> tuple[EnvVar, ...]:
    found = _ENV.get(f"{kind}.{binding.backend}", ())
    if kind == "orchestrator" and binding.backend == "dvc":
        found += _remote_env(str(binding.options.get("remote", "")))
    return found


def services(kind: str, binding: StageBinding) -> tuple[Service, ...]:
    """What the binding reaches and someone must run. A backend that declares its services
    (`Backend.services`, e.g. features.feast's Redis, ingest.kafka's brokers) is asked; the
    table below covers the cross-cutting bindings, whose classes do not declare them."""
    declared = _declared_services(kind, binding)
    if declared is not None:
        return declared
    key, opts = f"{kind}.{binding.backend}", binding.options
    if key == "tracking.mlflow":
        uri = str(opts.get("tracking_uri", ""))
        where = "an MLflow server" if uri.startswith("http") else \
            f"none by default ({uri or 'SQLite'}); a server via MLFLOW_TRACKING_URI"
        return (Service("MLflow tracking + Model Registry", where),)
    if key == "monitoring.prometheus":
        return (Service("Prometheus", "scrapes the API's /metrics; drift rules in "
                        "infra/monitoring"),)
    if key == "tracing.otlp":
        return (Service("OTLP collector", str(opts.get("endpoint") or
                                              "OTEL_EXPORTER_OTLP_ENDPOINT")),)
    if key == "orchestrator.dvc":
        remote = str(opts.get("remote", ""))
        return (Service("DVC remote", remote or "none configured"),)
    if key == "orchestrator.kubeflow":
        return (Service("Kubeflow Pipelines", "a KFP API endpoint"),)
    return ()


def _declared_services(kind: str, binding: StageBinding) -> tuple[Service, ...] | None:
    """The backend's own `services(options)`, or None when it does not declare any (or is
    planned, unknown or not importable here)."""
    from churnctl.errors import UserError
    from churnctl.registry import backend_class
    from churnctl.stages import Backend

    if kind in ("tracing", "scan"):
        return None  # not registry backends
    try:
        cls = backend_class(kind, binding.backend)
    except UserError:
        return None
    hook = getattr(cls, "services", None)
    if hook is None or getattr(hook, "__func__", None) is Backend.services.__func__:
        return None
    return tuple(Service(name, why) for name, why in hook(binding.options))


SCAN_BINARIES = ("trivy", "semgrep")


def binary_found(name: str) -> bool:
    """Whether the executable is here, looked up the way its user looks it up."""
    import sys
    from pathlib import Path

    from churnctl.registry import find_binary

    if name in SCAN_BINARIES:
        from churnctl.scan.model import find_tool

        extra = [Path(sys.prefix) / "tools" / "semgrep" / "bin" / "semgrep"]
        return find_tool(name, f"CHURNCTL_{name.upper()}", extra) is not None
    return find_binary(name) is not None


def all_bindings(profile: Profile) -> dict[str, StageBinding]:
    """Stage and cross-cutting bindings, tracing and scan included."""
    found = dict(profile.bindings())
    for kind in ("tracing", "scan"):
        binding = getattr(profile, kind)
        if binding is not None:
            found[kind] = binding
    return found


def profile_needs(profile: Profile) -> dict[str, Any]:
    """{"env": [EnvVar], "services": [Service], "binaries": [name]} of a profile."""
    env: dict[str, EnvVar] = {}
    found_services: dict[str, Service] = {}
    binaries: list[str] = []
    for kind, binding in all_bindings(profile).items():
        for var in env_vars(kind, binding):
            env.setdefault(var.name, var)
        for service in services(kind, binding):
            found_services.setdefault(service.name, service)
    if profile.scan is not None:
        tools = profile.scan.options.get("tools") or ["trivy", "bandit", "semgrep", "pip-audit"]
        # bandit and pip-audit are Python packages (the scan extra); these two are executables.
        binaries += [str(t) for t in tools if t in SCAN_BINARIES]
    return {"env": list(env.values()), "services": list(found_services.values()),
            "binaries": binaries}
