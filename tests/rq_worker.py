"""An RQ worker of the Redis engine around the test-only control models: `python -m tests.rq_worker`."""

import sys

import worker
from tests.app_factory import make_backend

if __name__ == "__main__":
    sys.exit(worker.serve(make_backend))
