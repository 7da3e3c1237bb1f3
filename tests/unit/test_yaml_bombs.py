"""YAML files people give the CLI and the server (`create -f`, `server --seed`, `--config-file`)
read within bounds (dispatch/yamlfiles.py): a billion laughs is an error naming its line, not
the end of the process's memory."""
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from dispatch import yamlfiles
from tests.unit.cli_double import FakeDispatch, fake  # noqa: F401  (fixture)

DISPATCH = str(Path(sys.executable).parent / "dispatch")
LEVELS = "abcdefghi"
# Nine levels of ten aliases each: a billion "lol"s once expanded; the aliases of line 7 (the
# fourth level, 10,000 nodes and more so far) are the first past the bound.
BILLION_LAUGHS = "kind: Secret\nname: laughs\nsecrets:\n" + "".join(
    f"  {name}: &{name} [{', '.join(['lol'] * 10 if n == 0 else [f'*{LEVELS[n - 1]}'] * 10)}]\n"
    for n, name in enumerate(LEVELS))
BOMB_REFUSED = "invalid YAML in document 1, line 7: its aliases expand to more than 10000 nodes (a YAML bomb?)"
MEMORY_LIMIT = 1 << 30


def refused(text: str) -> yamlfiles.Refused:
    with pytest.raises(yamlfiles.Refused) as refusal:
        list(yamlfiles.load_all(text))
    return refusal.value


def test_a_billion_laughs_is_refused_at_the_line_of_the_alias_past_the_bound_before_it_is_built():
    started = time.monotonic()
    refusal = refused(BILLION_LAUGHS)
    assert refusal.problem == "its aliases expand to more than 10000 nodes (a YAML bomb?)"
    assert refusal.problem_mark.line + 1 == 7
    assert time.monotonic() - started < 1
    with pytest.raises(yamlfiles.Refused):
        yamlfiles.load(BILLION_LAUGHS)


def test_many_aliases_of_a_small_node_are_refused_once_they_add_up_past_the_bound():
    text = "base: &base [" + ", ".join(["x"] * 99) + "]\nuses:\n" + "  - *base\n" * 101
    assert "expand to more than 10000 nodes" in refused(text).problem
    fewer = "base: &base [" + ", ".join(["x"] * 99) + "]\nuses:\n" + "  - *base\n" * 99
    assert yamlfiles.load(fewer) == yaml.safe_load(fewer)


def test_anchors_aliases_and_merge_keys_within_the_bound_read_as_pyyaml_reads_them():
    text = "defaults: &defaults {image: py, timeout: 5}\nfunctions:\n" + "".join(
        f"  - {{<<: *defaults, name: f{n}}}\n" for n in range(50)) + "---\nother: &o [1]\nsame: *o\n"
    assert list(yamlfiles.load_all(text)) == list(yaml.safe_load_all(text))


def test_an_alias_inside_the_node_it_names_is_refused():
    refusal = refused("a: &loop\n  b: [1, *loop]\n")
    assert refusal.problem == "an alias refers to a node that holds it, which would never end"


def test_nesting_deeper_than_the_parser_goes_is_refused():
    assert refused("[" * 100_000 + "]" * 100_000).problem == "it is nested too deeply"


def test_a_file_larger_than_the_bound_is_refused_without_reading_it_whole(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# padding\n" * (yamlfiles.MAX_BYTES // 10 + 1))
    with pytest.raises(yamlfiles.Refused, match="the file is larger than 10 MiB"):
        yamlfiles.read(big)


# The real CLI, in a process of its own whose memory is bounded: what used to run out of it.

def dispatch(*args: str, cwd: Path, timeout: float = 60) -> tuple[subprocess.CompletedProcess, float]:
    """`dispatch ARGS` with at most MEMORY_LIMIT of address space; the result and how long it took."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("DISPATCH_")}
    env["DISPATCH_CONFIG"] = str(cwd / "cli-config.json")

    def bounded() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    started = time.monotonic()
    done = subprocess.run([DISPATCH, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout,
                          preexec_fn=bounded)
    return done, time.monotonic() - started


def test_create_from_a_yaml_bomb_exits_1_with_the_reason_and_sends_nothing(fake: FakeDispatch, tmp_path):
    (tmp_path / "bomb.yaml").write_text(BILLION_LAUGHS)

    done, _ = dispatch("--port", str(fake.port), "create", "-f", "bomb.yaml", cwd=tmp_path)

    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().endswith(f"bomb.yaml: {BOMB_REFUSED}")
    assert fake.requests == []


def test_create_from_a_file_over_10_mib_exits_1_and_sends_nothing(fake: FakeDispatch, tmp_path):
    (tmp_path / "big.yaml").write_text("kind: Secret\nname: big\nsecrets: {a: b}\n" + "# padding\n" * (1 << 20))

    done, _ = dispatch("--port", str(fake.port), "create", "-f", "big.yaml", cwd=tmp_path)

    assert done.returncode == 1
    assert done.stderr.strip().endswith("big.yaml: the file is larger than 10 MiB")
    assert fake.requests == []


@pytest.mark.parametrize("option, reason", [
    ("--seed", f"bomb.yaml: {BOMB_REFUSED}"),
    ("--config-file", "invalid server settings: bomb.yaml, line 7: its aliases expand to more than 10000 nodes "
                      "(a YAML bomb?)"),
])
def test_a_server_given_a_yaml_bomb_exits_1_at_once_with_the_reason(tmp_path, option, reason):
    (tmp_path / "bomb.yaml").write_text(BILLION_LAUGHS)

    done, took = dispatch("server", option, "bomb.yaml", "--data-dir", str(tmp_path / "data"), "--port", "0",
                          "--api-port", "0", cwd=tmp_path)

    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip().endswith(reason)
    assert "Stop the server" not in done.stdout and took < 20
