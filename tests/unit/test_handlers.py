"""Handlers driven through bootstrap(): given commands, then the read models users see."""
import asyncio
from functools import partial

import pytest
import structlog.testing

from dispatch.errors import Conflict, NotFound, Rejected
from dispatch.handlers.bootstrap import bootstrap
from dispatch.handlers.claims import Executors
from dispatch.handlers.runs import execute_function
from dispatch.schemas import commands as c, events as e
from tests.fakes import InProcessRuntime

from .conftest import HELLO, settled, source_of

ORG = "o"


async def seed(platform, image_manifest: str = "", language: str = "python3"):
    await platform.write(c.CreateBaseImage(organization=ORG, name="py-base", resource={
        "name": "py-base", "dockerUrl": "python:3", "language": language}))
    await platform.write(c.CreateImage(organization=ORG, name="py", resource={
        "name": "py", "baseImageName": "py-base", "runtimeDependencies": {"manifest": image_manifest}}))


async def create_function(platform, name="hello", source=HELLO, handler="", **fields):
    return await platform.write(c.CreateFunction(organization=ORG, name=name, source=source_of({"hello.py": source}),
                                                 resource={"name": name, "image": "py", "handler": handler, **fields}))


async def execute(platform, function="hello", payload=None, blocking=True, **fields):
    run = {"name": f"run-{id(payload)}-{asyncio.get_running_loop().time()}", "functionName": function,
           "blocking": blocking, "input": payload, "secrets": [], **fields}
    return (await platform.bus.request(c.ExecuteFunction(organization=ORG, run=run), 10))["run"]


async def test_a_base_image_becomes_ready_when_its_runtime_answers(platform):
    await seed(platform)
    assert (await settled(platform, "BaseImage", "py-base"))["status"] == "READY"
    assert (await settled(platform, "Image", "py"))["dockerUrl"].startswith("fake://")


async def test_an_unsupported_language_puts_the_base_image_in_error_with_the_reason(platform):
    await seed(platform, language="cobol")
    base = await settled(platform, "BaseImage", "py-base")
    assert base["status"] == "ERROR" and "cobol is not supported" in base["reason"][0]
    image = await settled(platform, "Image", "py")
    assert image["status"] == "ERROR" and "base image py-base is in ERROR" in image["reason"][0]


async def test_an_image_needs_an_existing_base_image(platform):
    with pytest.raises(Rejected, match="Error fetching base image nope"):
        await platform.write(c.CreateImage(organization=ORG, name="i", resource={"name": "i", "baseImageName": "nope"}))


async def test_a_failed_dependency_install_shows_in_the_images_reason(platform):
    await seed(platform, image_manifest="no-such-package")
    image = await settled(platform, "Image", "py")
    assert image["status"] == "ERROR" and "no-such-package" in image["reason"][0]


async def test_a_function_created_before_its_image_is_ready_waits_then_becomes_ready(platform):
    await create_function(platform)  # no image at all yet: waits? no - the image does not exist
    assert (await settled(platform, "Function", "hello"))["reason"] == ["image py is not found"]
    await seed(platform)
    answer = await create_function(platform, name="later")
    assert answer["resource"]["status"] == "INITIALIZED"
    assert (await settled(platform, "Function", "later"))["status"] == "READY"


async def test_a_duplicate_name_is_a_conflict(platform):
    await seed(platform)
    await create_function(platform)
    with pytest.raises(Conflict, match="function hello already exists"):
        await create_function(platform)


async def test_a_bad_handler_makes_the_function_error_not_its_runs(platform):
    await seed(platform)
    await create_function(platform, source=b"def handle(only_one):\n    return 1\n")
    function = await settled(platform, "Function", "hello")
    assert function["status"] == "ERROR" and "Invalid function file or handler" in function["reason"][0]
    with pytest.raises(Conflict, match=r"function hello is not READY \(status ERROR: Invalid function file"):
        await execute(platform, payload={})


