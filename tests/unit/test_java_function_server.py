"""The Java function server's own promises, through the server process in HTTP mode: strict JSON
in and out, payloads converted to the types apply() takes and results back to JSON, errors typed
with their stack traces, and each call's output captured on its own."""
import json
import textwrap
import threading
from pathlib import Path

import pytest

from tests.unit.function_servers import Servers, compile_java, envelope, request

SOURCES = {
    "Echo": """
        public class Echo implements BiFunction<Map<String, Object>, Object, Object> {
            public Object apply(Map<String, Object> context, Object payload) {
                return payload;
            }
        }
        """,
    "Kinds": """
        public class Kinds implements BiFunction<Map<String, Object>, List<Object>, List<String>> {
            public List<String> apply(Map<String, Object> context, List<Object> payload) {
                List<String> kinds = new ArrayList<>();
                for (Object item : payload) {
                    kinds.add(item == null ? "null" : item.getClass().getSimpleName());
                }
                return kinds;
            }
        }
        """,
    "Orders": """
        public class Orders implements BiFunction<Map<String, Object>, Orders.Order, Orders.Receipt> {
            public enum Size { SMALL, LARGE }

            public record Address(String city, int zip) {
            }

            public static class Item {
                private String name;
                private int count = 1;
            }

            public class Order {
                private String customer;
                private int quantity;
                private long reference;
                private double price;
                private boolean rush;
                private char grade;
                private Size size;
                private int[] codes;
                private List<Item> items;
                private Map<String, Integer> tags;
                private Address address;
                private LocalDate due;
            }

            public class Stamped {
                private String stampedBy = "orders";
                private static final String IGNORED = "static";
            }

            public class Receipt extends Stamped {
                private final String customer;
                private final Object[] lines;
                private transient String secret = "hidden";
                private Optional<String> note = Optional.empty();
                private LocalDate day = LocalDate.of(2018, 4, 1);

                Receipt(String customer, Object[] lines) {
                    this.customer = customer;
                    this.lines = lines;
                }
            }

            public Receipt apply(Map<String, Object> context, Order order) {
                List<Object> lines = new ArrayList<>();
                String rush = order.rush ? " rush" : "";
                lines.add(order.quantity + " x " + order.price + rush + " ref " + order.reference);
                lines.add(order.grade);
                lines.add(order.size);
                lines.add(order.codes);
                for (Item item : order.items) {
                    lines.add(item.name + ":" + item.count);
                }
                lines.add(order.tags.get("gift") + 1);
                lines.add(order.address);
                lines.add(order.due.plusDays(1));
                return new Receipt(order.customer, lines.toArray());
            }
        }
        """,
    "Fails": """
        public class Fails implements BiFunction<Map<String, Object>, String, Object> {
            public Object apply(Map<String, Object> context, String kind) {
                switch (kind) {
                    case "argument": throw new IllegalArgumentException("name is required");
                    case "cast": return (String) (Object) Integer.valueOf(42);
                    case "state":
                        throw new IllegalStateException("the wall fell", new RuntimeException("the ground shook"));
                    case "nan": return Double.NaN;
                    default:
                        List<Object> loop = new ArrayList<>();
                        loop.add(loop);
                        return loop;
                }
            }
        }
        """,
    "Loud": """
        public class Loud implements BiFunction<Map<String, Object>, String, String> {
            public String apply(Map<String, Object> context, String text) {
                System.out.println(text);
                System.err.println("err " + text);
                return "done";
            }
        }
        """,
    "Threads": """
        public class Threads implements BiFunction<Map<String, Object>, String, String> {
            public String apply(Map<String, Object> context, String who) {
                Thread helper = new Thread(() -> System.out.println("helper of " + who));
                helper.start();
                try {
                    Thread.sleep(200); // the other call is running meanwhile
                    helper.join();
                } catch (InterruptedException stopped) {
                    return "stopped";
                }
                return who;
            }
        }
        """,
}
IMPORTS = ("package fixtures;\n\nimport java.time.LocalDate;\nimport java.util.*;\n"
           "import java.util.function.BiFunction;\n")


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    """`serve(handler, *flags)`: the port of a server for one of SOURCES, started once per module."""
    folder = tmp_path_factory.mktemp("java-fixtures")
    source = folder / "function"
    for name, code in SOURCES.items():
        path = source / "src" / "main" / "java" / "fixtures" / f"{name}.java"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(IMPORTS + textwrap.dedent(code))
    servers = Servers(folder)
    ports: dict[tuple, int] = {}

    def port_of(handler: str, *flags: str) -> int:
        if (handler, *flags) not in ports:
            classes = folder / f"classes-{len(ports)}"
            compiled = compile_java(source, "--handler", f"fixtures.{handler}", "--classes", str(classes))
            assert compiled.returncode == 0, compiled.stderr
            _, ports[(handler, *flags)] = servers.serve("java", source, "--handler", f"fixtures.{handler}",
                                                        "--classes", str(classes), *flags)
        return ports[(handler, *flags)]

    yield port_of
    servers.stop()


