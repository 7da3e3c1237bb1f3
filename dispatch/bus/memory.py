"""The embedded bus: real delivery semantics (retries with back-off, dead letters, idempotency by
message id, bounded concurrency per consumer) inside one process."""
import asyncio
import time
import traceback
from collections import OrderedDict
from typing import Any, Callable

import structlog

from dispatch.errors import DispatchError, Unavailable
from dispatch.schemas.envelope import Command, Event, Message, decode_envelope

from .ports import AnswerFirst, DeadLetter, Handler

log = structlog.get_logger("dispatch.bus")


class _Consumer:
    def __init__(self, name: str, handler: Handler, prefetch: int, remembered: int = 10_000):
        self.name = name
        self.handler = handler
        self.slots = asyncio.Semaphore(prefetch)
        self.seen: OrderedDict[str, asyncio.Future] = OrderedDict()
        self.remembered = remembered

    def first_delivery(self, message_id: str) -> asyncio.Future | None:
        """None the first time a message id is seen; afterwards the first delivery's outcome."""
        if message_id in self.seen:
            return self.seen[message_id]
        self.seen[message_id] = asyncio.get_running_loop().create_future()
        if len(self.seen) > self.remembered:
            self.seen.popitem(last=False)
        return None


class InMemoryBus:
    durable = False  # a sent command lives in this process only

    def __init__(self, max_attempts: int = 5, retry_delay: float = 0.05, prefetch: int = 256):
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.prefetch = prefetch
        self._commands: dict[str, _Consumer] = {}
        self._groups: dict[str, dict[str, _Consumer]] = {}
        self._dead: list[DeadLetter] = []
        self._tasks: set[asyncio.Task] = set()
        self._closed = False
        self.dead_lettered: list[Callable[[str], None]] = []
        """Called with the kind, command or event, of each message sent to the dead letters."""

    def handle(self, command_type: type[Command], handler: Handler) -> None:
        name = command_type.type_name()
        if name in self._commands:
            raise ValueError(f"{name} already has a handler")
        self._commands[name] = _Consumer(name, handler, self.prefetch)

    def subscribe(self, event_type: type[Event], group: str, handler: Handler, per_process: bool = False) -> None:
        name = event_type.type_name()
        self._groups.setdefault(name, {})[group] = _Consumer(f"{group}.{name}", handler, self.prefetch)

    def ingest(self, command) -> None:
        """Nothing outside this process can publish to it: events arrive as EmitEvent commands."""

    async def start(self) -> None:
        self._closed = False

    def reachable(self) -> bool:
        return not self._closed

    async def send(self, command: Command) -> None:
        self._spawn(self._deliver(self._command_consumer(command), command))

    async def request(self, command: Command, timeout: float) -> Any:
        # The handler runs in a task of its own: a caller that stops waiting (a timeout, a client
        # gone) leaves the command to finish, as on a broker.
        loop = asyncio.get_running_loop()
        answered = loop.create_future()
        self._spawn(self._deliver(self._command_consumer(command), command, answered))
        timer = loop.call_later(timeout, _settle, answered, None, asyncio.TimeoutError())
        try:
            return await answered
        finally:
            timer.cancel()

    async def publish(self, event: Event) -> None:
        for consumer in self._groups.get(event.type_name(), {}).values():
            self._spawn(self._deliver(consumer, event))

    async def dead_letters(self) -> list[DeadLetter]:
        return list(self._dead)

    async def replay(self, message_id: str) -> bool:
        letter = next((d for d in self._dead if d.message_id == message_id), None)
        if letter is None:
            return False
        self._dead.remove(letter)
        message = decode_envelope(letter.envelope)
        consumers = [self._commands.get(letter.type)] if isinstance(message, Command) else [
            c for c in self._groups.get(letter.type, {}).values() if c.name == letter.consumer]
        for consumer in filter(None, consumers):
            consumer.seen.pop(message.message_id, None)
            self._spawn(self._deliver(consumer, message))
        return True

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _command_consumer(self, command: Command) -> _Consumer:
        consumer = self._commands.get(command.type_name())
        if consumer is None:
            self._dead_letter(command, "-", f"no handler for {command.type_name()}", 0)
            raise Unavailable(f"no handler for {command.type_name()}")
        return consumer

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_swallow)

    async def _deliver(self, consumer: _Consumer, message: Message, answered: asyncio.Future | None = None) -> Any:
        earlier = consumer.first_delivery(message.message_id)
        if earlier is not None:
            try:
                result = await earlier
            except BaseException as error:
                _settle(answered, error=error)
                raise
            _settle(answered, result)
            return result
        outcome = consumer.seen[message.message_id]
        started = time.perf_counter()

        def answer(reply: Any) -> None:
            _settle(outcome, reply)
            _settle(answered, reply)

        try:
            result = await self._attempt(consumer, message, answer)
        except BaseException as error:
            _settle(outcome, error=error)
            _settle(answered, error=error)
            _log_handled(consumer, message, started, error)
            raise
        answer(result)
        _log_handled(consumer, message, started, None)
        return result

    async def _attempt(self, consumer: _Consumer, message: Message, answer) -> Any:
        # Round-trip through the wire form so embedded handlers see exactly what a broker delivers.
        message = decode_envelope(message.envelope())
        for attempt in range(1, self.max_attempts + 1):
            try:
                async with consumer.slots:
                    result = await consumer.handler(message)
                    if isinstance(result, AnswerFirst):
                        answer(result.reply)
                        await result.then
                        return result.reply
                    return result
            except DispatchError:
                raise
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("handler failed", consumer=consumer.name, type=message.type_name(),
                            attempt=attempt, error=repr(error), correlation_id=message.correlation_id)
                if attempt == self.max_attempts or self._closed:
                    self._dead_letter(message, consumer.name, _describe(error), attempt)
                    raise Unavailable(f"{message.type_name()} failed after {attempt} attempts: {error}") from error
                await asyncio.sleep(self.retry_delay * 2 ** (attempt - 1))
                message.mark_repeated()

    def _dead_letter(self, message: Message, consumer: str, error: str, attempts: int) -> None:
        self._dead.append(DeadLetter(message.message_id, message.type_name(), consumer, error,
                                     attempts, message.envelope()))
        for listener in self.dead_lettered:
            listener("command" if isinstance(message, Command) else "event")


def _log_handled(consumer: _Consumer, message: Message, started: float, error: BaseException | None) -> None:
    """One line per command, carrying its correlation id; events are logged only when they fail."""
    if error is None and (not isinstance(message, Command) or message.logged_by_handler):
        return
    log.info("command" if isinstance(message, Command) else "event", type=message.type_name(),
             consumer=consumer.name, ms=round((time.perf_counter() - started) * 1000, 2),
             outcome="ok" if error is None else getattr(error, "message", repr(error)),
             correlation_id=message.correlation_id)


def _describe(error: Exception) -> str:
    return "".join(traceback.format_exception_only(type(error), error)).strip()


def _settle(future: asyncio.Future | None, result: Any = None, error: BaseException | None = None) -> None:
    """Resolve a future once; later outcomes of the same delivery change nothing."""
    if future is None or future.done():
        return
    if error is not None:
        future.set_exception(error)
        future.exception()  # retrieved: nobody may be waiting any more
    else:
        future.set_result(result)


def _swallow(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()
