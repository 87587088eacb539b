#!/usr/bin/env python3
"""Container health check: GET /health on this container's port, with basic auth read from the environment
(never passed as a process argument, where `ps` and `docker inspect` would show the password). Exit 0 when
the service answers UP, 1 otherwise."""

from __future__ import annotations

import base64
import json
import os
import sys
import urllib.request


def main() -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{os.environ.get('PORT', '9090')}/health")
    user, password = os.environ.get("BASIC_AUTH_USER", ""), os.environ.get("BASIC_AUTH_PASS", "")
    if user:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(
            request, timeout=float(os.environ.get("HEALTHCHECK_TIMEOUT", "4"))
        ) as response:
            status = json.load(response).get("status")
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    if status != "UP":
        print(f"unhealthy: status {status!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
