"""The key that seals secrets: made once per data directory, whoever starts first."""
import multiprocessing
import stat
from pathlib import Path

from dispatch.store.sealing import SecretBox

STARTERS = 16


def _seal(folder: str, barrier, queue) -> None:
    barrier.wait()  # all at once, as a gateway and handler processes sharing a data directory do
    queue.put(SecretBox.from_file(Path(folder) / "secret.key").seal({"k": "v"}))


def test_processes_starting_together_share_one_whole_key(tmp_path):
    for attempt in range(5):
        folder = tmp_path / str(attempt)
        context = multiprocessing.get_context("fork")
        barrier, queue = context.Barrier(STARTERS), context.Queue()
        starters = [context.Process(target=_seal, args=(str(folder), barrier, queue)) for _ in range(STARTERS)]
        for process in starters:
            process.start()
        for process in starters:
            process.join(30)
        assert [process.exitcode for process in starters] == [0] * STARTERS
        box = SecretBox.from_file(folder / "secret.key")
        assert [box.open(queue.get(timeout=5)) for _ in starters] == [{"k": "v"}] * STARTERS  # one key for all
        assert stat.S_IMODE((folder / "secret.key").stat().st_mode) == 0o600
        assert [path.name for path in folder.iterdir()] == ["secret.key"]
