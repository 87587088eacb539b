#!/usr/bin/env bash
# One-time installs for the end-to-end tests, idempotent: Label Studio in its own virtual environment,
# Debian's chromium and playwright-core from npm, all under .e2e/ (git-ignored).
# Writes .e2e/setup.status: "ok", or the step that failed; the tests skip with that reason.
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
e2e="$root/.e2e"
ls_version=1.23.2
playwright_version=1.65.1
mkdir -p "$e2e"
status="$e2e/setup.status"
echo "running" >"$status"

fail() {
  echo "e2e setup failed: $1" >&2
  echo "$1" >"$status"
  exit 1
}

# Label Studio: its pins (numpy, pandas, opencv) clash with ours, so it gets a venv of its own.
venv="$e2e/ls-venv"
marker="$venv/.label-studio-$ls_version"
if [ ! -f "$marker" ]; then
  echo "installing label-studio==$ls_version into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv" || fail "python3 -m venv $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "label-studio==$ls_version" \
    2> >(grep -v "^WARNING: Location" >&2) || fail "pip install label-studio==$ls_version"
  touch "$marker"
fi

# Chromium from Debian: Playwright's own browser download would need hosts we cannot reach.
if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium (apt-get)"
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo -n"; fi
  $sudo apt-get update -qq || fail "apt-get update"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    chromium fonts-liberation >/dev/null || fail "apt-get install chromium"
fi

# playwright-core only drives a browser; it downloads none.
node_dir="$e2e/node"
if [ ! -f "$node_dir/node_modules/playwright-core/package.json" ] ||
  ! grep -q "\"version\": \"$playwright_version\"" "$node_dir/node_modules/playwright-core/package.json"; then
  command -v npm >/dev/null || fail "npm not found (install nodejs and npm)"
  echo "installing playwright-core@$playwright_version into $node_dir"
  mkdir -p "$node_dir"
  npm install --prefix "$node_dir" --no-save --no-audit --no-fund --loglevel=error \
    "playwright-core@$playwright_version" >/dev/null || fail "npm install playwright-core@$playwright_version"
fi

echo "ok" >"$status"
echo "e2e setup ok: $venv, /usr/bin/chromium, $node_dir/node_modules/playwright-core"
