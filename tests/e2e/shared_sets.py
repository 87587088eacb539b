"""The test data sets (tests/data) as Label Studio projects: labeling configs, tasks that point at local-files storage,
and the ground-truth annotations (from the shared tasks.json) to submit through Label Studio's API."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Dataset:
    """One shared folder: its media sit under `<document root>/<folder>` for Label Studio and the backend."""

    source: Path  # e.g. tests/data/video/spliced
    folder: str  # the folder name inside LOCAL_FILES_DOCUMENT_ROOT
    data_key: str  # the task data field holding the media reference

    @cached_property
    def ground_truth(self) -> dict[str, Any]:
        return json.loads((self.source / "ground_truth.json").read_text())

    @property
    def labels(self) -> list[str]:
        return list(self.ground_truth["info"]["labels"])

    def media_url(self, file_name: str) -> str:
        return f"/data/local-files/?d={self.folder}/{file_name}"

    def examples(self) -> list[tuple[str, list[dict]]]:
        """(file name, annotation result) per shared task, in file order."""
        tasks = json.loads((self.source / "tasks.json").read_text())
        pairs = [(t["data"][self.data_key], t["annotations"][0]["result"]) for t in tasks]
        return sorted(pairs)

    def tasks(self, files: list[str]) -> dict[str, dict[str, Any]]:
        """Label Studio tasks by file name, pointing at the local-files storage."""
        return {name: {"data": {self.data_key: self.media_url(name)}} for name in files}


def video_dataset(shared_data: Path) -> Dataset:
    return Dataset(shared_data / "video" / "spliced", "video", "video")


def timeseries_dataset(shared_data: Path) -> Dataset:
    return Dataset(shared_data / "timeseries" / "basicmotions", "ts", "csv_url")


def attributes(attrs: dict[str, Any]) -> str:
    return "".join(f' {name}="{value}"' for name, value in attrs.items() if value is not None)


def labels_control(tag: str, name: str, to_name: str, labels: list[str], **attrs: Any) -> str:
    children = "".join(f'<Label value="{label}"/>' for label in labels)
    return f'<{tag} name="{name}" toName="{to_name}"{attributes(attrs)}>{children}</{tag}>'


def video_object(fps: float = 25, sync: str | None = None) -> str:
    return f'<Video name="video" value="$video"{attributes({"frameRate": fps, "sync": sync})}/>'


def timeseries_object(channels: list[str], sync: str | None = None) -> str:
    """CSV by URL with a `time` column in seconds, as in the shared basicmotions files."""
    channel_tags = "".join(f'<Channel column="{column}"/>' for column in channels)
    attrs = attributes({"valueType": "url", "timeColumn": "time", "sep": ",", "sync": sync})
    return f'<TimeSeries name="ts" value="$csv_url"{attrs}>{channel_tags}</TimeSeries>'


def timeline_control(labels: list[str], **attrs: Any) -> str:
    """`videoLabels` on `video`, as in the shared video tasks.json."""
    return labels_control("TimelineLabels", "videoLabels", "video", labels, **attrs)


def timeseries_control(labels: list[str], **attrs: Any) -> str:
    """`label` on `ts`, as in the shared time-series tasks.json."""
    return labels_control("TimeSeriesLabels", "label", "ts", labels, **attrs)


def view(*parts: str) -> str:
    return f"<View>{''.join(parts)}</View>"


def timeline_config(labels: list[str], **attrs: Any) -> str:
    return view(video_object(), timeline_control(labels, **attrs))


def timeseries_config(labels: list[str], channels: list[str], **attrs: Any) -> str:
    return view(timeseries_object(channels), timeseries_control(labels, **attrs))
