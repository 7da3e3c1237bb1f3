"""Who may do what (contract §2.13): organizations, policies and service accounts, in Dispatch's
wire format. They are resources like the others, projected from the log."""
import base64
import binascii

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pydantic import Field, field_validator

from .resources import PATH_NAME_PATTERN, Resource, Wire

ACCOUNT_NAME_PATTERN = r"^[\w\d\-\.]+$"
MIN_KEY_BITS = 2048


class Organization(Resource):
    """A tenant: every other resource lives in exactly one. Stored under its own name."""

    name: str = Field(pattern=PATH_NAME_PATTERN)


class Rule(Wire):
    """Grants `actions` (get, create, update, delete, or `*`) on `resources` (the second segment
    of a path: function, runs, secret, iam…, or `*`) to `subjects` (service accounts of the
    policy's organization by name, users by e-mail, or `*`)."""

    subjects: list[str] = Field(min_length=1)
    resources: list[str] = Field(min_length=1)
    actions: list[str] = Field(min_length=1)


class Policy(Resource):
    rules: list[Rule] = Field(min_length=1)
    global_: bool = Field(default=False, alias="global")
    """Applies in every organization, not only its own."""


class ServiceAccount(Resource):
    """A machine identity: its tokens are JWTs it signs itself, checked with `publicKey`."""

    name: str = Field(pattern=ACCOUNT_NAME_PATTERN)
    public_key: str
    """Base64 of a PEM RSA public key (what `dispatch iam create serviceaccount --public-key` sends)."""
    domain: str = Field(default="", pattern=r"^[\w\d\-\.]*$")

    @field_validator("public_key")
    @classmethod
    def _rsa_public_key(cls, value: str) -> str:
        public_key(value)
        return value


def public_key(encoded: str) -> rsa.RSAPublicKey:
    """The RSA public key of a service account's `publicKey`; ValueError says what is wrong."""
    try:
        pem = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("publicKey must be the base64 of a PEM RSA public key") from None
    try:
        key = load_pem_public_key(pem)
    except ValueError as error:
        raise ValueError(f"publicKey is not a PEM public key: {error}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("publicKey must be an RSA key (tokens are RS256/384/512)")
    if key.key_size < MIN_KEY_BITS:
        raise ValueError(f"publicKey is a {key.key_size}-bit RSA key; use {MIN_KEY_BITS} bits or more")
    return key


KINDS: dict[str, type[Resource]] = {cls.__name__: cls for cls in (Organization, Policy, ServiceAccount)}
