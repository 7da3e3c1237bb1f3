"""Users' ID tokens, verified against a real OpenID Connect provider (tests/oidc_provider.py)."""
import base64
import hashlib
import hmac
import json
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from dispatch.errors import Rejected, Unavailable
from dispatch.gateway.app import create_app
from dispatch.gateway.auth import authority_for, users_for
from dispatch.iam.admin import first_start
from dispatch.iam.oidc import OIDCUsers
from dispatch.iam.tokens import Unauthenticated
from dispatch.settings import Settings
from tests.e2e.conftest import free_port
from tests.oidc_provider import CLIENT_ID, TEST_USER, Provider

from .test_gateway import answer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def provider():
    started = Provider().start()
    yield started
    started.stop()


@pytest.fixture
def settings(tmp_path, provider):
    return Settings(data_dir=tmp_path / "data", resync_seconds=3600, oidc_issuer=provider.issuer,
                    oidc_client_id=CLIENT_ID)


@pytest.fixture
async def admin(settings, platform):
    return await first_start(platform, "dispatch", settings.data_dir)


@pytest.fixture
async def client(settings, platform, admin):
    app = create_app(settings, platform, authority=authority_for(settings, platform))
    async with TestClient(TestServer(app)) as test:
        yield test


def _part(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(provider: Provider) -> dict:
    now = int(time.time())
    return {"iss": provider.issuer, "aud": CLIENT_ID, "sub": "user-jon", "email": TEST_USER, "iat": now,
            "exp": now + 600}


def unsigned(provider: Provider) -> str:
    return f"{_part({'alg': 'none', 'kid': provider.kid})}.{_part(_claims(provider))}."


def hmac_with_the_public_key(provider: Provider) -> str:
    """The old confusion attack: HS256 keyed with the PEM of the issuer's published RSA key."""
    public = provider.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{_part({'alg': 'HS256', 'kid': provider.kid})}.{_part(_claims(provider))}"
    return f"{signing_input}.{_part(hmac.new(public, signing_input.encode(), hashlib.sha256).digest())}"


def stranger_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


REFUSED = {
    "wrong audience": (lambda p: p.id_token(aud="someone-else"), "its audience is not dispatch-cli"),
    "expired": (lambda p: p.id_token(exp=int(time.time()) - 600), "the login has expired"),
    "no exp": (lambda p: p.id_token(exp=None), 'missing the "exp" claim'),
    "alg none": (unsigned, "algorithm 'none' is not accepted"),
    "HS256 with the public key": (hmac_with_the_public_key, "algorithm 'HS256' is not accepted"),
    "a key not in the JWKS": (lambda p: p.sign(_claims(p), key=stranger_key()), "signature does not match"),
    "an unknown kid": (lambda p: p.sign(_claims(p), key=stranger_key(), headers={"kid": "stranger"}),
                       "the key 'stranger', which http://127.0.0.1"),
}


async def test_a_valid_id_token_identifies_its_user_by_email(provider):
    principal = await OIDCUsers(provider.issuer, CLIENT_ID).verify(provider.id_token())
    assert (principal.kind, principal.name, principal.organization) == ("user", TEST_USER, None)


async def test_an_email_the_issuer_did_not_verify_leaves_the_user_named_by_sub(provider):
    users = OIDCUsers(provider.issuer, CLIENT_ID)
    assert (await users.verify(provider.id_token(email_verified=False))).name == "user-jon"
    assert (await users.verify(provider.id_token(email=None))).name == "user-jon"


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
async def test_a_bad_id_token_is_401_with_its_reason(client, provider, case):
    make, reason = REFUSED[case]
    refused = await answer(await client.get("/v1/function", headers={"Authorization": f"Bearer {make(provider)}"}), 401)
    assert reason in refused["message"]


async def test_a_token_of_another_issuer_is_refused(provider):
    with pytest.raises(Unauthenticated, match="its issuer is not http://127.0.0.1"):
        await OIDCUsers(provider.issuer, CLIENT_ID).verify(provider.id_token(iss="https://elsewhere.example"))


async def test_a_rotated_key_is_fetched_when_a_token_names_it(provider):
    clock = Clock()
    users = OIDCUsers(provider.issuer, CLIENT_ID, clock=clock)
    assert (await users.verify(provider.id_token())).name == TEST_USER
    clock.now += 61
    provider.rotate(keep_old=False)

    assert (await users.verify(provider.id_token())).name == TEST_USER
    assert provider.jwks_requests == 2


async def test_unknown_kids_fetch_the_key_set_at_most_once_a_minute(provider):
    clock = Clock()
    users = OIDCUsers(provider.issuer, CLIENT_ID, clock=clock)
    await users.verify(provider.id_token())
    forged = provider.sign(_claims(provider), key=stranger_key(), headers={"kid": "made-up"})
    for advance in (0, 30, 31, 1):
        clock.now += advance
        with pytest.raises(Unauthenticated, match="made-up"):
            await users.verify(forged)
    assert provider.jwks_requests == 2  # at start, then once the minute was over


async def test_an_issuer_that_cannot_be_reached_answers_503_naming_it(client, provider, admin):
    token = provider.id_token()
    provider.stop()

    refused = await answer(await client.get("/v1/function", headers={"Authorization": f"Bearer {token}"}), 503)
    assert refused["message"].startswith(f"cannot fetch the keys of the OpenID Connect issuer {provider.issuer}")
    still = await client.get("/v1/function", headers={"Authorization": f"Bearer {admin.token()}"})
    assert await answer(still, 200) == []


async def test_an_issuer_with_nothing_listening_is_unavailable_not_unauthenticated():
    issuer = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(Unavailable, match=issuer):
        await OIDCUsers(issuer, CLIENT_ID).verify(Provider().id_token(iss=issuer))


async def test_the_issuer_and_client_id_are_open_to_read(client, provider):
    found = await answer(await client.get("/v1/iam/oidc"), 200)
    assert found == {"issuer": provider.issuer, "clientId": CLIENT_ID}


async def test_without_an_issuer_there_is_no_oidc_endpoint(tmp_path, platform):
    settings = Settings(data_dir=tmp_path / "data")
    app = create_app(settings, platform, authority=authority_for(settings, platform))
    async with TestClient(TestServer(app)) as test:
        assert "no --oidc-issuer" in (await answer(await test.get("/v1/iam/oidc"), 404))["message"]


@pytest.mark.parametrize("given, refused", [
    ({"oidc_issuer": "https://accounts.example.com"}, "go together"),
    ({"oidc_client_id": CLIENT_ID}, "go together"),
    ({"oidc_issuer": "http://accounts.example.com", "oidc_client_id": CLIENT_ID}, "use https"),
    ({"oidc_issuer": "accounts.example.com", "oidc_client_id": CLIENT_ID}, "an https URL"),
])
def test_an_incomplete_or_insecure_oidc_configuration_is_refused(given, refused):
    with pytest.raises(Rejected, match=refused):
        users_for(Settings(**given))


async def test_users_act_in_the_organization_they_name_by_its_policies(client, provider, admin):
    def as_(token: str, org: str = "") -> dict:
        return {"Authorization": f"Bearer {token}", "X-Dispatch-Org": org}
    rule = {"subjects": [TEST_USER], "resources": ["function"], "actions": ["get"]}
    await answer(await client.post("/v1/iam/policy", json={"name": "jon-reads", "rules": [rule]},
                                   headers=as_(admin.token())), 201)
    await answer(await client.post("/v1/iam/organization", json={"name": "other"}, headers=as_(admin.token())), 201)
    jon = provider.id_token()

    assert await answer(await client.get("/v1/function", headers=as_(jon)), 200) == []
    refused = await answer(await client.post("/v1/secret", json={"name": "s", "secrets": {}}, headers=as_(jon)), 403)
    assert refused["message"] == f"{TEST_USER} may not create secret in organization dispatch"
    await answer(await client.get("/v1/function", headers=as_(jon, "other")), 403)
