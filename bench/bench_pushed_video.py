"""Pushed video predictions in a real Label Studio, scored: are they as good as what `/predict` answers?

A TimelineLabels project (trainable mode) on the spliced videos: the six training videos are annotated through
Label Studio's API; after the training, the two held-out videos are imported as new tasks. Their TASKS_CREATED
webhook queues prediction jobs that push the predictions by themselves. Prints the time from import to the
pushed predictions, their frame macro-F1 against the ground truth, and the macro-F1 of `/predict` answers for
the same videos and model version (asked under task ids the loop has not seen).

Needs `bash tests/e2e/setup.sh` (Label Studio in .e2e/ls-venv). A few minutes on 2 cores.

Run: .venv/bin/python -m bench.bench_pushed_video
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import requests

from fixtures.ls_api import BackendHealth, LabelStudioApi
from fixtures.scoring import frame_sets, macro_f1, majority_baseline, truth_frames
from fixtures.servers import LS_TOKEN, label_studio_and_backend, wait_until
from fixtures.shared_sets import timeline_config, video_dataset
from fixtures.timeline import FROM_NAME, spliced_checkpoint

REPO = Path(__file__).resolve().parent.parent
TRAIN_FILES = [f"spliced_train{i}.mp4" for i in range(6)]
HELD_OUT = ["spliced_train6.mp4", "spliced_train7.mp4"]
OTHER_IDS = 10**9  # task ids the labeling loop has never seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--epochs", type=int, default=None, help="model_classifier_epochs (default: the tag's)"
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for each step")
    args = parser.parse_args()

    videos = video_dataset(REPO / "tests" / "data")
    examples = dict(videos.examples())
    work = Path(tempfile.mkdtemp(prefix="bench-pushed-video-"))
    shutil.copytree(videos.source, work / "documents" / videos.folder, copy_function=shutil.copyfile)
    (work / "models").mkdir()
    shutil.copyfile(spliced_checkpoint(), work / "models" / "yolov8n-cls.pt")
    with label_studio_and_backend(
        work,
        {
            "MODEL_DIR": str(work / "models"),
            "CACHE_DIR": str(work / "cache"),
            "YOLO_CONFIG_DIR": str(work / "ultralytics"),
        },
    ) as (ls, backend):
        api = LabelStudioApi(ls.url, LS_TOKEN)
        health = BackendHealth(backend.url)
        config = timeline_config(
            videos.labels,
            model_trainable="true",
            model_classifier_epochs=args.epochs,
            model_classifier_sequence_size=16,
        )
        project = api.create_project("pushed video", config)["id"]
        api.add_local_storage(project, str(work / "documents" / videos.folder))
        imported = api.import_tasks(project, list(videos.tasks(TRAIN_FILES).values()))
        api.connect_ml(project, backend.url)
        for task, name in zip(imported, TRAIN_FILES, strict=True):
            api.create_annotation(task["id"], examples[name])
        state = health.wait_trained(project, 0, timeout_s=args.timeout)
        version = state["last"]["model_version"]
        print(
            f"trained {version} on {len(TRAIN_FILES)} videos, {state['waited_s']:.0f} s after the last annotation"
        )

        imported_at = time.monotonic()
        new = api.import_tasks(project, list(videos.tasks(HELD_OUT).values()))[-len(HELD_OUT) :]

        def pushed() -> dict[int, dict] | None:
            found = {
                t["id"]: p for t in new for p in api.predictions(t["id"]) if p["model_version"] == version
            }
            return found if len(found) == len(new) else None

        by_task = wait_until(pushed, args.timeout, f"pushed predictions of {version}", 2.0)
        print(
            f"imported {len(new)} videos: pushed predictions of {version} after {time.monotonic() - imported_at:.1f} s"
        )

        answered = requests.post(
            f"{backend.url}/predict",
            json={
                "tasks": [{"id": OTHER_IDS + t["id"], "data": t["data"]} for t in new],
                "project": f"{project}.0",
                "label_config": config,
            },
            timeout=600,
        ).json()["results"]
        for task, name, direct in zip(new, HELD_OUT, answered, strict=True):
            truth = truth_frames(videos.ground_truth, name)
            pushed_f1 = macro_f1(frame_sets(by_task[task["id"]]["result"], FROM_NAME), truth)
            direct_f1 = macro_f1(frame_sets(direct["result"], FROM_NAME), truth)
            copies = sum(p["model_version"] == version for p in api.predictions(task["id"]))
            print(
                f"{name}: frame macro-F1 pushed {pushed_f1:.3f}, /predict {direct_f1:.3f} (majority baseline "
                f"{majority_baseline(truth):.3f}); predictions of {version} on the task: {copies}"
            )


if __name__ == "__main__":
    main()
