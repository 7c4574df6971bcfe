"""Argo Rollouts canaries: manifests, offline CRD validation, analysis, and rollout control.

The CRD schemas in `crds/` are Argo Rollouts' own (manifests/crds of argoproj/argo-rollouts at
the tag below), shipped as data so validation needs no cluster and no network.
"""

from __future__ import annotations

ARGO_ROLLOUTS_VERSION = "v1.9.1"
ARGO_ROLLOUTS_COMMIT = "b6bd3bcf8f60d717a98763d26acc983db7f97cb0"
ROLLOUTS_API = "argoproj.io/v1alpha1"
