"""The shapes of Label Studio's annotations and tasks that training relies on, checked in one place: the
webhook refuses a malformed annotation at the door (400 naming the field), and training skips one that is
already stored (a reason per skip), so one bad annotation never breaks a project's training."""

from __future__ import annotations

from typing import Any


def integer_id(value: Any) -> int | None:
    """Label Studio ids are integers; a digit string is accepted as one, anything else is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def annotation_problem(annotation: Any, field: str = "annotation") -> str | None:
    """What makes `annotation` unusable as training data, naming the field; None when it is usable."""
    if not isinstance(annotation, dict):
        return f"'{field}' must be an object, got {type(annotation).__name__}"
    if integer_id(annotation.get("id")) is None:
        return f"'{field}.id' must be an integer, got {annotation.get('id')!r}"
    result = annotation.get("result")
    if not isinstance(result, list):
        return f"'{field}.result' must be a list, got {type(result).__name__}"
    for index, region in enumerate(result):
        where = f"{field}.result[{index}]"
        if not isinstance(region, dict):
            return f"'{where}' must be an object, got {type(region).__name__}"
        if not isinstance(region.get("from_name"), str):
            return f"'{where}.from_name' must be a string, got {type(region.get('from_name')).__name__}"
        if not isinstance(region.get("value"), dict):
            return f"'{where}.value' must be an object, got {type(region.get('value')).__name__}"
    return None


def task_problem(task: Any, field: str = "task") -> str | None:
    """What makes `task` unusable (no integer id, data not an object); None when it is usable."""
    if not isinstance(task, dict):
        return f"'{field}' must be an object, got {type(task).__name__}"
    if integer_id(task.get("id")) is None:
        return f"'{field}.id' must be an integer, got {task.get('id')!r}"
    if not isinstance(task.get("data", {}), dict):
        return f"'{field}.data' must be an object, got {type(task.get('data')).__name__}"
    return None
