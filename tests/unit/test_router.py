"""The built-in router's table on its own: which API answers a request, and with which parameters."""
import re

import pytest

from dispatch.drivers.paths import BadPath, PathTemplate
from dispatch.drivers.ports import Route
from dispatch.drivers.router import BuiltinRouter


def route(api: str, *uris: str, methods=("GET",), hosts=(), cors=False, org="dispatch") -> Route:
    return Route(organization=org, api=api, function=api, methods=tuple(methods), uris=uris, hosts=tuple(hosts),
                 protocols=("http", "https"), cors=cors)


async def router_of(*routes: Route) -> BuiltinRouter:
    router = BuiltinRouter("dispatch")
    await router.sync(list(routes))
    return router


def answering(router: BuiltinRouter, path: str, method="GET", host="localhost") -> tuple[str, dict] | None:
    found = router.match(method, path, host)
    return None if found is None else (found.route.api, found.params)


async def test_a_path_parameter_matches_one_segment_and_is_decoded():
    router = await router_of(route("user", "/dispatch/users/{id}"))
    assert answering(router, "/dispatch/users/42") == ("user", {"id": "42"})
    assert answering(router, "/dispatch/users/j%20doe") == ("user", {"id": "j doe"})
    for path in ("/dispatch/users", "/dispatch/users/", "/dispatch/users/42/x", "/dispatch/people/42"):
        assert answering(router, path) is None, path


async def test_several_parameters_are_all_returned():
    router = await router_of(route("item", "/dispatch/users/{user}/items/{item}"))
    assert answering(router, "/dispatch/users/7/items/9") == ("item", {"user": "7", "item": "9"})


async def test_an_exact_path_wins_over_a_template_and_a_literal_segment_further_left_wins():
    router = await router_of(route("any", "/dispatch/users/{id}"), route("me", "/dispatch/users/me"),
                             route("left", "/dispatch/{kind}/{id}"))
    assert answering(router, "/dispatch/users/me") == ("me", {})
    assert answering(router, "/dispatch/users/7") == ("any", {"id": "7"})
    assert answering(router, "/dispatch/groups/7") == ("left", {"kind": "groups", "id": "7"})


async def test_the_default_organization_answers_without_its_prefix():
    router = await router_of(route("user", "/dispatch/users/{id}"))
    assert answering(router, "/users/5") == ("user", {"id": "5"})


async def test_a_wildcard_host_matches_subdomains_only():
    router = await router_of(route("w", "/x", hosts=["*.example.com"]))
    assert answering(router, "/x", host="a.example.com:8081") == ("w", {})
    assert answering(router, "/x", host="a.b.example.com") == ("w", {})
    assert answering(router, "/x", host="example.com") is None
    assert answering(router, "/x", host="evilexample.com") is None


async def test_a_method_not_listed_falls_through_to_the_next_template():
    router = await router_of(route("get", "/dispatch/u/{id}"), route("post", "/dispatch/u/{name}", methods=["POST"]))
    assert answering(router, "/dispatch/u/1", "POST") == ("post", {"name": "1"})
    assert answering(router, "/dispatch/u/1", "DELETE") is None


@pytest.mark.parametrize("uri", ["/a/x{id}", "/a/{id", "/a/{1x}", "/a/{id}/{id}", "hello"])
def test_a_malformed_template_is_refused(uri):
    with pytest.raises(BadPath):
        PathTemplate.parse(uri)


def test_a_template_becomes_a_kong_regex_path_that_matches_the_same_paths():
    path = PathTemplate.parse("/dispatch/users/{id}/a.b").kong_path()
    assert path.startswith("~/")
    pattern = re.compile(path[1:].replace("(?<", "(?P<"))
    assert pattern.match("/dispatch/users/42/a.b").groupdict() == {"id": "42"}
    assert not pattern.match("/dispatch/users/42/aXb") and not pattern.match("/dispatch/users/4/2/a.b")
    assert not pattern.match("/dispatch/users/42/a.b/more")