async def test_a_blocking_run_returns_and_records_its_output(platform):
    await seed(platform)
    await create_function(platform)
    await settled(platform, "Function", "hello")
    run = await execute(platform, payload={"name": "Jon", "place": "Winterfell"})
    assert run["status"] == "READY" and run["output"] == {"myField": "Hello, Jon from Winterfell"}
    assert run["finishedTime"] >= run["executedTime"] > 0
    await platform.projector.wait_for(await platform.store.last_position())
    assert [r["name"] for r in await platform.views.list_runs(ORG, "hello", None)] == [run["name"]]


async def test_a_run_record_keeps_integers_beyond_64_bits_and_any_text_exactly(platform):
    await seed(platform)
    await create_function(platform, source=b"def handle(c, p):\n    return {'twice': p['n'] * 2, 'text': p['text']}\n")
    await settled(platform, "Function", "hello")
    payload = {"n": 2**70 + 1, "text": "Daenerys \u00e9\u4e16 \u2603"}
    run = await execute(platform, payload=payload)
    await platform.projector.wait_for(await platform.store.last_position())
    recorded = await platform.views.get_run(ORG, run["name"])
    assert recorded["input"] == payload and type(recorded["input"]["n"]) is int
    assert recorded["output"] == {"twice": 2**71 + 2, "text": payload["text"]}


async def test_a_function_error_is_a_recorded_run_in_error(platform):
    await seed(platform)
    await create_function(platform, source=b"def handle(c, p):\n    raise RuntimeError('boom')\n")
    await settled(platform, "Function", "hello")
    run = await execute(platform, payload={})
    assert run["status"] == "ERROR" and run["error"]["type"] == "FunctionError"
    assert run["reason"] == ["error running function: hello: boom"]


async def test_input_failing_the_schema_is_an_input_error_and_the_function_is_not_called(platform):
    await seed(platform)
    await create_function(platform, source=b"def handle(c, p):\n    raise RuntimeError('called')\n",
                          schema={"in": {"type": "object", "required": ["name"]}})
    await settled(platform, "Function", "hello")
    run = await execute(platform, payload={})
    assert run["error"]["type"] == "InputError" and "Input invalid against schema" in run["error"]["message"]


async def test_exec_of_an_unknown_function_is_not_found(platform):
    with pytest.raises(NotFound, match="function ghost not found"):
        await execute(platform, function="ghost")


async def test_an_async_run_is_accepted_then_finishes(platform):
    await seed(platform)
    await create_function(platform)
    await settled(platform, "Function", "hello")
    run = await execute(platform, payload={"name": "A", "place": "B"}, blocking=False)
    assert run["status"] == "INITIALIZED"
    for _ in range(500):
        recorded = await platform.views.get_run(ORG, run["name"])
        if recorded and recorded["status"] == "READY":
            break
        await asyncio.sleep(0.01)
    assert recorded["output"] == {"myField": "Hello, A from B"}


async def finished_run(platform, name: str) -> dict:
    for _ in range(500):
        recorded = await platform.views.get_run(ORG, name)
        if recorded and recorded["status"] in ("READY", "ERROR"):
            return recorded
        await asyncio.sleep(0.01)
    raise AssertionError(f"run {name} never finished")


async def test_a_run_already_accepted_by_the_gateway_is_run_and_recorded_once(platform):
    await seed(platform)
    await create_function(platform)
    await settled(platform, "Function", "hello")
    run = {"name": "sent-1", "functionName": "hello", "blocking": False, "input": {"name": "A", "place": "B"}}
    await platform.bus.send(c.ExecuteFunction(organization=ORG, run=run, record_acceptance=False))
    recorded = await finished_run(platform, "sent-1")
    assert recorded["output"] == {"myField": "Hello, A from B"} and recorded["faasId"]
    assert [type(r.event) for r in await platform.store.read_stream(f"Run:{ORG}:sent-1")] == [e.RunFinished]


