"""The kmock KubernetesEmulator, taught the server-side apply that a real API server does.

kmock 0.8 merges every PATCH as plain JSON and answers 404 when an object is applied for the
first time. A real API server (what churnctl talks to) treats `PATCH` with
`application/apply-patch+yaml` as server-side apply:

- it creates the object when it does not exist (201), else updates it (200);
- the field manager owns exactly the fields of its last applied configuration: a field it
  applied before and leaves out now is removed, unless another manager set it too; fields
  other managers (or the server) set are kept;
- `dryRun=All` computes the result and answers it without storing anything;
- an object in a namespace that does not exist is refused with 404, dry run or not;
- the server sets identity and bookkeeping (uid, creationTimestamp, resourceVersion,
  generation, managedFields); an apply that changes nothing leaves resourceVersion alone.

Simplifications, kept on purpose: lists of mappings that all have a `name` are merged by name
(the real server merges by the schema's list-map keys, such as `containerPort` for ports; for
the manifests here those are named too); other lists are atomic. Ownership is tracked per
manager in `Emulator.applied`, not encoded as fieldsV1; conflicts between managers are not
detected (tests inject a 409 where they need one).

kmock also cannot route cluster-scoped `/api/v1/namespaces/NAME` paths (it reads NAME as a
namespace), so Namespaces are kept in a dict of their own, with the same apply semantics.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import itertools
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import attrs
import kmock
import yaml

APPLY_PATCH = "application/apply-patch+yaml"
NAMESPACE_PATH = re.compile(r"^/api/v1/namespaces/[^/]+$")
Path_ = tuple[Any, ...]  # a field path: mapping keys, and ("name", N) for a named list item
# What the server, not any manager, maintains.
SERVER_METADATA = ("uid", "creationTimestamp", "resourceVersion", "generation", "managedFields")


def _keyed(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(i, dict) and "name" in i for i in value)
    )


def field_paths(value: Any, prefix: Path_ = ()) -> set[Path_]:
    """Every field path an applied configuration sets (what its manager then owns)."""
    out: set[Path_] = set()
    if isinstance(value, dict):
        for key, child in value.items():
            out.add((*prefix, key))
            out |= field_paths(child, (*prefix, key))
    elif _keyed(value):
        for item in value:
            step = ("name", item["name"])
            out.add((*prefix, step))
            out |= field_paths(item, (*prefix, step))
    return out


def _child(node: Any, step: Any) -> Any:
    if isinstance(step, tuple) and isinstance(node, list):
        return next((i for i in node if isinstance(i, dict) and i.get("name") == step[1]), None)
    return node.get(step) if isinstance(node, dict) else None


def _remove(obj: dict[str, Any], path: Path_) -> None:
    node: Any = obj
    for step in path[:-1]:
        node = _child(node, step)
        if node is None:
            return
    last = path[-1]
    if isinstance(last, tuple) and isinstance(node, list):
        node[:] = [i for i in node if not (isinstance(i, dict) and i.get("name") == last[1])]
    elif isinstance(node, dict):
        node.pop(last, None)


def merge(live: Any, applied: Any) -> Any:
    """`applied` over `live`: mappings merge, named lists merge by name, the rest replaces."""
    if isinstance(live, dict) and isinstance(applied, dict):
        out = dict(live)
        for key, value in applied.items():
            out[key] = merge(live[key], value) if key in live else copy.deepcopy(value)
        return out
    if _keyed(live) and _keyed(applied):
        by_name = {i["name"]: i for i in live}
        names = {i["name"] for i in applied}
        merged = [merge(by_name[i["name"]], i) if i["name"] in by_name else i for i in applied]
        return copy.deepcopy(merged) + [i for i in live if i["name"] not in names]
    return copy.deepcopy(applied)


def server_side_apply(
    live: dict[str, Any] | None,
    applied: dict[str, Any],
    manager: str,
    owned: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The object after `manager` applies `applied`; `owned`: each manager's last config."""
    result = copy.deepcopy(live) if live is not None else {}
    previous = owned.get(manager)
    if previous is not None:
        others: set[Path_] = set()
        for name, config in owned.items():
            if name != manager:
                others |= field_paths(config)
        stale = field_paths(previous) - field_paths(applied) - others
        for path in sorted(stale, key=len):
            _remove(result, path)
    return merge(result, applied)


