import humanize


def handle(ctx, payload):
    """Uses a runtime dependency installed into the image (requirements.txt)."""
    return {"size": humanize.naturalsize(payload.get("bytes", 0))}
