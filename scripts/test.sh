#!/usr/bin/env bash
# The whole test run: install what the tests need, then lint (ruff), type-check (mypy: src/ strict, plus the unit
# and integration tests) and run pytest (unit, integration over loopback, js-libp2p interop). Extra arguments go
# to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
echo "== ruff"
python3 -m ruff check src tests bench
python3 -m ruff format --check src tests bench
echo "== mypy"
python3 -m mypy
echo "== pytest"
python3 -m pytest -q "$@"
