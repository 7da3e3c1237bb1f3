"""A meeting point on 127.0.0.1 for the runs of a test's function, so a test shows which runs were
under way at the same time by what they saw, not by how long they took.

A run arrives by calling `meet(address, label)` (Python, also `meet_async`; Node.js `meet`, a
promise; Java `Rendezvous.meet`, of a class added after the function's): it connects, names
itself, and is held until it may go, then gets the number of runs that had arrived by then. Runs
may go once `quorum` runs have arrived, or, with no quorum, once the test calls open(). Holding is
bounded (HOLD_SECONDS): a runtime that runs them one after another does not hang the test, its
runs come back with a count short of the quorum, and once one run has given up waiting the later
ones go at once. Workers of another user and containers on the host's network reach 127.0.0.1
alike; neither sees the test's files, hence a socket rather than a folder.
"""
import asyncio
import textwrap

HOLD_SECONDS = 30.0

PYTHON = '''\
import asyncio as _asyncio, socket as _socket


def meet(address, label):
    """Arrive at the test's rendezvous as `label`; when let go, how many runs had arrived."""
    with _socket.create_connection(tuple(address), timeout=120) as connection:
        connection.sendall(f"{label}\\n".encode())
        return int(connection.makefile().readline())


async def meet_async(address, label):
    reader, writer = await _asyncio.open_connection(*address)
    writer.write(f"{label}\\n".encode())
    answer = int(await reader.readline())
    writer.close()
    return answer

'''

NODEJS = '''\
const meet = (address, label) => new Promise((resolve, reject) => {
  const connection = require('net').connect(address[1], address[0], () => connection.write(`${label}\\n`));
  let answer = '';
  connection.on('data', (chunk) => { answer += chunk; });
  connection.on('end', () => resolve(parseInt(answer, 10)));
  connection.on('error', reject);
});

'''


JAVA = '''

final class Rendezvous {
    static int meet(Object address, String label) {
        java.util.List<?> at = (java.util.List<?>) address;
        try (java.net.Socket connection = new java.net.Socket((String) at.get(0), ((Number) at.get(1)).intValue())) {
            connection.getOutputStream().write((label + "\\n").getBytes(java.nio.charset.StandardCharsets.UTF_8));
            java.io.BufferedReader answer = new java.io.BufferedReader(new java.io.InputStreamReader(
                    connection.getInputStream(), java.nio.charset.StandardCharsets.UTF_8));
            return Integer.parseInt(answer.readLine().trim());
        } catch (java.io.IOException failed) {
            throw new java.io.UncheckedIOException(failed);
        }
    }
}
'''


def source(language: str, code: str) -> str:
    """The function `code` (indented as in a test) with `meet` defined before it (in Java, after it:
    a package or import statement comes first)."""
    if language == "java":
        return textwrap.dedent(code) + JAVA
    return {"python3": PYTHON, "nodejs": NODEJS}[language] + textwrap.dedent(code)


class Rendezvous:
    """Use as `async with Rendezvous(quorum) as rendezvous:`; pass `rendezvous.address` to the runs."""

    def __init__(self, quorum: int | None = None):
        self.quorum = quorum
        self.arrivals: list[str] = []
        self.most_at_once = 0  # the most runs arrived and not yet let go, at any moment
        self.address: list = []
        self._present = 0
        self._open = False
        self._gave_up = False
        self._news = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> "Rendezvous":
        self._server = await asyncio.start_server(self._meet, "127.0.0.1", 0)
        self.address = ["127.0.0.1", self._server.sockets[0].getsockname()[1]]
        return self

    async def __aexit__(self, *exc_info) -> None:
        self.open()
        self._server.close()
        await self._server.wait_closed()

    def open(self) -> None:
        """Let every run held now, and every later one, go."""
        self._open = True
        self._announce()

    async def arrived(self, count: int, seconds: float = HOLD_SECONDS) -> bool:
        """Whether `count` runs arrive (waiting up to `seconds` for them)."""
        return await self._until(lambda: len(self.arrivals) >= count, seconds)

    async def _meet(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        label = (await reader.readline()).decode().strip()
        self.arrivals.append(label)
        self._present += 1
        self.most_at_once = max(self.most_at_once, self._present)
        self._announce()
        if not await self._until(self._may_go, HOLD_SECONDS):
            self._gave_up = True
            self._announce()
        self._present -= 1  # before the answer leaves, so whatever the run does next comes after
        writer.write(f"{len(self.arrivals)}\n".encode())
        try:
            await writer.drain()
        finally:
            writer.close()

    def _may_go(self) -> bool:
        return self._open or self._gave_up or (self.quorum is not None and len(self.arrivals) >= self.quorum)

    def _announce(self) -> None:
        self._news.set()
        self._news = asyncio.Event()

    async def _until(self, ready, seconds: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not ready():
            try:
                await asyncio.wait_for(self._news.wait(), max(deadline - loop.time(), 0))
            except TimeoutError:
                return ready()
        return True
