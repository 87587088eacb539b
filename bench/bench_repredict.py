"""The labeling loop on a 200-task time-series project in a real Label Studio (basicmotions, local-files storage):

1. annotate the four training files; after the first training, time until every unlabelled task carries a pushed
   prediction of the new version;
2. update an annotation (a retraining, a new version): time again until every unlabelled task carries it;
3. import the four test files as new tasks: time until their pushed predictions arrive (TASKS_CREATED), and score
   them (macro-F1 against the ground truth) next to what `/predict` answers for the same tasks and version.

Prints the times, the pushed predictions per task and version (never more than one), and the scores.
Needs `bash tests/e2e/setup.sh` (Label Studio in .e2e/ls-venv). A few minutes on 2 cores.

Run: .venv/bin/python -m bench.bench_repredict [--tasks 200]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import requests

from fixtures.ls_api import BackendHealth, LabelStudioApi
from fixtures.scoring import series_scores
from fixtures.servers import LS_TOKEN, label_studio_and_backend, wait_until
from fixtures.shared_sets import timeseries_config, timeseries_dataset

CHANNELS = ["acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z"]
REPO = Path(__file__).resolve().parent.parent
OTHER_IDS = 10**9


def without_ids(regions: list[dict]) -> list[dict]:
    """Regions as compared: each answer names its regions afresh."""
    return [{k: v for k, v in region.items() if k != "id"} for region in regions]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=200, help="tasks in the project before the import")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for each step")
    args = parser.parse_args()

    series = timeseries_dataset(REPO / "tests" / "data")
    hz = series.ground_truth["info"]["sampling_hz"]
    examples = dict(series.examples())
    train = [name for name in examples if "train" in name]
    test = [name for name in examples if "test" in name]

    work = Path(tempfile.mkdtemp(prefix="bench-repredict-"))
    shutil.copytree(series.source, work / "documents" / series.folder, copy_function=shutil.copyfile)
    with label_studio_and_backend(
        work,
        {
            "MODEL_DIR": str(work / "models"),
            "CACHE_DIR": str(work / "cache"),
            "LOG_LEVEL": "INFO",
        },
    ) as (ls, backend):
        api = LabelStudioApi(ls.url, LS_TOKEN)
        health = BackendHealth(backend.url)
        config = timeseries_config(
            series.labels, CHANNELS, model_classifier_epochs=15, model_classifier_sequence_size=128
        )
        project = api.create_project("repredict", config)["id"]
        api.add_local_storage(project, str(work / "documents" / series.folder))
        # the training files, then unlabelled tasks on the test files, round robin, up to --tasks
        files = train + [test[i % len(test)] for i in range(args.tasks - len(train))]
        imported = api.import_tasks(project, [series.tasks([name])[name] for name in files])
        task_ids = [task["id"] for task in imported]
        unlabelled = task_ids[len(train) :]
        api.connect_ml(project, backend.url)

        def versions(task_id: int) -> Counter[str]:
            return Counter(p["model_version"] for p in api.predictions(task_id))

        def carried_by_all(version: str, tasks: list[int], since: float) -> float:
            wait_until(
                lambda: all(version in versions(t) for t in tasks),
                args.timeout,
                f"predictions of {version} on {len(tasks)} tasks",
                2.0,
            )
            return time.monotonic() - since

        def trained_version(runs_before: int) -> tuple[str, float]:
            state = health.wait_trained(project, runs_before, timeout_s=args.timeout)
            return state["last"]["model_version"], time.monotonic()

        for task_id, name in zip(task_ids, train, strict=False):
            api.create_annotation(task_id, examples[name])
        first, trained_at = trained_version(0)
        first_s = carried_by_all(first, unlabelled, trained_at)
        print(
            f"first model {first}: all {len(unlabelled)} unlabelled tasks carry it {first_s:.0f} s after training"
        )

        runs = health.project_state(project)["runs"]
        task0 = api.task(task_ids[0])
        api.update_annotation(task0["annotations"][0]["id"], examples[train[0]][:-1])
        second, trained_at = trained_version(runs)
        second_s = carried_by_all(second, unlabelled, trained_at)
        print(
            f"retrained {second}: all {len(unlabelled)} unlabelled tasks carry it {second_s:.0f} s after training"
        )
        sample = unlabelled[:: max(1, len(unlabelled) // 20)]
        repeats = [dict(v) for t in sample if max((v := versions(t)).values()) > 1]
        print(f"tasks of {len(sample)} sampled holding a version twice: {len(repeats)} {repeats[:3]}")

        imported_at = time.monotonic()
        new = api.import_tasks(project, [series.tasks([name])[name] for name in test])[-len(test) :]
        new_ids = [task["id"] for task in new]
        new_s = carried_by_all(second, new_ids, imported_at)
        print(f"imported {len(new_ids)} tasks: pushed predictions of {second} after {new_s:.1f} s")

        # /predict leaves a task whose job pushed its prediction to that push: ask for the same data under
        # other task ids, as a task the loop has not seen
        answered = requests.post(
            f"{backend.url}/predict",
            json={
                "tasks": [{"id": OTHER_IDS + t, "data": api.task(t)["data"]} for t in new_ids],
                "project": f"{project}.0",
                "label_config": config,
            },
            timeout=300,
        ).json()["results"]
        for task_id, name, direct in zip(new_ids, test, answered, strict=True):
            [pushed] = [p for p in api.predictions(task_id) if p["model_version"] == second]
            pushed_f1, baseline = series_scores(pushed["result"], series.ground_truth, name, "label", hz)
            direct_f1, _ = series_scores(direct["result"], series.ground_truth, name, "label", hz)
            print(
                f"{name}: macro-F1 pushed {pushed_f1:.3f}, /predict {direct_f1:.3f} (majority baseline "
                f"{baseline:.3f}); same regions: {without_ids(pushed['result']) == without_ids(direct['result'])}"
            )


if __name__ == "__main__":
    main()
