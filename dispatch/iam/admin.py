"""A new installation's first administrator (contract §6.5): the default organization, a
service account `admin` whose private key stays with this server's data, and a global all-`*`
policy for it, created when no organization exists yet. The CLI context written next to it is
what lets `make run` and the quickstart work with no login step."""
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from dispatch.errors import Conflict
from dispatch.schemas import commands as c
from dispatch.schemas.identity import public_key

from .keys import new_key_pair, write_private
from .tokens import account_token

ADMIN = "admin"
KEY_FILE = "admin.pem"
SYSTEM = "system"


@dataclass(frozen=True)
class Admin:
    organization: str
    key_file: Path

    @property
    def issuer(self) -> str:
        return f"{self.organization}/{ADMIN}"

    def token(self, ttl_seconds: float = 3600) -> str:
        return account_token(self.issuer, self.key_file.read_bytes(), ttl_seconds)


def admin_policy(name: str = ADMIN, account: str = ADMIN) -> dict:
    return {"name": name, "global": True, "rules": [{"subjects": [account], "resources": ["*"], "actions": ["*"]}]}


async def first_start(platform, organization: str, data_dir: Path) -> Admin | None:
    """Bootstrap an empty installation; the administrator this server holds the key of, if any."""
    key_file = data_dir / KEY_FILE
    if not await platform.views.list_all("Organization"):
        pem, encoded = new_key_pair()
        write_private(key_file, pem)
        commands = (
            c.CreateOrganization(organization=organization, name=organization, resource={"name": organization}),
            c.CreateServiceAccount(organization=organization, name=ADMIN,
                                   resource={"name": ADMIN, "publicKey": encoded}),
            c.CreatePolicy(organization=organization, name=ADMIN, resource=admin_policy()),
        )
        for command in commands:
            command.subject = SYSTEM
            try:
                await platform.write(command)
            except Conflict:
                key_file.unlink(missing_ok=True)  # another process of the installation was first
                return None
        return Admin(organization, key_file)
    return await _held(platform, organization, key_file)


async def _held(platform, organization: str, key_file: Path) -> Admin | None:
    """The administrator of an earlier start, when this data directory holds its key."""
    account = await platform.views.get_resource(organization, "ServiceAccount", ADMIN)
    if account is None or not key_file.exists():
        return None
    try:
        private = load_pem_private_key(key_file.read_bytes(), password=None)
        if not isinstance(private, rsa.RSAPrivateKey):
            return None  # not an administrator's key: those are RSA
        mine = private.public_key().public_numbers()
        return Admin(organization, key_file) if public_key(account["publicKey"]).public_numbers() == mine else None
    except ValueError:
        return None
