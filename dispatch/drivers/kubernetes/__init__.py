"""Functions as Kubernetes Deployments, through kubernetes-asyncio; imported only when chosen."""
from dispatch.drivers.kubernetes.manifests import Options, options_from
from dispatch.drivers.kubernetes.runtime import DEFAULT_SERVICE_URL, KubernetesRuntime

__all__ = ["DEFAULT_SERVICE_URL", "KubernetesRuntime", "Options", "options_from"]
