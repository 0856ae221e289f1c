import math

import pytest

from keras_det.results import evaluate_results, join_results, serving_results

GT = {
    "images": [{"id": 7, "file_name": "a.jpg", "height": 50, "width": 100}, {"id": 9, "file_name": "sub/b.jpg", "height": 50, "width": 100}],
    "annotations": [
        {"id": 1, "image_id": 7, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400, "iscrowd": 0},
        {"id": 2, "image_id": 9, "category_id": 2, "bbox": [0, 0, 40, 40], "area": 1600, "iscrowd": 0},
    ],
    "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
}


def test_serving_outputs_become_pixel_results():
    import numpy as np

    out = {
        "detection_boxes": np.array([[[0.2, 0.1, 0.6, 0.3], [0, 0, 0, 0]]]),  # normalized yxyx
        "detection_scores": np.array([[0.8, 0.0]]),
        "detection_classes": np.array([[2.0, 0.0]]),
        "num_detections": np.array([1.0]),
    }
    (r,) = serving_results(out, 0, 50, 100, 9, "sub/b.jpg")
    assert r == {"image_id": 9, "category_id": 2, "bbox": pytest.approx([10, 10, 20, 20]), "score": 0.8, "file_name": "sub/b.jpg"}


def test_join_by_file_name_then_id_counts_the_rest():
    results = [
        {"image_id": 123, "file_name": "a.jpg", "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9},  # by name
        {"image_id": 9, "category_id": 2, "bbox": [0, 0, 40, 40], "score": 0.8},  # by id
        {"image_id": 5, "file_name": "c.jpg", "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5},  # outside
        {"image_id": 7, "category_id": 3, "bbox": [0, 0, 1, 1], "score": 0.5},  # unknown class
        {"image_id": 7, "category_id": 9, "category_name": "dog", "bbox": [0, 0, 1, 1], "score": 0.5},  # by class name
        {"image_id": 7, "category_id": 1, "category_name": "circle", "bbox": [0, 0, 1, 1], "score": 0.5},  # unknown name
        {"image_id": 7, "category_id": 2, "category_name": "class_1", "bbox": [0, 0, 1, 1], "score": 0.5},  # placeholder: id
    ]
    kept, report = join_results(GT, results)
    assert [(r["image_id"], r["category_id"]) for r in kept] == [(7, 1), (9, 2), (7, 2), (7, 2)]
    assert report == {"outside_split": 1, "unknown_category": 2, "outside_examples": ["c.jpg"]}


def test_evaluate_results_per_class_by_name():
    results = [
        {"image_id": 7, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9},  # exact: cat AP 1
        {"image_id": 9, "category_id": 2, "bbox": [0, 0, 40, 20], "score": 0.9},  # IoU 0.5: dog AP50 1, AP 0.1
    ]
    m = evaluate_results(GT, results)
    assert m["per_class"]["cat"] == {"AP": pytest.approx(1.0), "AP50": pytest.approx(1.0)}
    # IoU exactly 0.5 matches only at threshold 0.50 (1 of 10 thresholds).
    assert m["per_class"]["dog"]["AP50"] == pytest.approx(1.0) and m["per_class"]["dog"]["AP"] == pytest.approx(0.1)
    assert m["AP"] == pytest.approx(0.55) and m["images"] == 2 and m["detections"] == 2


@pytest.mark.parametrize("bad, field", [
    ({"image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1], "score": math.nan}, "score"),
    ({"image_id": 7, "category_id": 1, "bbox": [0, 0, "x", 1], "score": 0.5}, "bbox"),
    ({"image_id": 7, "category_id": 1, "bbox": [0, 0, -1, 1], "score": 0.5}, "negative"),
    ({"image_id": 7, "category_id": 1, "score": 0.5}, "'bbox'"),
    ({"image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1], "score": True}, "score"),
])
def test_malformed_results_name_the_entry(bad, field):
    with pytest.raises(ValueError, match=rf"dets.json: results entry 1 .*{field}"):
        join_results(GT, [{"image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}, bad], "dets.json")
