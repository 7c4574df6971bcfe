"""Real container image tarballs without a Docker daemon: a `docker save` archive or an OCI
image layout tar, one layer holding the given files (test scaffolding for `scan --input`).

The layouts follow Docker's image archive format (manifest.json, a config whose rootfs
diff_ids are the layers' sha256) and the OCI image layout spec (oci-layout, index.json,
content-addressed blobs), so Trivy reads them as it reads `docker save` / `skopeo copy` output.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Literal

DEBIAN_12 = {
    "etc/debian_version": b"12.5\n",
    "etc/os-release": (b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
                       b'VERSION_ID="12"\nVERSION="12 (bookworm)"\nID=debian\n'),
}


def _tar(files: dict[str, bytes]) -> bytes:
    """A reproducible tar (fixed mtimes, root-owned) of `files`, parent directories first."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        folders = sorted({"/".join(name.split("/")[:i]) for name in files
                          for i in range(1, name.count("/") + 1)})
        for folder in folders:
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _config(layer: bytes) -> bytes:
    return json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["python", "/app/app.py"], "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
        "history": [{"created": "2025-01-01T00:00:00Z", "created_by": "COPY . /"}],
    }, sort_keys=True).encode()


def write_image(path: Path, files: dict[str, bytes], layout: Literal["docker", "oci"] = "docker",
                tag: str = "churnctl-test:1") -> Path:
    """Write a one-layer linux/amd64 image of `files` (plus a Debian 12 os-release) to `path`."""
    layer = _tar({**DEBIAN_12, **files})
    config = _config(layer)
    if layout == "docker":
        name = _digest(config).removeprefix("sha256:") + ".json"
        manifest = [{"Config": name, "RepoTags": [tag], "Layers": ["layer0/layer.tar"]}]
        path.write_bytes(_tar({"manifest.json": json.dumps(manifest).encode(), name: config,
                               "layer0/layer.tar": layer}))
        return path
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": _digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": _digest(layer), "size": len(layer)}],
    }).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": _digest(manifest),
        "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": tag}}]})
    blobs = {f"blobs/sha256/{_digest(b).removeprefix('sha256:')}": b
             for b in (layer, config, manifest)}
    path.write_bytes(_tar({"oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
                           "index.json": index.encode(), **blobs}))
    return path
