# Bootstraps a pinned uv into .tools/, then drives everything through it.
UV_VERSION := 0.13.9
UV := .tools/bin/uv
PYTEST_ARGS ?=

.PHONY: install test serve lint typecheck bench dist package-check clean

$(UV):
	python3 -m venv .tools
	.tools/bin/pip install -q "uv==$(UV_VERSION)"

.venv/.installed: $(UV) pyproject.toml uv.lock $(wildcard plugins/*/pyproject.toml)
	$(UV) sync --all-packages --locked
	touch $@

install: .venv/.installed

test: install
	$(UV) run --no-sync pytest $(PYTEST_ARGS)

serve: install
	$(UV) run --no-sync rustqueue serve

lint: install
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync ruff format --check rustqueue_core plugins
	$(UV) run --no-sync mypy

typecheck: install
	$(UV) run --no-sync mypy

bench: install
	$(UV) run --no-sync python bench/run.py $(BENCH_ARGS)

dist: $(UV)
	rm -rf dist && $(UV) build --all-packages --out-dir dist/

package-check: dist
	$(UV) run --no-sync python scripts/package_check.py dist

clean:
	rm -rf .venv .tools dist .pytest_cache .mypy_cache .ruff_cache
