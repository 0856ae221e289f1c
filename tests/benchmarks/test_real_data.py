"""benchmarks/real_data.py at toy size: tiny backbone, random init, 2 BCCD images, zero budgets."""

import json
import os

import numpy as np
import pytest

import real_data

pytestmark = pytest.mark.skipif(not os.path.isdir(real_data.BCCD), reason="BCCD is not in shared/datasets")


def test_stratified_subset_keeps_every_class_and_is_seeded():
    labels = np.array([0] * 50 + [1] * 9 + [2] * 1)
    idx = real_data.stratified_subset(labels, 0.1, seed=0)
    assert sorted(np.bincount(labels[idx]).tolist()) == [1, 1, 5]
    np.testing.assert_array_equal(idx, real_data.stratified_subset(labels, 0.1, seed=0))


def test_accuracy_row_per_class_and_balanced():
    row = real_data.accuracy_row(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), ["a", "b", "c"])
    assert row["accuracy"] == 0.75 and row["per_class_accuracy"] == {"a": 0.5, "b": 1.0, "c": None}
    assert row["balanced_accuracy"] == 0.75


def test_cell_crops_cover_the_boxes_with_context():
    crops, labels, names = real_data.cell_crops(real_data.BCCD, "test", 16, context=0.15, max_images=1)
    assert crops.shape[1:] == (16, 16, 3) and len(crops) == len(labels) > 0
    assert names == ["Platelets", "RBC", "WBC"] and 0 <= crops.min() and crops.max() <= 255


def test_toy_run_writes_both_parts(tmp_path):
    out = tmp_path / "real_data.json"
    real_data.main(["--backbone", "tiny", "--weights", "none", "--max-images", "2", "--crop-size", "32",
                    "--cls-budget", "0", "--det-budget", "0", "--steps-per-call", "1", "--det-image-size", "64",
                    "--timing-images", "1", "--det-batch-size", "1", "--cls-strategies", "frozen_block4", "fine_tune",
                    "--det-strategies", "frozen", "--output", str(out)])
    result = json.loads(out.read_text())
    rows = result["classification"]["rows"]
    assert set(rows) == {"10%", "100%"} and rows["10%"]["train_crops"] < rows["100%"]["train_crops"]
    for key in rows:
        assert rows[key]["recommendation"]["strategy"] == "linear_classifier_earlier_stage"
        assert rows[key]["winner_balanced_accuracy"] in ("frozen_block4", "fine_tune")
        for strategy in ("frozen_block4", "fine_tune"):
            assert 0 <= rows[key][strategy]["accuracy"] <= 1 and rows[key][strategy]["steps"] >= 1
    det = result["detection"]["rows"]["frozen"]
    assert det["backbone_trainable_params"] == 0 and 0 <= det["AP50"] <= 1 and det["infer_ms"] > 0
    assert set(det["per_class_AP50"]) <= {"Platelets", "RBC", "WBC"}
    assert result["weights"] == "none (random init)"


def _cell(acc, balanced, steps=3):
    return {"accuracy": acc, "balanced_accuracy": balanced, "steps": steps, "cpu_s": 30.0, "wall_s": 90.0,
            "per_class_accuracy": {"Platelets": 0.5, "RBC": 0.9, "WBC": None}}


def test_report_renders_the_tables_and_the_recommendation_check():
    import report

    advice = {"strategy": "linear_classifier_earlier_stage"}
    real = {
        "weights": "HED",
        "classification": {
            "settings": {"crop_size": 48, "context": 0.15, "budget_cpu_s": 30, "train_crops": {"Platelets": 2, "RBC": 9, "WBC": 1},
                         "test_crops": {"Platelets": 1, "RBC": 3, "WBC": 1}},
            "rows": {"10%": {"train_crops": 3, "recommendation": advice, "winner_balanced_accuracy": "frozen_block4",
                             "frozen_block4": _cell(0.8, 0.7), "scratch": _cell(0.9, 0.33)},
                     "100%": {"train_crops": 12, "recommendation": advice, "winner_balanced_accuracy": "scratch",
                              "frozen_block4": _cell(0.8, 0.5), "scratch": _cell(0.9, 0.6)}}},
        "detection": {
            "recommendation": advice, "winner_AP50": "fine_tune",
            "settings": {"model": "faster_rcnn", "image_size": 224, "train_split": "trainval", "train_images": 292,
                         "batch_size": 4, "learning_rate": 1e-3, "anchor_sizes": [10, 20], "budget_cpu_s": 60},
            "rows": {s: {"AP": 0.1, "AP50": ap50, "per_class_AP": {"RBC": 0.2}, "per_class_AP50": {"RBC": 0.4}, "steps": 5,
                         "images_seen": 20, "cpu_s": 61.0, "wall_s": 300.0, "infer_ms": 900.0,
                         "backbone_trainable_params": 0}
                     for s, ap50 in (("frozen", 0.2), ("fine_tune", 0.3))}},
    }
    text = "\n".join(report.real_data_section(real))
    assert "| 10% (3) | 0.800 / 0.700 **best** | 0.900 / 0.330 | `linear_classifier_earlier_stage` |" in text
    assert "frozen, block4 + linear — matches" in text and "from scratch — does not match" in text
    assert "| pretrained, frozen | 0.100 | 0.200 | 0.400 (0.200) | 5 (20) | 61 (300) | 900 | 0 |" in text
    assert "measured best AP50: `fine_tune` — does not match" in text


def test_save_merges_the_cells_of_parallel_processes(tmp_path):
    path = str(tmp_path / "r.json")
    a = {"rows": {"10%": {"train_crops": 3, "frozen_block4": _cell(0.8, 0.7)}}, "settings": {}}
    b = {"rows": {"10%": {"train_crops": 3, "scratch": _cell(0.9, 0.75)}}, "settings": {}}
    real_data.save(path, "classification", a)
    real_data.save(path, "classification", b)
    real_data.save(path, "detection", {"rows": {"frozen": {"AP50": 0.4}}})
    real_data.save(path, "detection", {"rows": {"scratch": {"AP50": 0.1}}})
    result = json.loads(open(path).read())
    row = result["classification"]["rows"]["10%"]
    assert set(row) == {"train_crops", "frozen_block4", "scratch", "winner_balanced_accuracy"}
    assert row["winner_balanced_accuracy"] == "scratch"
    assert set(result["detection"]["rows"]) == {"frozen", "scratch"} and result["detection"]["winner_AP50"] == "frozen"
