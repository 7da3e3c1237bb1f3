"""The few Kubernetes API calls the runtime makes, on plain dicts in wire form, through kubernetes-asyncio."""
import json
from typing import Any, Callable

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.rest import ApiException
from kubernetes_asyncio.config import ConfigException

from dispatch.drivers.kubernetes.manifests import APPLIED, applied_digest

_KINDS = {
    "Secret": (client.CoreV1Api, "secret"),
    "Service": (client.CoreV1Api, "service"),
    "Pod": (client.CoreV1Api, "pod"),
    "Deployment": (client.AppsV1Api, "deployment"),
    "HorizontalPodAutoscaler": (client.AutoscalingV2Api, "horizontal_pod_autoscaler"),
    "NetworkPolicy": (client.NetworkingV1Api, "network_policy"),
    "Job": (client.BatchV1Api, "job"),
}
API_SECONDS = 30.0
"""No single API request may hold a deploy or a run longer."""
Keep = Callable[[dict, dict], None]
"""Copies into a replacing body what the live object holds and Dispatch must not reset."""


class KubernetesFailed(Exception):
    """The API could not be reached or refused a request; the message says which and why."""


async def connect(kubeconfig: str | None) -> client.ApiClient:
    """The kubeconfig file when one is named, else the pod's service account, else ~/.kube/config."""
    configuration = client.Configuration()
    # A field some server version leaves out must not make a whole answer unreadable.
    configuration.client_side_validation = False
    try:
        if kubeconfig is None:
            try:
                config.load_incluster_config(client_configuration=configuration)
                return client.ApiClient(configuration)
            except ConfigException:
                pass
        await config.load_kube_config(config_file=kubeconfig, client_configuration=configuration,
                                      persist_config=False)
    except (ConfigException, OSError, ValueError) as error:
        raise KubernetesFailed(f"no usable Kubernetes configuration: {error}") from None
    return client.ApiClient(configuration)


class Objects:
    def __init__(self, api: client.ApiClient, namespace: str):
        self.api = api
        self.namespace = namespace
        self._apis: dict[type, object] = {}

    async def get(self, kind: str, name: str) -> dict | None:
        try:
            return await self._call(kind, "read", name)
        except KubernetesFailed as error:
            if _status(error) == 404:
                return None
            raise

    async def list(self, kind: str, label_selector: str) -> list[dict]:
        found = await self._call(kind, "list", label_selector=label_selector)
        return [{"kind": kind, **item} for item in found.get("items") or []]

    async def create(self, body: dict) -> dict:
        """Create the object; one of that name already there is returned as it is."""
        try:
            return await self._call(body["kind"], "create", body)
        except KubernetesFailed as error:
            found = await self.get(body["kind"], body["metadata"]["name"]) if _status(error) == 409 else None
            if found is None:
                raise
            return found

    async def log(self, pod: str, container: str, tail_lines: int) -> str:
        """The last `tail_lines` lines a container of a pod wrote."""
        api = client.CoreV1Api(self.api)
        try:
            # Unparsed: the client would read a log that happens to be JSON as an object.
            response: Any = await api.read_namespaced_pod_log(pod, self.namespace, container=container,
                                                         tail_lines=tail_lines, _preload_content=False,
                                                         _request_timeout=API_SECONDS)
            try:
                data = await response.read()
            finally:
                response.release()
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            raise KubernetesFailed(f"cannot read the log of pod {pod}: {error or type(error).__name__}") from None
        if not 200 <= response.status <= 299:
            refusal = ApiException(status=response.status, reason=response.reason)
            refusal.body = data
            raise KubernetesFailed(_explain("Pod", "read the log of", refusal)) from refusal
        return data.decode("utf-8", "replace")

    async def patch(self, kind: str, name: str, patch: dict) -> dict:
        return await self._call(kind, "patch", name, patch, _content_type="application/merge-patch+json")

    async def delete(self, kind: str, name: str) -> bool:
        """False when it was already gone."""
        try:
            await self._call(kind, "delete", name, propagation_policy="Background")
            return True
        except KubernetesFailed as error:
            if _status(error) == 404:
                return False
            raise

    async def apply(self, body: dict, owner: dict | None = None, keep: Keep | None = None) -> dict:
        """Create the object, or replace it in place when what Dispatch last wrote differs; an object
        that already matches is left as it is. `owner` (a live object) becomes its owner reference."""
        kind, name = body["kind"], body["metadata"]["name"]
        digest = applied_digest(body)
        body = {**body, "metadata": {**body["metadata"],
                                     "annotations": {**body["metadata"].get("annotations", {}), APPLIED: digest}}}
        if owner is not None:
            body["metadata"]["ownerReferences"] = [_reference(owner)]
        for _ in range(3):  # another installation process may be writing the same object
            current = await self.get(kind, name)
            try:
                if current is None:
                    return await self._call(kind, "create", body)
                if (current["metadata"].get("annotations") or {}).get(APPLIED) == digest:
                    return current if owner is None else await self.adopt(current, owner)
                replacing = json.loads(json.dumps(body))
                replacing["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion")
                if keep is not None:
                    keep(replacing, current)
                return await self._call(kind, "replace", name, replacing)
            except KubernetesFailed as error:
                if _status(error) != 409:
                    raise
        raise KubernetesFailed(f"{kind} {name} kept changing while it was written; try again")

    async def adopt(self, current: dict, owner: dict) -> dict:
        """Make `owner` the owner of an object written before it existed, so they go together."""
        if _owned_by(current, owner):
            return current
        return await self.patch(current["kind"], current["metadata"]["name"],
                                {"metadata": {"ownerReferences": [_reference(owner)]}})

    async def _call(self, kind: str, verb: str, *args, **kwargs) -> dict:
        api_class, singular = _KINDS[kind]
        api = self._apis.get(api_class) or self._apis.setdefault(api_class, api_class(self.api))
        method = getattr(api, f"{verb}_namespaced_{singular}")
        if verb in ("read", "replace", "patch", "delete"):
            args = (args[0], self.namespace, *args[1:])
        else:
            args = (self.namespace, *args)
        try:
            result = await method(*args, _request_timeout=API_SECONDS, **kwargs)
        except ApiException as error:
            raise KubernetesFailed(_explain(kind, verb, error)) from error
        except TimeoutError:
            raise KubernetesFailed(f"the Kubernetes API at {self.api.configuration.host} did not answer "
                                   f"within {API_SECONDS:.0f} s") from None
        except (aiohttp.ClientError, OSError) as error:
            raise KubernetesFailed(f"cannot reach the Kubernetes API at {self.api.configuration.host}: "
                                   f"{error}") from None
        found = self.api.sanitize_for_serialization(result) or {}
        if verb != "list" and verb != "delete":
            found.setdefault("kind", kind)
        return found


def _reference(owner: dict) -> dict:
    return {"apiVersion": owner.get("apiVersion", "apps/v1"), "kind": owner.get("kind", "Deployment"),
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"]}


def _owned_by(current: dict, owner: dict) -> bool:
    return any(ref.get("uid") == owner["metadata"]["uid"] for ref in current["metadata"].get("ownerReferences") or [])


def _status(error: KubernetesFailed) -> int | None:
    cause = error.__cause__
    return cause.status if isinstance(cause, ApiException) else None


def _explain(kind: str, verb: str, error: ApiException) -> str:
    message = error.reason or ""
    try:
        message = json.loads(error.body or b"").get("message") or message
    except (TypeError, ValueError, AttributeError):
        pass
    return f"Kubernetes refused to {verb} a {kind} ({error.status}): {message}"
