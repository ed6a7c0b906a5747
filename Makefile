# The README's two commands: `make quickstart` (set-up + the main job) and `make test` (set-up + tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TARGETS ?= x86-ort bitserial-sim

.PHONY: setup quickstart test

# torch==2.13.0 first: it is the CPU build on the local disk; an unpinned torch pulls a CUDA build.
$(BIN)/nasq: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

setup: $(BIN)/nasq

quickstart: setup
	@run=runs/quickstart-$$(date +%Y%m%d-%H%M%S); \
	$(BIN)/nasq search configs/quickstart.yaml --run-dir $$run && \
	for target in $(TARGETS); do \
	  $(BIN)/nasq best $$run --target $$target --out $$run/best-$$target || exit $$?; \
	done; \
	echo "run directory: $$run"

test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider
