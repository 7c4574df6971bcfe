"""The features stage as a Spark job a team runs on its cluster: `pipeline compile --target
spark-submit`.

Writes, into one directory: the job script (churnctl/spark/feature_job.py as
`feature_pipeline.py`), `churnctl.zip` (the churnctl package for `--py-files`, so the driver
runs the same definitions as `churnctl run`), `spark-defaults.conf` (the Spark configuration),
`spark-submit.sh` (the exact command line) and `sparkapplication.yaml` (the same job for the
Kubeflow Spark operator), validated against the operator's own CRD schema (crds/, from
kubeflow/spark-operator at SPARK_OPERATOR_VERSION) before anything is written.

Only the driver runs Python (the job has no UDF): its image needs Python with the `spark`
extra's packages (pandas, pyarrow, pydantic); executors need Spark alone.
"""

from __future__ import annotations

import json
import shlex
import shutil
import zipfile
from functools import cache
from pathlib import Path
from typing import Any

from churnctl.errors import UserError
from churnctl.profile import Profile

SPARK_OPERATOR_VERSION = "v2.5.2"
SPARK_APPLICATION_API = "sparkoperator.k8s.io/v1beta2"
CRD_FILE = (Path(__file__).resolve().parent / "crds"
            / f"sparkapplications-{SPARK_OPERATOR_VERSION}.yaml")
DEFAULT_IMAGE = "ghcr.io/churnctl/churnctl-spark:0.1.0"  # apache/spark 4.1 + churnctl[spark]
DEFAULT_MASTER = "k8s://https://kubernetes.default.svc:443"
DEFAULT_DATA = "s3a://churnctl-data"
SCRIPT = "feature_pipeline.py"
IN_IMAGE = "local:///opt/churnctl/job"  # where the image (or a volume) holds the job files


@cache
def _validator() -> Any:
    from churnctl.deploy.crd_schema import crd_validator

    return crd_validator(CRD_FILE, SPARK_APPLICATION_API)


def application_errors(obj: dict[str, Any]) -> list[str]:
    """One line per violation of the SparkApplication CRD schema."""
    from jsonschema.exceptions import best_match

    lines = []
    for error in sorted(_validator().iter_errors(obj), key=lambda e: list(map(str, e.path))):
        while error.context:
            error = best_match(error.context)
        where = ".".join(str(p) for p in error.absolute_path) or "(object)"
        lines.append(f"SparkApplication {where}: {error.message} "
                     f"(spark-operator {SPARK_OPERATOR_VERSION} CRD schema)")
    return lines


def job_paths(data: str) -> dict[str, str]:
    root = data.rstrip("/")
    return {"users": f"{root}/ingest/users.parquet", "events": f"{root}/ingest/events.parquet",
            "out": f"{root}/features"}


def cluster_conf(profile_options: dict[str, Any], master: str) -> dict[str, str]:
    """The Spark settings of the job: churnctl's job settings, then the profile's conf."""
    from churnctl.backends.features_spark import SparkFeaturesOptions
    from churnctl.spark.session import job_conf, shuffle_partitions

    opts = SparkFeaturesOptions.model_validate(profile_options)
    conf = {"spark.app.name": "churnctl-features",
            "spark.sql.shuffle.partitions": str(shuffle_partitions(master,
                                                                    opts.shuffle_partitions)),
            **job_conf()}
    if opts.driver_memory:
        conf["spark.driver.memory"] = opts.driver_memory
    return {**conf, **opts.conf}


def job_options(profile_options: dict[str, Any]) -> dict[str, Any]:
    """The feature definitions' options, every default spelled out (what --options passes),
    so the cluster computes what this churnctl version computes; where Spark runs is the
    command line's business."""
    from churnctl.backends.features_spark import SparkFeaturesOptions

    placement = {"master", "shuffle_partitions", "driver_memory", "connect_timeout_seconds",
                 "conf"}
    return SparkFeaturesOptions.model_validate(profile_options).model_dump(
        mode="json", exclude=placement)


