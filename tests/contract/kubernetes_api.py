"""A Kubernetes API server double: the documented REST semantics of the resources Dispatch uses, in
memory, with every object written checked against the official Kubernetes 1.30 schemas.

As the API server does (kubernetes.io/docs/reference/using-api/api-concepts/): create answers 201, or
409 AlreadyExists; read, replace, patch and delete answer 404 NotFound for a missing object; a replace
carrying a stale metadata.resourceVersion answers 409 Conflict; list filters by labelSelector
(=, ==, !=, in, notin, exists, !exists); writes set uid, resourceVersion, creationTimestamp and, when the
spec changes, generation; a Service gets a clusterIP a replace cannot change, a Deployment's selector
cannot change and must match its pod labels; patches are JSON merge patches (RFC 7386), other patch
types answer 415; a request without the kubeconfig's token answers 401, and, given a Role's rules,
one they do not allow answers 403 (RBAC's verbs get, list, create, update, patch, delete; a pod's log
is the subresource `pods/log`). Each object written is validated with kubernetes-validate (strict:
unknown fields are errors) plus the documented syntax of names, labels, Secret keys, volume references
and quantities, and a Job's name, which its pods carry as a label value, has at most 63 characters; a
failure answers 422 Invalid and is kept in `invalid`. A pod's log (GET .../pods/NAME/log, with
`container` and `tailLines`) is what a test put in `logs`.

Not emulated: controllers, scheduling, garbage collection, watches, admission and defaulting (beyond
replicas 1). Tests play the Deployment controller and the kubelet through `controller`, and the Job
controller through `job_controller`.
"""
import copy
import datetime as dt
import itertools
import json
import re
import uuid
from pathlib import Path
from typing import Awaitable, Callable

import kubernetes_validate
import yaml
from aiohttp import web

SCHEMA_VERSION = "1.30"
TOKEN = "dispatch-test-token"
KINDS = {("v1", "secrets"): "Secret", ("v1", "services"): "Service", ("v1", "pods"): "Pod",
         ("apps/v1", "deployments"): "Deployment",
         ("autoscaling/v2", "horizontalpodautoscalers"): "HorizontalPodAutoscaler",
         ("networking.k8s.io/v1", "networkpolicies"): "NetworkPolicy", ("batch/v1", "jobs"): "Job"}
_DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_QUANTITY = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?")
_REQUIREMENT = re.compile(r"\s*(?:(!)\s*([^\s,!=()]+)|([^\s,!=()]+)\s*(?:(==|=|!=)\s*([^\s,!=()]*)"
                          r"|\s+(in|notin)\s*\(([^)]*)\))?)\s*(,|$)")

Controller = Callable[[dict], Awaitable[None]]


