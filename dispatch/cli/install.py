"""`dispatch install`: the distributed mode on Kubernetes, from the Helm chart shipped in this
package (charts/dispatch), rendered by Helm's own engine in this process (helm-python-sdk: Helm's
Go SDK, no `helm` binary). With --dry-run the manifests are printed; otherwise they are applied
to the kubeconfig's cluster with server-side apply, through kubernetes-asyncio."""
import asyncio
import json
import os
from pathlib import Path
from typing import Annotated, Any, Optional

import aiohttp
import typer
import yaml

import dispatch
from dispatch.cli.client import DispatchClientError

CHART = Path(dispatch.__file__).resolve().parent / "charts" / "dispatch"
FIELD_MANAGER = "dispatch-install"
API_SECONDS = 30.0
KINDS = {
    "ServiceAccount": ("v1", "serviceaccounts"), "Secret": ("v1", "secrets"), "ConfigMap": ("v1", "configmaps"),
    "Role": ("rbac.authorization.k8s.io/v1", "roles"),
    "RoleBinding": ("rbac.authorization.k8s.io/v1", "rolebindings"),
    "NetworkPolicy": ("networking.k8s.io/v1", "networkpolicies"), "Service": ("v1", "services"),
    "StatefulSet": ("apps/v1", "statefulsets"), "Deployment": ("apps/v1", "deployments"),
    "HorizontalPodAutoscaler": ("autoscaling/v2", "horizontalpodautoscalers"),
    "PodDisruptionBudget": ("policy/v1", "poddisruptionbudgets"), "Ingress": ("networking.k8s.io/v1", "ingresses"),
}
"""Every kind the chart renders, in the order they are applied: NetworkPolicies before the pods
they protect, a workload after the accounts and Secrets it names."""


def install(
    values: Annotated[Optional[list[Path]], typer.Option(
        "--values", "-f", metavar="FILE", help="YAML file of chart values (repeatable; later files win).")] = None,
    set_values: Annotated[Optional[list[str]], typer.Option(
        "--set", metavar="KEY=VALUE",
        help="Chart values as Helm's --set takes them: key=value[,key=value] (repeatable).")] = None,
    set_files: Annotated[Optional[list[str]], typer.Option(
        "--set-file", metavar="KEY=PATH",
        help="A chart value read from a file: key=path, e.g. bootstrap.publicKey=bootstrap.pub.")] = None,
    namespace: Annotated[str, typer.Option(
        metavar="NAME", help="Namespace of the installation (created if absent).")] = "dispatch",
    name: Annotated[str, typer.Option(
        "--name", metavar="NAME", help="Release name: the prefix of the objects' names.")] = "dispatch",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the manifests instead of applying them.")] = False,
    kubeconfig: Annotated[Optional[Path], typer.Option(
        metavar="FILE", help="Kubeconfig file.",
        show_default="$KUBECONFIG, else ~/.kube/config, else the pod's service account")] = None,
    kube_context: Annotated[Optional[str], typer.Option(metavar="NAME", help="Context of the kubeconfig.")] = None,
) -> None:
    """Install Dispatch's distributed mode on Kubernetes from its Helm chart.

    The same chart installs with `helm install dispatch charts/dispatch`. Values as for Helm: at
    least the bus and store (bus.url, store.url, or rabbitmq.enabled and postgresql.enabled for a
    trial) and the bootstrap identity (--set-file bootstrap.publicKey=bootstrap.pub).
    """
    helm = _helm()
    given = chart_values(helm, values or [], set_values or [], set_files or [])
    if dry_run:
        with helm.Chart.load(CHART) as chart:
            typer.echo(as_text(_helm_call(helm, chart.render, given, name=name, namespace=namespace)), nl=False)
        return
    applied, notes = asyncio.run(_install(helm, given, name, namespace, kubeconfig, kube_context))
    for line in applied:
        typer.echo(line)
    typer.echo(notes)


def chart_values(helm: Any, files: list[Path], sets: list[str], set_files: list[str]) -> dict:
    """Values as Helm composes them: the files in order, then --set, then --set-file."""
    merged: dict = {}
    for path in files:
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except OSError as error:
            raise DispatchClientError(f"cannot read {path}: {error.strerror}") from None
        except yaml.YAMLError as error:
            raise DispatchClientError(f"{path} is not YAML: {error}") from None
        if not isinstance(loaded, dict):
            raise DispatchClientError(f"{path} must be a mapping of chart values")
        merged = _merge(merged, loaded)
    for expression in sets:
        merged = _merge(merged, _helm_call(helm, helm.parse_set_string, expression))
    for expression in set_files:
        merged = _merge(merged, _helm_call(helm, helm.parse_set_file, expression))
    return merged


def as_text(manifests: dict[str, str]) -> str:
    """The manifests as `helm template` prints them, without the notes."""
    return "".join(f"---\n# Source: {source}\n{text.strip()}\n" for source, text in sorted(manifests.items())
                   if text.strip() and not source.endswith("NOTES.txt"))


def objects_of(manifests: dict[str, str]) -> list[dict]:
    found = [document for source, text in manifests.items() if not source.endswith("NOTES.txt")
             for document in yaml.safe_load_all(text) if document]
    unknown = sorted({document["kind"] for document in found} - set(KINDS))
    if unknown:
        raise DispatchClientError(f"the chart renders kinds this command cannot apply: {', '.join(unknown)}")
    return sorted(found, key=lambda document: list(KINDS).index(document["kind"]))


