#!/usr/bin/env bash
# Set up (first run only) and start the backend on ${HOST:-127.0.0.1}:${PORT:-9090} with the embedded defaults.
# `./run.sh worker` starts one job worker instead (needs REDIS_URL; see README, "Jobs on Redis + RQ").
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh requirements.txt
export MODEL_DIR="${MODEL_DIR:-$PWD/data/models}" CACHE_DIR="${CACHE_DIR:-$PWD/data/cache}"
export YOLO_CONFIG_DIR="${YOLO_CONFIG_DIR:-$PWD/data/ultralytics}" YOLO_AUTOINSTALL="${YOLO_AUTOINSTALL:-false}"
if [ "${1:-}" = "worker" ]; then
  exec .venv/bin/python worker.py "${@:2}"
fi
exec .venv/bin/gunicorn -c gunicorn.conf.py _wsgi:app
