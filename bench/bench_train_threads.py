"""Trainings on their own torch thread count (`TRAIN_THREADS`, default 1) against the serving one
(`TORCH_THREADS`, default 2, which trainings used before): through the HTTP API, in one process with
OMP_WAIT_POLICY=PASSIVE as `gunicorn.conf.py` sets it for the service, seconds from the first annotation
until a model that saw all of them serves:
- watch: the first 70% of each of the 7 recordings annotated back to back (one training from scratch, as in
  `bench_fresh_model --burst`), with macro-F1 on the held-out last 30%;
- video: the 8 spliced videos opened (their features cached) and annotated back to back.
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
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from bench.bench_fresh_model import Service, trained_with, watch_f1, watch_split  # noqa: E402
from bench.bench_timeseries_quality import config_for  # noqa: E402
from fixtures.timeline import spliced_checkpoint, spliced_labels, spliced_tasks, timeline_config  # noqa: E402

# -> seconds until all seen, the net's seconds per epoch, what else to print
Case = Callable[[Service, Path], tuple[float, float, str]]


def net_seconds_per_epoch(service: Service, project: str, control: str) -> tuple[float, str]:
    """The last training's net seconds per epoch, and its epochs and seconds in words."""
    metrics = service.training_state(project)["last"]["metrics"][control]
    return metrics["seconds"] / metrics[
        "epochs"
    ], f"net {metrics['seconds']:.1f} s, {metrics['epochs']} epochs"


def watch_case(service: Service, root: Path) -> tuple[float, float, str]:
    train, held, labels = watch_split(root)
    config = config_for("watch")
    started = time.monotonic()
    for number, task in enumerate(train, start=1):
        service.annotate("1", config, task, annotation_id=number)
    while not all(trained_with(service, "1", "label", task["id"]) for task in train):
        time.sleep(0.1)
    seconds = time.monotonic() - started
    service.wait_idle("1")
    per_epoch, net = net_seconds_per_epoch(service, "1", "label")
    return (
        seconds,
        per_epoch,
        f"{net}; F1 on the held-out 30% {watch_f1(service, '1', config, held, labels):.3f}",
    )


def video_case(service: Service, root: Path) -> tuple[float, float, str]:
    config = timeline_config(spliced_labels(), model_trainable="true", model_path=spliced_checkpoint().name)
    tasks = [
        {"id": t["id"], "data": t["data"], "result": t["annotations"][0]["result"]} for t in spliced_tasks()
    ]
    service.predict("2", config, tasks)  # the annotator opens each task: its features are cached
    started = time.monotonic()
    for number, task in enumerate(tasks, start=1):
        service.annotate("2", config, task, annotation_id=100 + number)
    while not all(trained_with(service, "2", "videoLabels", task["id"]) for task in tasks):
        time.sleep(0.1)
    seconds = time.monotonic() - started
    service.wait_idle("2")
    per_epoch, net = net_seconds_per_epoch(service, "2", "videoLabels")
    return seconds, per_epoch, f"{net}; {service.training_state('2')['runs']} training(s)"


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
    cases: dict[str, Case] = {"watch, 7 recordings": watch_case, "video, 8 spliced videos": video_case}
    with tempfile.TemporaryDirectory() as tmp:
        for name, case in cases.items():
            seconds, per_epoch = {}, {}
            for train_threads in (args.threads, args.train_threads):
                root = Path(tmp) / f"{name[:5]}-{train_threads}"
                root.mkdir()
                service = Service(root, args.threads, train_threads=train_threads)
                seconds[train_threads], per_epoch[train_threads], extra = case(service, root)
                print(
                    f"  {name}, trainings on {train_threads} thread(s): a model that saw every annotation "
                    f"serves after {seconds[train_threads]:.1f} s; {extra}",
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
