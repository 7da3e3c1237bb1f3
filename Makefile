PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/dispatch server --seed examples/seed.yaml

test: $(STAMP)
	$(BIN)/ruff check dispatch tests bench
	$(BIN)/mypy dispatch
	eval "$$($(BIN)/python -m tests.services)" && $(BIN)/python -m pytest -q -ra

FF := $(HOME)/.cache/dispatch-bench/ff

# functions-framework pins an older cloudevents than the tests use: it gets a virtualenv of its own.
$(FF)/bin/functions-framework:
	$(PYTHON) -m venv $(FF)
	$(FF)/bin/pip install --quiet functions-framework

# bench/sandbox.py and bench/hostile.py need bubblewrap (Debian: apt-get install bubblewrap).
bench: $(STAMP) $(FF)/bin/functions-framework
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/runs.py
	$(BIN)/python bench/runtimes.py
	$(BIN)/python bench/apis.py
	$(BIN)/python bench/distributed.py
	$(BIN)/python bench/events.py
	$(BIN)/python bench/store.py
	$(BIN)/python bench/sandbox.py
	$(BIN)/python bench/hostile.py
	$(BIN)/python bench/hostile.py --distributed

clean:
	rm -rf $(VENV)
