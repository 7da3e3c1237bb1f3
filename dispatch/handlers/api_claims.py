"""Which requests an organization's APIs may answer: never one that another organization's API
answers, so that no tenant can make a request that reached another tenant's function reach its
own (contract §5.2, §5.3).

- Without hosts, an API's paths live under `/<org>/`; the default organization's also answer
  without that prefix (`/hello` for `/dispatch/hello`).
- With hosts, paths are kept as given, but none may begin with another existing organization's
  `/<org>/` prefix: that namespace is its owner's, now and later.
- An API answering any request an API of another organization answers (same path shape, a
  shared method, a shared host or no hosts; the default organization's unprefixed paths included)
  is refused with 409. Within one organization APIs may share routes; the older answers.
"""
from dispatch.drivers.paths import PathTemplate
from dispatch.errors import Conflict, Rejected
from dispatch.schemas.resources import Status
from dispatch.store.ports import Views


async def check_claims(views: Views, organization: str, body: dict, default_organization: str) -> None:
    for uri in body["uris"]:
        first = uri.strip("/").split("/", 1)[0]
        if first and first != organization and await views.get_resource(first, "Organization", first) is not None:
            raise Rejected(f"paths under /{first}/ belong to organization {first}")
    for owner, other in await views.list_all("API"):
        if owner == organization or other.get("status") == Status.DELETING.value:
            continue
        if _overlaps(body, _answered(owner, other, default_organization)):
            raise Conflict(f"the paths {', '.join(body['uris'])} are already served by an api of another organization")


def _answered(owner: str, api: dict, default_organization: str) -> dict:
    """An API with the paths it answers: the default organization's unprefixed ones too."""
    prefix = f"/{default_organization}/"
    if owner != default_organization or api.get("hosts"):
        return api
    aliases = [f"/{uri[len(prefix):]}" for uri in api.get("uris") or [] if uri.startswith(prefix)]
    return {**api, "uris": [*(api.get("uris") or []), *aliases]}


def _overlaps(a: dict, b: dict) -> bool:
    """Two APIs would answer the same request: a path of the same shape (`/u/{id}` and `/u/{name}`
    answer the same paths) and a shared method, on a shared host (no hosts means every host)."""
    shapes_a = {PathTemplate.of_stored(u).shape for u in a["uris"]}
    shapes_b = {PathTemplate.of_stored(u).shape for u in b.get("uris") or []}
    hosts_a, hosts_b = {h.lower() for h in a.get("hosts") or []}, {h.lower() for h in b.get("hosts") or []}
    return (bool(shapes_a & shapes_b) and bool(set(a["methods"]) & set(b.get("methods") or []))
            and (not hosts_a or not hosts_b or bool(hosts_a & hosts_b)))
