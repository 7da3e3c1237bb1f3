def handle(ctx, payload):
    """Prove the secret arrived without ever returning it."""
    password = ctx["secrets"].get("password", "")
    return {"message": "The password has %d characters" % len(password), "keys": sorted(ctx["secrets"])}
