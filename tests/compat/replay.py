"""Sends recorded Go CLI requests to a server byte for byte, in order. Values the server generated
(run ids) are learnt from each answer and substituted in later requests; a request the recording
repeated until a status (a function becoming READY) is repeated here too, within a bound."""
import base64
import gzip
import http.client
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import jwt

from dispatch.iam.tokens import account_token

FIXTURES = Path(__file__).parent / "fixtures"
SOURCES = Path(__file__).parent / "sources"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
RESET = {"host", "content-length"}  # for the server this replay talks to
POLL_SECONDS = 90


@dataclass
class Answer:
    status: int
    body: bytes

    def json(self):
        return json.loads(self.body)


def fixtures() -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(FIXTURES.glob("*.json"))]


def request_body(recorded: dict) -> bytes:
    if "body_base64" in recorded:
        return base64.b64decode(recorded["body_base64"])
    return recorded["body"].encode()


class Replayer:
    def __init__(self, port: int, token: str | None = None):
        self.port = port
        self.token = token
        """The identity the requests carry, as the Go CLI sends one from a context with a service
        account: `Authorization: Bearer` in place of the recording's anonymous `Cookie: unset`."""
        self.generated: dict[str, str] = {}
        """A value in the recording -> the value this server generated in its place."""

    def replay(self, recorded: dict) -> tuple[str, bytes, Answer]:
        """The request as sent (target, body) and the server's answer."""
        target = self._substitute(recorded["path"] + (f"?{recorded['query']}" if recorded["query"] else ""))
        body = self._substitute(request_body(recorded).decode("latin-1")).encode("latin-1")
        headers = [line.split(": ", 1) for line in recorded["headers"]]
        headers = [(k, v) for k, v in headers if k.lower() not in RESET]
        if self.token:
            recorded_token = next((v for k, v in headers if k.lower() == "authorization"), "")
            headers = [(k, v) for k, v in headers if k.lower() not in ("cookie", "authorization")]
            headers.append(("Authorization", f"Bearer {self._identity(recorded_token)}"))
        answer = self.send(recorded["method"], target, headers, body)
        deadline = time.monotonic() + POLL_SECONDS
        while "poll_until" in recorded and not self._reached(answer, recorded) and time.monotonic() < deadline:
            time.sleep(0.2)
            answer = self.send(recorded["method"], target, headers, body)
        self._learn(recorded.get("response"), answer)
        return target, body, answer

    def send(self, method: str, target: str, headers: list, body: bytes) -> Answer:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            connection.putheader("Host", f"127.0.0.1:{self.port}")
            for name, value in headers:
                connection.putheader(name, value)
            if body or method in ("POST", "PUT"):
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body or None)
            response = connection.getresponse()
            data = response.read()
            if response.getheader("Content-Encoding") == "gzip":
                data = gzip.decompress(data)
            return Answer(response.status, data)
        finally:
            connection.close()

    def _identity(self, recorded: str) -> str:
        """Who the replayed request is: the recording's test account (a key of sources/) where it
        signed as one, else this server's administrator (for an anonymous or admin recording)."""
        if not recorded:
            return self.token
        issuer = jwt.decode(recorded.split(" ", 1)[-1], options={"verify_signature": False}).get("iss", "")
        key = SOURCES / f"{issuer.split('/')[-1]}.pem"
        return account_token(issuer, key.read_bytes()) if issuer.split("/")[-1] != "admin" and key.exists() \
            else self.token

    @staticmethod
    def _reached(answer: Answer, recorded: dict) -> bool:
        try:
            return answer.status == recorded["status"] and answer.json().get("status") == recorded["poll_until"]
        except ValueError:
            return False

    def _substitute(self, text: str) -> str:
        for recorded, generated in self.generated.items():
            text = text.replace(recorded, generated)
        return text

    def _learn(self, recorded_body: str | None, answer: Answer) -> None:
        try:
            then, now = json.loads(recorded_body or "null"), answer.json()
        except ValueError:
            return
        self._pair(then, now)

    def _pair(self, then, now) -> None:
        if isinstance(then, dict) and isinstance(now, dict):
            for key in then.keys() & now.keys():
                self._pair(then[key], now[key])
        elif isinstance(then, str) and isinstance(now, str) and UUID.match(then) and then != now:
            self.generated[then] = now
