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
	eval "$$($(BIN)/python -m tests.services)" && $(BIN)/python -m pytest -q -ra

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/runs.py
	$(BIN)/python bench/distributed.py
	$(BIN)/python bench/events.py

clean:
	rm -rf $(VENV)