async def test_a_run_accepted_for_a_function_deleted_since_is_recorded_as_failed(platform):
    run = {"name": "sent-2", "functionName": "gone", "blocking": False, "input": {}}
    await platform.bus.send(c.ExecuteFunction(organization=ORG, run=run, record_acceptance=False))
    recorded = await finished_run(platform, "sent-2")
    assert recorded["status"] == "ERROR" and recorded["error"]["message"] == "function gone not found"
    assert recorded["reason"] == ["error running function: gone: function gone not found"]


async def test_an_updated_function_runs_its_new_code_at_once(platform):
    await seed(platform)
    await create_function(platform, source=b"def handle(c, p):\n    return 'v1'\n")
    await settled(platform, "Function", "hello")
    assert (await execute(platform, payload={}))["output"] == "v1"  # the READY function is now kept
    await platform.write(c.UpdateFunction(organization=ORG, name="hello", source=source_of(
        {"hello.py": b"def handle(c, p):\n    return 'v2'\n"}),
        resource={"name": "hello", "image": "py", "handler": ""}))
    await settled(platform, "Function", "hello")
    assert (await execute(platform, payload={}))["output"] == "v2"


async def test_secrets_reach_the_function_but_never_the_log_in_plain_text(platform):
    await seed(platform)
    sealed = platform.box.seal({"password": "open-sesame"})
    await platform.write(c.CreateSecret(organization=ORG, name="creds", resource={"name": "creds", "secrets": sealed}))
    await create_function(platform, source=b"def handle(c, p):\n    return c['secrets']['password'] == 'open-sesame'\n",
                          secrets=["creds"])
    await settled(platform, "Function", "hello")
    assert (await execute(platform, payload={}))["output"] is True
    logged = [r.event.model_dump_json() for r in await platform.store.read_all(0)]
    assert logged and not any("open-sesame" in text for text in logged)


async def test_deleting_a_function_deletes_its_runs(platform):
    await seed(platform)
    await create_function(platform)
    await settled(platform, "Function", "hello")
    await execute(platform, payload={"name": "a", "place": "b"})
    await platform.write(c.DeleteFunction(organization=ORG, name="hello"))
    for _ in range(500):
        if await platform.views.get_resource(ORG, "Function", "hello") is None:
            break
        await asyncio.sleep(0.01)
    assert await platform.views.get_resource(ORG, "Function", "hello") is None
    assert await platform.views.list_runs(ORG, "hello", None) == []


async def gone(platform, kind: str, name: str) -> bool:
    for _ in range(500):
        if await platform.views.get_resource(ORG, kind, name) is None:
            return True
        await asyncio.sleep(0.01)
    return False


async def test_deleting_an_image_leaves_the_functions_on_it_running_until_they_go(platform):
    await seed(platform)
    await create_function(platform)
    build = (await settled(platform, "Image", "py"))["dockerUrl"].removeprefix("fake://")
    await settled(platform, "Function", "hello")

    deleting = await platform.write(c.DeleteImage(organization=ORG, name="py"))
    assert deleting["resource"]["status"] == "DELETING"
    await platform.write(c.DeleteBaseImage(organization=ORG, name="py-base"))
    assert await gone(platform, "Image", "py") and await gone(platform, "BaseImage", "py-base")
    assert (await execute(platform, payload={"name": "a", "place": "b"}))["output"] == {"myField": "Hello, a from b"}
    assert build in platform.runtime.images  # the function still runs on it

    await platform.write(c.DeleteFunction(organization=ORG, name="hello"))
    assert await gone(platform, "Function", "hello")
    assert build not in platform.runtime.images


async def test_an_image_used_by_no_function_is_removed_with_its_build(platform):
    await seed(platform)
    build = (await settled(platform, "Image", "py"))["dockerUrl"].removeprefix("fake://")
    await platform.write(c.DeleteImage(organization=ORG, name="py"))
    assert await gone(platform, "Image", "py")
    assert build not in platform.runtime.images


