# The two commands: `make run` and `make test`. Each creates .venv when missing
# and installs dosesim with what it needs (only Python 3.11 is assumed).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint check clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## run: the main job on the base scenario
run: $(STAMP)
	$(BIN)/dosesim validate scenarios/*.toml
	$(BIN)/dosesim schedule scenarios/nct05129410.toml --weight-kg 60
	$(BIN)/dosesim run scenarios/nct05129410.toml --replicates 1000 --seed 20201201 --workers 2

## test: lint, type-check, golden schedules, and every test (on two processes: pytest-xdist)
test: $(STAMP) lint
	$(BIN)/dosesim check
	$(BIN)/python -m pytest -q -n 2

lint: $(STAMP)
	$(BIN)/ruff check sim tests benchmarks
	$(BIN)/ruff format --check sim tests benchmarks
	$(BIN)/mypy sim

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
