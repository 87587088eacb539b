"""The per-project JSON documents that training jobs, prediction progress, errors and deferred requests keep."""

from __future__ import annotations

from pathlib import Path

from utils.service.project_state import ProjectState


def test_missing_or_malformed_documents_read_as_the_default_and_stored_fields_win(tmp_path: Path) -> None:
    state = ProjectState(tmp_path, "jobs.json", {"requested": 0, "log": []})
    assert state.read("1") == {"requested": 0, "log": []}
    state.path("2").parent.mkdir()
    state.path("2").write_text('["not", "a", "dict"]')
    assert state.read("2") == {"requested": 0, "log": []}
    state.path("3").parent.mkdir()
    state.path("3").write_text('{"requested": 4}')
    assert state.read("3") == {"requested": 4, "log": []}  # a field added later gets its default


def test_updates_change_the_document_in_place_and_never_share_the_default(tmp_path: Path) -> None:
    state = ProjectState(tmp_path, "jobs.json", {"requested": 0, "log": []})
    assert state.update("1", lambda s: s["log"].append("a"))["log"] == ["a"]
    state.update("1", lambda s: s.update(requested=s["requested"] + 1))
    assert state.read("1") == {"requested": 1, "log": ["a"]}
    assert state.read("2") == {"requested": 0, "log": []}


def test_projects_lists_only_those_with_the_document(tmp_path: Path) -> None:
    errors = ProjectState(tmp_path, "errors.json", [])
    jobs = ProjectState(tmp_path, "jobs.json", {"requested": 0})
    errors.update("7", lambda known: known.append({"task": 1}))
    jobs.update("8", lambda s: None)
    assert errors.projects() == {"7": [{"task": 1}]}
    assert jobs.projects() == {"8": {"requested": 0}}
    assert ProjectState(tmp_path / "absent", "jobs.json", {}).projects() == {}
