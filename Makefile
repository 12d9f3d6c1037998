# The two commands of the README: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

demo: install
	$(BIN)/clean-clarify demo demo_data
	$(BIN)/clean-clarify run demo_data/manifest.parquet --output demo_out

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf demo_data demo_out .pytest_cache
