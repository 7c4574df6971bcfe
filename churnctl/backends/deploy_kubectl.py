"""Deploy to Kubernetes: kustomize renders, real schemas validate, the kubernetes client applies.

The v1 deploy backend. Named after the tool most users know for the same job, but only
rendering goes through the kubectl binary (`kubectl kustomize`); diff (a server-side apply
dry run) and server-side apply use the kubernetes Python client, so errors come back as data,
not as kubectl's text.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from churnctl.deploy.render import DEFAULT_IMAGE, DEFAULT_PIPELINE_IMAGE, IMAGE_RE
from churnctl.stages import Backend, StrictOptions

if TYPE_CHECKING:
    from churnctl.deploy.apply import ApplyResult, Cluster
    from churnctl.deploy.diff import ObjectDiff
    from churnctl.deploy.validate import ValidationReport

# RFC 1123 label: what the API server accepts as a namespace name.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class KubectlDeployOptions(StrictOptions):
    image: str = Field(DEFAULT_IMAGE, description="image of the API Deployment")
    pipeline_image: str = Field(
        DEFAULT_PIPELINE_IMAGE, description="image of the batch-scoring and retraining CronJobs"
    )
    namespace: str = Field("churn", max_length=63)
    overlay: str = Field("staging", description="staging, production, or a kustomize directory")
    context: str | None = Field(None, description="kubeconfig context (default: current)")
    kubeconfig: str | None = Field(None, description="kubeconfig path (default: $KUBECONFIG)")
    manifests_dir: str | None = Field(
        None, description="directory with base/ and overlays/ (default: infra/k8s)"
    )
    kubernetes_version: str = Field(
        "1.30", pattern=r"^v?\d+\.\d+$", description="schemas to validate against"
    )
    strict_schema: bool = Field(True, description="unknown fields in manifests are errors")
    force_conflicts: bool = Field(
        False, description="take over fields another field manager owns (server-side apply)"
    )

    @field_validator("image", "pipeline_image")
    @classmethod
    def _image_reference(cls, value: str) -> str:
        if not IMAGE_RE.match(value):
            raise ValueError(f"{value!r} is not an image reference like registry/name:tag")
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace_name(cls, value: str) -> str:
        if not _DNS_LABEL.match(value):
            raise ValueError(
                f"{value!r} is not a valid namespace: lower-case letters, digits and '-'"
            )
        return value


class KubectlDeploy(Backend):
    name = "kubectl"
    stage = "deploy"
    description = "kustomize overlays, offline schema validation, server-side apply"
    Options = KubectlDeployOptions
    extra = "kubernetes"
    modules = ("kubernetes", "kubernetes_validate")
    binaries = ("kubectl",)
    code_modules = (
        "churnctl.deploy.render",
        "churnctl.deploy.validate",
        "churnctl.deploy.diff",
        "churnctl.deploy.apply",
    )

    def render(self, options: KubectlDeployOptions) -> list[dict[str, Any]]:
        from churnctl.deploy.render import render

        return render(
            options.overlay,
            namespace=options.namespace,
            image=options.image,
            pipeline_image=options.pipeline_image,
            root=options.manifests_dir,
        )

    def validate(
        self, options: KubectlDeployOptions, objects: list[dict[str, Any]]
    ) -> ValidationReport:
        from churnctl.deploy.validate import validate_manifests

        return validate_manifests(objects, options.kubernetes_version, strict=options.strict_schema)

    def connect(self, options: KubectlDeployOptions) -> Cluster:
        from churnctl.deploy.apply import connect

        return connect(context=options.context, kubeconfig=options.kubeconfig)

    def diff(
        self,
        cluster: Cluster,
        objects: list[dict[str, Any]],
        options: KubectlDeployOptions | None = None,
    ) -> list[ObjectDiff]:
        """A server-side apply dry run of every object, with the force the apply will use."""
        from churnctl.deploy.apply import diff_objects

        force = options.force_conflicts if options is not None else False
        return diff_objects(cluster, objects, force_conflicts=force)

    def apply(
        self,
        cluster: Cluster,
        objects: list[dict[str, Any]],
        options: KubectlDeployOptions,
        diffs: list[ObjectDiff] | None = None,
    ) -> list[ApplyResult]:
        from churnctl.deploy.apply import apply_objects

        return apply_objects(cluster, objects, force_conflicts=options.force_conflicts, diffs=diffs)
