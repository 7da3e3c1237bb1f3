"""The baseline: the same no-op function, called in-process by a bare aiohttp handler."""
import sys

from aiohttp import web


def handle(ctx, payload):
    return payload


async def run(request: web.Request) -> web.Response:
    body = await request.json()
    return web.json_response({"output": handle({}, body.get("input"))})


if __name__ == "__main__":
    app = web.Application()
    app.router.add_post("/v1/runs", run)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
