#!/usr/bin/env bash
# Install aiolibp2p with everything its tests need: the Python dev dependencies and the npm packages of
# the js-libp2p interop peer (exact versions from interop/js/package-lock.json).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --disable-pip-version-check -q -e ".[dev]"
if command -v npm >/dev/null 2>&1; then
  (cd interop/js && npm ci --no-audit --no-fund --loglevel=error)
else
  echo "npm not found: the js-libp2p interop tests will be skipped" >&2
fi
