"""A hostile function for tests/contract/test_containment.py: payload["attack"] names what it tries."""
import os
import signal
import subprocess
import sys
import time


def handle(context, payload):
    return ATTACKS[payload["attack"]](payload)


def read(path, limit=1 << 16):
    try:
        with open(path, "rb") as opened:
            return opened.read(limit).decode("utf-8", "replace")
    except OSError:
        return None


def listing(folder):
    try:
        return sorted(os.listdir(folder))
    except OSError:
        return None


def attempt(action):
    try:
        action()
        return "done"
    except OSError:
        return "refused"


def secrets(payload):
    return {"files": {path: read(path) for path in payload["paths"]},
            "folders": {folder: listing(folder) for folder in payload["folders"]}}


def pids():
    return [int(entry) for entry in listing("/proc") or () if entry.isdigit()]


def peek(payload):
    """Another function's source by its path and through /proc/PID/cwd, and its notes in /tmp and /dev/shm."""
    found = []
    places = ["/tmp/victim.txt", "/dev/shm/victim.txt"]
    places += [f"/proc/{pid}/cwd/victim.py" for pid in pids()] + [f"/proc/{pid}/root/tmp/victim.txt" for pid in pids()]
    for place in places:
        text = read(place)
        if text and (payload["marker"] in text or "victim.txt" in text):
            found.append(place)
    return {"source": read(payload["source"]), "found": found}


def neighbours(payload):
    everyone = pids()
    return {
        "cmdlines": [(read(f"/proc/{pid}/cmdline") or "").replace("\0", " ") for pid in everyone],
        "environ": [pid for pid in everyone if payload["marker"] in (read(f"/proc/{pid}/environ") or "")],
        "init": read("/proc/1/cmdline"),
        "server environ": read(f"/proc/{payload['server']}/environ"),
        "signal server": attempt(lambda: os.kill(payload["server"], signal.SIGTERM)),
        "signal victim": attempt(lambda: os.kill(payload["victim"], signal.SIGKILL)),
    }


def kill_everything(payload):
    os.kill(-1, signal.SIGKILL)
    return "still here"


def who(payload):
    return {"identity": [os.getpid(), os.stat("/proc/self/ns/pid").st_ino]}


def linger(payload):
    """A child in a session of its own, and a double-forked grandchild: neither in the worker's group."""
    subprocess.Popen(["sleep", payload["seconds"]], start_new_session=True)
    middle = os.fork()
    if middle == 0:
        os.setsid()
        if os.fork() == 0:
            os.execvp("sleep", ["sleep", payload["seconds"]])
        os._exit(0)
    os.waitpid(middle, 0)
    return "started"


def fork_bomb(payload):
    while True:
        os.fork()


def burn(payload):
    while True:
        pass


def hog(payload):
    return len([bytearray(1 << 20) for _ in range(1024)])


def huge(payload):
    return "x" * (payload["megabytes"] << 20)


def raw_answer(payload):
    """Past the function server: one endless line on its response pipe."""
    chunk = b"x" * (1 << 20)
    for _ in range(payload["megabytes"]):
        os.write(4, chunk)
    return "written"


def chatter(payload):
    end = time.monotonic() + payload["seconds"]
    lines = 0
    while time.monotonic() < end:
        print("x" * 100)
        lines += 1
    return lines


def write(payload):
    places = [*payload["paths"], os.path.join(os.getcwd(), "x"), os.path.abspath(__file__), "/x", "/usr/x", "/etc/x",
              "/var/tmp/x", os.path.join(os.path.dirname(sys.executable), "x"), "/tmp/x", "/dev/shm/x"]
    outcome = {}
    for place in places:
        try:
            with open(place, "a") as written:
                written.write("x")
            outcome[place] = "written"
        except OSError:
            outcome[place] = "refused"
    return outcome


ATTACKS = {"read": secrets, "peek": peek, "neighbours": neighbours, "kill everything": kill_everything, "who": who,
           "linger": linger, "fork bomb": fork_bomb, "burn": burn, "hog": hog, "huge": huge,
           "raw answer": raw_answer, "chatter": chatter, "write": write}
