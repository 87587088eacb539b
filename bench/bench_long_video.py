"""A long video through the whole labeling loop with a real Label Studio: a generated 640x360 video (60 minutes
at 25 fps by default) is imported into a project connected to the backend (simple mode, offline YOLO checkpoint);
Label Studio's TASKS_CREATED webhook queues the prediction job, which streams the frames, encodes them and
pushes the full prediction. Prints the time from import to the prediction in Label Studio, encoded frames/s, and
the backend's peak memory (VmHWM of each of its processes). Also checks that /predict answers at once meanwhile.

Long: about 90,000 frames; at ~150 frames/s on 2 cores the encoding alone takes ~10 minutes.
Needs `bash tests/e2e/setup.sh` (Label Studio in .e2e/ls-venv).

Run: .venv/bin/python -m bench.bench_long_video [--minutes 60] [--step 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from fixtures.ls_api import LabelStudioApi  # noqa: E402
from fixtures.servers import LS_TOKEN, label_studio_and_backend, wait_until  # noqa: E402
from fixtures.shared_sets import timeline_control, video_object, view  # noqa: E402
from fixtures.synthetic_video import write_video  # noqa: E402
from fixtures.yolo_checkpoint import build_checkpoint  # noqa: E402

LABELS = ["Ball", "Goal"]


def peak_memory_mb(group_leader: int) -> dict[int, float]:
    """VmHWM (peak resident memory) of every process in the backend's process group, in MiB."""
    peaks = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != group_leader:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[int(entry.name)] = int(line.split()[1]) / 1024
        except (OSError, ProcessLookupError):
            continue
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--step", type=int, default=1, help="model_frame_step: encode every k-th frame")
    parser.add_argument("--fps", type=float, default=25)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-long-video-"))
    media = work / "documents" / "long"
    started = time.perf_counter()
    frames = write_video(media / "long.mp4", args.minutes, args.fps, 640, 360)
    size_mb = (media / "long.mp4").stat().st_size / 2**20
    print(
        f"video: {args.minutes:g} min, {frames} frames, 640x360 @ {args.fps:g} fps, {size_mb:.0f} MiB, "
        f"written in {time.perf_counter() - started:.0f} s"
    )

    model_dir = work / "models"
    build_checkpoint(model_dir / "yolov8n-cls.pt", names=LABELS)
    with label_studio_and_backend(
        work,
        {
            "MODEL_DIR": str(model_dir),
            "CACHE_DIR": str(work / "cache"),
            "YOLO_CONFIG_DIR": str(work / "ultralytics"),
            "WORKERS": "1",
            "THREADS": "4",
            "TORCH_THREADS": str(os.cpu_count() or 2),
        },
    ) as (ls, backend):
        api = LabelStudioApi(ls.url, LS_TOKEN)
        config = view(
            video_object(fps=args.fps),
            timeline_control(LABELS, model_frame_step=args.step, model_score_threshold=0.05),
        )
        project = api.create_project("long video", config)["id"]
        api.add_local_storage(project, str(media))
        api.connect_ml(project, backend.url)

        imported_at = time.perf_counter()
        task = api.import_tasks(project, [{"data": {"video": "/data/local-files/?d=long/long.mp4"}}])[-1]
        predict_started = time.perf_counter()
        api.retrieve_predictions(project, [task["id"]])
        predict_s = time.perf_counter() - predict_started

        def pushed() -> list[dict]:
            return [p for p in api.predictions(task["id"]) if p["result"]]

        [prediction] = wait_until(pushed, 4 * 3600, "the pushed prediction", 2.0)
        total_s = time.perf_counter() - imported_at
        regions = prediction["result"]
        same_version = [
            p for p in api.predictions(task["id"]) if p["model_version"] == prediction["model_version"]
        ]
        last_frame = max(span["end"] for region in regions for span in region["value"]["ranges"])
        peaks = peak_memory_mb(backend.process.pid)
        print(f"/predict (Retrieve Predictions) while the job runs: answered in {predict_s:.1f} s")
        print(
            f"import -> prediction in Label Studio: {total_s:.0f} s ({frames / args.step / total_s:.0f} "
            f"encoded frames/s end to end, {frames / total_s:.0f} video frames/s)"
        )
        print(
            f"prediction: {len(regions)} regions up to frame {last_frame} of {frames}, "
            f"version {prediction['model_version']} ({len(same_version)} prediction(s) of it on the task)"
        )
        print(
            f"backend peak memory (VmHWM per process, MiB): {', '.join(f'{v:.0f}' for v in peaks.values())}"
        )


if __name__ == "__main__":
    main()
