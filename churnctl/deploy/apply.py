"""Talk to a cluster with the kubernetes Python client: connect, read, diff, server-side apply.

The diff is a server-side apply dry run (`dryRun=All`, the same field manager and force as the
apply), compared with the live object: it shows what the apply will do, removals included.

Requests go through `ApiClient.call_api` with paths built from API discovery, instead of the
DynamicClient: that needs one discovery call per group-version we use (not the whole
cluster's), writes no discovery cache file, and works with any kind the cluster serves.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from churnctl.deploy.diff import ObjectDiff, comparable, diff_object
from churnctl.deploy.render import object_id
from churnctl.errors import UserError

FIELD_MANAGER = "churnctl"
APPLY_PATCH = "application/apply-patch+yaml"
# (connect, read) seconds: an unreachable cluster must fail fast, not after urllib3's retries.
_TIMEOUT = (5.0, 30.0)
# Applied first so that what the others live in exists (kustomize sorts the same way).
_FIRST_KINDS = ("Namespace", "CustomResourceDefinition", "ServiceAccount", "ConfigMap", "Secret")


@dataclass
class ApplyResult:
    """One object after apply: action is created|configured|unchanged."""

    kind: str
    name: str
    namespace: str
    action: str
    live: dict[str, Any] = field(repr=False, default_factory=dict)

    def as_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "name": self.name,
            "namespace": self.namespace,
            "action": self.action,
        }


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"HTTP {status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message


def _unreachable(context: str | None, why: str) -> UserError:
    return UserError(
        f"no Kubernetes cluster reachable (context {context or 'current'}): {why}; "
        "use --dry-run to render and validate only"
    )


class Cluster:
    """A connection to one cluster (one kubeconfig context)."""

    def __init__(self, api_client: Any, context: str | None) -> None:
        self.api = api_client
        self.context = context
        self.host = str(api_client.configuration.host)
        self._resources: dict[str, list[dict[str, Any]]] = {}

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str | None = None,
        query: list[tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        """One API call; returns the decoded JSON body, raises ApiError on a non-2xx answer."""
        import urllib3
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        req = self.api.param_serialize(
            method,
            path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            resp = self.api.call_api(*req, _request_timeout=_TIMEOUT)
            resp.read()
        except urllib3.exceptions.HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            raise _unreachable(self.context, f"{self.host}: {reason}") from None
        except ApiException as exc:  # the client's wrapper of TLS failures (status 0)
            raise _unreachable(self.context, f"{self.host}: {exc.reason}") from None
        try:
            data = json.loads(resp.data) if resp.data else {}
        except ValueError:  # a proxy or load balancer answering with an HTML page
            snippet = resp.data[:80].decode("utf-8", "replace").replace("\n", " ")
            data = {"message": f"not a Kubernetes API answer: {snippet!r}"}
        data = data if isinstance(data, dict) else {}
        if not 200 <= resp.status <= 299:
            raise ApiError(resp.status, str(data.get("reason", "")), str(data.get("message", "")))
        return data

    def close(self) -> None:
        self.api.close()

    def _discover(self, api_version: str) -> list[dict[str, Any]]:
        if api_version not in self._resources:
            path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            try:
                self._resources[api_version] = self.request("GET", path).get("resources", [])
            except ApiError as exc:
                if exc.status != 404:  # 404: the cluster does not serve this group-version
                    raise UserError(
                        f"cannot list the {api_version} API of the cluster at {self.host}: {exc}"
                    ) from None
                self._resources[api_version] = []
        return self._resources[api_version]

    def path_of(self, obj: dict[str, Any]) -> str:
        """The REST path of an object (from discovery: plural name and whether namespaced)."""
        api_version, kind = str(obj["apiVersion"]), str(obj["kind"])
        found = [
            r for r in self._discover(api_version) if r.get("kind") == kind and "/" not in r["name"]
        ]
        if not found:
            raise UserError(
                f"{object_id(obj)}: the cluster at {self.host} serves no {kind} in {api_version} "
                "(missing CRD or wrong apiVersion for this Kubernetes version)"
            )
        prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        meta = obj.get("metadata") or {}
        if found[0].get("namespaced"):
            namespace = meta.get("namespace") or "default"
            prefix = f"{prefix}/namespaces/{namespace}"
        return f"{prefix}/{found[0]['name']}/{meta['name']}"


def connect(context: str | None = None, kubeconfig: str | None = None) -> Cluster:
    """Load the kubeconfig (or in-cluster config) and check the API server answers."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    configuration = client.Configuration()
    try:
        config.load_kube_config(
            config_file=path,
            context=context,
            client_configuration=configuration,
            persist_config=False,  # never rewrite the user's kubeconfig
        )
    except (ConfigException, OSError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "No configuration found" in why or isinstance(exc, OSError):
            why = f"no kubeconfig at {path}"
        # Inside a pod (a CronJob deploying itself) there is no kubeconfig, only a token.
        if context is not None or not os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise _unreachable(context, why) from None
        try:
            config.load_incluster_config(client_configuration=configuration)
        except ConfigException as incluster:
            raise _unreachable("in-cluster", f"{why}; in-cluster: {incluster}") from None
        context = "in-cluster"
    else:
        # Name the context in messages even when the kubeconfig's current one is used.
        with contextlib.suppress(ConfigException, KeyError, TypeError):
            context = context or config.list_kube_config_contexts(config_file=path)[1]["name"]
    configuration.retries = 1
    cluster = Cluster(client.ApiClient(configuration), context)
    try:
        cluster.request("GET", "/version")
    except ApiError as exc:
        if exc.status in (401, 403):
            raise UserError(
                f"the cluster at {cluster.host} rejected the credentials of context "
                f"{context or 'current'} (HTTP {exc.status}): log in again"
            ) from None
        raise _unreachable(context, f"{cluster.host} answered {exc}") from None
    return cluster


def read_live(cluster: Cluster, obj: dict[str, Any]) -> dict[str, Any] | None:
    """The object as the cluster has it, or None when it does not exist yet."""
    try:
        return cluster.request("GET", cluster.path_of(obj))
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise UserError(f"{object_id(obj)}: cannot read it from the cluster: {exc}") from None


def apply_order(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def rank(obj: dict[str, Any]) -> int:
        kind = obj.get("kind")
        return _FIRST_KINDS.index(kind) if kind in _FIRST_KINDS else len(_FIRST_KINDS)

    return sorted(objects, key=rank)  # stable: keeps kustomize's order within a rank


def _apply_request(
    cluster: Cluster, obj: dict[str, Any], force: bool, *, dry_run: bool = False
) -> dict[str, Any]:
    """PATCH with apply-patch+yaml: the server creates the object or updates it; its answer.

    With `dry_run` (`dryRun=All`) the server computes the same answer and stores nothing.
    """
    query = [("fieldManager", FIELD_MANAGER)] + ([("force", "true")] if force else [])
    if dry_run:
        query.append(("dryRun", "All"))
    # JSON is YAML, so the apply-patch+yaml body can be the object as JSON.
    return cluster.request(
        "PATCH", cluster.path_of(obj), body=obj, content_type=APPLY_PATCH, query=query
    )


def _refused(obj: dict[str, Any], exc: ApiError) -> UserError:
    if exc.status == 409:
        return UserError(
            f"{object_id(obj)}: fields owned by another manager would change ({exc.message}); "
            "re-run with --force-conflicts to take them over"
        )
    return UserError(f"{object_id(obj)}: the cluster refused it: {exc}")


def diff_object_live(
    cluster: Cluster, obj: dict[str, Any], *, force_conflicts: bool = False
) -> ObjectDiff:
    """The live object against the server's dry run of applying `obj` (as apply will)."""
    live = read_live(cluster, obj)
    try:
        merged = _apply_request(cluster, obj, force_conflicts, dry_run=True)
    except ApiError as exc:
        if live is None and exc.status == 404:
            # A create into a namespace this same deploy creates: the server cannot dry-run
            # it before the Namespace exists. It is a create either way; show the manifest.
            return diff_object(None, obj, source="rendered")
        raise _refused(obj, exc) from None
    return diff_object(live, merged)


def diff_objects(
    cluster: Cluster, objects: list[dict[str, Any]], *, force_conflicts: bool = False
) -> list[ObjectDiff]:
    """What apply would change, object by object: a server-side apply dry run of each."""
    return [
        diff_object_live(cluster, obj, force_conflicts=force_conflicts)
        for obj in apply_order(objects)
    ]


def _server_side_apply(cluster: Cluster, obj: dict[str, Any], force: bool) -> dict[str, Any]:
    try:
        return _apply_request(cluster, obj, force)
    except ApiError as exc:
        raise _refused(obj, exc) from None


def apply_objects(
    cluster: Cluster,
    objects: list[dict[str, Any]],
    *,
    force_conflicts: bool = False,
    diffs: list[ObjectDiff] | None = None,
) -> list[ApplyResult]:
    """Server-side apply every object (field manager "churnctl"), Namespaces first."""
    before = {d.id: d.action for d in diffs or []}
    results = []
    for obj in apply_order(objects):
        planned = before.get(object_id(obj))
        previous = read_live(cluster, obj) if planned is None else None
        live = _server_side_apply(cluster, obj, force_conflicts)
        if planned is None:
            changed = previous is None or comparable(previous) != comparable(live)
            planned = "create" if previous is None else ("update" if changed else "unchanged")
        meta = obj.get("metadata") or {}
        results.append(
            ApplyResult(
                kind=str(obj["kind"]),
                name=str(meta["name"]),
                namespace=str(meta.get("namespace") or ""),
                action={"create": "created", "update": "configured"}.get(planned, "unchanged"),
                live=live,
            )
        )
    return results
