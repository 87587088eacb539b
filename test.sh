#!/usr/bin/env bash
# Set up (first run only) and run every check: lint, unit tests, then end-to-end tests with a real Label Studio.
# Pass E2E=0 to skip the end-to-end part; extra arguments go to the unit-test pytest run.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh requirements-test.txt
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=false YOLO_CONFIG_DIR="${YOLO_CONFIG_DIR:-$PWD/.pytest_cache/ultralytics}"
scripts/install-redis.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest -m "not e2e" -q "$@" tests
if [ "${E2E:-1}" != "0" ] && [ -d tests/e2e ]; then
  bash tests/e2e/setup.sh
  .venv/bin/python -m pytest -m e2e -q -p no:cacheprovider tests/e2e
fi
