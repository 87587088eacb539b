"""TimeSeriesLabelsModel through its ControlModel contract: config, training, prediction, synced media."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from label_studio_sdk.label_interface import LabelInterface

from control_models import timeseries_labels
from control_models.base import AnnotatedTask, ModelContext, TaskPrediction
from control_models.timeseries_labels import TimeSeriesLabelsModel, model_input
from utils.labelstudio.media import MediaResolver
from utils.service.errors import LabelConfigError, TaskError
from utils.service.model_store import ModelStore
from utils.service.settings import Settings, TimeSeriesDefaults
from utils.temporal.sequence_onnx import load_checked

FAST = 'model_classifier_epochs="3" model_classifier_sequence_size="64" model_classifier_hidden_size="16"'
BASIC_CONFIG = f"""<View>
  <TimeSeries name="ts" valueType="url" value="$csv_url" timeColumn="time">
    <Channel column="acc_x"/><Channel column="acc_y"/><Channel column="acc_z"/>
    <Channel column="gyr_x"/><Channel column="gyr_y"/><Channel column="gyr_z"/>
  </TimeSeries>
  <TimeSeriesLabels name="label" toName="ts" {FAST}>
    <Label value="badminton"/><Label value="running"/><Label value="standing"/><Label value="walking"/>
  </TimeSeriesLabels>
</View>"""
SYNCED_CONFIG = f"""<View>
  <Video name="video" value="$video" sync="g"/>
  <TimelineLabels name="videoLabels" toName="video"><Label value="Run"/><Label value="Walk"/></TimelineLabels>
  <TimeSeries name="ts" valueType="json" value="$ts" timeColumn="time" timeFormat="%Y-%m-%d %H:%M:%S.%L" sync="g">
    <MultiChannel><Channel column="a"/><Channel column="b"/></MultiChannel>
  </TimeSeries>
  <TimeSeriesLabels name="tsLabels" toName="ts" {FAST}><Label value="Run"/><Label value="Walk"/><Label value="Tap"/></TimeSeriesLabels>
