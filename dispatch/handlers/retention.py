"""Run retention (`run_retention`): finished runs last modified longer ago than the retention are
dropped from the read models, at start and periodically. The event log keeps them, and a rebuild
of the read models drops them again. Every process given the setting prunes: a delete by age is
the same whoever runs it, and twice is once."""
import asyncio
import time

import structlog

from dispatch.store.ports import Views

log = structlog.get_logger("dispatch.retention")
PRUNE_SECONDS = 600.0


def interval(retention: float) -> float:
    """How often to prune: every ten minutes, or more often for a short retention."""
    return max(1.0, min(PRUNE_SECONDS, retention / 4))


async def prune_once(views: Views, retention: float) -> int:
    dropped = await views.prune_runs(int(time.time() - retention))
    if dropped:
        log.info("runs past retention dropped from the read models", runs=dropped, retention_seconds=retention)
    return dropped


async def prune_forever(views: Views, retention: float) -> None:
    while True:
        try:
            await prune_once(views, retention)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the store is away: next time
            log.warning("run retention: pruning failed", error=str(error))
        await asyncio.sleep(interval(retention))
