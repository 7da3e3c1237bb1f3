"""The Helm chart (charts/dispatch) rendered by Helm's own engine, in this process (helm-python-sdk
embeds Helm v4's Go SDK), as the test modules of the chart read it."""
from functools import lru_cache
from pathlib import Path

import helm_python as helm
import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "dispatch"
VALUES_FILES = sorted((CHART / "ci").glob("*-values.yaml"))
"""One installation each: external bus and store (the default), in-chart RabbitMQ and
PostgreSQL, ingress with autoscaling, a functions namespace of its own, image builds in a namespace
of their own, no RBAC, local runtime."""
RELEASE, NAMESPACE = "dispatch", "dispatch"


def values_of(name: str) -> dict:
    return yaml.safe_load((CHART / "ci" / f"{name}-values.yaml").read_text())


def render(values: dict, name: str = RELEASE, namespace: str = NAMESPACE) -> dict[str, str]:
    """Template path -> rendered text, NOTES.txt included."""
    with helm.Chart.load(CHART) as chart:
        return chart.render(values, name=name, namespace=namespace)


@lru_cache(maxsize=None)
def _objects_of_file(name: str) -> tuple[dict, ...]:
    return tuple(objects(render(values_of(name))))


def rendered(name: str) -> list[dict]:
    """The objects a values file of charts/dispatch/ci renders (deep copies: tests may change them)."""
    return yaml.safe_load(yaml.safe_dump(list(_objects_of_file(name))))


def objects(manifests: dict[str, str]) -> list[dict]:
    return [document for source, text in sorted(manifests.items()) if source.endswith(".yaml")
            for document in yaml.safe_load_all(text) if document]


def of_kind(found: list[dict], kind: str) -> dict[str, dict]:
    return {obj["metadata"]["name"]: obj for obj in found if obj["kind"] == kind}


def pod_specs(found: list[dict]) -> dict[str, dict]:
    """Workload name -> its pod template (metadata and spec)."""
    return {obj["metadata"]["name"]: obj["spec"]["template"] for obj in found
            if obj["kind"] in ("Deployment", "StatefulSet")}


def env_of(container: dict) -> dict[str, dict]:
    return {item["name"]: item for item in container.get("env") or []}


def matches(selector: dict, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels, matchExpressions) applied to a pod's labels."""
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in labels
        if not {"In": present and labels.get(key) in values, "NotIn": not present or labels[key] not in values,
                "Exists": present, "DoesNotExist": not present}[operator]:
            return False
    return True
