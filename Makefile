# The two commands a newcomer needs: `make run` and `make test`. Everything else is a step of them.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
UV := PATH="$(HOME)/.local/bin:$$PATH" uv

.PHONY: run test install install-dev lint typecheck pytest

run: install ## Install from the lock file and start ReflexBlue at http://127.0.0.1:8000
	$(UV) run --frozen --no-dev reflexblue serve

test: install-dev lint typecheck pytest ## Install everything and run the whole test suite

install:
	@scripts/ensure-uv
	$(UV) sync --frozen --no-dev

install-dev:
	@scripts/ensure-uv
	@scripts/ensure-system-packages
	$(UV) sync --frozen

lint:
	$(UV) run --frozen ruff format --check src tests bench examples
	$(UV) run --frozen ruff check src tests bench examples

typecheck:
	$(UV) run --frozen mypy

# The browser tests run on their own, where each test process can keep one Chromium for all
# of its tests (see tests/browser/conftest.py).
pytest:
	$(UV) run --frozen pytest -n 3 --dist loadgroup --durations=20 --ignore=tests/browser
	$(UV) run --frozen pytest -n 3 --durations=10 tests/browser
