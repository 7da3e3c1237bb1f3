def handle(context, payload):
    print("hello was called")
    return {"hello": payload}
