"""A position that only grows, with waiters for it to reach a target."""
import asyncio


class Watermark:
    def __init__(self, value: int = 0):
        self.value = value
        self._waiters: list[tuple[int, asyncio.Future]] = []

    def advance(self, value: int) -> None:
        if value <= self.value:
            return
        self.value = value
        waiting = []
        for target, future in self._waiters:
            if target <= value:
                if not future.done():
                    future.set_result(None)
            else:
                waiting.append((target, future))
        self._waiters = waiting

    async def reach(self, target: int, timeout: float) -> None:
        """Return once the value is at least `target`; raise TimeoutError after `timeout`."""
        if self.value >= target:
            return
        entry = (target, asyncio.get_running_loop().create_future())
        self._waiters.append(entry)
        try:
            # asyncio.wait, not wait_for: wait_for can swallow a cancellation that arrives as the
            # future completes, which would keep a cancelled follower loop running.
            await asyncio.wait({entry[1]}, timeout=timeout)
            if not entry[1].done():
                raise asyncio.TimeoutError(f"position {target} not reached in {timeout}s")
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)
