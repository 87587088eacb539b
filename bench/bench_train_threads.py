"""Trainings on their own torch thread count (`TRAIN_THREADS`, default 1) against the serving one
(`TORCH_THREADS`, default 2, which trainings used before): through the HTTP API, in one process with
OMP_WAIT_POLICY=PASSIVE as `gunicorn.conf.py` sets it for the service, seconds from the first annotation
until a model that saw all of them serves, for the bursts of `bench_fresh_model --burst`:
- watch: the first 70% of each of the 7 recordings annotated back to back (one training from scratch);
- video: the 8 spliced videos opened (which queues the encoding of their frames), then annotated back to back.
Each case runs with the old thread count first, then with the new one, and prints the ratio, and the ratio of
the net's seconds per epoch (the float sums differ between thread counts, so the two trainings may stop after
different numbers of epochs).
Run: `.venv/bin/python -m bench.bench_train_threads [--threads 2] [--train-threads 1]`
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from bench.bench_fresh_model import Burst, Service, time_burst, video_burst, watch_burst  # noqa: E402


def net_seconds_per_epoch(service: Service, project: str, control: str) -> tuple[float, str]:
    """The last training's net seconds per epoch, and its epochs and seconds in words."""
    metrics = service.training_state(project)["last"]["metrics"][control]
    return metrics["seconds"] / metrics[
        "epochs"
    ], f"net {metrics['seconds']:.1f} s, {metrics['epochs']} epochs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="TORCH_THREADS (serving)")
    parser.add_argument("--train-threads", type=int, default=1, help="TRAIN_THREADS to compare with it")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(
        f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
        f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for index, make_burst in enumerate((watch_burst, lambda _root: video_burst())):
            seconds, per_epoch, name = {}, {}, ""
            for train_threads in (args.threads, args.train_threads):
                root = Path(tmp) / f"{index}-{train_threads}"
                root.mkdir()
                service = Service(root, args.threads, train_threads=train_threads)
                burst: Burst = make_burst(root)
                name = burst.name
                seconds[train_threads], _, runs = time_burst(service, "1", burst)
                per_epoch[train_threads], net = net_seconds_per_epoch(service, "1", burst.control)
                print(
                    f"  {name}, trainings on {train_threads} thread(s): a model that saw every annotation "
                    f"serves after {seconds[train_threads]:.1f} s; {net}; {runs} training(s)",
                    flush=True,
                )
            print(
                f"{name}: {args.train_threads} training thread(s) against {args.threads}: "
                f"x{seconds[args.threads] / seconds[args.train_threads]:.2f} as fast "
                f"(per epoch of the net x{per_epoch[args.threads] / per_epoch[args.train_threads]:.2f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
