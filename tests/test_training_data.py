"""Which annotation is training data."""

from utils.labelstudio.training_data import choose_annotation, labelled_tasks


def test_ground_truth_wins_over_newer_annotations() -> None:
    annotations = [
        {"id": 1, "result": [], "ground_truth": True, "updated_at": "2026-01-01"},
        {"id": 2, "result": [], "updated_at": "2026-02-01"},
    ]
    assert choose_annotation(annotations)["id"] == 1


def test_cancelled_annotations_are_never_training_data() -> None:
    assert choose_annotation([{"id": 1, "result": [], "was_cancelled": True}]) is None
    tasks = [{"id": 5, "data": {}, "annotations": [{"id": 1, "result": [], "was_cancelled": True}]}]
    assert labelled_tasks(tasks) == ([], [])


def test_newest_annotation_is_chosen_otherwise() -> None:
    annotations = [
        {"id": 1, "result": [], "updated_at": "2026-03-01"},
        {"id": 2, "result": [], "updated_at": "2026-02-01"},
    ]
    assert choose_annotation(annotations)["id"] == 1
