"""A recording reverse proxy: forwards every request unchanged to a Dispatch server and appends one
JSON line per exchange to --out (method, path, query, headers, body, and the answer).

    python -m tests.compat.capture --listen 9000 --to http://127.0.0.1:8800 --out traffic.jsonl
"""
import argparse
import base64
import json
from pathlib import Path

from aiohttp import ClientSession, ClientTimeout, web
from yarl import URL

# Framing is per connection: aiohttp sets these again for the hop it makes.
HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade"}
# aiohttp would add these when the client did not send them; the server must see what was sent.
NO_DEFAULTS = {"User-Agent", "Accept-Encoding", "Accept", "Content-Type"}
TARGET = web.AppKey("target", str)
OUT = web.AppKey("out", Path)
SESSION = web.AppKey("session", ClientSession)


def text_or_base64(data: bytes) -> dict:
    try:
        return {"body": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"body_base64": base64.b64encode(data).decode()}


async def forward(request: web.Request) -> web.Response:
    body = await request.read()
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP]
    url = URL(request.app[TARGET] + request.rel_url.raw_path_qs, encoded=True)
    async with request.app[SESSION].request(request.method, url, headers=headers, data=body or None,
                                            allow_redirects=False, skip_auto_headers=NO_DEFAULTS) as answer:
        answered = await answer.read()
        back = [(k, v) for k, v in answer.headers.items() if k.lower() not in HOP]
        status = answer.status
    record = {"method": request.method, "path": request.rel_url.raw_path, "query": request.rel_url.raw_query_string,
              "headers": [list(pair) for pair in request.headers.items()], **text_or_base64(body),
              "status": status, "response": text_or_base64(answered)}
    with request.app[OUT].open("a") as out:
        out.write(json.dumps(record) + "\n")
    return web.Response(status=status, body=answered, headers=back)


async def session_ctx(app: web.Application):
    async with ClientSession(auto_decompress=False, timeout=ClientTimeout(total=600)) as session:
        app[SESSION] = session
        yield


def create_app(target: str, out: Path) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[TARGET], app[OUT] = target.rstrip("/"), out
    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=int, required=True, help="port to listen on (127.0.0.1)")
    parser.add_argument("--to", required=True, help="the server, e.g. http://127.0.0.1:8800")
    parser.add_argument("--out", type=Path, required=True, help="JSON-lines file the exchanges are appended to")
    args = parser.parse_args()
    web.run_app(create_app(args.to, args.out), host="127.0.0.1", port=args.listen, print=None)


if __name__ == "__main__":
    main()
