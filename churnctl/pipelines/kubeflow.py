"""The profile's pipeline as a Kubeflow Pipelines v2 pipeline, built with the kfp SDK.

One container component per stage, each running `churnctl stage run STAGE` in the churnctl
pipeline image; stages pass their outputs as KFP artifacts (Dataset, and a Model from
train), so KFP orders the steps by those artifacts and can cache each one. A stage's
backend and options are one pipeline parameter (`<stage>_params`, a dict defaulting to the
profile's values), so a run in the KFP UI can change them without recompiling. The
components and their artifact edges are built from `PIPELINE_STAGES` and `STAGE_INPUTS`,
the declaration the runner and DVC read too.

Every step runs in a pod of its own, so the model registry must be shared: compiling needs
a profile whose tracking store is a server (`--set tracking.tracking_uri=http://mlflow:5000`),
whose URI every step gets as MLFLOW_TRACKING_URI.

kfp is imported at module level: import this module only to compile. kfp 2 pins kubernetes
below 31, which churnctl's deploy command cannot use, so it lives in a venv of its own.
"""

# No `from __future__ import annotations` here: kfp reads the component functions'
# annotations (Input[Dataset], Output[Model]) as real objects.

import inspect
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from kfp import compiler, dsl
from kfp.dsl import Dataset, Input, Model, Output

from churnctl.errors import UserError
from churnctl.profile import Profile
from churnctl.registry import backend_class
from churnctl.stages import PIPELINE_STAGES, STAGE_INPUTS
from churnctl.workspace import Workspace

DEFAULT_IMAGE = "ghcr.io/churnctl/churnctl-pipeline:0.1.0"
OUTPUT = "data"  # every stage's output artifact is called this
OUTPUT_TYPES = {"train": Model}  # the KFP artifact type of a stage's output (else Dataset)


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


def step_env(profile: Profile, workspace: Workspace | None = None) -> dict[str, str]:
    """The environment every step gets: the shared tracking server (and model registry).

    Each step runs in a pod of its own, so a registry inside a pod is thrown away with it and
    every trained model would be "first model: promoted". Compiling therefore refuses a
    profile without tracking, or whose store is a local file (SQLite, a directory).
    """
    from churnctl.tracking.mlflow_tracker import ENV_URI, is_local_store, redact

    fix = ("--set tracking.tracking_uri=http://mlflow:5000 (an MLflow server the pods reach)")
    why = ("Kubeflow steps run in pods of their own, so a model registry inside one is "
           "thrown away and every model would be promoted as the first")
    binding = profile.tracking
    if binding is None:
        raise UserError(f"profile {profile.name} has no tracking: {why}; use a profile with "
                        f"tracking (extends: v2) and {fix}")
    workspace = workspace or Workspace(Path.cwd().resolve())
    cls = backend_class("tracking", binding.backend)
    options = cls.Options.model_validate(binding.options)
    store = cls().store(options, workspace)
    if not store or is_local_store(store):
        source = f" (from {ENV_URI}, which wins over the profile)" if os.environ.get(ENV_URI) \
            else ""
        raise UserError(f"tracking store {store or 'none'}{source} is local to this machine: "
                        f"{why}; pass {fix}")
    if binding.backend != "mlflow":
        return {}
    from churnctl.tracking.mlflow_tracker import resolve_tracking_uri

    uri = resolve_tracking_uri(options.tracking_uri, workspace)
    if redact(uri) != uri:
        raise UserError(f"tracking URI {redact(uri)} holds credentials, which would be written "
                        f"into the pipeline file; give them to the pods as "
                        f"MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD from a Kubernetes "
                        f"secret and set the URI without them")
    return {ENV_URI: uri}


def _stage_component(stage: str, image: str) -> Any:
    """The container component of one stage: `params`, one input artifact per upstream stage
    (STAGE_INPUTS), one output artifact. kfp reads the function's signature to type them, so
    it is built from the stage declaration instead of written out per stage."""
    upstream = STAGE_INPUTS[stage]
    assert not {"params", OUTPUT} & set(upstream), f"{stage}: input name clashes"
    keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD
    signature = inspect.Signature([
        inspect.Parameter("params", keyword, annotation=dict),
        *(inspect.Parameter(up, keyword, annotation=Input[Dataset]) for up in upstream),
        inspect.Parameter(OUTPUT, keyword,
                          annotation=Output[OUTPUT_TYPES.get(stage, Dataset)]),
    ])

    def step(*args: Any) -> dsl.ContainerSpec:
        bound = signature.bind(*args).arguments
        command = ["--params-json", bound["params"], "--out", bound[OUTPUT].path]
        for name in upstream:
            command += ["--input", dsl.ConcatPlaceholder([f"{name}=", bound[name].path])]
        return dsl.ContainerSpec(image=image, command=["churnctl", "stage", "run", stage],
                                 args=command)

    step.__signature__ = signature  # type: ignore[attr-defined]
    step.__name__ = step.__qualname__ = stage
    step.__doc__ = f"churnctl stage run {stage}"
    return dsl.container_component(step)


def components(image: str) -> dict[str, Any]:
    """One container component per pipeline stage, in pipeline order."""
    return {stage: _stage_component(stage, image) for stage in PIPELINE_STAGES}


def pipeline_name(profile: Profile) -> str:
    return "churnctl-" + (re.sub(r"[^a-z0-9-]+", "-", profile.name.lower()).strip("-") or "custom")


def param_name(stage: str) -> str:
    return f"{stage}_params"


def build(profile: Profile, image: str = DEFAULT_IMAGE) -> Any:
    """The kfp pipeline function for `profile` (stages in order, artifacts between them)."""
    env = step_env(profile)  # first: refuse before any work
    steps = components(image)
    defaults = stage_params(profile)
    keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD
    signature = inspect.Signature([
        inspect.Parameter(param_name(stage), keyword, annotation=dict, default=defaults[stage])
        for stage in PIPELINE_STAGES])

    def churn_pipeline(*args: Any) -> None:
        bound = signature.bind(*args).arguments
        tasks: dict[str, Any] = {}
        for stage in PIPELINE_STAGES:
            upstream = {up: tasks[up].outputs[OUTPUT] for up in STAGE_INPUTS[stage]}
            tasks[stage] = steps[stage](params=bound[param_name(stage)], **upstream)
            tasks[stage].set_display_name(stage)
            for name, value in env.items():
                tasks[stage].set_env_variable(name, value)

    churn_pipeline.__signature__ = signature  # type: ignore[attr-defined]
    return dsl.pipeline(churn_pipeline, name=pipeline_name(profile),
                        description=f"churnctl profile {profile.name}: "
                                    + " -> ".join(PIPELINE_STAGES))


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
