from words import salute


def handle(context, payload):
    user = context.get("secrets", {}).get("user", "nobody")
    return {"greeting": salute(payload["name"]), "caller": user}
