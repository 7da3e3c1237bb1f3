"""Images on the engine: pull base images when missing, build images and function images from the
language templates, keep every build's log, remove what a runtime built."""
import inspect
import json
import re
import time
from collections import deque
from pathlib import Path
from typing import Any

import aiodocker

from dispatch.drivers.dockerfiles import context
from dispatch.drivers.ports import BuildFailed, Progress

__all__ = ["build", "context", "ensure_pulled", "exists", "remove", "with_labels"]

_LOG_TAIL_LINES = 20
_HANDLER_PROBLEM = "Invalid function file or handler"
_LAYER = re.compile(r" ---> ([0-9a-f]{12,64})")
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # the engine colours a step's stderr


async def ensure_pulled(docker: aiodocker.Docker, reference: str, progress: Progress | None = None) -> None:
    """Pull `reference` unless the engine has it already; raise BuildFailed with the registry's word."""
    if not reference:
        raise BuildFailed("the base image has no dockerUrl")
    try:
        await docker.images.inspect(reference)
        return
    except aiodocker.DockerError as exc:
        if exc.status != 404:
            raise BuildFailed(f"cannot inspect {reference}: {exc.message}") from None
    await _say(progress, f"pulling {reference}")
    try:
        async for chunk in docker.images.pull(reference, stream=True):
            if chunk.get("status") and not chunk.get("progressDetail"):
                await _say(progress, " ".join(str(chunk.get(key, "")) for key in ("id", "status")).strip())
    except aiodocker.DockerError as exc:
        raise BuildFailed(f"cannot pull {reference}: {exc.message}") from None


async def exists(docker: aiodocker.Docker, reference: str) -> bool:
    try:
        await docker.images.inspect(reference)
        return True
    except aiodocker.DockerError as exc:
        if exc.status == 404:
            return False
        raise


async def remove(docker: aiodocker.Docker, reference: str) -> None:
    """Untag and delete, best effort: an image still used by a child image or container keeps its layers."""
    try:
        await docker.images.delete(reference, force=True)
    except aiodocker.DockerError as exc:
        if exc.status not in (404, 409):
            raise


def with_labels(dockerfile: str, labels: dict[str, str]) -> str:
    """The Dockerfile with one last LABEL step: the engine's own `labels` parameter costs a step each."""
    pairs = " ".join(f"{key}={json.dumps(value).replace('$', chr(92) + '$')}" for key, value in labels.items())
    return f"{dockerfile.rstrip()}\nLABEL {pairs}\n"


async def build(docker: aiodocker.Docker, build_context: bytes, tag: str, buildargs: dict[str, str],
                log_path: Path, network_mode: str | None, progress: Progress | None = None) -> None:
    """Build and tag; every output line goes to `progress` and to `log_path`, kept after the build.
    Raise BuildFailed with the handler problem when the function template found one, else with the
    engine's error and the end of the log."""
    params: dict[str, Any] = {"t": tag, "rm": "1", "forcerm": "1", "buildargs": json.dumps(buildargs)}
    if network_mode:
        # RUN steps need the network of the containers (pip or apt downloads); an engine started
        # without its bridge has no other network to give them.
        params["networkmode"] = network_mode
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w", encoding="utf-8") as log:
        log.write(f"# {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} build of {tag}\n")
        output = _BuildOutput(log, progress)
        try:
            await _stream_build(docker, params, build_context, output)
        except aiodocker.DockerError as exc:
            output.error = output.error or exc.message
        if output.error:
            log.write(f"ERROR: {output.error}\n")
    if output.problem or output.error:
        await _remove_layers(docker, output.layers)
    if output.problem:
        raise BuildFailed(output.problem)
    if output.error:
        raise BuildFailed(f"{output.error}\n" + "\n".join(output.tail))


async def _remove_layers(docker: aiodocker.Docker, layers: list[str]) -> None:
    """A failed build's new steps stay behind as untagged images: remove them, newest first. One
    that another image builds on answers 409 and stays; one that got a tag meanwhile is not touched."""
    for layer in reversed(layers):
        try:
            if not (await docker.images.inspect(layer)).get("RepoTags"):
                await docker.images.delete(layer, noprune=True)
        except aiodocker.DockerError:
            pass


class _BuildOutput:
    def __init__(self, log, progress: Progress | None):
        self.log = log
        self.progress = progress
        self.tail: deque[str] = deque(maxlen=_LOG_TAIL_LINES)
        self.problem: str | None = None
        self.error: str | None = None
        self.layers: list[str] = []
        self._made_here = False

    async def line(self, line: str) -> None:
        line = _COLOUR.sub("", line)
        self.problem = self.problem or _handler_problem(line)
        # The FROM step names the base image and a cached step an older build's layer: neither is this build's.
        if line.startswith("Step "):
            self._made_here = " : FROM " not in line
        elif line == " ---> Using cache":
            self._made_here = False
        elif (step := _LAYER.fullmatch(line)) and self._made_here:
            self.layers.append(step.group(1))
        self.log.write(line + "\n")
        self.tail.append(line)
        await _say(self.progress, line)


async def _stream_build(docker: aiodocker.Docker, params: dict, build_context: bytes, output: _BuildOutput) -> None:
    # aiodocker's images.build() has no networkmode parameter: the request is made as it makes it.
    async with docker._query("build", "POST", params=params, data=build_context, timeout=None,
                             headers={"content-type": "application/x-tar"}) as response:
        buffer, text = b"", ""
        async for data in response.content.iter_any():
            *lines, buffer = (buffer + data).split(b"\n")
            for chunk in _chunks(lines):
                if "error" in chunk or "errorDetail" in chunk:
                    output.error = (chunk.get("errorDetail") or {}).get("message") or chunk.get("error")
                    continue
                text += chunk.get("stream", "")
                *complete, text = text.split("\n")
                for line in complete:
                    await output.line(line.rstrip("\r"))
        for chunk in _chunks([buffer]):
            text += chunk.get("stream", "")
        if text.strip():
            await output.line(text.rstrip("\r\n"))


def _chunks(lines: list[bytes]) -> list[dict]:
    """The engine sends one JSON object a line."""
    found = []
    for line in lines:
        if line.strip():
            try:
                found.append(json.loads(line))
            except ValueError:
                found.append({"stream": line.decode("utf-8", "replace") + "\n"})
    return found


def _handler_problem(line: str) -> str | None:
    """The function servers' --check prints the §3.6 error of a bad handler as one JSON line."""
    if _HANDLER_PROBLEM not in line:
        return None
    try:
        error = json.loads(line[line.index("{"):])
        return str(error["message"])
    except (ValueError, KeyError, TypeError):
        return line.strip()


async def _say(progress: Progress | None, line: str) -> None:
    if progress is not None:
        answer = progress(line)
        if inspect.isawaitable(answer):
            await answer
