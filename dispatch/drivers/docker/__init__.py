"""Functions as Docker containers, through aiodocker."""
from dispatch.drivers.docker.installation import installation_owner
from dispatch.drivers.docker.runtime import DockerRuntime

__all__ = ["DockerRuntime", "installation_owner"]
