def handle(context, payload):
    raise ValueError("the compat function fails on purpose")
