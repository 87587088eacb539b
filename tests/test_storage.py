"""Model storage: atomic, versioned, no unpickling, names sanitised."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from utils.service import model_store as storage
from utils.service.files import safe_name
from utils.service.model_store import ModelStore


def test_save_and_load_round_trip(tmp_path) -> None:
    store = ModelStore(tmp_path).control_store("7", "label")
    assert store.load() is None
    version = store.save({"w": torch.ones(3)}, {"labels": ["a"]})
    state, meta = store.load()
    assert torch.equal(state["w"], torch.ones(3)) and meta["labels"] == ["a"] and meta["version"] == version


def test_crash_during_save_leaves_previous_model_loadable(tmp_path, monkeypatch) -> None:
    store = ModelStore(tmp_path).control_store("7", "label")
    store.save({"w": torch.zeros(2)}, {"labels": ["old"]})

    def crash_half_way(obj, path):
        with open(path, "wb") as handle:
            handle.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(storage.torch, "save", crash_half_way)
    with pytest.raises(OSError):
        store.save({"w": torch.ones(2)}, {"labels": ["new"]})
    state, meta = store.load()
    assert meta["labels"] == ["old"] and torch.equal(state["w"], torch.zeros(2))


def test_pickled_module_is_not_loaded(tmp_path) -> None:
    store = ModelStore(tmp_path).control_store("7", "label")
    version = store.save({"w": torch.zeros(1)}, {"labels": []})
    model_file = store.root / "versions" / version / "model.pt"
    torch.save(torch.nn.Linear(2, 2), model_file)  # a whole pickled module, as the reference saves it
    assert store.load() is None


def test_old_versions_are_pruned(tmp_path) -> None:
    store = ModelStore(tmp_path, keep_versions=3).control_store("7", "label")
    for i in range(6):
        store.save({"w": torch.tensor([float(i)])}, {})
    assert len(list((store.root / "versions").iterdir())) == 3
    assert store.load()[0]["w"].item() == 5.0


@pytest.mark.parametrize("name", ["../x", "a/b", "..", "", "x" * 300, "ok.name-1"])
def test_safe_name_never_escapes(tmp_path, name) -> None:
    cleaned = safe_name(name)
    assert "/" not in cleaned and cleaned not in ("", ".", "..") and len(cleaned) <= 64
    assert (tmp_path / cleaned).resolve().parent == tmp_path.resolve()


def test_distinct_names_stay_distinct() -> None:
    assert safe_name("a/b") != safe_name("a_b")


def test_settings_never_show_secrets(settings) -> None:
    secret = replace(settings, label_studio_api_key="tok-123", basic_auth_pass="pw-456")
    assert "tok-123" not in repr(secret) and "pw-456" not in repr(secret)