async def test_a_function_whose_image_was_deleted_runs_again_after_a_restart(settings):
    first = bootstrap(settings, runtime=InProcessRuntime())
    await first.start()
    await seed(first)
    await create_function(first)
    await settled(first, "Function", "hello")
    await first.write(c.DeleteImage(organization=ORG, name="py"))
    assert await gone(first, "Image", "py")
    await first.close()

    second = bootstrap(settings, runtime=InProcessRuntime())
    await second.start()
    try:
        assert (await execute(second, payload={"name": "c", "place": "d"}))["output"] == {"myField": "Hello, c from d"}
        public = await second.views.get_resource(ORG, "Function", "hello")
        assert public["status"] == "READY"
    finally:
        await second.close()


async def test_after_a_restart_functions_run_again_without_being_recreated(settings):
    first = bootstrap(settings, runtime=InProcessRuntime())
    await first.start()
    await seed(first)
    await create_function(first)
    await settled(first, "Function", "hello")
    before = await execute(first, payload={"name": "a", "place": "b"})
    await first.close()

    runtime = InProcessRuntime()
    second = bootstrap(settings, runtime=runtime)
    await second.start()
    try:
        assert (await second.views.get_resource(ORG, "Function", "hello"))["status"] == "READY"
        after = await execute(second, payload={"name": "c", "place": "d"})
        assert after["output"] == {"myField": "Hello, c from d"}
        await second.projector.wait_for(await second.store.last_position())
        names = {r["name"] for r in await second.views.list_runs(ORG, "hello", None)}
        assert names == {before["name"], after["name"]}
    finally:
        await second.close()


async def test_rebuilt_views_equal_the_live_ones(platform):
    await seed(platform)
    await create_function(platform)
    await settled(platform, "Function", "hello")
    await execute(platform, payload={"name": "a", "place": "b"})
    await platform.projector.wait_for(await platform.store.last_position())
    live = await platform.views.dump()
    await platform.projector.rebuild()
    assert await platform.views.dump() == live


async def create_api(platform, org: str, name: str, **fields):
    body = {"name": name, "function": "hello", "enabled": True, "methods": ["POST"], "uris": ["/hello"], **fields}
    return await platform.write(c.CreateAPI(organization=org, name=name, resource=body))


async def test_an_api_cannot_take_over_a_route_another_organization_serves(platform):
    """Nor squat another organization's `/<org>/` paths, nor the default organization's unprefixed ones."""
    await create_api(platform, ORG, "first")
    await create_api(platform, ORG, "second")  # one organization's APIs may share routes, as in Dispatch
    with pytest.raises(Conflict, match="already served by an api of another organization"):
        await create_api(platform, "evil", "thief", hosts=["127.0.0.1"], uris=[f"/{ORG}/hello"])
    await platform.write(c.CreateOrganization(organization=ORG, name=ORG, resource={"name": ORG}))
    with pytest.raises(Rejected, match=f"paths under /{ORG}/ belong to organization {ORG}"):
        await create_api(platform, "evil", "squatter", hosts=["example.com"], uris=[f"/{ORG}/later"])
    await create_api(platform, ORG, "other-method", methods=["GET"])
    await create_api(platform, "elsewhere", "same-path")  # prefixed with its own organization


async def test_the_default_organizations_unprefixed_paths_are_its_own(settings):
    platform = bootstrap(settings.model_copy(update={"default_organization": ORG}), runtime=InProcessRuntime())
    await platform.start()
    try:
        await create_api(platform, ORG, "hello")  # answers /o/hello and, as the default organization's, /hello
        with pytest.raises(Conflict, match="another organization"):
            await create_api(platform, "evil", "thief", hosts=["127.0.0.1"], uris=["/hello"])
        await create_api(platform, "evil", "elsewhere", hosts=["127.0.0.1"], uris=["/goodbye"])
    finally:
        await platform.close()