def _bookkeeping(
    live: dict[str, Any] | None, result: dict[str, Any], manager: str, versions: Iterator[int]
) -> dict[str, Any]:
    """Set what the server maintains; an apply that changes nothing keeps resourceVersion."""
    meta = result.setdefault("metadata", {})
    old = (live or {}).get("metadata") or {}
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    meta["uid"] = old.get("uid") or str(uuid.uuid4())
    meta["creationTimestamp"] = old.get("creationTimestamp") or now
    changed = live is None or strip_server_fields(live) != strip_server_fields(result)
    meta["resourceVersion"] = str(next(versions)) if changed else old.get("resourceVersion")
    generation = int(old.get("generation") or 0)
    spec_changed = live is None or live.get("spec") != result.get("spec")
    meta["generation"] = generation + 1 if spec_changed else generation
    entry = {"manager": manager, "operation": "Apply", "apiVersion": result.get("apiVersion"),
             "time": now, "fieldsType": "FieldsV1"}  # fmt: skip
    keep = [m for m in old.get("managedFields") or [] if m.get("manager") != manager]
    meta["managedFields"] = [*keep, entry]
    return result


def strip_server_fields(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    for key in SERVER_METADATA:
        (out.get("metadata") or {}).pop(key, None)
    out.pop("status", None)
    return out


def _is_apply(request: Any) -> bool:
    content_type = str(request.headers.get("Content-Type", "")).split(";")[0].strip()
    return request.method.value == "PATCH" and content_type == APPLY_PATCH


def _body(request: Any) -> dict[str, Any]:
    data = request.data if isinstance(request.data, dict) else yaml.safe_load(request.body)
    if not isinstance(data, dict):
        raise kmock.KubernetesError(status=400, reason="BadRequest", message="not an object")
    return data


@attrs.define(kw_only=True)
class ServerSideApplyEmulator(kmock.KubernetesEmulator):
    """KubernetesEmulator whose apply PATCH behaves as a real API server's (see the module)."""

    applied: dict[str, dict[str, dict[str, Any]]] = attrs.field(factory=dict, init=False)
    namespaces: dict[str, dict[str, Any]] = attrs.field(factory=dict, init=False)
    _versions: Iterator[int] = attrs.field(factory=lambda: itertools.count(1), init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        # Above kmock's own fallbacks (its PATCH merges), below any reaction a test adds.
        (self.fallback**1)["patch"] << self._serve_apply
        self[NAMESPACE_PATH] << self._serve_namespace

    async def _handle(self, request: Any) -> Any:
        if _is_apply(request):
            # Not KubernetesEmulator._handle: it would merge the PATCH into the stored object
            # before any reaction runs; here the write happens in _serve_apply, if reached.
            return await kmock.KubernetesScaffold._handle(self, request)
        if request.method.value == "DELETE":
            self.applied.pop(str(request.url.path), None)  # a new object owns nothing yet
        return await super()._handle(request)

    def _apply(
        self, request: Any, name: str, live: dict[str, Any] | None
    ) -> tuple[dict[str, Any], bool]:
        """(object after the apply, whether to store it)."""
        body = _body(request)
        if (body.get("metadata") or {}).get("name") != name:
            raise kmock.KubernetesError(
                status=400, reason="BadRequest", message="metadata.name does not match the URL"
            )
        manager = request.params.get("fieldManager")
        if not manager:
            raise kmock.KubernetesError(
                status=400, reason="BadRequest", message="fieldManager is required for apply"
            )
        key = str(request.url.path)
        owned = self.applied.get(key, {})
        result = server_side_apply(live, body, manager, owned)
        result = _bookkeeping(live, result, manager, self._versions)
        store = request.params.get("dryRun") != "All"
        if store:
            self.applied[key] = {**owned, manager: copy.deepcopy(body)}
        return result, store

    async def _serve_apply(self, request: Any) -> Any:
        if not _is_apply(request) or request.resource is None or request.name is None:
            raise NotImplementedError  # kmock: not for this reaction, try the next one
        if request.namespace is not None and request.namespace not in self.namespaces:
            # A real server: nothing is created, not even in a dry run, in a missing namespace.
            raise kmock.KubernetesError(
                status=404, reason="NotFound", message=f'namespaces "{request.namespace}" not found'
            )
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            found = self._objects[key] if key in self._objects else None  # noqa: SIM401 (no .get)
            live = None if found is None or found.deleted else copy.deepcopy(found.raw)
            result, store = self._apply(request, request.name, live)
            if store:
                if found is None:
                    self._objects[key] = result
                else:
                    found.history.append(result)
        return kmock.Response(status=201 if live is None else 200, payload=result)

    def _serve_namespace(self, request: Any) -> Any:
        name = str(request.url.path).rstrip("/").rsplit("/", 1)[-1]
        live = self.namespaces.get(name)
        if _is_apply(request):
            result, store = self._apply(request, name, live)
            if store:
                self.namespaces[name] = result
            return kmock.Response(status=201 if live is None else 200, payload=result)
        if request.method.value != "GET":
            raise kmock.KubernetesError(status=405, reason="MethodNotAllowed", message="")
        if live is None:
            raise kmock.KubernetesObjectNotFoundError()
        return live


@dataclass
class Emulator:
    handler: ServerSideApplyEmulator
    url: str
    kubeconfig: Path

    @property
    def namespaces(self) -> dict[str, dict[str, Any]]:
        return self.handler.namespaces

    def stored(self, plural: str, namespace: str | None, name: str) -> dict[str, Any]:
        for (resource, ns, obj_name), obj in self.handler.objects.items():
            if (resource.plural, ns, obj_name) == (plural, namespace, name) and not obj.deleted:
                return dict(obj.raw)
        raise KeyError((plural, namespace, name))

    def replace(self, plural: str, namespace: str | None, name: str, obj: dict[str, Any]) -> None:
        """Change a stored object behind the API's back (what the server or a controller does)."""
        for key, found in self.handler.objects.items():
            if (key[0].plural, key[1], key[2]) == (plural, namespace, name):
                found.history.append(copy.deepcopy(obj))
                return
        raise KeyError((plural, namespace, name))

    def requests(self, method: str) -> list[Any]:
        # Iterating a kmock handler yields the requests it received.
        return [r for r in self.handler if r.method.value == method]


@contextmanager
def running_emulator(tmp_path: Path) -> Iterator[Emulator]:
    """The emulator on a free 127.0.0.1 port, run by its own event loop thread, and a kubeconfig
    (context `kmock`) pointing at it."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        async with ServerSideApplyEmulator() as handler, kmock.Server(handler) as server:
            # The built-in resource list (K3s): discovery answers for apps/v1, batch/v1, ...
            handler.resources.load_bundled()
            box.update(handler=handler, url=str(server.url).rstrip("/"), stop=asyncio.Event())
            ready.set()
            await box["stop"].wait()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(15), "kmock did not start"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kmock", "cluster": {"server": box["url"]}}],
                "users": [{"name": "tester", "user": {"token": "not-a-secret"}}],
                "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "tester"}}],
                "current-context": "kmock",
            }
        )
    )
    try:
        yield Emulator(box["handler"], box["url"], kubeconfig)
    finally:
        loop.call_soon_threadsafe(box["stop"].set)
        thread.join(10)
        loop.close()
