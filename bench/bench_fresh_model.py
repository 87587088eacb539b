"""Time to a fresh model through the HTTP API: from the last annotation webhook until the training it asked for
is done and its version serves, with macro-F1 on held-out data, for a warm retrain (the serving model
fine-tuned on the new annotation) against a full retrain from scratch (START_TRAINING) on the same
annotations, both run in the same process. When the fine-tuning queues a full retrain to follow it (time series
whose data outgrew the last full training, or whose last full training took at most FULL_RETRAIN_FOLLOWS_S),
that one runs afterwards, and the warm F1 is the fine-tuned version's (pinned for the scoring); the seconds
from the annotation until that full retrain serves, and its F1, are printed too.

- watch: each of the 7 subjects' recordings is cut in two: the first 70% is an annotated task, the rest is
  held out. For each count (1, 4, 7), a project gets the earlier recordings' annotations in a burst (trained,
  the first from scratch, the rest fine-tuned), then the count-th annotation is timed (warm), then a
  START_TRAINING (full retrain). With one recording there is nothing to warm-start from. The model serving
  just before the count-th annotation is scored too ("before it"): what the fine-tuning added.
- video: the 8 spliced videos. Each task is predicted before it is annotated (Label Studio asks when the
  annotator opens it), which caches its frame features as in real use (before the first model, a job that
  /predict queues encodes them). After 6 annotated, the warm and the full model are scored on videos 7-8 (not
  yet annotated); then 7 and 8 are annotated and timed.

`--seeds 0 1` repeats each case with other training seeds (and other project ids, so the gate holds out
other tasks) and ends with the mean and spread of the F1 differences, and the range of the full retrains' F1
over the seeds (on watch the seed alone moves a full retrain's F1 by up to ~0.1).

`--during-full-retrain`: the 7th watch recording annotated while a follow-up full retrain runs, with that
retrain stopped for it and without. `--burst`: all 7 watch recordings, then all 8 spliced videos (opened
first: the jobs that queues encode their frames meanwhile), annotated back to back (then START_TRAINING), with
and without the quiet period before a training (`TRAIN_DEBOUNCE_S`); `--burst --as-issue-measured` only as the
issue measured it (then START_TRAINING, the default quiet period), once per seed of `--seeds` (training seed and
project id, so the gate holds out other tasks), ending with the range of the seconds until idle;
`--encoded-first`: the videos are annotated once those jobs are done (annotators who take longer over a video
than its encoding).

Run: `.venv/bin/python -m bench.bench_fresh_model [--watch-only | --video-only | --during-full-retrain |
--burst [--as-issue-measured] [--encoded-first]] [--counts 1 4 7] [--threads 2] [--seeds 0]`
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402

from _wsgi import create_app  # noqa: E402
from bench.bench_timeseries_quality import config_for, load_tasks  # noqa: E402
from control_models.base import ControlModel  # noqa: E402
from control_models.timeline_labels import TimelineLabelsModel  # noqa: E402
from control_models.timeseries_labels import TimeSeriesLabelsModel  # noqa: E402
from fixtures.servers import wait_until  # noqa: E402
from fixtures.timeline import spliced_checkpoint, spliced_labels, spliced_tasks, timeline_config  # noqa: E402
from model import TemporalBackend  # noqa: E402
from utils.service.settings import Settings  # noqa: E402
from utils.timeseries.regions import regions_to_targets  # noqa: E402
from utils.timeseries.time_axis import TimeAxis  # noqa: E402
from utils.video.reader import probe_video  # noqa: E402
from utils.video.regions import regions_to_frame_labels  # noqa: E402

TRAIN_SHARE = 0.7
TOKEN = "bench-token"
F1_GAPS: dict[str, list[float]] = {}  # case -> warm F1 - full F1, one per seed
FULL_F1: dict[str, list[float]] = {}  # case -> full retrain F1, one per seed (the seed alone moves it)
BURST_IDLE: dict[str, list[float]] = {}  # burst -> seconds until training was idle, one per run


def use_training_seed(seed: int) -> None:
    """Models configured from now on train with `seed` (the bench's only change to the service)."""
    for cls in (TimelineLabelsModel, TimeSeriesLabelsModel):
        configure = cls.__dict__.get("unseeded_configure", cls.configure)

        def seeded(self: ControlModel, configure: Callable[[ControlModel], None] = configure) -> None:
            configure(self)
            self.train_config = replace(self.train_config, seed=seed)

        cls.unseeded_configure = configure
        cls.configure = seeded


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float  # process CPU seconds (all threads): less sensitive than wall time to other work on the cores
    epochs: int | None

    def __str__(self) -> str:
        return f"{self.wall:6.1f} s ({self.cpu:6.1f} CPU s, {self.epochs} epochs)"

    def ratio(self, other: Timing) -> str:
        return f"x{self.wall / other.wall:.2f} wall, x{self.cpu / other.cpu:.2f} CPU"


class Service:
    """The real app, in process, spoken to over its HTTP routes."""

    def __init__(
        self, root: Path, threads: int, debounce_s: float | None = None, train_threads: int | None = None
    ):
        debounce = {} if debounce_s is None else {"TRAIN_DEBOUNCE_S": str(debounce_s)}
        training = {} if train_threads is None else {"TRAIN_THREADS": str(train_threads)}
        settings = Settings.from_env(
            {
                **debounce,
                **training,
                "MODEL_DIR": str(root / "models"),
                "CACHE_DIR": str(root / "cache"),
                "MEDIA_ROOTS": f"{root}:{spliced_checkpoint().parents[1]}:{Path('tests/data').resolve()}",
                "MODEL_ROOTS": str(spliced_checkpoint().parent),
                "TORCH_THREADS": str(threads),
                "YOLO_OFFLINE": "1",
                "PREDICT_BUDGET_S": "600",  # /predict answers in the request, never through a job
                "LABEL_STUDIO_API_KEY": TOKEN,  # pinning a version needs it; no Label Studio is called
            }
        )
        self.settings = settings
        self.client: FlaskClient = create_app(settings, backend=TemporalBackend(settings)).test_client()

    def post(self, route: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        response = self.client.post(route, json=body, headers=headers)
        assert response.status_code == 200, (route, response.status_code, response.get_json())
        return response.get_json()

    def annotate(self, project: str, config: str, task: dict[str, Any], annotation_id: int) -> None:
        self.post(
            "/webhook",
            {
                "action": "ANNOTATION_CREATED",
                "project": {"id": int(project), "label_config": config},
                "task": {"id": task["id"], "data": task["data"]},
                "annotation": {
                    "id": annotation_id,
                    "task": task["id"],
                    "was_cancelled": False,
                    "ground_truth": False,
                    "updated_at": f"2026-12-03T10:00:{annotation_id % 60:02d}Z",
                    "result": task["result"],
                },
            },
        )

    def start_training(self, project: str, config: str) -> None:
        self.post(
            "/webhook", {"action": "START_TRAINING", "project": {"id": int(project), "label_config": config}}
        )

    def training_state(self, project: str) -> dict[str, Any]:
        return self.client.get("/health").get_json()["training"].get(project) or {}

    def wait_idle(self, project: str) -> None:
        while (state := self.training_state(project)) and (
            state["state"] != "idle" or state["trained"] < state["requested"]
        ):
            time.sleep(0.1)

    def serving(self, project: str, control: str) -> str | None:
        versions = self.client.get(f"/versions?project={project}").get_json()["controls"].get(control) or []
        return next((v["version"] for v in versions if v["serving"]), None)

    def fresh_after(self, project: str, control: str, send: Callable[[], None]) -> tuple[Timing, str]:
        """Wall and process CPU seconds from `send()` (a webhook) until the training it asked for is done,
        and the version serving then; says so when no new version serves (the gate rejected the candidate).
        A full retrain that the training queued to follow it runs on: `wait_idle` waits for it."""
        before = self.serving(project, control)
        runs = self.training_state(project).get("runs", 0)
        wall, cpu = time.monotonic(), time.process_time()
        send()
        while (state := self.training_state(project)).get("runs", 0) <= runs:
            time.sleep(0.1)
        metrics = ((state.get("last") or {}).get("metrics") or {}).values()
        epochs = next((m["epochs"] for m in metrics if isinstance(m, dict) and "epochs" in m), None)
        timing = Timing(time.monotonic() - wall, time.process_time() - cpu, epochs)
        served = self.serving(project, control)
        if served == before:
            print("    (the gate kept the candidate from serving)")
        if any(isinstance(m, dict) and m.get("full_retrain_due") for m in metrics):
            print("    (a full retrain follows the fine-tuning)")
        return timing, served

    def score_version(self, project: str, control: str, version: str, score: Callable[[], float]) -> float:
        """`score()` with `version` serving: pinned for the while when it does not serve now."""
        if self.serving(project, control) == version:
            return score()
        auth = {"Authorization": f"Token {TOKEN}"}
        self.post("/versions", {"project": project, "control": control, "version": version}, auth)
        try:
            return score()
        finally:
            self.post("/versions", {"project": project, "control": control, "version": None}, auth)

    def newest(self, project: str, control: str) -> str:
        return self.client.get(f"/versions?project={project}").get_json()["controls"][control][0]["version"]

    def predict(self, project: str, config: str, tasks: list[dict[str, Any]]) -> list[list[dict]]:
        body = {
            "project": project,
            "label_config": config,
            "tasks": [{"id": t["id"], "data": t["data"]} for t in tasks],
        }
        return [r.get("result", []) for r in self.post("/predict", body)["results"]]


def macro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Mean F1 over the labels present in the truth (columns of 0/1 arrays)."""
    f1s = [
        2 * (truth[:, i] & predicted[:, i]).sum() / (truth[:, i].sum() + predicted[:, i].sum())
        for i in range(truth.shape[1])
        if truth[:, i].any()
    ]
    return float(np.mean(f1s))


# --- watch -------------------------------------------------------------------------------------------------
def watch_split(root: Path) -> tuple[list[dict], list[dict], list[str]]:
    """Per subject: the first 70% of rows as a task (regions that start there), the rest held out."""
    watch = load_tasks("watch")
    train, held = [], []
    for i in range(1, 8):
        task = watch[f"watch_subject0{i}.csv"]
        frame = pd.read_csv(task.data["csv_url"])
        cut = int(len(frame) * TRAIN_SHARE)
        for part, rows, target in (("train", frame.iloc[:cut], train), ("held", frame.iloc[cut:], held)):
            path = root / f"watch{i}-{part}.csv"
            rows.to_csv(path, index=False)
            end = float(rows["time"].iloc[-1])
            regions = [r for r in task.regions if part == "held" or r["value"]["start"] < end]
            target.append(
                {"id": 100 * int(part == "held") + i, "data": {"csv_url": str(path)}, "result": regions}
            )
    labels = sorted({label for t in train for r in t["result"] for label in r["value"]["timeserieslabels"]})
    return train, held, labels


def watch_f1(service: Service, project: str, config: str, held: list[dict], labels: list[str]) -> float:
    truths, preds = [], []
    for task, regions in zip(held, service.predict(project, config, held), strict=True):
        times = pd.read_csv(task["data"]["csv_url"])["time"].to_numpy()
        truths.append(
            regions_to_targets(task["result"], times, labels, TimeAxis(), "timeserieslabels").targets
        )
        preds.append(regions_to_targets(regions, times, labels, TimeAxis(), "timeserieslabels").targets)
    return macro_f1(np.concatenate(truths).astype(bool), np.concatenate(preds).astype(bool))


def bench_watch(service: Service, root: Path, counts: list[int], seed: int) -> None:
    train, held, labels = watch_split(root)
    config = config_for("watch")
    print(f"watch (7 subjects, first 70% annotated, last 30% held out), seed {seed}", flush=True)
    for count in counts:
        project = str(10 + count + 100 * seed)
        for number, task in enumerate(train[: count - 1], start=1):  # earlier annotations, one burst
            service.annotate(project, config, task, annotation_id=number)
        service.wait_idle(project)
        before_f1 = watch_f1(service, project, config, held, labels) if count > 1 else float("nan")
        service.predict(project, config, [train[count - 1]])  # the annotator opens the task
        annotated = time.monotonic()
        warm, warm_version = service.fresh_after(
            project, "label", lambda p=project, c=count: service.annotate(p, config, train[c - 1], c)
        )
        service.wait_idle(project)
        idle = time.monotonic() - annotated
        warm_f1 = service.score_version(
            project, "label", warm_version, lambda p=project: watch_f1(service, p, config, held, labels)
        )
        follow_up_f1 = None
        if service.serving(project, "label") not in (None, warm_version):  # a full retrain followed, serving
            follow_up_f1 = watch_f1(service, project, config, held, labels)
            print(f"    the full retrain that followed serves after {idle:.1f} s, F1 {follow_up_f1:.3f}")
        full, _ = service.fresh_after(project, "label", lambda p=project: service.start_training(p, config))
        full_f1 = service.score_version(
            project,
            "label",
            service.newest(project, "label"),
            lambda p=project: watch_f1(service, p, config, held, labels),
        )
        F1_GAPS.setdefault(f"watch after {count}", []).append(warm_f1 - full_f1)
        if follow_up_f1 is not None:  # its F1 in the place of the warm one
            followed = f"watch after {count}, the full retrain that followed"
            F1_GAPS.setdefault(followed, []).append(follow_up_f1 - full_f1)
            FULL_F1.setdefault(followed, []).append(full_f1)
        FULL_F1.setdefault(f"watch after {count}", []).append(full_f1)
        print(
            f"  after {count} annotated: F1 before it {before_f1:.3f} | warm {warm}, F1 {warm_f1:.3f} "
            f"| full retrain {full}, F1 {full_f1:.3f} | warm/full {warm.ratio(full)}, F1 {warm_f1 - full_f1:+.3f}",
            flush=True,
        )


def trained_with(service: Service, project: str, control: str, task_id: int) -> bool:
    """Whether the serving version saw `task_id` (trained on it, or held it out for its gate)."""
    versions = service.client.get(f"/versions?project={project}").get_json()["controls"].get(control) or []
    record = next((v for v in versions if v["serving"]), {})
    return task_id in {
        *(record.get("trained_on") or []),
        *((record.get("gate") or {}).get("held_out_tasks") or []),
    }


def bench_watch_during_full_retrain(service: Service, root: Path, seed: int, stop: bool) -> None:
    """The 7th recording is annotated while the full retrain that the fine-tuning on the first 6 asked for
    runs: time until a model that saw it serves, with that retrain stopped for it (the service) or run to its
    end first (`stop` False, as before the stop existed)."""
    train, _, _ = watch_split(root)
    config = config_for("watch")
    project = str(700 + 100 * seed + int(stop))
    own = TemporalBackend._annotations_changed
    if not stop:  # the baseline: a running full retrain never learns of newer annotations
        TemporalBackend._annotations_changed = lambda self, *args: lambda: False
    try:
        fresh, done = time_seventh_during_full_retrain(service, project, config, train)
    finally:
        TemporalBackend._annotations_changed = own
    print(
        f"  7th annotated during the follow-up full retrain, {'stopped for it' if stop else 'not stopped'}: "
        f"a model that saw it serves after {fresh:.1f} s; all training done after {done:.1f} s",
        flush=True,
    )


def time_seventh_during_full_retrain(
    service: Service, project: str, config: str, train: list[dict]
) -> tuple[float, float]:
    """Seconds from the 7th annotation until a model that saw it serves, and until training is idle."""
    service.annotate(project, config, train[0], annotation_id=1)
    service.wait_idle(project)  # from scratch on one recording
    for number, task in enumerate(train[1:6], start=2):
        service.annotate(project, config, task, annotation_id=number)
    while not (
        (state := service.training_state(project)).get("state") == "running"
        and (last := state.get("last") or {}).get("tasks") == 6
        and ((last.get("metrics") or {}).get("label") or {}).get("warm_start")
    ):
        time.sleep(0.1)  # the fine-tuning on all 6 is done: what runs now is the full retrain it asked for
    time.sleep(2.0)
    started = time.monotonic()
    service.annotate(project, config, train[6], annotation_id=7)
    return seconds_until_served(service, project, "label", [train[6]], started)


def seconds_until_served(
    service: Service, project: str, control: str, tasks: list[dict[str, Any]], started: float
) -> tuple[float, float]:
    """Seconds since `started` until a model that saw all of `tasks` serves, and until training is idle."""
    while not all(trained_with(service, project, control, task["id"]) for task in tasks):
        time.sleep(0.1)
    fresh = time.monotonic() - started
    service.wait_idle(project)
    return fresh, time.monotonic() - started


@dataclass(frozen=True)
class Burst:
    """Annotations sent to one project back to back (a script, a bulk import)."""

    name: str
    config: str
    control: str
    tasks: list[dict[str, Any]]
    open_first: bool  # each task is predicted first, as Label Studio asks when the annotator opens it


def watch_burst(root: Path) -> Burst:
    train, _, _ = watch_split(root)
    return Burst("watch, 7 recordings", config_for("watch"), "label", train, open_first=False)


def video_burst() -> Burst:
    config = timeline_config(spliced_labels(), model_trainable="true", model_path=spliced_checkpoint().name)
    tasks = [
        {"id": t["id"], "data": t["data"], "result": t["annotations"][0]["result"]} for t in spliced_tasks()
    ]
    return Burst("video, 8 spliced videos", config, "videoLabels", tasks, open_first=True)


def time_burst(
    service: Service,
    project: str,
    burst: Burst,
    then_start_training: bool = False,
    encoded_first: bool = False,
) -> tuple[float, float, int]:
    """Seconds from the first annotation until a model that saw all of them serves, and until training is
    idle; the trainings run. With `encoded_first`, the annotations are sent once the videos the opening
    /predict queued are encoded (annotators who take longer over a video than its encoding)."""
    if burst.open_first:
        for task in burst.tasks:  # one by one, as annotators open them
            service.predict(project, burst.config, [task])
        if encoded_first:
            features = service.settings.cache_dir / "features"
            wait_until(
                lambda: len(list(features.glob("*.rows"))) >= len(burst.tasks),
                600,
                "the opened videos encoded",
            )
    started = time.monotonic()
    for number, task in enumerate(burst.tasks, start=1):
        service.annotate(project, burst.config, task, annotation_id=number)
    if then_start_training:
        service.start_training(project, burst.config)
    fresh, idle = seconds_until_served(service, project, burst.control, burst.tasks, started)
    return fresh, idle, service.training_state(project)["runs"]


def bench_burst(
    root: Path,
    threads: int,
    then_start_training: bool,
    quiet_periods: tuple[float | None, ...],
    seed: int,
    kinds: tuple[str, ...] = ("watch", "video"),
    encoded_first: bool = False,
) -> None:
    """All tasks annotated back to back, optionally followed by START_TRAINING (how the issue measured it):
    seconds until a model that saw all of them serves and until training is idle, and the trainings run, per
    quiet period before a training (None: the service's default). The seed picks the training seed and the
    project id (which tasks the gate holds out); `kinds` picks the bursts; `encoded_first`: see `time_burst`."""
    bursts = {"watch": watch_burst, "video": lambda _root: video_burst()}
    for kind in kinds:
        for debounce_s in quiet_periods:
            service_root = root / f"burst-{kind}-{debounce_s}-{then_start_training}-{seed}"
            service_root.mkdir()
            service = Service(service_root, threads, debounce_s)
            burst = bursts[kind](service_root)
            fresh, idle, runs = time_burst(
                service, str(900 + seed), burst, then_start_training, encoded_first
            )
            BURST_IDLE.setdefault(burst.name, []).append(idle)
            quiet = "none" if debounce_s == 0 else f"{service.settings.train_debounce_s:g} s (default)"
            print(
                f"  {burst.name}, quiet period {quiet}, seed {seed}: a model that saw all of them serves after "
                f"{fresh:.1f} s; idle after {idle:.1f} s; {runs} trainings",
                flush=True,
            )


# --- video -------------------------------------------------------------------------------------------------
def video_f1(service: Service, project: str, config: str, held: list[dict], labels: list[str]) -> float:
    truths, preds = [], []
    for task, regions in zip(held, service.predict(project, config, held), strict=True):
        frames = probe_video(Path(task["data"]["video"])).frame_count
        truths.append(regions_to_frame_labels(task["result"], "videoLabels", labels, frames))
        preds.append(regions_to_frame_labels(regions, "videoLabels", labels, frames))
    return macro_f1(np.concatenate(truths).astype(bool), np.concatenate(preds).astype(bool))


def bench_video(service: Service, seed: int) -> None:
    labels, burst = spliced_labels(), video_burst()
    config, tasks = burst.config, burst.tasks
    project = str(2 + 100 * seed)
    print(f"video (8 spliced videos, features cached), seed {seed}", flush=True)
    for count, task in enumerate(tasks, start=1):
        service.predict(project, config, [task])  # the annotator opens the task: its features are cached
        warm, _ = service.fresh_after(
            project, "videoLabels", lambda t=task, c=count: service.annotate(project, config, t, 1000 + c)
        )
        service.wait_idle(project)
        if count not in (6, 8):
            continue
        warm_f1 = video_f1(service, project, config, tasks[6:], labels) if count == 6 else None
        full, _ = service.fresh_after(project, "videoLabels", lambda: service.start_training(project, config))
        quality = ""
        if warm_f1 is not None:
            full_f1 = service.score_version(
                project,
                "videoLabels",
                service.newest(project, "videoLabels"),
                lambda: video_f1(service, project, config, tasks[6:], labels),
            )
            F1_GAPS.setdefault("video after 6, on 7-8", []).append(warm_f1 - full_f1)
            FULL_F1.setdefault("video after 6, on 7-8", []).append(full_f1)
            quality = f" | held-out videos 7-8: F1 warm {warm_f1:.3f}, full {full_f1:.3f} ({warm_f1 - full_f1:+.3f})"
        print(
            f"  after {count} annotated: warm {warm} | full retrain {full} | {warm.ratio(full)}{quality}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--watch-only", action="store_true")
    parser.add_argument("--video-only", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 4, 7], help="watch recordings annotated")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds, one run each")
    parser.add_argument(
        "--burst",
        action="store_true",
        help="only: all 7 watch recordings, then all 8 videos, annotated back to back (then START_TRAINING), "
        "with and without the quiet period before a training",
    )
    parser.add_argument(
        "--as-issue-measured",
        action="store_true",
        help="with --burst: only back to back then START_TRAINING, with the default quiet period, per seed",
    )
    parser.add_argument(
        "--encoded-first",
        action="store_true",
        help="with --burst: the videos are annotated once the jobs their opening queued have encoded them",
    )
    parser.add_argument(
        "--during-full-retrain",
        action="store_true",
        help="only: the 7th watch recording annotated while a follow-up full retrain runs, stopped or not",
    )
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(message)s"
    )
    print(
        f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; torch threads {args.threads}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        if args.burst:
            quiet_periods = (None,) if args.as_issue_measured else (0.0, None)
            kinds = ("watch",) * (not args.video_only) + ("video",) * (not args.watch_only)
            for seed in args.seeds:
                use_training_seed(seed)
                for then_start_training in (True,) if args.as_issue_measured else (False, True):
                    print(f"annotated back to back{', then START_TRAINING' * then_start_training}")
                    bench_burst(
                        Path(tmp),
                        args.threads,
                        then_start_training,
                        quiet_periods,
                        seed,
                        kinds,
                        args.encoded_first,
                    )
            if args.as_issue_measured:
                for name, seconds in BURST_IDLE.items():
                    print(
                        f"{name}: idle after {min(seconds):.1f}-{max(seconds):.1f} s over {len(seconds)} seeds"
                    )
            return
        service = Service(Path(tmp), args.threads)
        for seed in args.seeds:
            use_training_seed(seed)
            if args.during_full_retrain:
                print(f"watch, 7th recording annotated during a full retrain, seed {seed}", flush=True)
                for stop in (False, True):
                    bench_watch_during_full_retrain(service, Path(tmp), seed, stop)
                continue
            if not args.video_only:
                bench_watch(service, Path(tmp), args.counts, seed)
            if not args.watch_only:
                bench_video(service, seed)
    for case, gaps in F1_GAPS.items():
        print(
            f"{case}: F1 warm - full over {len(gaps)} seeds: mean {np.mean(gaps):+.3f}, "
            f"min {min(gaps):+.3f}, max {max(gaps):+.3f}; full retrain F1 {min(FULL_F1[case]):.3f}"
            f"-{max(FULL_F1[case]):.3f}"
        )


if __name__ == "__main__":
    main()
