"""A small synchronous client for the Dispatch v1 management API, on the standard library."""
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable

FINAL_STATUSES = ("READY", "ERROR")
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]"}


class DispatchClientError(Exception):
    """A failure the CLI reports as one line before exiting with status 1.

    `code` is the `code` of a `{code, message}` error body; scripts (and `apply`) match the
    printed `[Code: 404] ` prefix, so it is taken from the body rather than the HTTP status.
    """

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return self.message if self.code is None else f"[Code: {self.code}] {self.message}"


class DispatchClient:
    def __init__(
        self,
        base_url: str,
        organization: str = "",
        token: str | None = None,
        cookie: str | None = None,
        insecure: bool = False,
        timeout: float | None = 60.0,
    ):
        self.base_url = base_url.rstrip("/")
        self.organization = organization
        self.token = token
        self.cookie = cookie
        self.timeout = timeout
        handlers: list[urllib.request.BaseHandler] = []
        if urllib.parse.urlsplit(self.base_url).hostname in _LOOPBACK:
            # A proxy from the environment must never see requests meant for the local server.
            handlers.append(urllib.request.ProxyHandler({}))
        if insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self._opener = urllib.request.build_opener(*handlers)

    def get(self, path: str, query: dict | None = None, anonymous: bool = False) -> Any:
        return self.request("GET", path, query=query, anonymous=anonymous)

    def post(self, path: str, body: Any, query: dict | None = None, timeout: float | None = -1) -> Any:
        return self.request("POST", path, body=body, query=query, timeout=timeout)

    def put(self, path: str, body: Any, query: dict | None = None) -> Any:
        return self.request("PUT", path, body=body, query=query)

    def delete(self, path: str, query: dict | None = None) -> Any:
        return self.request("DELETE", path, query=query)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict | None = None,
        anonymous: bool = False,
        timeout: float | None = -1,
    ) -> Any:
        """Send one request; answer the decoded JSON body (None when empty).

        `anonymous` leaves out the organization and credentials (`/v1/version` takes neither);
        `timeout` None waits as long as the server takes, -1 means the client's default.
        """
        url = self.base_url + path
        params = {k: v for k, v in (query or {}).items() if v not in (None, [], "")}
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers=self._headers(anonymous))
        wait = self.timeout if timeout == -1 else timeout
        try:
            with self._opener.open(request, timeout=wait) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            raise _error_from_body(error.code, error.reason, error.read()) from None
        except urllib.error.URLError as error:
            raise self._unreachable(error.reason) from None
        except (TimeoutError, ConnectionError) as error:
            raise self._unreachable(error) from None
        if not payload.strip():
            return None
        try:
            return json.loads(payload)
        except ValueError:
            raise DispatchClientError(f"unexpected answer from {url}: not JSON") from None

    def open(self, path: str, query: dict | None = None, accept: str = "application/json",
             timeout: float | None = 60.0) -> Any:
        """GET `path` and answer the open response, for its headers or to read it as it comes
        (server-sent events: `timeout` bounds each wait for the next bytes)."""
        url = self.base_url + path
        params = {k: v for k, v in (query or {}).items() if v not in (None, [], "")}
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        headers = {**self._headers(False), "Accept": accept}
        try:
            return self._opener.open(urllib.request.Request(url, headers=headers), timeout=timeout)
        except urllib.error.HTTPError as error:
            raise _error_from_body(error.code, error.reason, error.read()) from None
        except urllib.error.URLError as error:
            raise self._unreachable(error.reason) from None
        except (TimeoutError, ConnectionError) as error:
            raise self._unreachable(error) from None

    def wait_for(
        self,
        path: str,
        on_status: Callable[[str], None] = lambda status: None,
        timeout: float = 600.0,
        interval: float = 0.5,
    ) -> dict:
        """Poll GET `path` until the resource is READY or ERROR; answer it in that state."""
        deadline = time.monotonic() + timeout
        while True:
            resource = self.get(path)
            status = resource.get("status") or "UNKNOWN"
            on_status(status)
            if status in FINAL_STATUSES:
                return resource
            if time.monotonic() > deadline:
                raise DispatchClientError(f"gave up waiting after {timeout:.0f}s: {path} is still {status}")
            time.sleep(interval)

    def _headers(self, anonymous: bool) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if anonymous:
            return headers
        headers["X-Dispatch-Org"] = self.organization or ""
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        else:
            headers["Cookie"] = self.cookie or "unset"
        return headers

    def _unreachable(self, reason: object) -> DispatchClientError:
        if isinstance(reason, ConnectionRefusedError):
            return DispatchClientError(
                f"cannot connect to the Dispatch server at {self.base_url} (connection refused); "
                "is it running? Start a local one with `dispatch server`"
            )
        if isinstance(reason, TimeoutError):
            return DispatchClientError(f"the Dispatch server at {self.base_url} did not answer in time")
        return DispatchClientError(f"cannot reach the Dispatch server at {self.base_url}: {reason}")


def _error_from_body(status: int, reason: str, payload: bytes) -> DispatchClientError:
    try:
        body = json.loads(payload)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        code = body.get("code")
        return DispatchClientError(str(body["message"]), code if isinstance(code, int) else status)
    text = payload.decode(errors="replace").strip()
    return DispatchClientError(text or reason or "request failed", status)
