# The two commands of the README: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV ?= .venv
VENV_SR ?= .venv-sr
BIN := $(VENV)/bin
BIN_SR := $(VENV_SR)/bin

.PHONY: install install-sr demo test test-core test-sr test-unit clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints/core.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints/core.txt -e ".[test,datasets]"
	touch $@

# The optional learned enhancer lives in its own virtualenv: spandrel needs torchvision, which
# needs a different (CUDA, multi-GB) torch build than the core install's CPU one. --no-cache-dir: a
# cached copy of those wheels doubles the disk the install needs (a CI machine ran out of space).
install-sr: $(VENV_SR)/.installed

$(VENV_SR)/.installed: pyproject.toml constraints/sr.txt
	$(PYTHON) -m venv $(VENV_SR)
	$(BIN_SR)/python -m pip install --quiet --upgrade pip
	$(BIN_SR)/python -m pip install --quiet --no-cache-dir -c constraints/sr.txt -e ".[test,sr]"
	touch $@

demo: install
	$(BIN)/clean-clarify demo demo_data
	$(BIN)/clean-clarify run demo_data/manifest.parquet --output demo_out

test: test-core test-sr

test-core: install
	$(BIN)/python -m pytest -q -m "not sr"

# The quick unit tests alone (no server, cluster or subprocess): a minute or two.
test-unit: install
	$(BIN)/python -m pytest -q -m "not sr and not integration"

test-sr: install-sr
	$(BIN_SR)/python -m pytest -q -m sr

clean:
	rm -rf demo_data demo_out .pytest_cache
