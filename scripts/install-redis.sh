#!/usr/bin/env bash
# Installs Debian's redis-server when it is missing: the Redis engine's tests start a real one (never as a
# service: each test runs its own on a free loopback port).
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
echo "installing redis-server (apt-get)"
if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo -n"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends redis-server >/dev/null
