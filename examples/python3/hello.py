def handle(ctx, payload):
    name = "Noone"
    place = "Nowhere"
    if payload:
        name = payload.get("name", name)
        place = payload.get("place", place)
    print("greeting %s" % name)
    return {"myField": "Hello, %s from %s" % (name, place)}