class KubernetesAPI:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict] = {}
        """(kind, namespace, name) -> the stored object."""
        self.writes: list[tuple[str, str, str]] = []
        """(verb, kind, name) of every request that changed something."""
        self.invalid: list[str] = []
        self.controller: Controller = ready
        """Called with each Deployment written, to set its status (and pods) as a cluster would."""
        self.rules: list[dict] | None = None
        """A Role's rules the token is bound to (RBAC: a request they do not allow answers 403); None: all."""
        self.namespace_rules: dict[str, list[dict]] | None = None
        """Rules by namespace (a Role in each), instead of `rules` for every namespace."""
        self.job_controller: Controller | None = None
        """Called with each Job created, to run it as a cluster would (set its status, make its pod)."""
        self.logs: dict[tuple[str, str, str], str] = {}
        """(namespace, pod, container) -> what the container wrote."""
        self.forbidden: list[str] = []
        self.url = ""
        self._versions = itertools.count(1)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(middlewares=[self._authenticated])
        for prefix in ("/api/{version}", "/apis/{group}/{version}"):
            app.router.add_route("*", prefix + "/namespaces/{namespace}/{plural}", self._collection)
            app.router.add_route("*", prefix + "/namespaces/{namespace}/{plural}/{name}", self._item)
        app.router.add_route("GET", "/api/{version}/namespaces/{namespace}/{plural}/{name}/{subresource}", self._log)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        """A kubeconfig file pointing at this server, as `kubectl config view --raw` writes one."""
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "test", "preferences": {},
            "clusters": [{"name": "test", "cluster": {"server": self.url}}],
            "users": [{"name": "test", "user": {"token": TOKEN}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test", "namespace": namespace}}]}))
        return path

    def of_kind(self, kind: str, namespace: str = "default") -> dict[str, dict]:
        return {name: obj for (k, ns, name), obj in self.objects.items() if k == kind and ns == namespace}

    @web.middleware
    async def _authenticated(self, request: web.Request, handler):
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return _status(401, "Unauthorized", "Unauthorized")
        rules = self.rules if self.namespace_rules is None else self.namespace_rules.get(
            request.match_info.get("namespace", ""), [])
        if rules is not None and not _permitted(rules, request):
            group, plural = request.match_info.get("group", ""), _plural(request)
            verb = _verb(request)
            self.forbidden.append(f"{verb} {plural}.{group}".rstrip("."))
            return _status(403, "Forbidden", f'{plural} is forbidden: cannot {verb} resource "{plural}" '
                                             f'in API group "{group}"')
        return await handler(request)

    async def _collection(self, request: web.Request) -> web.Response:
        kind, api_version, namespace = _resource(request)
        if kind is None:
            return _status(404, "NotFound", "the server could not find the requested resource")
        if request.method == "GET":
            try:
                matches = _selector(request.query.get("labelSelector", ""))
            except ValueError as error:
                return _status(400, "BadRequest", f"unable to parse requirement: {error}")
            items = [{k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
                     for (k, ns, _), obj in sorted(self.objects.items())
                     if k == kind and ns == namespace and matches(obj["metadata"].get("labels") or {})]
            return web.json_response({"apiVersion": api_version, "kind": f"{kind}List", "items": items,
                                      "metadata": {"resourceVersion": str(next(self._versions))}})
        if request.method != "POST":
            return _status(405, "MethodNotAllowed", f"{request.method} is not allowed here")
        body = await request.json()
        name = (body.get("metadata") or {}).get("name", "")
        if (body.get("kind"), body.get("apiVersion")) != (kind, api_version):
            return _status(400, "BadRequest", f"the body is a {body.get('kind')} {body.get('apiVersion')}, "
                                              f"the URL a {kind} {api_version}")
        if (kind, namespace, name) in self.objects:
            return _status(409, "AlreadyExists", f'{request.match_info["plural"]} "{name}" already exists',
                           {"name": name, "kind": request.match_info["plural"]})
        problems = self._problems(body)
        if problems:
            return problems
        stored = copy.deepcopy(body)
        stored["metadata"].update(namespace=namespace, uid=str(uuid.uuid4()), generation=1,
                                  creationTimestamp=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        if kind == "Deployment":
            stored["spec"].setdefault("replicas", 1)
        if kind == "Service" and not stored["spec"].get("clusterIP"):
            address = f"10.96.{len(self.objects) // 250}.{len(self.objects) % 250 + 1}"
            stored["spec"].update(clusterIP=address, clusterIPs=[address])
        return await self._store("create", stored, 201)

    async def _item(self, request: web.Request) -> web.Response:
        kind, _, namespace = _resource(request)
        name = request.match_info["name"]
        current = self.objects.get((kind, namespace, name))
        if kind is None or current is None:
            return _status(404, "NotFound", f'{request.match_info["plural"]} "{name}" not found',
                           {"name": name, "kind": request.match_info["plural"]})
        if request.method == "GET":
            return web.json_response(current)
        if request.method == "DELETE":
            del self.objects[(kind, namespace, name)]
            self.writes.append(("delete", kind, name))
            return web.json_response({"apiVersion": "v1", "kind": "Status", "status": "Success", "metadata": {},
                                      "details": {"name": name, "kind": request.match_info["plural"],
                                                  "uid": current["metadata"]["uid"]}})
        if request.method == "PATCH":
            if request.content_type != "application/merge-patch+json":
                return _status(415, "UnsupportedMediaType", f"merge patches only, not {request.content_type}")
            wanted, verb = merge_patch(current, await request.json()), "patch"
        elif request.method == "PUT":
            wanted, verb = await request.json(), "replace"
            version = wanted.get("metadata", {}).get("resourceVersion")
            if version and version != current["metadata"]["resourceVersion"]:
                return _status(409, "Conflict", f'Operation cannot be fulfilled on {request.match_info["plural"]} '
                                                f'"{name}": the object has been modified; please apply your changes '
                                                "to the latest version and try again")
            if wanted.get("metadata", {}).get("name") != name:
                return _status(400, "BadRequest", "the name of the object does not match the name on the URL")
            if kind == "Service" and not wanted.get("spec", {}).get("clusterIP"):
                wanted["spec"].update(clusterIP=current["spec"]["clusterIP"], clusterIPs=current["spec"]["clusterIPs"])
        else:
            return _status(405, "MethodNotAllowed", f"{request.method} is not allowed here")
        problems = self._problems(wanted) or self._immutable(current, wanted)
        if problems:
            return problems
        stored = copy.deepcopy(wanted)
        if "status" in current and verb == "replace":  # a replace leaves status to the controllers
            stored["status"] = current["status"]
        stored["metadata"] = {**stored["metadata"], **{key: current["metadata"][key] for key in
                                                       ("namespace", "uid", "creationTimestamp", "generation")}}
        if stored.get("spec") != current.get("spec"):
            stored["metadata"]["generation"] += 1
        if kind == "Deployment":
            stored["spec"].setdefault("replicas", 1)
        return await self._store(verb, stored, 200)

    async def _store(self, verb: str, stored: dict, status: int) -> web.Response:
        stored["metadata"]["resourceVersion"] = str(next(self._versions))
        key = (stored["kind"], stored["metadata"]["namespace"], stored["metadata"]["name"])
        self.objects[key] = stored
        self.writes.append((verb, stored["kind"], stored["metadata"]["name"]))
        if stored["kind"] == "Deployment":
            await self.controller(stored)
        if stored["kind"] == "Job" and verb == "create" and self.job_controller is not None:
            await self.job_controller(stored)
        return web.json_response(self.objects[key], status=status)

    async def _log(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        if (request.match_info["plural"], request.match_info["subresource"]) != ("pods", "log"):
            return _status(404, "NotFound", "the server could not find the requested resource")
        if ("Pod", namespace, name) not in self.objects:
            return _status(404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"})
        text = self.logs.get((namespace, name, request.query.get("container", "")), "")
        if "tailLines" in request.query:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[len(lines) - min(len(lines), int(request.query["tailLines"])):])
        return web.Response(text=text, content_type="text/plain")

    def _problems(self, obj: dict) -> web.Response | None:
        problems = check(obj)
        if not problems:
            return None
        self.invalid += problems
        return _status(422, "Invalid", f'{obj.get("kind")} "{obj.get("metadata", {}).get("name")}" is invalid: '
                                       + "; ".join(problems))

    def _immutable(self, current: dict, wanted: dict) -> web.Response | None:
        fields = {"Deployment": ("selector",), "Service": ("clusterIP",)}.get(current["kind"], ())
        changed = [f for f in fields if wanted.get("spec", {}).get(f) != current["spec"].get(f)]
        if not changed:
            return None
        self.invalid.append(f"spec.{changed[0]}: field is immutable")
        return _status(422, "Invalid", f"spec.{changed[0]}: Invalid value: field is immutable")


def check(obj: dict) -> list[str]:
    """What the API server would refuse in `obj`: its schema, then the syntax the schema leaves out."""
    try:
        kubernetes_validate.validate(obj, SCHEMA_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{'.'.join(map(str, error.path)) or '(root)'}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [error.message]
    meta, spec, problems = obj["metadata"], obj.get("spec") or {}, []
    name_syntax, longest = (_DNS_LABEL, 63) if obj["kind"] == "Service" else (_DNS_SUBDOMAIN, 253)
    if not (name_syntax.fullmatch(meta.get("name", "")) and len(meta["name"]) <= longest):
        problems.append(f"metadata.name: {meta.get('name')!r} is not a valid name")
    problems += _label_problems(meta.get("labels") or {}, "metadata.labels")
    problems += [f"data: invalid key {key!r}" for key in obj.get("data") or {} if not _SECRET_KEY.fullmatch(key)]
    if obj["kind"] == "Deployment":
        pod_labels = spec["template"]["metadata"].get("labels") or {}
        problems += _label_problems(pod_labels, "spec.template.metadata.labels")
        if any(pod_labels.get(k) != v for k, v in spec["selector"].get("matchLabels", {}).items()):
            problems.append("spec.template.metadata.labels: `selector` does not match template `labels`")
        problems += _pod_problems(spec["template"]["spec"])
    if obj["kind"] == "Job":
        if len(meta["name"]) > 63:
            problems.append(f"metadata.name: {meta['name']!r} must be no more than 63 characters")
        problems += _label_problems(spec["template"].get("metadata", {}).get("labels") or {},
                                    "spec.template.metadata.labels")
        problems += _pod_problems(spec["template"]["spec"])
    return problems


def _pod_problems(pod: dict) -> list[str]:
    volumes, problems = {v["name"] for v in pod.get("volumes") or []}, []
    for volume in pod.get("volumes") or []:
        size = (volume.get("emptyDir") or {}).get("sizeLimit")
        if size is not None and not _QUANTITY.fullmatch(str(size)):
            problems.append(f"volumes.emptyDir.sizeLimit: {size!r} is not a quantity")
    for container in (pod.get("initContainers") or []) + pod["containers"]:
        problems += [f"volumeMounts.name: Not found: {m['name']!r}" for m in container.get("volumeMounts") or []
                     if m["name"] not in volumes]
        for part in ("limits", "requests"):
            for resource, quantity in (container.get("resources") or {}).get(part, {}).items():
                if not _QUANTITY.fullmatch(str(quantity)):
                    problems.append(f"resources.{part}.{resource}: {quantity!r} is not a quantity")
    return problems


def _label_problems(labels: dict, where: str) -> list[str]:
    problems = []
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if (prefix and not _DNS_SUBDOMAIN.fullmatch(prefix)) or not (_LABEL_NAME.fullmatch(name) and len(name) <= 63):
            problems.append(f"{where}: invalid label key {key!r}")
        if not (isinstance(value, str) and _LABEL_VALUE.fullmatch(value) and len(value) <= 63):
            problems.append(f"{where}: invalid label value {value!r}")
    return problems


def merge_patch(target: object, patch: object) -> object:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


async def ready(deployment: dict) -> None:
    """The Deployment controller and kubelets of a healthy cluster: every replica is up at once."""
    replicas = deployment["spec"]["replicas"]
    deployment["status"] = {"observedGeneration": deployment["metadata"]["generation"], "replicas": replicas,
                            "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas}


def pod(deployment: dict, status: dict) -> dict:
    """A pod of the Deployment's current template, with `status` as a kubelet reports it."""
    name = deployment["metadata"]["name"] + "-0"
    made = {"apiVersion": "v1", "kind": "Pod", "status": status, "spec": deployment["spec"]["template"]["spec"],
            "metadata": {"name": name, "namespace": deployment["metadata"]["namespace"], "uid": str(uuid.uuid4()),
                         "labels": deployment["spec"]["template"]["metadata"]["labels"]}}
    assert check(made) == []
    return made


def job_pod(job: dict, status: dict) -> dict:
    """The pod of a Job's template, with `status` as a kubelet reports it."""
    made = {"apiVersion": "v1", "kind": "Pod", "status": status, "spec": job["spec"]["template"]["spec"],
            "metadata": {"name": job["metadata"]["name"] + "-pod", "namespace": job["metadata"]["namespace"],
                         "uid": str(uuid.uuid4()), "labels": job["spec"]["template"]["metadata"]["labels"],
                         "creationTimestamp": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}}
    assert check(made) == []
    return made


def container_status(deployment: dict, name: str, state: dict, **fields) -> dict:
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    return {"name": name, "image": image, "imageID": "", "ready": False, "restartCount": 0, "state": state, **fields}


def _selector(text: str) -> Callable[[dict], bool]:
    """A labelSelector as the API server parses it; ValueError when it cannot."""
    tests, position = [], 0
    while position < len(text):
        found = _REQUIREMENT.match(text, position)
        if found is None or found.end() == position:
            raise ValueError(text[position:])
        absent, key, op, value, set_op, values = found.group(2), found.group(3), *found.group(4, 5, 6, 7)
        if absent:
            tests.append(lambda labels, k=absent: k not in labels)
        elif op in ("=", "=="):
            tests.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif op == "!=":
            tests.append(lambda labels, k=key, v=value: labels.get(k) != v)
        elif set_op:
            options = {v.strip() for v in values.split(",")}
            tests.append(lambda labels, k=key, o=options, inside=set_op == "in":
                         (labels.get(k) in o) if inside else (labels.get(k) not in o))
        else:
            tests.append(lambda labels, k=key: k in labels)
        position = found.end()
    return lambda labels: all(test(labels) for test in tests)


def _verb(request: web.Request) -> str:
    """The RBAC verb of a request, as the API server derives it."""
    if request.method == "GET":
        return "get" if "name" in request.match_info else "list"
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(request.method, "")


def _plural(request: web.Request) -> str:
    """The RBAC resource of a request: its plural, with its subresource (`pods/log`)."""
    sub = request.match_info.get("subresource")
    return f"{request.match_info.get('plural')}/{sub}" if sub else request.match_info.get("plural", "")


def _permitted(rules: list[dict], request: web.Request) -> bool:
    group, plural, verb = request.match_info.get("group", ""), _plural(request), _verb(request)
    return any(group in rule.get("apiGroups", []) and plural in rule.get("resources", [])
               and (verb in rule.get("verbs", []) or "*" in rule.get("verbs", [])) for rule in rules)


def _resource(request: web.Request) -> tuple[str | None, str, str]:
    group, version = request.match_info.get("group"), request.match_info["version"]
    api_version = f"{group}/{version}" if group else version
    return KINDS.get((api_version, request.match_info["plural"])), api_version, request.match_info["namespace"]


def _status(code: int, reason: str, message: str, details: dict | None = None) -> web.Response:
    return web.Response(status=code, content_type="application/json", text=json.dumps({
        "apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure", "message": message,
        "reason": reason, "details": details or {}, "code": code}))
