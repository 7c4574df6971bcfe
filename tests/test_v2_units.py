"""v2 pieces without a full v2 run: dvc.yaml/params.yaml rendering, the stage command as a
Kubeflow step calls it, tracker fallbacks when the store is down, and one-line errors."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from churnctl.cli.main import app as cli_app
from churnctl.hashing import file_sha256
from churnctl.orchestrators import dvc_pipeline
from churnctl.orchestrators.dvc_orchestrator import configured_remote
from churnctl.profile import StageBinding, load_profile
from churnctl.runner import Runner
from churnctl.tracking import PENDING, track_run
from churnctl.tracking.mlflow_tracker import (
    TrackingUnavailable,
    probe,
    redact,
    resolve_tracking_uri,
)
from churnctl.workspace import Workspace
from tests.conftest import SMALL


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(cli_app, list(args), catch_exceptions=False)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_params_and_pipeline_follow_the_profile(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    plans = Runner(load_profile("v2", SMALL[1::2]), ws).plan()
    params = dvc_pipeline.params_for(plans, ws)
    assert params["ingest"]["users"] == 400 and params["train"]["backend"] == "sklearn"
    assert params["features"]["windows"] == [7, 14, 30]  # defaults are written out too
    stages = dvc_pipeline.pipeline_for(plans, ws)["stages"]
    assert stages["features"]["deps"] == ["data/ingest", "data/validate"]
    assert "deps" not in stages["ingest"]  # its code and script are params, not paths
    assert stages["train"]["metrics"] == [{"metrics/train.json": {"cache": False}}]
    text = dvc_pipeline.dump(params, "v2")
    assert text.startswith("# Written by churnctl from profile v2")
    assert dvc_pipeline.write_if_changed(tmp_path / "params.yaml", text) is True
    mtime = (tmp_path / "params.yaml").stat().st_mtime_ns
    assert dvc_pipeline.write_if_changed(tmp_path / "params.yaml", text) is False
    assert (tmp_path / "params.yaml").stat().st_mtime_ns == mtime


def test_params_carry_the_code_version_and_outside_files_by_portable_name(
        tmp_path: Path) -> None:
    """The code version is the runner's (one function), as a digest and readable libraries;
    the generator script inside the installed package is a hash under its package path."""
    from churnctl.backends.ingest_shell import SCRIPT
    from churnctl.code_version import backend_code_version

    ws = Workspace(tmp_path)
    plans = Runner(load_profile("v2", SMALL[1::2]), ws).plan()
    params = dvc_pipeline.params_for(plans, ws)
    for step in plans:
        version = backend_code_version(step.cls, ws.state / "cache")
        assert params[step.stage]["code_version"] == version.digest
        assert params[step.stage]["libraries"] == {"python": version.python,
                                                   **version.distributions}
    assert params["ingest"]["input_files"] == {
        "churnctl/backends/scripts/generate_data.sh": file_sha256(SCRIPT)}
    assert "input_files" not in params["train"]
    text = dvc_pipeline.dump(params, "v2") + dvc_pipeline.dump(
        dvc_pipeline.pipeline_for(plans, ws), "v2")
    assert str(tmp_path) not in text and str(SCRIPT.parent.parent.parent) not in text


def test_input_files_inside_the_workspace_are_deps_outside_are_hashed(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "users.csv").write_text("user_id\n1\n")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "events.csv").write_text("user_id,event\n1,login\n")
    absolute = tmp_path / "shared" / "abs-events.csv"
    absolute.write_text("user_id,event\n")
    ws = Workspace(root)
    for events, name in (("../shared/events.csv", "../shared/events.csv"),
                         (str(absolute), str(absolute))):
        profile = load_profile("v2", ["ingest.backend=files", "ingest.users=users.csv",
                                      f"ingest.events={events}"])
        step = Runner(profile, ws).plan(only=["ingest"])[0]
        deps, outside = dvc_pipeline.external_files(step, ws)
        assert deps == ["users.csv"]
        assert outside == {name: file_sha256(root / events)}


def test_stage_command_ignores_the_reserved_params_keys() -> None:
    from churnctl.orchestrators.stage_exec import section_binding

    section = {"backend": "pandas", "max_future_days": 1, "code_version": "ab" * 32,
               "libraries": {"python": "3.11.7", "pandas": "2.2.3"},
               "input_files": {"churnctl/backends/scripts/generate_data.sh": "cd" * 32}}
    assert section_binding(section, "validate", "params.yaml") == (
        "pandas", {"max_future_days": 1})


def test_export_copies_a_nested_artifact_whole(tmp_path: Path) -> None:
    """An MLflow model folder, a Spark part-directory: every file under the artifact, by its
    relative path, hard-linked where the filesystem allows."""
    from churnctl.artifacts import MANIFEST, ArtifactRef, tree_files
    from churnctl.orchestrators.stage_exec import export

    source = tmp_path / "artifact"
    (source / "model" / "code" / "deep").mkdir(parents=True)
    (source / "table.parquet" / "part=1").mkdir(parents=True)
    (source / "report.json").write_text("{}")
    (source / "model" / "MLmodel").write_text("flavors: {}\n")
    (source / "model" / "code" / "deep" / "x.py").write_text("x = 1\n")
    (source / "table.parquet" / "part=1" / "part-0000.parquet").write_bytes(b"PAR1")
    files, _ = tree_files(source)
    (source / MANIFEST).write_text(json.dumps({"stage": "train", "key": "k", "files": files}))
    artifact = ArtifactRef("train", "k", source, files)
    out = tmp_path / "exported" / "train"
    out.mkdir(parents=True)
    (out / "stale.txt").write_text("from the previous run")
    export(artifact, out)
    assert tree_files(out)[0] == files
    assert (out / MANIFEST).read_text() == (source / MANIFEST).read_text()
    assert not (out / "stale.txt").exists()
    nested = out / "model" / "code" / "deep" / "x.py"
    assert nested.stat().st_ino == (source / "model" / "code" / "deep" / "x.py").stat().st_ino
    assert not list(out.parent.glob(".train.*"))  # no temp directory left behind


def test_export_refuses_a_manifest_naming_files_outside_the_artifact(tmp_path: Path) -> None:
    from churnctl.artifacts import ArtifactRef
    from churnctl.errors import UserError
    from churnctl.orchestrators.stage_exec import export

    (tmp_path / "artifact").mkdir()
    (tmp_path / "secret").write_text("not part of it")
    artifact = ArtifactRef("train", "k", tmp_path / "artifact", {"../secret": "0" * 64})
    with pytest.raises(UserError, match="outside the artifact"):
        export(artifact, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_stage_command_runs_a_kubeflow_style_step(finished_workspace: Path,
                                                  tmp_path: Path) -> None:
    """Explicit input/output paths and JSON params, as the compiled KFP step passes them."""
    ingest = next((finished_workspace / ".churnctl" / "artifacts" / "ingest").glob("*/"))
    out = tmp_path / "outputs" / "validate"
    params = json.dumps({"backend": "pandas", "max_future_days": 1.0})  # KFP sends floats
    result = _invoke("stage", "run", "validate", "--params-json", params,
                     "--input", f"ingest={ingest}", "--out", str(out),
                     "--workspace", str(tmp_path / "step"), "--json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert row["status"] == "ran" and row["name"] == "validate"
    manifest = json.loads((out / "manifest.json").read_text())
    assert file_sha256(out / "report.json") == manifest["files"]["report.json"]
    assert manifest["components"]["options"]["max_future_days"] == 1  # validated, not 1.0


def test_stage_command_errors_are_one_line(tmp_path: Path) -> None:
    missing = _invoke("stage", "run", "train", "--workspace", str(tmp_path))
    assert missing.exit_code == 2 and "params.yaml not found" in missing.stderr
    (tmp_path / "params.yaml").write_text("train: {backend: sklearn}\n")
    no_input = _invoke("stage", "run", "train", "--workspace", str(tmp_path))
    assert no_input.exit_code == 2 and "no manifest.json" in no_input.stderr
    saved = json.loads((tmp_path / ".churnctl" / "stage-rows" / "train.json").read_text())
    assert saved["exit_code"] == 2 and saved["row"] is None
    bad = _invoke("stage", "run", "train", "--input", "features", "--workspace", str(tmp_path))
    assert bad.exit_code == 2 and "NAME=DIR" in bad.stderr
    wrong = _invoke("stage", "run", "train", "--params-json", '{"backend": "sklearn", '
                    '"promotion_margn": 1}', "--workspace", str(tmp_path))
    assert wrong.exit_code == 2 and "train.promotion_margn" in wrong.stderr
    for result in (missing, no_input, bad, wrong):
        assert "Traceback" not in result.output


def test_tracking_uri_resolution_and_redaction(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    ws = Workspace(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri("sqlite:///.churnctl/mlflow.db", ws) == \
        f"sqlite:///{tmp_path.resolve()}/.churnctl/mlflow.db"
    assert resolve_tracking_uri("sqlite:////abs/m.db", ws) == "sqlite:////abs/m.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert resolve_tracking_uri("sqlite:///x.db", ws) == "http://127.0.0.1:5999"  # env wins
    assert redact("https://bob:s3cret@mlflow.example:8443/x") == "https://mlflow.example:8443/x"


def test_unreachable_server_is_one_warning_and_the_run_is_kept(
        small_run: tuple[Path, dict[str, Any]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"http://127.0.0.1:{_closed_port()}"
    began = time.perf_counter()
    with pytest.raises(TrackingUnavailable, match="unreachable"):
        probe(uri, timeout=2)
    assert time.perf_counter() - began < 5
    lines: list[str] = []
    record = json.loads(json.dumps(small_run[1]))
    binding = StageBinding(backend="mlflow", options={"tracking_uri": uri})
    outcome = track_run(binding, Workspace(tmp_path), record, lines.append)
    assert outcome["status"] == PENDING and "unreachable" in outcome["error"]
    assert len(lines) == 1 and "churnctl tracking sync" in lines[0]


def test_dvc_remote_is_read_from_dvc_config(tmp_path: Path) -> None:
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text(
        "[core]\n    remote = churnctl\n['remote \"churnctl\"']\n    url = ../.dvc-remote\n")
    assert configured_remote(tmp_path) == str((tmp_path / ".dvc-remote").resolve())


def test_v2_commands_say_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    pushed = _invoke("dvc", "push", "--profile", "v1", "--workspace", str(tmp_path))
    assert pushed.exit_code == 2 and "does not use DVC" in pushed.stderr
    synced = _invoke("tracking", "sync", "--profile", "v1", "--workspace", str(tmp_path))
    assert synced.exit_code == 2 and "no tracking backend" in synced.stderr
    status = _invoke("tracking", "status", "--workspace", str(tmp_path), "--json")
    assert status.exit_code == 0 and json.loads(status.stdout) == []


@pytest.mark.skipif(__import__("importlib.util").util.find_spec("kfp") is not None,
                    reason="kfp is installed here")
def test_compile_without_kfp_says_what_to_install(tmp_path: Path) -> None:
    result = _invoke("pipeline", "compile", "--target", "kubeflow", "-o",
                     str(tmp_path / "p.yaml"))
    assert result.exit_code == 2
    assert "pip install 'churnctl[kubeflow]'" in result.stderr


def test_v2_modules_import_nothing_heavy() -> None:
    code = ("import sys\n"
            "import churnctl.cli.stage, churnctl.cli.pipeline, churnctl.cli.tracking\n"
            "import churnctl.cli.dvc, churnctl.tracking, churnctl.tracking.mlflow_tracker\n"
            "import churnctl.orchestrators.dvc_orchestrator\n"
            "heavy = ('mlflow', 'dvc', 'kfp', 'pandas', 'sklearn', 'numpy')\n"
            "print([m for m in heavy if m in sys.modules])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


def test_dvc_init_git_then_a_stage_runs_in_a_fresh_git_repo(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    import yaml

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    init = _invoke("dvc", "init", "--git", "--profile", "v2", "--workspace", str(tmp_path),
                   "--json")
    assert init.exit_code == 0, init.output
    assert json.loads(init.stdout)["git"] is True and (tmp_path / ".git").is_dir()
    assert "/.churnctl/" in (tmp_path / ".gitignore").read_text().splitlines()
    ran = _invoke("run", "--profile", "v2", *SMALL, "--only", "ingest", "--json",
                  "--workspace", str(tmp_path))
    assert ran.exit_code == 0, ran.output
    assert [(s["name"], s["status"]) for s in json.loads(ran.stdout)["stages"]] == [
        ("ingest", "ran")]
    assert "/ingest" in (tmp_path / "data" / ".gitignore").read_text()  # DVC keeps data out of git
    assert set(yaml.safe_load((tmp_path / "dvc.lock").read_text())["stages"]) == {"ingest"}
