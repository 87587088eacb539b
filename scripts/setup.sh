#!/usr/bin/env bash
# Create .venv and install the pinned requirements in one pip call (so pip never swaps the CPU torch for a
# CUDA build). Re-installs only when the requirements files change. Usage: scripts/setup.sh [requirements file]
set -euo pipefail
cd "$(dirname "$0")/.."
requirements="${1:-requirements.txt}"
python="${PYTHON:-python3}"
stamp=".venv/.installed-$(basename "$requirements")"
digest=$(cat requirements*.txt | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r "$requirements"
echo "$digest" > "$stamp"
