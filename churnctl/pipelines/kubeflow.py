"""The profile's pipeline as a Kubeflow Pipelines v2 pipeline, built with the kfp SDK.

One container component per stage, each running `churnctl stage run STAGE` in the churnctl
pipeline image; stages pass their outputs as KFP artifacts (Dataset, and a Model from
train), so KFP orders the steps by those artifacts and can cache each one. A stage's
backend and options are one pipeline parameter (`<stage>_params`, a dict defaulting to the
profile's values), so a run in the KFP UI can change them without recompiling.

kfp is imported at module level: import this module only to compile. kfp 2 pins kubernetes
below 31, which churnctl's deploy command cannot use, so it lives in a venv of its own.
"""

# No `from __future__ import annotations` here: kfp reads the component functions'
# annotations (Input[Dataset], Output[Model]) as real objects.

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from kfp import compiler, dsl
from kfp.dsl import Dataset, Input, Model, Output

from churnctl.profile import Profile
from churnctl.registry import backend_class
from churnctl.stages import PIPELINE_STAGES, STAGE_INPUTS

DEFAULT_IMAGE = "ghcr.io/churnctl/churnctl-pipeline:0.1.0"
OUTPUT = "data"  # every stage's output artifact is called this


def stage_params(profile: Profile) -> dict[str, dict[str, Any]]:
    """Per stage: backend and every option (defaults included), as params.yaml has them."""
    params = {}
    for stage in PIPELINE_STAGES:
        binding = profile.stages[stage]
        cls = backend_class(stage, binding.backend)
        # Unset options (None) stay out: a KFP struct cannot hold null, and leaving them out
        # gives the same validated options (their default is None) inside the step.
        options = cls.Options.model_validate(binding.options).model_dump(mode="json",
                                                                          exclude_none=True)
        params[stage] = {"backend": binding.backend, **options}
    return params


def components(image: str) -> dict[str, Any]:
    """The four stage components. Signatures are spelled out: kfp reads them to type inputs."""

    def spec(stage: str, params: Any, out: Any, **inputs: Any) -> dsl.ContainerSpec:
        args: list[Any] = ["--params-json", params, "--out", out.path]
        for name, artifact in inputs.items():
            args += ["--input", dsl.ConcatPlaceholder([f"{name}=", artifact.path])]
        return dsl.ContainerSpec(image=image, command=["churnctl", "stage", "run", stage],
                                 args=args)

    @dsl.container_component
    def ingest(params: dict, data: Output[Dataset]):
        return spec("ingest", params, data)

    @dsl.container_component
    def validate(params: dict, ingest: Input[Dataset], data: Output[Dataset]):
        return spec("validate", params, data, ingest=ingest)

    @dsl.container_component
    def features(params: dict, ingest: Input[Dataset], validate: Input[Dataset],
                 data: Output[Dataset]):
        return spec("features", params, data, ingest=ingest, validate=validate)

    @dsl.container_component
    def train(params: dict, features: Input[Dataset], data: Output[Model]):
        return spec("train", params, data, features=features)

    built = {"ingest": ingest, "validate": validate, "features": features, "train": train}
    assert set(built) == set(PIPELINE_STAGES)
    return built


def pipeline_name(profile: Profile) -> str:
    return "churnctl-" + (re.sub(r"[^a-z0-9-]+", "-", profile.name.lower()).strip("-") or "custom")


def build(profile: Profile, image: str = DEFAULT_IMAGE) -> Any:
    """The kfp pipeline function for `profile` (stages in order, artifacts between them)."""
    steps = components(image)
    defaults = stage_params(profile)

    @dsl.pipeline(name=pipeline_name(profile),
                  description=f"churnctl profile {profile.name}: "
                              + " -> ".join(PIPELINE_STAGES))
    def churn_pipeline(ingest_params: dict = defaults["ingest"],
                       validate_params: dict = defaults["validate"],
                       features_params: dict = defaults["features"],
                       train_params: dict = defaults["train"]):
        params = {"ingest": ingest_params, "validate": validate_params,
                  "features": features_params, "train": train_params}
        tasks: dict[str, Any] = {}
        for stage in PIPELINE_STAGES:
            upstream = {up: tasks[up].outputs[OUTPUT] for up in STAGE_INPUTS[stage]}
            tasks[stage] = steps[stage](params=params[stage], **upstream)
            tasks[stage].set_display_name(stage)

    return churn_pipeline


def compile_pipeline(profile: Profile, output: Path, image: str = DEFAULT_IMAGE
                     ) -> dict[str, Any]:
    """Write the compiled pipeline (KFP IR YAML) atomically; a summary of what it holds."""
    pipeline = build(profile, image)
    output.parent.mkdir(parents=True, exist_ok=True)
    # kfp picks the format from the file name, so compile under the final name in a temp
    # directory beside the target, then rename: readers never see half a file.
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".kfp-") as tmp:
        staged = Path(tmp) / (output.stem + ".yaml")
        compiler.Compiler().compile(pipeline_func=pipeline, package_path=str(staged))
        os.replace(staged, output)
    return {"target": "kubeflow", "output": str(output), "pipeline": pipeline_name(profile),
            "image": image, "stages": list(PIPELINE_STAGES),
            "artifacts": {s: list(STAGE_INPUTS[s]) for s in PIPELINE_STAGES}}
