# Bootstraps a pinned uv into .tools/, then drives everything through it.
UV_VERSION := 0.13.9
UV := .tools/bin/uv
PYTEST_ARGS ?=

.PHONY: install test serve lint typecheck bench dist package-check clean

$(UV):
	python3 -m venv .tools
	.tools/bin/pip install -q "uv==$(UV_VERSION)"

.venv/.installed: $(UV) pyproject.toml uv.lock $(wildcard plugins/*/pyproject.toml)
	$(UV) sync --all-packages --locked --compile-bytecode
	$(UV) run --no-sync python -m compileall -q -j 0 rustqueue_core plugins examples
	touch $@

install: .venv/.installed

PG_URL ?= postgresql://postgres@127.0.0.1:5432/test

# The whole suite, then the engine, storage and worker suites again on PostgreSQL when one is reachable.
test: install
	$(UV) run --no-sync pytest $(PYTEST_ARGS)
	@if $(UV) run --no-sync python -c "import socket; socket.create_connection(('127.0.0.1', 5432), 1)" 2>/dev/null; then \
	  echo "== engine, storage and worker suites again on $(PG_URL)"; \
	  $(UV) run --no-sync pytest tests/engine tests/storage tests/test_worker.py tests/test_worker_shutdown.py --rustqueue-storage=$(PG_URL) $(PYTEST_ARGS); \
	else \
	  echo "== no PostgreSQL on 127.0.0.1:5432: the PostgreSQL pass is skipped"; \
	fi

# The workspace installs the example plugin (examples/plugin-hello) for its tests; the server runs the
# shipped plugins only.
serve: install
	$(UV) run --no-sync rustqueue serve --no-plugin=hello

lint: install
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync ruff format --check rustqueue_core plugins
	$(UV) run --no-sync mypy

typecheck: install
	$(UV) run --no-sync mypy

bench: install
	$(UV) sync --all-packages --locked --compile-bytecode --group bench
	$(UV) run --no-sync python bench/run.py $(BENCH_ARGS)

dist: $(UV)
	rm -rf dist && $(UV) build --all-packages --out-dir dist/

package-check: dist
	$(UV) run --no-sync python scripts/package_check.py dist

clean:
	rm -rf .venv .tools dist .pytest_cache .mypy_cache .ruff_cache
