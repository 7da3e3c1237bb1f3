def handle(ctx, payload):
    """Echo what the API gateway saw: the request's method, path, query and headers."""
    http = ctx.get("httpContext") or {}
    return {
        "method": http.get("method"),
        "uri": http.get("uri"),
        "args": http.get("args"),
        "userAgent": http.get("user-agent"),
        "payload": payload,
    }
