"""The evaluation pipeline equals evaluate_coco / pycocotools / VOCEvaluator; bad detections are dead letters."""

import glob
import json
import os

import numpy as np
import pytest

from keras_det.metrics.coco import STAT_NAMES, evaluate_coco
from keras_det.metrics.voc import VOCEvaluator
from keras_det.beam import evaluate as pipeline

from ..metrics.coco_cases import make_case, pycocotools_stats


def _write_case(folder, gt, results, shards=3, extra_lines=()):
    os.makedirs(folder, exist_ok=True)
    gt_path = os.path.join(folder, "gt.json")
    with open(gt_path, "w") as f:
        json.dump(gt, f)
    for s in range(shards):
        with open(os.path.join(folder, f"detections-{s:05d}-of-{shards:05d}.jsonl"), "w") as f:
            # Contiguous slices: file order (path, line) is the original order.
            part = results[s * len(results) // shards:(s + 1) * len(results) // shards]
            f.writelines(json.dumps(d) + "\n" for d in part)
            if s == shards - 1:
                f.writelines(line + "\n" for line in extra_lines)
    return gt_path, os.path.join(folder, "detections-*.jsonl")


def _dead_letters(out):
    lines = []
    for path in glob.glob(os.path.join(out, "dead_letter-*.jsonl")):
        lines += [json.loads(line) for line in open(path) if line.strip()]
    return lines


def _stats(summary):
    return np.array([summary["stats"][k] for k in STAT_NAMES])


@pytest.mark.parametrize("seed", [0, 1])
def test_coco_equals_evaluate_coco_and_pycocotools(tmp_path, seed):
    gt, results = make_case(seed, num_images=30, zero_id=(seed == 1), integer_boxes=(seed == 1))
    gt_path, dets = _write_case(str(tmp_path / "in"), gt, results)
    out = str(tmp_path / "out")
    summary = pipeline.run(["--gt", gt_path, "--detections", dets, "--output", out, "--images_per_batch", "7",
                            "--direct_num_workers=1"])
    ref = evaluate_coco(gt_path, results)
    np.testing.assert_allclose(_stats(summary), [ref[k] for k in STAT_NAMES], rtol=0, atol=1e-12)
    np.testing.assert_allclose(_stats(summary), pycocotools_stats(gt, results), rtol=0, atol=1e-12)
    assert summary["images"] == len(gt["images"]) and summary["dead_letters"] == 0
    assert summary["counters"]["detections_read"] == len(results)
    assert json.load(open(os.path.join(out, "summary.json")))["stats"] == summary["stats"]
    assert "AP50" in pipeline.format_table(summary)


def test_json_list_input_and_dead_letters(tmp_path):
    gt, results = make_case(3, num_images=20)
    folder = tmp_path / "in"
    folder.mkdir()
    gt_path = str(folder / "gt.json")
    json.dump(gt, open(gt_path, "w"))
    bad = [
        {"image_id": 10**9, "category_id": gt["categories"][0]["id"], "bbox": [1, 2, 3, 4], "score": 0.5},
        {"image_id": gt["images"][0]["id"], "category_id": 1000, "bbox": [1, 2, 3, 4], "score": 0.5},
        {"image_id": gt["images"][0]["id"], "category_id": gt["categories"][0]["id"], "bbox": [1, 2, -3, 4], "score": 0.5},
        {"image_id": gt["images"][0]["id"], "bbox": [1, 2, 3, 4], "score": 0.5},
    ]
    # A results JSON list with the bad entries spread in, plus a JSON-lines file with a broken line.
    mixed = results[:50] + bad[:2] + results[50:] + bad[2:]
    json.dump(mixed, open(str(folder / "a_results.json"), "w"))
    (folder / "b_more.jsonl").write_text("{not json\n")
    out = str(tmp_path / "out")
    summary = pipeline.run(["--gt", gt_path, "--detections", str(folder / "*_*.json*"), "--output", out, "--direct_num_workers=1"])
    ref = evaluate_coco(gt_path, results)
    np.testing.assert_allclose(_stats(summary), [ref[k] for k in STAT_NAMES], rtol=0, atol=1e-12)
    dead = _dead_letters(out)
    reasons = sorted(d["reason"] for d in dead)
    assert len(dead) == 5 == summary["dead_letters"]
    assert any("not an image of the ground truth" in r for r in reasons)
    assert any("not a category of the ground truth" in r for r in reasons)
    assert any("negative width" in r for r in reasons)
    assert any("no 'category_id'" in r for r in reasons)
    assert any("not valid JSON" in r for r in reasons)
    c = summary["counters"]
    assert c["detections_read"] + c["detections_invalid"] == len(mixed) + 1
    assert (c["detections_unknown_image"], c["detections_unknown_category"], c["detections_invalid"]) == (1, 1, 3)
    assert c["detections_evaluated"] == len(results)


@pytest.mark.parametrize("use_07", [True, False])
def test_voc_equals_voc_evaluator(tmp_path, use_07):
    gt, results = make_case(4, num_images=25, crowd_prob=0.0)
    rng = np.random.default_rng(0)
    for ann in gt["annotations"]:
        ann["difficult"] = int(rng.random() < 0.1)
    gt_path, dets = _write_case(str(tmp_path / "in"), gt, results, shards=2)
    out = str(tmp_path / "out")
    summary = pipeline.run(["--gt", gt_path, "--detections", dets, "--output", out, "--metric", "voc",
                            "--direct_num_workers=1"] + ([] if use_07 else ["--voc_area"]))
    ev = VOCEvaluator(use_07_metric=use_07, bounding_box_format="xywh")
    for image in sorted(gt["images"], key=lambda i: i["id"]):
        anns = [a for a in gt["annotations"] if a["image_id"] == image["id"]]
        dts = [d for d in results if d["image_id"] == image["id"]]
        ev.update_state(
            {"boxes": np.array([a["bbox"] for a in anns], np.float64).reshape(1, -1, 4),
             "labels": np.array([a["category_id"] for a in anns]).reshape(1, -1),
             "difficult": np.array([a["difficult"] for a in anns], bool).reshape(1, -1)},
            {"boxes": np.array([d["bbox"] for d in dts], np.float64).reshape(1, -1, 4),
             "labels": np.array([d["category_id"] for d in dts]).reshape(1, -1),
             "scores": np.array([d["score"] for d in dts]).reshape(1, -1)},
        )
    ref = ev.per_class_ap()
    got = {int(k): v for k, v in summary["per_category_AP"].items()}
    assert set(got) == set(ref)
    for k in ref:
        assert abs(got[k] - ref[k]) < 1e-12, (k, got[k], ref[k])
    assert abs(summary["stats"]["mAP"] - np.mean(list(ref.values()))) < 1e-12


def test_multiprocess_two_workers(tmp_path):
    gt, results = make_case(5, num_images=30)
    gt_path, dets = _write_case(str(tmp_path / "in"), gt, results)
    out = str(tmp_path / "out")
    summary = pipeline.run(["--gt", gt_path, "--detections", dets, "--output", out, "--images_per_batch", "4",
                            "--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    ref = evaluate_coco(gt_path, results)
    np.testing.assert_allclose(_stats(summary), [ref[k] for k in STAT_NAMES], rtol=0, atol=1e-12)


def test_voc_folder_ground_truth(tmp_path):
    """A VOC folder as --gt: its boxes become a COCO ground truth; perfect detections score AP 1."""
    import json as _json

    from keras_det import data
    from keras_det.metrics import evaluate_coco
    from keras_det.beam import evaluate

    from ..data.folders import write_voc_devkit

    root = write_voc_devkit(str(tmp_path / "voc"))
    dataset, info = data.load(root, "train", bounding_box_format="xywh", with_info=True)
    gt = data.to_coco(dataset, info)
    assert len(gt["images"]) == 3 and [c["id"] for c in gt["categories"]] == [1, 2, 3, 4]
    detections = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
        for a in gt["annotations"]
    ]
    dets = tmp_path / "dets.json"
    dets.write_text(_json.dumps(detections))
    summary = evaluate.run(["--gt", root, "--gt_split", "train", "--detections", str(dets), "--output", str(tmp_path / "out")])
    reference = evaluate_coco(str(tmp_path / "out" / "ground_truth.json"), str(dets))
    for key, value in reference.items():
        assert summary["stats"][key] == value, key
    assert abs(summary["stats"]["AP50"] - 1.0) < 1e-12


def test_detections_join_by_file_name(tmp_path):
    """A detection naming its file joins the GT image of that file even under another id (COCO's own ids)."""
    from keras_det.beam import evaluate

    gt = {"images": [{"id": 7, "file_name": "a/x.jpg", "width": 100, "height": 100},
                     {"id": 9, "file_name": "y.jpg", "width": 100, "height": 100}],
          "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400, "iscrowd": 0},
                          {"id": 2, "image_id": 9, "category_id": 1, "bbox": [50, 50, 20, 20], "area": 400, "iscrowd": 0}],
          "categories": [{"id": 1, "name": "c"}]}
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt))
    # Ids as keras-det predict writes them (file hashes), file names as the GT has them.
    dets = [{"image_id": 123, "file_name": "./a/x.jpg", "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9},
            {"image_id": 9, "category_id": 1, "bbox": [50, 50, 20, 20], "score": 0.8},
            {"image_id": 555, "file_name": "unknown.jpg", "category_id": 1, "bbox": [1, 1, 2, 2], "score": 0.7}]
    det_path = tmp_path / "dets.json"
    det_path.write_text(json.dumps(dets))
    out = str(tmp_path / "out")
    summary = evaluate.run(["--gt", str(gt_path), "--detections", str(det_path), "--output", out])
    assert summary["stats"]["AP50"] == 1.0 and summary["detections"] == 2
    dead = _dead_letters(out)
    assert [(d["image_id"], d["stage"]) for d in dead] == [("555", "evaluate")]
    assert "not an image of the ground truth" in dead[0]["reason"]


@pytest.mark.parametrize("iou_type", ["segm", "keypoints"])
def test_iou_types_equal_pycocotools(tmp_path, iou_type):
    from keras_det.metrics.masks import encode_rle_counts

    from ..metrics.coco_cases import make_keypoints_case, make_segm_case, pycocotools_eval

    if iou_type == "segm":
        gt, results, _ = make_segm_case(12, num_images=8)
    else:
        gt, results = make_keypoints_case(12, num_images=12)
    field = "segmentation" if iou_type == "segm" else "keypoints"
    bad = dict(results[0], image_id=results[0]["image_id"])
    if iou_type == "segm":
        h, w = bad[field]["size"]
        bad[field] = {"size": [h + 1, w], "counts": encode_rle_counts([(h + 1) * w])}
    else:
        bad[field] = bad[field][:6]
    no_field = {k: v for k, v in results[0].items() if k != field}
    gt_path, dets = _write_case(str(tmp_path / "in"), gt, results, extra_lines=[json.dumps(bad), json.dumps(no_field)])
    out = str(tmp_path / "out")
    summary = pipeline.run(["--gt", gt_path, "--detections", dets, "--output", out, "--iou_type", iou_type,
                            "--images_per_batch", "3", "--direct_num_workers=1"])
    ref = pycocotools_eval(gt, results, iou_type).stats
    np.testing.assert_allclose(list(summary["stats"].values()), ref, rtol=0, atol=1e-9)
    reasons = sorted(d["reason"] for d in _dead_letters(out))
    assert len(reasons) == 2 and summary["dead_letters"] == 2
    assert any(f"no '{field}' field" in r for r in reasons)
    assert any(("but the image is" if iou_type == "segm" else "points, not 17") in r for r in reasons), reasons