def call(port: int, payload, raw: bytes | None = None) -> dict:
    status, answer = request(port, "/", raw if raw is not None else envelope(payload))
    assert status == 200
    return answer


# ---- JSON


def test_strings_keep_escapes_unicode_surrogate_pairs_and_lone_surrogates(serve):
    body = (r'{"context": {}, "payload": {"escapes": "\"q\" \\ \/ \b\f\n\r\t \u00e9 \ud83d\ude00",'
            r' "raw": "é😀", "lone": "\ud800", "deep": [[[[{"a": []}]]]], "empty": {}}}').encode()

    answer = call(serve("Echo"), None, raw=body)

    assert answer["context"]["error"] is None
    assert answer["payload"] == json.loads(body)["payload"]
    assert answer["payload"]["escapes"].endswith("é 😀")


def test_numbers_become_the_smallest_type_that_holds_them_and_come_back_exact(serve):
    numbers = [1, -2147483648, 2147483648, 9223372036854775807, 9223372036854775808, 1.5, 1e3, -0.0]
    kinds = call(serve("Kinds"), [*numbers, True, "s", None, {}, []])
    echoed = call(serve("Echo"), [*numbers, 123456789012345678901234567890])

    assert kinds["payload"] == ["Integer", "Integer", "Long", "Long", "BigInteger", "Double", "Double", "Double",
                                "Boolean", "String", "null", "LinkedHashMap", "ArrayList"]
    assert echoed["payload"] == [*numbers, 123456789012345678901234567890]


@pytest.mark.parametrize("body", [
    b'{"payload": [1,]}', b'{"payload": 01}', b'{"payload": 1.}', b'{"payload": .5}', b'{"payload": -}',
    b'{"payload": "a\x01b"}', b'{"payload": "\\x"}', b'{"payload": "\\u12"}', b'{"payload": NaN}',
    b"{'payload': 1}", b'{"payload": 1} x', b'{"payload": 1', b"[" * 600 + b"]" * 600,
])
def test_a_body_that_is_not_strict_json_is_an_input_error(serve, body):
    answer = call(serve("Echo"), None, raw=body)

    assert answer["context"]["error"]["type"] == "InputError"
    assert answer["context"]["error"]["message"].startswith("Invalid Input: ")


# ---- conversion


ORDER = {"customer": "Jon", "quantity": 3, "reference": 2 ** 40, "price": 2.5, "rush": True, "grade": "A",
         "size": "LARGE", "codes": [7, 8], "items": [{"name": "sword"}, {"name": "cloak", "count": 2}],
         "tags": {"gift": 41}, "address": {"city": "Winterfell", "zip": 1}, "due": "2018-04-01", "unknown": "ignored"}


def test_a_payload_fills_inner_classes_by_field_and_the_result_is_written_from_its_fields(serve):
    answer = call(serve("Orders"), ORDER)

    assert answer["context"]["error"] is None
    assert answer["payload"] == {
        "stampedBy": "orders", "customer": "Jon",
        "lines": [f"3 x 2.5 rush ref {2 ** 40}", "A", "LARGE", [7, 8], "sword:1", "cloak:2", 42,
                  {"city": "Winterfell", "zip": 1}, "2018-04-02"],
        "note": None, "day": "2018-04-01"}


