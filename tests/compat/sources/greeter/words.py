def salute(name):
    return "Good morning, %s" % name
