"""What keeps a container in its box: the HostConfig and user every function container gets.

A function runs as FUNCTION_USER, a uid of no account, on a read-only root filesystem with a
private /tmp (tmpfs, capped) as its only writable place, with every capability dropped,
no-new-privileges, the engine's default seccomp profile (it is never turned off), a cap on its
processes and threads (the pids cgroup), its memory with no swap on top, its CPU share, private
PID, IPC, UTS and cgroup namespaces, and nothing of the host mounted: no engine socket, no host
path. The network is the runtime's network mode: `host` shares the host's network namespace (for
engines without a bridge network; see containers.py).

Custom event drivers run third-party images written to run as their image's user and to write
where they like: they keep those, and get the rest (see events/docker.py).
"""
FUNCTION_USER = "65532:65532"
"""Numeric, so no image needs an account for it: `id -u` in a function says 65532."""
TMP = "/tmp"
HOME = TMP
"""Where HOME points: libraries that keep caches under ~ find a writable place."""


def locked_down(processes: int | None) -> dict:
    """What every container of the platform gets, functions and event drivers alike."""
    host_config: dict = {
        "Init": True,
        "CapDrop": ["ALL"],
        "SecurityOpt": ["no-new-privileges"],
        "Privileged": False,
        "IpcMode": "private",
        # The engine's default on cgroup v2, not on v1: a function sees its own cgroup only.
        "CgroupnsMode": "private",
    }
    if processes:
        host_config["PidsLimit"] = processes
    return host_config


def function_host_config(memory_mb: int | None, cpus: float | None, processes: int | None,
                         tmp_mb: int) -> dict:
    """A function container's HostConfig, network settings aside."""
    host_config = locked_down(processes)
    host_config.update({
        "ReadonlyRootfs": True,
        # exec, unlike the engine's default for a tmpfs: a function may unpack a tool there and run it,
        # as on the other runtimes; noexec would not stop code the function runs itself.
        "Tmpfs": {TMP: f"rw,exec,nosuid,nodev,size={tmp_mb}m,mode=1777"},
        "ShmSize": tmp_mb * 1024 * 1024,
    })
    if memory_mb:
        # Swap as large as the memory: no swap at all, so the limit is the limit.
        host_config["Memory"] = host_config["MemorySwap"] = memory_mb * 1024 * 1024
    if cpus:
        host_config["NanoCpus"] = int(cpus * 1_000_000_000)
    return host_config
