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


def test_toy_run_writes_the_transfer_parts(tmp_path):
    out = tmp_path / "real_data.json"
    real_data.main(["--part", "classify", "detect", "--backbone", "tiny", "--weights", "none", "--max-images", "2",
                    "--crop-size", "32",
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


def test_toy_run_of_the_detectors_part(tmp_path):
    out = tmp_path / "real_data.json"
    out.write_text(json.dumps({"weights": "HED", "detection": {"rows": {"frozen": {"AP50": 0.5}}}}))
    real_data.main(["--part", "detectors", "--backbone", "tiny", "--weights", "none", "--max-images", "3",
                    "--zoo-budget", "0", "--zoo-image-size", "128", "--timing-images", "1",
                    "--zoo-rows", "ssd", "fast_rcnn_pretrained", "mask_rcnn",
                    "--output", str(out)])
    result = json.loads(out.read_text())
    assert result["detection"] == {"rows": {"frozen": {"AP50": 0.5}}} and result["weights"] == "HED"  # kept
    det = result["detectors"]
    assert set(det["rows"]) == {"ssd", "fast_rcnn_pretrained", "mask_rcnn"}
    assert "no instance masks" in det["rows"]["mask_rcnn"]["skipped"]
    st = det["settings"]
    assert st["train_images"] == st["test_images"] == 3 and st["image_size"] == 128
    assert st["class_names"] == ["Platelets", "RBC", "WBC"] and len(st["anchor_sizes"]) == 4
    assert "rcnn" in st["pretrained_left_out"]
    for key in ("ssd", "fast_rcnn_pretrained"):
        r = det["rows"][key]
        assert 0 <= r["AP"] <= r["AP50"] <= 1 and set(r["per_class_AP"]) <= {"Platelets", "RBC", "WBC"}
        assert all(0 <= v <= 1 for v in [*r["per_class_AP"].values(), *r["per_class_AP50"].values()])
        assert r["steps"] >= 1 and r["images_seen"] == r["steps"] * r["recipe"]["batch_size"]
        assert r["cpu_s"] > 0 and r["infer_ms"] > 0 and r["params"] > r["trainable_params"] >= 0
        assert r["backbone"] == "tiny" and r["recipe"]["batch_size"] == 3
    ssd, frozen = det["rows"]["ssd"], det["rows"]["fast_rcnn_pretrained"]
    assert ssd["recipe"]["augment"] == "default" and "proposal_ms" not in ssd
    assert ssd["init"] == "random init (from scratch)" and not ssd["frozen_backbone"]
    assert frozen["recipe"]["augment"].startswith("none") and frozen["proposal_ms"] > 0
    assert frozen["proposals"]["ms_per_image_median"] == frozen["proposal_ms"]
    assert frozen["frozen_backbone"] and not frozen["pretrained"] and frozen["init"] == "random init, frozen"
    assert frozen["trainable_params"] < frozen["params"]


def test_zoo_rows_name_the_detector_and_its_trunk():
    cells = real_data.zoo_cells(real_data.DEFAULT_ZOO_ROWS)
    assert [c for c in cells if c[2]] == [("faster_rcnn_pretrained", "faster_rcnn", True),
                                          ("fast_rcnn_pretrained", "fast_rcnn", True)]
    assert {c[1] for c in cells} == set(real_data.zoo.DETECTORS) - {"mask_rcnn"}
    assert "mask_rcnn_pretrained" not in real_data.ZOO_ROWS


def test_zoo_detector_builds_every_detector_from_its_cpu_preset():
    from keras_det import models, presets

    wh = np.random.default_rng(0).uniform(10, 80, (40, 2))
    for name in real_data.zoo.DETECTORS:
        model = real_data.zoo_detector(name, 3, 256, anchors=[10, 20, 40, 80], train_wh=wh)
        preset = real_data.zoo_preset(name)
        assert isinstance(model, presets.model_class(preset)) and model.num_classes == 3
        if hasattr(model, "image_size"):
            assert tuple(model.image_size) == (256, 256), name
    assert isinstance(real_data.zoo_detector("yolo_multiscale", 3, 256), models.YOLO)


def test_report_renders_the_detectors_table():
    import report

    row = {"model": "ssd", "backbone": "tiny", "init": "random init (from scratch)", "AP": 0.2, "AP50": 0.5,
           "per_class_AP": {"RBC": 0.3}, "per_class_AP50": {"RBC": 0.6}, "steps": 100, "epochs": 5.5, "cpu_s": 241.0,
           "wall_s": 150.0, "infer_ms": 12.3, "params": 1_500_000,
           "recipe": {"family": "single_stage", "batch_size": 16, "learning_rate": 1e-3}}
    stalled = {**row, "model": "fast_rcnn", "backbone": "vgg16", "init": "HED, frozen", "AP50": 0.01, "AP": 0.0,
               "proposal_ms": 400.0, "recipe": {"family": "two_stage", "batch_size": 8, "learning_rate": 2e-3},
               "frozen_backbone": True,
               "proposals": {"method": "selective_search_fast", "max_proposals": 300, "median_proposals": 150,
                             "computed_on": "the 256-px images", "ms_per_image_median": 400.0}}
    real = {"weights": "HED", "detectors": {
        "settings": {"image_size": 256, "budget_cpu_s": 240, "train_split": "trainval", "test_split": "test",
                     "train_images": 292, "test_images": 72, "class_names": ["Platelets", "RBC", "WBC"],
                     "anchor_sizes": [12.0, 30.0], "timing": "batch 1",
                     "pretrained": {"backbone": "vgg16", "weights": "HED", "detectors": ["fast_rcnn"]},
                     "pretrained_left_out": {"rcnn": "too slow", "fast_rcnn": "measured after all"}},
        "rows": {"ssd": row, "fast_rcnn_pretrained": stalled,
                 "mask_rcnn": {"model": "mask_rcnn", "skipped": "no masks"}}}}
    without_one_object = "\n".join(report.real_data_section(real))
    real["detectors"]["rows"]["classify_localize"] = {**row, "model": "classify_localize"}
    text = "\n".join(report.real_data_section(real))
    assert ("| SSD | tiny, random init (from scratch) | 0.200 | 0.500 | 0.000 (0.000) | 0.600 (0.300) | 0.000 (0.000) "
            "| 100 (5.5) | 241 (150) | 12 | 1.50 M |") in text
    assert "| Fast R-CNN (pretrained trunk) | vgg16, HED, frozen | 0.000 | 0.010 |" in text
    assert "| 12 + 400 selective search | 1.50 M |" in text
    assert "| Mask R-CNN | not run: no masks |" + " |" * 9 + "\n" in text + "\n"
    header = next(line for line in text.splitlines() if line.startswith("| detector |"))
    assert text.count("|---" * (header.count("|") - 1) + "|\n") == 1
    assert text.index("| SSD |") < text.index("| Fast R-CNN (pretrained trunk) |") < text.index("| Mask R-CNN |")
    assert "single-stage: batch 16, Adam 0.001; two-stage: batch 8, Adam 0.002" in text
    assert "- R-CNN with the pretrained trunk: not run — too slow." in text and "measured after all" not in text
    assert "Fast R-CNN also trains on the frozen pretrained vgg16 trunk: HED." in text
    assert "computed on the 256-px images before training, outside the budget: 400 ms per image." in text
    assert "not learned within 240 CPU-s: Fast R-CNN (pretrained trunk)." in text
    assert "`recommend_strategy` against" not in text  # no transfer part measured
    one_object = "predicts one object per image (the lecture's single-object task) and trains on each image's first box"
    assert one_object in text and one_object not in without_one_object
