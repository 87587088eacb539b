"""gunicorn settings, from the environment (see README). Models load in the workers, never in the master:
no --preload, since a torch op in the master deadlocks forked workers."""

import os

# Busy-waiting OpenMP threads starve each other on small shared machines (see README).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '9090')}"
workers = int(os.environ.get("WORKERS", "1"))
threads = int(os.environ.get("THREADS", "8"))
worker_class = "gthread"
timeout = int(os.environ.get("WORKER_TIMEOUT", "300"))
graceful_timeout = 30
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
errorlog = "-"
accesslog = "-" if os.environ.get("ACCESS_LOG", "").lower() in ("1", "true", "yes") else None
preload_app = False