async def test_a_redelivered_run_command_answers_with_the_first_recorded_run(platform):
    await seed(platform)
    await create_function(platform)
    await settled(platform, "Function", "hello")
    run = {"name": "redelivered", "functionName": "hello", "blocking": True,
           "input": {"name": "a", "place": "b"}, "secrets": []}
    first = await platform.bus.request(c.ExecuteFunction(organization=ORG, run=run), 10)
    again = await platform.bus.request(c.ExecuteFunction(organization=ORG, run=run), 10)  # a new message id
    assert again["run"] == first["run"] and again["position"] == first["position"]


async def test_a_repeated_delivery_of_a_finished_run_does_not_run_the_function_again(platform, tmp_path):
    await seed(platform)
    calls = tmp_path / "calls"
    await create_function(platform, source=b"def handle(c, p):\n    open(p['calls'], 'a').write('x')\n    return 1\n")
    await settled(platform, "Function", "hello")
    run = {"name": "once", "functionName": "hello", "blocking": False, "input": {"calls": str(calls)}}
    command = c.ExecuteFunction(organization=ORG, run=run, record_acceptance=False)
    executors = Executors(platform.store)
    first = await execute_function(command, events=platform.store, executor=platform.executor, executors=executors,
                                   claims=False)

    again = await execute_function(command.model_copy().mark_repeated(), events=platform.store,
                                   executor=platform.executor, executors=executors, claims=False)

    assert again == first and first["run"]["status"] == "READY"
    assert calls.read_text() == "x"


SLOW_COUNTER = b"""import time
def handle(c, p):
    open(p['calls'], 'a').write('x')
    time.sleep(p.get('sleep', 0))
    return len(open(p['calls']).read())
"""


@pytest.mark.parametrize("blocking", [True, False])
async def test_a_run_delivered_again_while_its_first_delivery_runs_it_runs_once(platform, tmp_path, blocking):
    """A durable bus delivers a command again when its connection drops (no crash): the first
    delivery still runs the function, and the second must not run it too."""
    await seed(platform)
    calls = tmp_path / "calls"
    await create_function(platform, source=SLOW_COUNTER)
    await settled(platform, "Function", "hello")
    run = {"name": "twice", "functionName": "hello", "blocking": blocking,
           "input": {"calls": str(calls), "sleep": 0.5}}
    command = c.ExecuteFunction(organization=ORG, run=run, record_acceptance=False)
    executors = Executors(platform.store)
    deliver = partial(execute_function, events=platform.store, executor=platform.executor, executors=executors,
                      claims=True)

    first = asyncio.ensure_future(deliver(command))
    await asyncio.sleep(0.1)
    second = await deliver(command.model_copy().mark_repeated())
    first = await first

    assert calls.read_text() == "x"
    assert first["run"]["status"] == "READY" and first["run"]["output"] == 1
    if blocking:  # the second caller gets the outcome, not the run in progress
        assert second["run"]["status"] == "READY" and second["run"]["output"] == 1


async def test_a_run_whose_executor_died_is_taken_over_as_its_next_attempt(platform, tmp_path):
    await seed(platform)
    calls = tmp_path / "calls"
    await create_function(platform, source=SLOW_COUNTER)
    function = await settled(platform, "Function", "hello")
    run = {"name": "orphan", "functionName": "hello", "blocking": True, "input": {"calls": str(calls)},
           "faasId": function["faasId"], "functionId": function["id"]}
    gone = {**run, "status": "CREATING", "executor": "an-instance-that-died", "attempt": 1}
    await platform.store.append("Run:o:orphan", 0, [e.RunAccepted(organization=ORG, run=gone)])

    answer = await execute_function(c.ExecuteFunction(organization=ORG, run=run).mark_repeated(),
                                    events=platform.store, executor=platform.executor,
                                    executors=Executors(platform.store), claims=True)

    assert answer["run"]["status"] == "READY" and answer["run"]["attempt"] == 2 and calls.read_text() == "x"
    history = [r.event.run for r in await platform.store.read_stream("Run:o:orphan")]
    assert [h["attempt"] for h in history] == [1, 2, 2] and history[0]["executor"] != history[1]["executor"]