</View>"""


def make_model(
    config: str, settings: Settings, data_root: Path, name: str | None = None
) -> TimeSeriesLabelsModel:
    controls = [c for c in LabelInterface(config).controls if TimeSeriesLabelsModel.is_control_matched(c)]
    assert len(controls) == 1
    control = controls[0]
    context = ModelContext(
        store=ModelStore(settings.model_dir).control_store("1", name or control.name),
        media=MediaResolver(cache_dir=settings.cache_dir, local_roots=(data_root,)),
        settings=settings,
    )
    return TimeSeriesLabelsModel.create(control, context)


def basicmotions_tasks(data_root: Path, prefix: str) -> list[AnnotatedTask]:
    folder = data_root / "timeseries" / "basicmotions"
    tasks = json.loads((folder / "tasks.json").read_text())
    return [
        AnnotatedTask(i, {"csv_url": str(folder / t["data"]["csv_url"])}, t["annotations"][0]["result"])
        for i, t in enumerate(tasks)
        if t["data"]["csv_url"].startswith(prefix)
    ]


def assert_valid(config: str, regions: list[dict]) -> None:
    errors = LabelInterface(config).validate_prediction({"result": regions, "score": 0.5}, return_errors=True)
    assert errors in ([], True), errors


def test_model_input_adds_channels_free_of_a_recordings_offset_and_gain() -> None:
    rng = np.random.default_rng(0)
    values = rng.standard_normal((200, 2))
    other = values * [3.0, 0.5] + [10.0, -2.0]  # the same motion from another sensor or person
    mean, std = np.zeros(2), np.ones(2)
    a, b = model_input(values, mean, std), model_input(other, mean, std)
    assert a.shape == (200, 4) and a.dtype == np.float32
    assert not np.allclose(a[:, :2], b[:, :2])
    assert np.allclose(a[:, 2:], b[:, 2:], atol=1e-5)
    assert np.all(np.isfinite(model_input(np.ones((5, 2)), mean, std)))  # a flat channel stays finite


def test_predict_before_training_returns_empty_result(settings: Settings, data_root: Path) -> None:
    model = make_model(BASIC_CONFIG, settings, data_root)
    task = basicmotions_tasks(data_root, "basicmotions_test0")[0]
    assert model.predict_task({"id": 1, "data": task.data}) == TaskPrediction([], 0.0)
    assert model.version == "untrained"


def test_fit_then_predict_gives_valid_segments_in_time_units(settings: Settings, data_root: Path) -> None:
    model = make_model(BASIC_CONFIG, settings, data_root)
    metrics = model.fit(basicmotions_tasks(data_root, "basicmotions_train"))
    assert metrics["mode"] == "exclusive" and metrics["tasks"] == 4
    meta = model.context.store.load()[1]
    assert len(meta["mean"]) == 6 and meta["labels"] == model.labels
    assert meta["calibration"]["temperature"] > 0  # fitted on the held-out part of the training data
    task = basicmotions_tasks(data_root, "basicmotions_test0")[0]
    regions = model.predict_regions({"id": 7, "data": task.data})
    assert regions, "a trained model predicts segments"
    assert_valid(BASIC_CONFIG, regions)
    for r in regions:
        assert r["from_name"] == "label" and r["to_name"] == "ts" and r["type"] == "timeserieslabels"
        assert 0 <= r["value"]["start"] <= r["value"]["end"] <= 99.9
        assert r["value"]["timeserieslabels"][0] in model.labels
        assert 0.0 <= r["score"] <= 1.0

    # the calibration changes the scores, never the regions: a much softer temperature keeps every region
    state, meta = model.context.store.load()
    model.context.store.save(state, {**meta, "calibration": {**meta["calibration"], "temperature": 5.0}})
    softer = model.predict_regions({"id": 7, "data": task.data})
    assert [r["value"] for r in softer] == [r["value"] for r in regions]
    assert [r["score"] for r in softer] != [r["score"] for r in regions]


def test_the_calibration_pools_tasks_kept_out_of_training_with_the_early_stop_part(
    settings: Settings, data_root: Path
) -> None:
    tasks = basicmotions_tasks(data_root, "basicmotions_train")
    alone = make_model(BASIC_CONFIG, settings, data_root, name="alone")
    alone.fit(tasks[:2])
    pooled = make_model(BASIC_CONFIG, settings, data_root, name="pooled")
    pooled.fit(tasks[:2], calibrate_on=tasks[2:])
    metas = [alone.context.store.load_meta(), pooled.context.store.load_meta()]
    # the same training (same seed) scores the regions of two more whole recordings, ~10 episodes each
    assert metas[1]["calibration"]["held_out_regions"] >= metas[0]["calibration"]["held_out_regions"] + 10
    assert metas[0]["metrics"]["best"] == metas[1]["metrics"]["best"]


def test_a_second_instance_reloads_the_version_another_worker_saved(
    settings: Settings, data_root: Path
) -> None:
    worker_a = make_model(BASIC_CONFIG, settings, data_root)
    worker_b = make_model(BASIC_CONFIG, settings, data_root)
    task = basicmotions_tasks(data_root, "basicmotions_test1")[0]
    assert worker_b.predict_regions({"id": 1, "data": task.data}) == []
    worker_a.fit(basicmotions_tasks(data_root, "basicmotions_train")[:2])
    assert worker_b.predict_regions({"id": 1, "data": task.data})
    assert worker_b.version == worker_a.version


def test_retraining_fine_tunes_the_serving_model_unless_asked_or_the_labels_change(
    settings: Settings, data_root: Path
) -> None:
    config = BASIC_CONFIG.replace('model_classifier_epochs="3"', 'model_classifier_epochs="1"')
    # no full retrain after every fine-tuning, however cheap: only the growth of the data asks for one here
    settings = replace(settings, timeseries=replace(settings.timeseries, full_retrain_follows_s=0))
    model = make_model(config, settings, data_root)
    tasks = basicmotions_tasks(data_root, "basicmotions_train")[:1]
    assert not model.fit(tasks)["warm_start"]
    again = model.fit(tasks)
    assert again["warm_start"] and not again.get("full_retrain_due")
    assert not model.fit(tasks, warm_start=False)["warm_start"]
    tripled_tasks = basicmotions_tasks(data_root, "basicmotions_train")[:3]
    tripled = model.fit(tripled_tasks)
    # more than WARM_MAX_GROWTH times the data of the last full training: fine-tuned now, a full retrain asked
    assert tripled["warm_start"] and tripled["full_retrain_due"]
    assert not model.fit(tripled_tasks).get("full_retrain_due")  # asked once per growth of the data
    another_label = config.replace('<Label value="walking"/>', '<Label value="walking"/><Label value="x"/>')
    assert not make_model(another_label, settings, data_root).fit(tasks)["warm_start"]


def test_a_full_retrain_follows_every_fine_tuning_while_one_takes_at_most_the_set_seconds(
    settings: Settings, data_root: Path
) -> None:
    config = BASIC_CONFIG.replace('model_classifier_epochs="3"', 'model_classifier_epochs="1"')
    tasks = basicmotions_tasks(data_root, "basicmotions_train")[:1]
    model = make_model(config, settings, data_root, name="cheap")
    scratch = model.fit(tasks)
    assert not scratch["warm_start"] and 0 < scratch["seconds"] <= settings.timeseries.full_retrain_follows_s
    for _ in range(2):  # every fine-tuning asks, the data unchanged
        fine_tuned = model.fit(tasks)
        assert fine_tuned["warm_start"] and fine_tuned["full_retrain_due"]
    # where the last training from scratch took longer than the setting, only the data's growth asks
    slower = replace(settings.timeseries, full_retrain_follows_s=scratch["seconds"] / 2)
    model = make_model(config, replace(settings, timeseries=slower), data_root, name="cheap")
    assert model.fit(tasks)["warm_start"] and not model.fit(tasks).get("full_retrain_due")
    assert Settings.from_env({"FULL_RETRAIN_FOLLOWS_S": "0"}).timeseries.full_retrain_follows_s == 0


def synthetic_task(task_id: int, seed: int) -> AnnotatedTask:
    """Inline JSON on a date-time axis: 'Run' and 'Walk' overlap, 'Tap' marks instants, gaps are NaN."""
    rng = np.random.default_rng(seed)
    n = 400
    t = np.arange(n)
    run = (t >= 50) & (t < 200)
    walk = (t >= 150) & (t < 300)
    taps = [80, 250, 350]
    a = np.where(run, np.sin(t / 2), 0) + 0.05 * rng.standard_normal(n)
    b = np.where(walk, 1.0, 0) + 0.05 * rng.standard_normal(n)
    for tap in taps:
        a[tap] += 4
    a[[10, 11, 390]] = np.nan
    stamp = lambda i: f"2024-03-01 12:{i // 600:02d}:{(i % 600) / 10:06.3f}"  # noqa: E731 - 100 ms steps
    data = {
        "time": [stamp(i) for i in t],
        "a": [None if np.isnan(v) else float(v) for v in a],
        "b": b.tolist(),
    }
    regions = [
        {
            "from_name": "tsLabels",
            "value": {"start": stamp(50), "end": stamp(199), "instant": False, "timeserieslabels": ["Run"]},
        },
        {
            "from_name": "tsLabels",
            "value": {"start": stamp(150), "end": stamp(299), "instant": False, "timeserieslabels": ["Walk"]},
        },
        *[
            {
                "from_name": "tsLabels",
                "value": {"start": stamp(x), "end": stamp(x), "instant": True, "timeserieslabels": ["Tap"]},
            }
            for x in taps
        ],
    ]
    return AnnotatedTask(task_id, {"ts": data, "video": "/data/upload/1/clip.mp4"}, regions)


def test_synced_video_config_trains_the_timeseries_control_on_its_own_regions(
    settings: Settings, data_root: Path
) -> None:
    controls = list(LabelInterface(SYNCED_CONFIG).controls)
    matched = [c.name for c in controls if TimeSeriesLabelsModel.is_control_matched(c)]
    assert matched == ["tsLabels"]
    model = make_model(SYNCED_CONFIG, settings, data_root)
    tasks = [synthetic_task(i, seed=i) for i in range(2)]
    # a TimelineLabels region that slipped in is ignored: it has no start/end of this control
    video_region = {
        "from_name": "videoLabels",
        "value": {"ranges": [{"start": 1, "end": 9}], "timelinelabels": ["Run"]},
    }
    tasks[0].regions.append(video_region)
    metrics = model.fit(tasks)
    assert metrics["mode"] == "multilabel"
    meta = model.context.store.load()[1]
    assert meta["instant_labels"] == [2] and meta["channels"] == ["a", "b"]
    regions = model.predict_regions({"id": 5, "data": synthetic_task(5, seed=5).data})
    assert_valid(SYNCED_CONFIG, regions)
    for r in regions:
        assert r["from_name"] == "tsLabels" and r["to_name"] == "ts"
        assert isinstance(r["value"]["start"], str) and r["value"]["start"].startswith("2024-03-01 12:")
        assert r["value"]["instant"] == (r["value"]["start"] == r["value"]["end"])


def test_bad_attribute_is_a_config_error_naming_it(settings: Settings, data_root: Path) -> None:
    config = BASIC_CONFIG.replace('model_classifier_epochs="3"', 'model_classifier_epochs="many"')
    with pytest.raises(LabelConfigError, match="model_classifier_epochs"):
        make_model(config, settings, data_root)


def test_environment_settings_give_defaults(settings: Settings, data_root: Path) -> None:
    env = {"TRAIN_EPOCHS": "7", "SEQUENCE_SIZE": "128", "USE_CLASS_WEIGHTS": "false"}
    env_settings = replace(settings, timeseries=TimeSeriesDefaults.from_env(env))
    config = BASIC_CONFIG.replace(FAST, "")
    model = make_model(config, env_settings, data_root)
    assert model.train_config.epochs == 7
    assert model.train_config.sequence_size == 128
    assert model.train_config.class_weights is False


def test_unusable_task_raises_task_error(settings: Settings, data_root: Path, tmp_path: Path) -> None:
    model = make_model(BASIC_CONFIG, settings, data_root)
    with pytest.raises(TaskError, match="csv_url"):
        model.load_series({"id": 3, "data": {}})
    with pytest.raises(TaskError):
        model.load_series({"id": 3, "data": {"csv_url": str(tmp_path / "elsewhere.csv")}})


def test_fit_without_usable_regions_is_skipped(settings: Settings, data_root: Path) -> None:
    model = make_model(BASIC_CONFIG, settings, data_root)
    task = basicmotions_tasks(data_root, "basicmotions_train0")[0]
    assert "skipped" in model.fit([AnnotatedTask(1, task.data, [])])
    assert model.context.store.current_version() is None


def test_other_channels_than_trained_on_get_a_task_error(settings, data_root) -> None:
    model = make_model(BASIC_CONFIG, settings, data_root)
    model.fit(basicmotions_tasks(data_root, "basicmotions_train0"))
    swapped = BASIC_CONFIG.replace(
        '<Channel column="acc_x"/><Channel column="acc_y"/>',
        '<Channel column="acc_y"/><Channel column="acc_x"/>',
    )
    other = make_model(swapped, settings, data_root)
    task = {"id": 7, "data": {"csv_url": str(data_root / "timeseries/basicmotions/basicmotions_test0.csv")}}
    assert model.predict_regions(task)  # the trained channel order predicts
    with pytest.raises(TaskError, match="trained on"):
        other.predict_regions(task)


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ValueError, match="TRAIN_EPOCHS"):
        Settings.from_env({"TRAIN_EPOCHS": "many"})


def test_long_series_are_predicted_on_onnx_runtime_with_the_regions_of_pytorch(
    settings: Settings, data_root: Path, monkeypatch
) -> None:
    model = make_model(BASIC_CONFIG, settings, data_root)
    model.fit(basicmotions_tasks(data_root, "basicmotions_train")[:2])
    task = {"id": 7, "data": basicmotions_tasks(data_root, "basicmotions_test0")[0].data}
    on_torch = make_model(BASIC_CONFIG, replace(settings, sequence_runtime="torch"), data_root)
    monkeypatch.setattr(timeseries_labels, "MIN_SAMPLES", 1)  # every series counts as long
    built = []
    monkeypatch.setattr(timeseries_labels, "load_checked", lambda *a: built.append(1) or load_checked(*a))
    regions = model.predict_regions(task)
    assert regions and built == [1]
    again = model.predict_regions(task)
    assert [r["value"] for r in again] == [r["value"] for r in regions] and built == [1]  # one twin per net
    want = on_torch.predict_regions(task)
    assert [r["value"] for r in regions] == [r["value"] for r in want] and built == [1]
    assert np.allclose([r["score"] for r in regions], [r["score"] for r in want], atol=1e-4)
