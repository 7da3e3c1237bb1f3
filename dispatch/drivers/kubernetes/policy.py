"""The NetworkPolicy of an installation's functions: one object selecting every function pod of the
installation, written before any of their Deployments.

Ingress: only Dispatch's pods that call functions (the gateways and handlers, by their labels;
in `dispatch_namespace` when that is set, else in the functions' namespace), on the function
server's port. Egress: DNS to the cluster's DNS pods; the internet, that is every address outside
the private ranges (the cluster's pods and services, a cloud's metadata address, a VPC's
databases); and pods of the cluster other than Dispatch's own (gateway, handlers, RabbitMQ,
PostgreSQL, by their labels) and other than those of `dispatch_namespace`.

A NetworkPolicy only allows. "Every pod but these" is written as pod selectors whose `NotIn`
expressions together match exactly the pods no protected selector matches (a pod lacking a label
is `NotIn` any of its values). Policies add up: a further NetworkPolicy selecting the function pods
can allow more, e.g. one database of the cluster.
"""
import itertools

from dispatch.drivers.kubernetes import manifests as m

NAMESPACE_NAME = "kubernetes.io/metadata.name"
"""The label the control plane sets on every namespace: its name."""


def network_policy(options: m.Options) -> dict:
    labels = {m.MANAGED_BY: "dispatch", m.INSTALLATION: m.label_value(options.installation)}
    functions = {"matchLabels": {m.INSTALLATION: m.label_value(options.installation)},
                 "matchExpressions": [{"key": m.FAAS_ID, "operator": "Exists"}]}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": policy_name(options), "labels": labels},
            "spec": {"podSelector": functions, "policyTypes": ["Ingress", "Egress"],
                     "ingress": _ingress(options), "egress": _egress(options)}}


def policy_name(options: m.Options) -> str:
    return "dispatch-functions-" + m.dns_label(options.installation, 40)


def _ingress(options: m.Options) -> list[dict]:
    peers = []
    for caller in options.callers:
        peer: dict = {"podSelector": {"matchLabels": dict(caller)}}
        if options.dispatch_namespace:
            peer["namespaceSelector"] = {"matchLabels": {NAMESPACE_NAME: options.dispatch_namespace}}
        peers.append(peer)
    # A rule without peers would allow every source: no callers, no rule, no ingress.
    return [{"from": peers, "ports": [{"protocol": "TCP", "port": m.PORT}]}] if peers else []


def _egress(options: m.Options) -> list[dict]:
    dns: dict = {"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": dict(options.dns_labels)}}],
                 "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
    v4 = sorted(cidr for cidr in options.private_cidrs if ":" not in cidr)
    v6 = sorted(cidr for cidr in options.private_cidrs if ":" in cidr)
    internet: dict = {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", **({"except": v4} if v4 else {})}},
                             {"ipBlock": {"cidr": "::/0", **({"except": v6} if v6 else {})}}]}
    namespaces: dict = {}
    if options.dispatch_namespace:
        namespaces = {"matchExpressions": [{"key": NAMESPACE_NAME, "operator": "NotIn",
                                            "values": [options.dispatch_namespace]}]}
    pods = [{"namespaceSelector": namespaces, "podSelector": selector} for selector in outside(options.protected)]
    return [dns, internet] + ([{"to": pods}] if pods else [])


def outside(selectors) -> list[dict]:
    """Pod selectors that together match every pod that none of `selectors` (label sets) matches.

    Not matching {a: 1, b: 2} is a != 1 or b != 2; not matching any of several is the conjunction of
    such disjunctions, spread out into one selector per choice of a label from each, of which only
    those not implied by a looser one are kept."""
    terms = set()
    for choice in itertools.product(*(sorted(dict(selector).items()) for selector in selectors)):
        term: dict[str, set] = {}
        for key, value in choice:
            term.setdefault(key, set()).add(value)
        terms.add(frozenset((key, frozenset(values)) for key, values in term.items()))
    kept = [term for term in terms if not any(other != term and _looser(other, term) for other in terms)]
    return [{"matchExpressions": [{"key": key, "operator": "NotIn", "values": sorted(values)}
                                  for key, values in sorted(term, key=lambda item: item[0])]}
            for term in sorted(kept, key=lambda t: sorted((k, sorted(v)) for k, v in t))]


def _looser(other: frozenset, term: frozenset) -> bool:
    """`other` matches every pod `term` matches: each of its keys is in `term`, excluding no more values."""
    excluded = dict(term)
    return all(key in excluded and values <= excluded[key] for key, values in other)
