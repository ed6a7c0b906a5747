# The README's two commands: `make quickstart` (set-up + the main job) and `make test` (set-up + tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TARGETS ?= local-ort bitserial-sim

.PHONY: setup quickstart test qemu lint

# torch==2.13.0 first: it is the CPU build on the local disk; an unpinned torch pulls a CUDA build.
$(BIN)/nasq: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

setup: $(BIN)/nasq

# The tests run ONNX Runtime on an emulated CPU without VNNI too (qemu's user-mode emulator, Debian's qemu-user),
# whatever CPU runs them: the int8 recipe must hold on both kinds
qemu:
	@command -v qemu-x86_64 >/dev/null 2>&1 || [ "$$(uname -m)" != x86_64 ] || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    { apt-get install -y -q qemu-user >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q qemu-user >/dev/null 2>&1; }; }; } || \
	  echo "note: qemu-x86_64 is not installed (apt-get install qemu-user); the test on an emulated CPU without VNNI is skipped"

quickstart: setup
	@run=runs/quickstart-$$(date +%Y%m%d-%H%M%S); \
	$(BIN)/nasq search configs/quickstart.yaml --run-dir $$run && \
	for target in $(TARGETS); do \
	  $(BIN)/nasq best $$run --target $$target --max-accuracy-drop 1 --out $$run/best-$$target || exit $$?; \
	done; \
	echo "run directory: $$run"

# ruff (rules and format) and mypy; mypy reads the package as installed (search/, spaces/ and
# hardware_profiles/ are nasq's subpackages), so it runs on a tree of links laid out that way
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@rm -rf build/typecheck && mkdir -p build/typecheck/nasq && \
	  for f in nasq/*; do ln -s "$$PWD/$$f" build/typecheck/nasq/; done && \
	  ln -s "$$PWD/search" build/typecheck/nasq/search && ln -s "$$PWD/spaces" build/typecheck/nasq/spaces && \
	  ln -s "$$PWD/hardware_profiles" build/typecheck/nasq/hardware_profiles
	cd build/typecheck && ../../$(BIN)/mypy --config-file ../../pyproject.toml --cache-dir ../mypy-cache -p nasq

test: setup qemu lint
	$(BIN)/python -m pytest -q -p no:cacheprovider
