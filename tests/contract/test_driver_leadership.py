"""What the drivers group asks of PostgreSQL leadership beyond the relay's: a lead given back is
taken by another process at once, and a session that went silent stops leading on this side."""
import asyncio

import pytest

from .test_store import Database, behind_a_relay, database  # noqa: F401  (fixture)

pytestmark = pytest.mark.postgres


async def test_a_lead_given_back_is_taken_by_another_process_at_once(database: Database):
    leader, other = await database.open(), await database.open()
    assert await leader.try_lead("driver:1") and await leader.try_lead("driver:2")
    assert not await other.try_lead("driver:1")
    await leader.resign("driver:1")
    assert not leader.leads("driver:1") and leader.leads("driver:2")
    assert await other.try_lead("driver:1") and not await other.try_lead("driver:2")


async def test_a_leader_whose_session_stops_answering_leads_nothing_once_checked(database: Database, outage):
    relay, leader = await behind_a_relay(database, outage)
    other = await database.open()
    assert await leader.try_lead("driver:1")
    await leader.check_leadership()
    assert leader.leads("driver:1")
    relay.stall()
    started = asyncio.get_running_loop().time()
    await leader.check_leadership()
    assert not leader.leads("driver:1") and asyncio.get_running_loop().time() - started < 3
    await relay.restore()  # the server sees the session end, as its keep-alives would tell it
    for _ in range(50):
        if await other.try_lead("driver:1"):
            break
        await asyncio.sleep(0.1)
    assert other.leads("driver:1")