async def _install(helm: Any, given: dict, name: str, namespace: str, kubeconfig: Path | None,
                   kube_context: str | None) -> tuple[list[str], str]:
    api = await _connect(kubeconfig, kube_context)
    try:
        await _call(api, "GET", "/version", seconds=10.0)
        # Rendered against the cluster: `lookup` finds the key and passwords generated by a former install.
        with helm.Config(kubeconfig_path=kubeconfig, kube_context=kube_context, namespace=namespace) as config, \
                helm.Chart.load(CHART) as chart:
            manifests = _helm_call(helm, config.render, chart, given, name=name, namespace=namespace)
        objects = objects_of(manifests)
        spaces = sorted({obj["metadata"]["namespace"] for obj in objects})
        applied = [await _ensure_namespace(api, space) for space in spaces]
        for obj in objects:
            await _apply(api, obj, name, namespace)
            applied.append(f"{obj['kind'].lower()}/{obj['metadata']['name']} serverside-applied")
    finally:
        await api.close()
    return [line for line in applied if line], manifests.get(f"{CHART.name}/templates/NOTES.txt", "")


async def _connect(kubeconfig: Path | None, kube_context: str | None):
    from kubernetes_asyncio import client, config
    from kubernetes_asyncio.config import ConfigException

    configuration = client.Configuration()
    try:
        if kubeconfig is None and kube_context is None:
            try:
                config.load_incluster_config(client_configuration=configuration)
                return client.ApiClient(configuration)
            except ConfigException:
                pass
        location = str(kubeconfig) if kubeconfig else os.environ.get("KUBECONFIG", "~/.kube/config")
        files = [Path(path).expanduser() for path in location.split(os.pathsep) if path]
        if not any(path.is_file() for path in files):
            raise ConfigException(f"no kubeconfig at {', '.join(map(str, files))}, and this is not a pod")
        await config.load_kube_config(config_file=location, context=kube_context,
                                      client_configuration=configuration, persist_config=False)
    except (ConfigException, OSError, ValueError) as error:
        raise DispatchClientError(f"no Kubernetes cluster to install into: {error} (--dry-run prints the "
                                  "manifests without one)") from None
    return client.ApiClient(configuration)


async def _ensure_namespace(api, namespace: str) -> str:
    """A namespace the installation needs and lacks is created, enforcing the restricted Pod
    Security Standard, which every pod of the chart and every function pod meets."""
    if await _call(api, "GET", f"/api/v1/namespaces/{namespace}", missing_ok=True) is not None:
        return ""
    await _call(api, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": namespace, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    return f"namespace/{namespace} created"


async def _apply(api, obj: dict, release: str, namespace: str) -> None:
    """Server-side apply, taking over fields another manager set; annotated as Helm annotates its
    objects, so that `helm upgrade --install` may adopt the installation later."""
    api_version, plural = KINDS[obj["kind"]]
    meta = obj["metadata"]
    meta["annotations"] = {**(meta.get("annotations") or {}), "meta.helm.sh/release-name": release,
                           "meta.helm.sh/release-namespace": namespace}
    root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{root}/namespaces/{meta['namespace']}/{plural}/{meta['name']}"
    await _call(api, "PATCH", path, obj, query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
                content_type="application/apply-patch+yaml")


async def _call(api, method: str, path: str, body: dict | None = None, query: list | None = None,
                content_type: str = "application/json", missing_ok: bool = False, seconds: float = API_SECONDS):
    from kubernetes_asyncio.client.rest import ApiException

    host = api.configuration.host
    try:
        return await api.call_api(path, method, query_params=query or [], body=body,
                                  header_params={"Content-Type": content_type, "Accept": "application/json"},
                                  auth_settings=["BearerToken"], response_types_map={200: "object", 201: "object"},
                                  _return_http_data_only=True, _request_timeout=seconds)
    except ApiException as error:
        if missing_ok and error.status == 404:
            return None
        raise DispatchClientError(f"Kubernetes refused {method} {path} ({error.status}): {_reason(error)}") from None
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as error:
        raise DispatchClientError(f"cannot reach the Kubernetes API at {host}: {error or type(error).__name__} "
                                  "(--dry-run prints the manifests without a cluster)") from None


def _reason(error) -> str:
    try:
        return json.loads(error.body).get("message") or error.reason
    except (TypeError, ValueError, AttributeError):
        return error.reason or ""


def _helm():
    try:
        import helm_python
    except ImportError:
        raise DispatchClientError("dispatch install renders its chart with Helm's SDK: "
                                  "pip install 'dispatch-serverless[helm]' (helm-python-sdk)") from None
    return helm_python


def _helm_call(helm: Any, function, *args, **kwargs):
    """Helm's answer, or its complaint as one line: a chart's `fail` message without the template's
    position, each schema violation after the other."""
    try:
        return function(*args, **kwargs)
    except helm.HelmError as error:
        text = str(error).split("): ", 1)[1] if "execution error at (" in str(error) else str(error)
        lines = [line.strip().lstrip("- ") for line in text.splitlines() if line.strip()]
        if lines and lines[0].startswith("values don't meet the specifications"):
            lines = ["invalid values:"] + [line for line in lines[1:] if not line.endswith(":")]
        raise DispatchClientError(" ".join(lines)) from None


def _merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