async def test_a_run_accepted_before_a_crash_is_finished_after_the_restart(settings):
    first = bootstrap(settings, runtime=InProcessRuntime())
    await first.start()
    await seed(first)
    await create_function(first)
    await settled(first, "Function", "hello")
    function = await first.views.get_resource(ORG, "Function", "hello")
    accepted = {"name": "interrupted", "functionName": "hello", "blocking": False, "status": "INITIALIZED",
                "input": {"name": "a", "place": "b"}, "secrets": [], "faasId": function["faasId"],
                "functionId": function["id"], "modifiedTime": 1}
    await first.store.append("Run:o:interrupted", 0, [e.RunAccepted(organization=ORG, run=accepted)])
    await first.close()  # the process stops before it runs it

    second = bootstrap(settings, runtime=InProcessRuntime())
    await second.start()
    try:
        for _ in range(500):
            run = await second.views.get_run(ORG, "interrupted")
            if run["status"] == "READY":
                break
            await asyncio.sleep(0.01)
        assert run["status"] == "READY" and run["output"] == {"myField": "Hello, a from b"}
    finally:
        await second.close()


async def test_a_run_is_logged_in_one_line_and_a_create_in_its_command_line(platform):
    await seed(platform)
    with structlog.testing.capture_logs() as logged:
        await create_function(platform)
        await settled(platform, "Function", "hello")
        run = await execute(platform, payload={"name": "A", "place": "B"})
    runs = [line for line in logged if line["event"] == "run"]
    commands = [line.get("type") for line in logged if line["event"] == "command"]
    assert [(line["run"], line["status"]) for line in runs] == [(run["name"], "READY")]
    assert "CreateFunction" in commands and "ExecuteFunction" not in commands


class GatedRuntime(InProcessRuntime):
    """Runs hold until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def invoke(self, faas_id, context, payload, timeout_ms):
        await self.gate.wait()
        return await super().invoke(faas_id, context, payload, timeout_ms)


async def test_a_blocking_run_still_running_after_a_second_can_be_followed_then_is_recorded_finished(
        settings, monkeypatch):
    monkeypatch.setattr("dispatch.handlers.runs.SLOW_RUN_SECONDS", 0.05)
    runtime = GatedRuntime()
    platform = bootstrap(settings, runtime=runtime)
    await platform.start()
    try:
        await seed(platform)
        await create_function(platform)
        await settled(platform, "Function", "hello")
        waiting = asyncio.ensure_future(execute(platform, payload={"name": "A", "place": "B"}))
        following = None
        for _ in range(500):
            following = next(iter(await platform.views.list_runs(ORG, "hello", None)), None)
            if following:
                break
            await asyncio.sleep(0.01)
        assert following and following["status"] == "CREATING" and not waiting.done()
        runtime.gate.set()
        run = await waiting
        assert run["status"] == "READY" and run["output"] == {"myField": "Hello, A from B"}
        recorded = await platform.store.read_stream(f"Run:{ORG}:{run['name']}")
        assert [type(r.event).__name__ for r in recorded] == ["RunAccepted", "RunFinished"]
        assert (await platform.views.get_run(ORG, run["name"]))["status"] == "READY"
    finally:
        runtime.gate.set()
        await platform.close()


async def test_a_quick_blocking_run_is_recorded_once_finished(platform):
    await seed(platform)
    await create_function(platform)
    await settled(platform, "Function", "hello")
    run = await execute(platform, payload={"name": "A", "place": "B"})
    recorded = await platform.store.read_stream(f"Run:{ORG}:{run['name']}")
    assert [type(r.event).__name__ for r in recorded] == ["RunFinished"]
