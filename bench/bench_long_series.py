"""A long time series predicted through the HTTP API: a generated N-row, 6-channel CSV (2,000,000 rows by
default, ~120 MB) served over a local HTTP server on 127.0.0.1, a model trained through the webhook, then a
cold `/predict` (download included) and one of a copy read from MEDIA_ROOTS (no download), timed with the
gunicorn worker's peak memory (VmHWM). Then the stages of a prediction in this process, wall and CPU
seconds (all threads), for N/2 and N rows (each should scale linearly), with the net on ONNX Runtime (the
service's path for long series) and on PyTorch (its fallback), and against earlier ways where one existed:
read, normalise, the net on PyTorch against ONNX Runtime (interleaved, with their largest logit difference).

    .venv/bin/python -m bench.bench_long_series [--rows 2000000] [--threads 2] [--runtime auto|torch]
        [--skip-http] [--skip-stages] [--skip-before]
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from time import process_time

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as gunicorn.conf.py sets it for the service

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import requests  # noqa: E402
import torch  # noqa: E402

CHANNELS = ("ax", "ay", "az", "gx", "gy", "gz")
LABELS = ("walk", "run")
CONFIG = (
    '<View><TimeSeries name="ts" valueType="url" value="$csv_url" timeColumn="time">'
    + "".join(f'<Channel column="{c}"/>' for c in CHANNELS)
    + '</TimeSeries><TimeSeriesLabels name="label" toName="ts">'
    + "".join(f'<Label value="{label}"/>' for label in LABELS)
    + "</TimeSeriesLabels></View>"
)
PERIOD = 0.02  # 50 Hz
BLOCK = 600  # samples per activity block


def write_series(path: Path, rows: int, seed: int = 0) -> list[dict]:
    """A CSV of `rows` samples: blocks of rest, walking (slow sine) and running (fast, strong sine) with
    noise; returns the labelled ranges as Label Studio regions."""
    rng = np.random.default_rng(seed)
    activity = (np.arange(rows) // BLOCK) % 3  # 0 rest, 1 walk, 2 run
    t = np.arange(rows) * PERIOD
    amplitude = np.array([0.05, 1.0, 2.5], dtype=np.float32)[activity][:, None]
    frequency = np.array([0.3, 1.8, 3.2], dtype=np.float32)[activity][:, None]
    phase = rng.uniform(0, np.pi, len(CHANNELS)).astype(np.float32)
    values = amplitude * np.sin(2 * np.pi * frequency * t[:, None].astype(np.float32) + phase)
    values += rng.normal(0, 0.1, values.shape).astype(np.float32)
    frame = pd.DataFrame(values, columns=list(CHANNELS))
    frame.insert(0, "time", np.round(t, 2))
    frame.to_csv(path, index=False, float_format="%.5g", quoting=csv.QUOTE_MINIMAL)
    regions = []
    for start in range(0, rows, BLOCK):
        label = int(activity[start])
        if label:
            end = min(rows, start + BLOCK) - 1
            value = {
                "start": t[start],
                "end": t[end],
                "instant": False,
                "timeserieslabels": [LABELS[label - 1]],
            }
            regions.append(
                {"from_name": "label", "to_name": "ts", "type": "timeserieslabels", "value": value}
            )
    return regions


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_directory(directory: Path) -> tuple[ThreadingHTTPServer, str]:
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(children[0])


def memory_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads): the request's cost whatever the load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise TimeoutError(what)


def http_run(tmp: Path, media: Path, rows_csv: Path, threads: int, runtime: str) -> None:
    port = free_port()
    files, files_url = serve_directory(media)
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WORKERS": "1",
        "THREADS": "4",
        "MODEL_DIR": str(tmp / "models"),
        "CACHE_DIR": str(tmp / "cache"),
        "MEDIA_ROOTS": str(media),
        "MEDIA_ALLOWLIST": files_url,  # the stand-in for Label Studio serves on loopback
        "TORCH_THREADS": str(threads),
        "SEQUENCE_RUNTIME": runtime,
        "TRAIN_EPOCHS": "3",
        "LOG_LEVEL": "WARNING",
        "YOLO_OFFLINE": "1",
        "YOLO_CONFIG_DIR": str(tmp / "yolo"),
    }
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "-c", "gunicorn.conf.py", "_wsgi:create_app()"], cwd=ROOT, env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            try:
                return requests.get(base + "/health", timeout=2).ok
            except requests.RequestException:
                return False

        wait_for(healthy, 120, "the service did not start")
        regions = write_series(media / "train.csv", 6 * BLOCK * 3, seed=1)
        task = {"id": 1, "data": {"csv_url": f"{files_url}/train.csv"}}
        event = {
            "action": "ANNOTATION_CREATED",
            "project": {"id": 1, "label_config": CONFIG},
            "annotation": {"id": 1, "task": 1, "result": regions},
            "task": task,
        }
        requests.post(base + "/webhook", json=event, timeout=30).raise_for_status()

        def trained() -> bool:
            state = requests.get(base + "/health", timeout=5).json()["training"].get("1", {})
            return state.get("state") == "idle" and state.get("trained", 0) >= 1

        wait_for(trained, 600, "training did not finish")
        worker = worker_pid(server.pid)
        before = memory_mb(worker, "VmRSS")
        for name, reference in (
            ("cold /predict, CSV downloaded over local HTTP", f"{files_url}/{rows_csv.name}"),
            ("/predict of a copy read from MEDIA_ROOTS", str(shutil.copy(rows_csv, media / "copy.csv"))),
        ):
            body = {
                "tasks": [{"id": 2, "data": {"csv_url": reference}}],
                "project": "1",
                "label_config": CONFIG,
            }
            started, cpu = time.perf_counter(), cpu_seconds(worker)
            response = requests.post(base + "/predict", json=body, timeout=1800)
            elapsed, cpu = time.perf_counter() - started, cpu_seconds(worker) - cpu
            response.raise_for_status()
            result = response.json()["results"][0]["result"]
            print(
                f"{name}: {elapsed:6.1f} s, worker CPU {cpu:.1f} s, {len(result)} regions; worker peak memory "
                f"(VmHWM) {memory_mb(worker, 'VmHWM'):.0f} MB (RSS before {before:.0f} MB), "
                f"load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    finally:
        server.terminate()
        server.wait(30)
        files.shutdown()


def read_before(path: Path) -> np.ndarray:
    """The reader before this change: every column parsed as float64, copied to float32 at the end."""
    frame = pd.read_csv(path, skipinitialspace=True, engine="c", quoting=csv.QUOTE_MINIMAL)
    columns = [pd.to_numeric(frame[c], errors="coerce").astype(np.float64).to_numpy() for c in CHANNELS]
    return np.stack(columns, axis=1).astype(np.float32)


def normalise_before(values: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    own = (values - values.mean(axis=0)) / values.std(axis=0)
    return np.concatenate([(values - mean) / std, own], axis=1).astype(np.float32)


@torch.inference_mode()
def net_before(net, values: np.ndarray, size: int, batch_size: int = 32) -> np.ndarray:
    """Prediction before this change: the same windows and taper, each batch of windows through the whole
    forward pass (the GRU stepping through `batch_size` windows, the merge at the full rate on the upsampled
    context)."""
    from utils.temporal.sequence_net import PREDICT_WINDOW_FACTOR, _taper, window_starts

    length = len(values)
    span = min(size * PREDICT_WINDOW_FACTOR, length)
    overlap = min(max(1, size // 2), span - 1) if span < length else 0
    starts = window_starts(length, span, span - overlap)
    weights = _taper(span, overlap)[:, None]
    total = np.zeros((length, net.head.out_channels), dtype=np.float32)
    norm = np.zeros((length, 1), dtype=np.float32)
    for i in range(0, len(starts), batch_size):
        chunk = starts[i : i + batch_size]
        out = net(torch.from_numpy(np.stack([values[s : s + span] for s in chunk]))).numpy()
        for s, logits in zip(chunk, out, strict=True):
            total[s : s + span] += logits * weights
            norm[s : s + span] += weights
    return total / norm


def timed(action, clock=time.perf_counter):
    started = clock()
    result = action()
    return result, clock() - started


def measured(action):
    """(result, wall seconds, CPU seconds of this process, all threads)."""
    (result, wall), cpu = timed(lambda: timed(action), process_time)
    return result, wall, cpu


def stages(path: Path, net, runner) -> list[tuple[str, float, float]]:
    """Wall and CPU seconds of each stage of a prediction, as `predict_regions` runs them (untrained net of
    the default size: the same cost as a trained one); `runner` None is the PyTorch path."""
    from control_models.timeseries_labels import model_input
    from utils.temporal.decoder import decode_exclusive
    from utils.temporal.sequence_net import predict_logits, probabilities
    from utils.timeseries.reader import SeriesSpec, read_series
    from utils.timeseries.regions import segment_value
    from utils.timeseries.time_axis import TimeAxis

    spec = SeriesSpec(time_column="time", channels=CHANNELS, max_bytes=2 * 1024**3)
    rows = []
    series, *cost = measured(lambda: read_series(path, spec))
    rows.append(("read CSV", *cost))
    mean, std = np.zeros(len(CHANNELS)), np.ones(len(CHANNELS))
    values, *cost = measured(lambda: model_input(series.values, mean, std))
    rows.append(("normalise", *cost))
    logits, *cost = measured(lambda: predict_logits(net, values, 512, runner=runner))
    rows.append(("net " + ("(ONNX Runtime)" if runner else "(PyTorch)"), *cost))
    probs, *cost = measured(lambda: probabilities(logits, "exclusive"))
    rows.append(("probabilities", *cost))
    min_len = np.full(len(LABELS) + 1, 150)
    segments, *cost = measured(lambda: decode_exclusive(probs, 0.5 * min_len, min_len))
    rows.append(("decode (Viterbi)", *cost))
    _, *cost = measured(
        lambda: json.dumps(
            [segment_value(s, series.times, ["bg", *LABELS], TimeAxis(), "l") for s in segments]
        )
    )
    rows.append((f"regions + JSON ({len(segments)})", *cost))
    return rows


def stage_run(path: Path, half: Path, threads: int, with_before: bool) -> None:
    from utils.temporal.sequence_net import SequenceNet, SequenceNetConfig, predict_logits
    from utils.temporal.sequence_onnx import load_checked
    from utils.timeseries.reader import SeriesSpec, read_series

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = SequenceNet(SequenceNetConfig(in_channels=2 * len(CHANNELS), n_outputs=len(LABELS) + 1)).eval()
    runner, *cost = measured(lambda: load_checked(net, threads))
    print(f"ONNX export + check: {cost[0]:.2f} s wall, {cost[1]:.2f} s CPU (once per trained net)")
    for name, target in ((half.name, half), (path.name, path)):
        for label, run in (("ONNX Runtime", runner), ("PyTorch", None)):
            rows = stages(target, net, run)
            wall, cpu = sum(r[1] for r in rows), sum(r[2] for r in rows)
            print(
                f"{name}, net on {label}, {threads} threads: {wall:.2f} s wall, {cpu:.2f} s CPU, "
                f"load average {os.getloadavg()[0]:.1f}"
            )
            for stage, w, c in rows:
                print(f"  {stage:28s} {w:6.2f} s wall {c:6.2f} s CPU ({100 * w / wall:4.1f} % of the wall)")
    if not with_before:
        return
    spec = SeriesSpec(time_column="time", channels=CHANNELS, max_bytes=2 * 1024**3)
    series = read_series(path, spec)
    mean, std = np.zeros(len(CHANNELS)), np.ones(len(CHANNELS))
    from control_models.timeseries_labels import model_input

    values = model_input(series.values, mean, std)
    print("earlier ways in this process (ratio earlier / now):")
    (_, read_b), (_, read_s) = timed(lambda: read_before(path)), timed(lambda: read_series(path, spec))
    norm_b = timed(lambda: normalise_before(series.values, mean, std))[1]
    norm_s = timed(lambda: model_input(series.values, mean, std))[1]
    for name, before, now in (("read", read_b, read_s), ("normalise", norm_b, norm_s)):
        print(f"  {name:17s} {before:6.2f} s before, {now:6.2f} s now: x{before / now:.2f}")
    for _ in range(2):  # interleaved: the machine's load changes from minute to minute
        want, net_b, cpu_b = measured(lambda: predict_logits(net, values, 512))
        got, net_s, cpu_s = measured(lambda: predict_logits(net, values, 512, runner=runner))
        print(
            f"  {'net':17s} PyTorch {net_b:6.2f} s (CPU {cpu_b:.2f} s), ONNX Runtime {net_s:6.2f} s "
            f"(CPU {cpu_s:.2f} s): x{net_b / net_s:.2f} (CPU x{cpu_b / cpu_s:.2f}), "
            f"load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    print(f"  largest logit difference ONNX Runtime / PyTorch: {np.abs(want - got).max():.2e}")
    first = values[: 40 * 2048]
    old, net_b, cpu_b = measured(lambda: net_before(net, first, 512))
    new, net_s, cpu_s = measured(lambda: predict_logits(net, first, 512))
    print(
        f"  net, first {len(first)} rows: whole forward per batch (the first path) {cpu_b:.2f} s CPU, "
        f"staged PyTorch {cpu_s:.2f} s CPU; largest logit difference {np.abs(old - new).max():.2e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument(
        "--runtime", choices=("auto", "torch"), default="auto", help="the service's SEQUENCE_RUNTIME"
    )
    parser.add_argument("--skip-before", action="store_true", help="do not time the earlier ways")
    parser.add_argument("--skip-stages", action="store_true", help="only the HTTP run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        media = tmp / "media"
        media.mkdir()
        rows_csv = media / f"rows{args.rows}.csv"
        write_series(rows_csv, args.rows)
        half_csv = media / f"rows{args.rows // 2}.csv"
        write_series(half_csv, args.rows // 2)
        print(
            f"{rows_csv.name}: {args.rows} rows x {len(CHANNELS)} channels, {rows_csv.stat().st_size / 1e6:.0f} MB"
        )
        if not args.skip_http:
            http_run(tmp, media, rows_csv, args.threads, args.runtime)
        if not args.skip_stages:
            stage_run(rows_csv, half_csv, args.threads, not args.skip_before)


if __name__ == "__main__":
    main()