def submit_command(master: str, conf: dict[str, str], image: str, namespace: str,
                   args: list[str]) -> list[str]:
    """spark-submit for this master: Kubernetes and YARN run the driver in the cluster (on
    Kubernetes the job files come from the image); a standalone master cannot run a Python
    driver in the cluster, so it runs here (client mode) with the files of this directory."""
    in_cluster = master.startswith("k8s://") or master == "yarn"
    files = IN_IMAGE if master.startswith("k8s://") else "."
    command = ["spark-submit", "--master", master, "--deploy-mode",
               "cluster" if in_cluster else "client"]
    if master.startswith("k8s://"):
        conf = {**conf, "spark.kubernetes.container.image": image,
                "spark.kubernetes.namespace": namespace,
                "spark.kubernetes.authenticate.driver.serviceAccountName": "spark"}
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    return [*command, "--py-files", f"{files}/churnctl.zip", f"{files}/{SCRIPT}", *args]


def spark_application(name: str, image: str, conf: dict[str, str], args: list[str],
                      namespace: str) -> dict[str, Any]:
    import pyspark

    return {
        "apiVersion": SPARK_APPLICATION_API,
        "kind": "SparkApplication",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/name": "churnctl",
                                "app.kubernetes.io/component": "features"}},
        "spec": {
            "type": "Python", "pythonVersion": "3", "mode": "cluster",
            "image": image, "imagePullPolicy": "IfNotPresent",
            "mainApplicationFile": f"{IN_IMAGE}/{SCRIPT}",
            "arguments": args,
            "deps": {"pyFiles": [f"{IN_IMAGE}/churnctl.zip"]},
            "sparkVersion": pyspark.__version__,
            "sparkConf": conf,
            "restartPolicy": {"type": "Never"},
            "driver": {"cores": 1, "memory": "2g", "serviceAccount": "spark",
                       "labels": {"app.kubernetes.io/component": "features-driver"}},
            "executor": {"instances": 2, "cores": 2, "memory": "4g"},
        },
    }


def _package_zip(target: Path) -> None:
    import churnctl

    root = Path(churnctl.__file__).resolve().parent
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" not in path.parts:
                archive.write(path, Path("churnctl") / path.relative_to(root))


def compile_spark_submit(profile: Profile, output: Path, image: str, master: str | None,
                         data: str, namespace: str = "churn") -> dict[str, Any]:
    """Write the job directory; nothing is written when the manifest does not validate."""
    import yaml

    from churnctl.atomic import atomic_dir

    binding = profile.stages["features"]
    if binding.backend != "spark":
        raise UserError(f"profile {profile.name}: features.backend is {binding.backend!r}; "
                        "spark-submit runs features.spark: add --set features.backend=spark")
    profile_master = binding.options.get("master", "local[*]")
    master = master or (profile_master if not profile_master.startswith("local")
                        else DEFAULT_MASTER)
    conf = cluster_conf(binding.options, master)
    paths = job_paths(data)
    args = ["--users", paths["users"], "--events", paths["events"], "--out", paths["out"],
            "--options", json.dumps(job_options(binding.options), sort_keys=True)]
    app = spark_application(f"churnctl-features-{profile.name}".lower().replace("_", "-"),
                            image, conf, args, namespace)
    from churnctl.spark.session import master_problem

    problem = master_problem(master)
    if problem:
        raise UserError(f"--{problem}")
    problems = application_errors(app)
    if problems:
        raise UserError("; ".join(problems))
    command = submit_command(master, conf, image, namespace, args)
    with atomic_dir(output, replace=True) as folder:
        import churnctl.spark.feature_job as job

        shutil.copyfile(job.__file__, folder / SCRIPT)
        _package_zip(folder / "churnctl.zip")
        (folder / "spark-defaults.conf").write_text(
            "".join(f"{key} {value}\n" for key, value in conf.items()))
        (folder / "spark-submit.sh").write_text(
            "#!/bin/sh\n# churnctl features as a Spark job (run from this directory)\n"
            "set -e\ncd \"$(dirname \"$0\")\"\nexec " + shlex.join(command) + "\n")
        (folder / "spark-submit.sh").chmod(0o755)
        (folder / "sparkapplication.yaml").write_text(yaml.safe_dump(app, sort_keys=False))
    return {"profile": profile.name, "master": master, "command": shlex.join(command),
            "files": [SCRIPT, "churnctl.zip", "spark-defaults.conf", "spark-submit.sh",
                      "sparkapplication.yaml"],
            "spark_operator": SPARK_OPERATOR_VERSION, "output": str(output)}
