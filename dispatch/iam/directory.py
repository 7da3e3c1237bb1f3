"""The identity read model each gateway keeps in memory: organizations, service accounts (with
their parsed public keys) and policies. Loaded from the views at start and kept current from the
log's events, on a bus subscription of this process's own: a deleted account or policy stops
counting on every gateway as its event arrives, and at once on the gateway that deleted it."""
import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from dispatch.bus.ports import MessageBus
from dispatch.schemas import events as e
from dispatch.schemas.envelope import Message
from dispatch.schemas.identity import public_key
from dispatch.store.ports import Views

from .policy import Grant

FOLLOWED = (e.OrganizationCreated, e.OrganizationDeleted, e.PolicyCreated, e.PolicyUpdated, e.PolicyDeleted,
            e.ServiceAccountCreated, e.ServiceAccountUpdated, e.ServiceAccountDeleted)


@dataclass(frozen=True)
class Account:
    organization: str
    name: str
    key: rsa.RSAPublicKey
    fingerprint: str
    """Changes with the key: a token verified with the old key no longer counts."""


class Directory:
    def __init__(self, views: Views):
        self.views = views
        self._accounts: dict[tuple[str, str], Account] = {}
        self._grants: dict[tuple[str, str], Grant] = {}
        self._organizations: set[str] = set()
        self._changes = 0

    async def load(self) -> None:
        self._organizations = {org for org, _ in await self.views.list_all("Organization")}
        self._grants = {(org, p["name"]): Grant.of(org, p) for org, p in await self.views.list_all("Policy")}
        self._accounts = {}
        for org, account in await self.views.list_all("ServiceAccount"):
            self._keep(org, account)

    def follow(self, bus: MessageBus) -> None:
        for event_type in FOLLOWED:
            bus.subscribe(event_type, "identity", self.apply, per_process=True)

    async def apply(self, event: Message) -> None:
        assert isinstance(event, e.ResourceEvent)  # FOLLOWED holds resource events only
        self._changes += 1
        key = (event.organization, event.name)
        resource: dict[str, Any] | None = getattr(event, "resource", None)
        if event.kind == "Organization":
            (self._organizations.add if resource is not None else self._organizations.discard)(event.name)
        elif event.kind == "Policy":
            if resource is None:
                self._grants.pop(key, None)
            else:
                self._grants[key] = Grant.of(event.organization, resource)
        elif resource is None:
            self._accounts.pop(key, None)
        else:
            self._keep(event.organization, resource)

    @property
    def grants(self) -> list[Grant]:
        return list(self._grants.values())

    @property
    def empty(self) -> bool:
        """No organization yet: the installation still waits for its bootstrap."""
        return not self._organizations

    async def organization_exists(self, name: str) -> bool:
        if name in self._organizations:
            return True
        if await self.views.get_resource(name, "Organization", name) is not None:
            self._organizations.add(name)  # its event is on its way
            return True
        return False

    async def account(self, organization: str, name: str) -> Account | None:
        found = self._accounts.get((organization, name))
        if found is not None:
            return found
        before = self._changes
        stored = await self.views.get_resource(organization, "ServiceAccount", name)
        if stored is None:
            return None
        account = self._make(organization, stored)
        if before == self._changes and account is not None:
            self._accounts[(organization, name)] = account  # nothing changed meanwhile: safe to keep
        return account

    def _keep(self, organization: str, stored: dict) -> None:
        account = self._make(organization, stored)
        if account is not None:
            self._accounts[(organization, stored["name"])] = account

    @staticmethod
    def _make(organization: str, stored: dict) -> Account | None:
        try:
            key = public_key(stored.get("publicKey") or "")
        except ValueError:
            return None
        fingerprint = hashlib.sha256((stored.get("publicKey") or "").encode()).hexdigest()
        return Account(organization, stored["name"], key, fingerprint)
