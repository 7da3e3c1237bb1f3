"""The policy decision (contract §2.13), with subjects bound to their organization.

A request is an action (get, create, update, delete: the HTTP method) on a resource (the second
segment of its path) in an organization. A rule of a policy grants it when it lists the subject,
the resource and the action (each, or `*`). A policy applies in its own organization; a global
one in every organization. Unlike Dispatch, a subject is bound to its organization: a policy's
subjects are the service accounts of the policy's own organization and users by e-mail, so an
account named `admin` in another tenant gains nothing from a policy naming `admin` here, and a
global policy is the only way across organizations.
"""
from dataclasses import dataclass
from typing import Iterable

ACTIONS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}
ACCOUNT, USER, BOOTSTRAP, NOBODY = "serviceaccount", "user", "bootstrap", "anonymous"


@dataclass(frozen=True)
class Principal:
    kind: str
    """ACCOUNT (a service account, or a function acting as one), USER (an OIDC login), BOOTSTRAP
    (the deploy-time identity, for `iam` only), NOBODY (authentication turned off)."""
    name: str
    """The account's name, the user's e-mail."""
    organization: str | None = None
    """A service account's own organization; None for users, who name theirs per request."""

    @property
    def subject(self) -> str:
        """How the audit trail names it."""
        return f"{self.organization}/{self.name}" if self.organization else self.name


@dataclass(frozen=True)
class Grant:
    """One policy as the decision needs it."""

    organization: str
    name: str
    global_: bool
    rules: tuple[tuple[frozenset[str], frozenset[str], frozenset[str]], ...]

    @classmethod
    def of(cls, organization: str, policy: dict) -> "Grant":
        rules = tuple((frozenset(r.get("subjects") or ()), frozenset(r.get("resources") or ()),
                       frozenset(r.get("actions") or ())) for r in policy.get("rules") or ())
        return cls(organization, policy["name"], bool(policy.get("global")), rules)

    def allows(self, subject: str, resource: str, action: str, everyone: bool) -> bool:
        """`everyone`: whether `*` among the subjects covers this subject."""
        for subjects, resources, actions in self.rules:
            if (subject in subjects or (everyone and "*" in subjects)) \
                    and (resource in resources or "*" in resources) and (action in actions or "*" in actions):
                return True
        return False


def allowed(principal: Principal, organization: str, resource: str, action: str, grants: Iterable[Grant]) -> bool:
    """Whether `principal` may `action` the `resource` of `organization`."""
    if principal.kind == NOBODY:
        return True
    if principal.kind == BOOTSTRAP:
        return resource == "iam"
    for grant in grants:
        if principal.kind == ACCOUNT:
            # an account's policies are those of its organization: there, or everywhere if global
            if grant.organization != principal.organization:
                continue
            if (grant.global_ or organization == principal.organization) \
                    and grant.allows(principal.name, resource, action, everyone=True):
                return True
        elif grant.organization == organization:
            if grant.allows(principal.name, resource, action, everyone=True):
                return True
        elif grant.global_ and grant.allows(principal.name, resource, action, everyone=False):
            return True  # a user named in a global policy of any organization
    return False


def global_grant(principal: Principal, resource: str, action: str, grants: Iterable[Grant]) -> bool:
    """Whether the principal may act on `resource` in every organization: what creating an
    organization or a global policy needs, so that no tenant grants itself the others."""
    if principal.kind in (NOBODY, BOOTSTRAP):
        return principal.kind == NOBODY or resource == "iam"
    for grant in grants:
        if not grant.global_:
            continue
        if principal.kind == ACCOUNT and grant.organization == principal.organization \
                and grant.allows(principal.name, resource, action, everyone=True):
            return True
        if principal.kind == USER and grant.allows(principal.name, resource, action, everyone=False):
            return True
    return False