@pytest.mark.parametrize("change, message", [
    ({"quantity": "three"}, '$.quantity: expected a number, got the string "three"'),
    ({"quantity": 1.5}, "$.quantity: expected a whole number, got the number 1.5"),
    ({"quantity": 2 ** 40}, "$.quantity: expected a number within Integer range"),
    ({"size": "HUGE"}, "$.size: Size has no constant HUGE"),
    ({"items": {}}, "$.items: expected a JSON array, got a JSON object"),
    ({"items": [{"name": 5}]}, "$.items[0].name: expected a string, got the number 5"),
    ({"due": "tomorrow"}, "$.due: not a valid java.time.LocalDate: Text 'tomorrow' could not be parsed"),
    ("x", '$: expected a JSON object for Order, got the string "x"'),
])
def test_a_payload_that_does_not_fit_is_an_input_error_saying_where(serve, change, message):
    payload = {**ORDER, **change} if isinstance(change, dict) else change

    error = call(serve("Orders"), payload)["context"]["error"]

    assert error["type"] == "InputError"
    assert error["message"].startswith("the payload cannot be converted to fixtures.Orders$Order: ")
    assert message in error["message"]


# ---- errors


@pytest.mark.parametrize("kind, error_type, message", [
    ("argument", "InputError", "name is required"),
    ("cast", "InputError", "class java.lang.Integer cannot be cast to class java.lang.String"),
    ("state", "FunctionError", "the wall fell"),
])
def test_exceptions_are_typed_with_their_message(serve, kind, error_type, message):
    error = call(serve("Fails"), kind)["context"]["error"]

    assert (error["type"], error["message"].split(" (")[0]) == (error_type, message)


def test_a_function_error_carries_its_stack_trace_down_to_the_function(serve):
    trace = call(serve("Fails"), "state")["context"]["error"]["stacktrace"]

    assert trace[0] == "java.lang.IllegalStateException: the wall fell"
    assert trace[1].startswith("\tat fixtures.Fails.apply(Fails.java:")
    assert "Caused by: java.lang.RuntimeException: the ground shook" in trace
    assert not any("dispatch.runtime" in line for line in trace)


@pytest.mark.parametrize("kind, message", [("nan", "has no JSON form"), ("loop", "refers back to an object")])
def test_a_result_without_a_json_form_is_a_function_error(serve, kind, message):
    answer = call(serve("Fails"), kind)

    assert answer["payload"] is None
    assert answer["context"]["error"]["type"] == "FunctionError"
    assert answer["context"]["error"]["message"].startswith("result is not JSON serialisable: ")
    assert message in answer["context"]["error"]["message"]


# ---- logs


def test_output_is_capped_per_call_without_splitting_a_character(serve):
    port = serve("Loud", "--max-log-bytes", "9")

    long = call(port, "ééééééé")  # 14 bytes and a newline: the 9th byte is half an é
    short = call(port, "é")

    assert long["context"]["logs"] == {"stdout": ["éééé", "... log truncated: 7 bytes over the 9-byte limit"],
                                       "stderr": ["err éé", "... log truncated: 11 bytes over the 9-byte limit"]}
    assert short["context"]["logs"] == {"stdout": ["é"], "stderr": ["err é"]}


def test_threads_a_call_starts_print_into_that_call(serve):
    port = serve("Threads", "--concurrency", "2")
    answers = {}
    other = threading.Thread(target=lambda: answers.update(b=call(port, "b")))
    other.start()
    answers["a"] = call(port, "a")
    other.join(10)

    assert {who: answer["context"]["logs"]["stdout"] for who, answer in answers.items()} == {
        "a": ["helper of a"], "b": ["helper of b"]}


def test_sources_beside_the_handler_that_do_not_compile_are_left_out(tmp_path):
    package = tmp_path / "src" / "main" / "java" / "fixtures"
    package.mkdir(parents=True)
    (package / "Echo.java").write_text(IMPORTS + textwrap.dedent(SOURCES["Echo"]))
    (package / "Broken.java").write_text("package fixtures;\nimport org.joda.time.DateTime;\nclass Broken {}\n")

    compiled = compile_java(tmp_path, "--handler", "fixtures.Echo")

    assert compiled.returncode == 0, compiled.stderr
    assert sorted(path.name for path in Path(tmp_path / ".classes" / "fixtures").iterdir()) == ["Echo.class"]
