"""The prediction pipeline over an exported tiny Faster R-CNN, then the evaluation pipeline on its output."""

import glob
import json
import os

import cv2
import numpy as np
import pytest
import skimage.data
import tensorflow as tf

from keras_det.export import export_saved_model
from keras_det.identity import file_image_id
from keras_det.metrics.coco import STAT_NAMES, evaluate_coco
from keras_det.models.faster_rcnn import FasterRCNN
from keras_det.beam import evaluate as evaluate_pipeline
from keras_det.beam import predict as pipeline

from ..models.test_faster_rcnn import SMALL
from ..metrics.coco_cases import pycocotools_stats


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    model = FasterRCNN(3, **SMALL)
    model(np.zeros((1, 96, 96, 3), np.float32))
    return export_saved_model(model, str(tmp_path_factory.mktemp("saved_models") / "frcnn"), image_size=(96, 96))


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    photos = [("1.png", skimage.data.chelsea(), (120, 90)), ("2.jpg", skimage.data.coffee(), (100, 80)),
              ("3.png", skimage.data.astronaut(), (96, 96))]
    for name, image, size in photos:
        cv2.imwrite(str(folder / name), cv2.resize(image, size)[:, :, ::-1])
    cv2.imwrite(str(folder / "4.jpg"), cv2.resize(skimage.data.camera(), (70, 110)))  # grayscale
    (folder / "5.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG" * 10)
    return folder


def _lines(pattern):
    out = []
    for path in sorted(glob.glob(pattern)):
        out += [json.loads(line) for line in open(path) if line.strip()]
    return out


def test_predict_then_evaluate(saved_model, image_dir, tmp_path):
    out = str(tmp_path / "predict")
    summary = pipeline.run(["--model", saved_model, "--input", str(image_dir / "*"), "--output", out,
                            "--min_batch_size", "2", "--max_batch_size", "2", "--direct_num_workers=1"])
    dets = _lines(os.path.join(out, "detections-*.jsonl"))
    dead = _lines(os.path.join(out, "dead_letter-*.jsonl"))
    assert summary["images"] + summary["failures"] == 5 == summary["images"] + len(dead)
    # Images are named relative to the glob's folder and numbered by file_image_id.
    assert [(d["file_name"], d["image_id"], d["stage"]) for d in dead] == [("5.jpg", str(file_image_id("5.jpg")), "decode")]
    assert {d["file_name"] for d in dets} <= {"1.png", "2.jpg", "3.png", "4.jpg"}
    assert all(d["image_id"] == file_image_id(d["file_name"]) for d in dets)
    assert summary["detections"] == len(dets) > 0
    assert summary["counters"]["inferred"] == 4 and summary["counters"]["decode_failed"] == 1

    # The same boxes as calling the SavedModel directly, denormalized to the original size.
    fn = tf.saved_model.load(saved_model).signatures["serving_default"]
    for name in ("1.png", "2.jpg", "3.png", "4.jpg"):
        data = (image_dir / name).read_bytes()
        h, w = tf.io.decode_image(data, channels=3).shape[:2]
        ref = fn(images=tf.constant([data]))
        n = int(ref["num_detections"][0])
        boxes = pipeline.to_pixels(ref["detection_boxes"][0, :n].numpy(), h, w)
        mine = sorted((d for d in dets if d["image_id"] == file_image_id(name)), key=lambda d: -d["score"])
        assert len(mine) == n
        np.testing.assert_allclose([d["bbox"] for d in mine], boxes, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose([d["score"] for d in mine], ref["detection_scores"][0, :n], rtol=1e-5, atol=1e-6)
        assert [d["category_id"] for d in mine] == ref["detection_classes"][0, :n].numpy().astype(int).tolist()
        assert all(b[2] >= 0 and b[3] >= 0 and b[0] + b[2] <= w + 1e-3 and b[1] + b[3] <= h + 1e-3 for b in (d["bbox"] for d in mine))

    # A ground truth for those images: some detections (jittered) plus missed objects.
    rng = np.random.default_rng(0)
    anns = []
    for i, d in enumerate(dets[::3]):
        x, y, bw, bh = (np.asarray(d["bbox"]) + rng.normal(0, 2, 4)).tolist()
        anns.append({"id": i + 1, "image_id": d["image_id"], "category_id": d["category_id"],
                     "bbox": [x, y, abs(bw), abs(bh)], "area": abs(bw * bh), "iscrowd": 0})
    anns.append({"id": len(anns) + 1, "image_id": file_image_id("4.jpg"), "category_id": 2, "bbox": [5, 5, 30, 40], "area": 1200.0, "iscrowd": 0})
    ids = [file_image_id(n) for n in ("1.png", "2.jpg", "3.png", "4.jpg")]
    gt = {"images": [{"id": i, "width": 1, "height": 1} for i in ids], "annotations": anns,
          "categories": [{"id": c, "name": f"c{c}"} for c in (1, 2, 3)]}
    gt_path = str(tmp_path / "gt.json")
    json.dump(gt, open(gt_path, "w"))
    ev = evaluate_pipeline.run(["--gt", gt_path, "--detections", os.path.join(out, "detections-*.jsonl"),
                                "--output", str(tmp_path / "eval"), "--direct_num_workers=1"])
    ref = evaluate_coco(gt_path, dets)
    got = np.array([ev["stats"][k] for k in STAT_NAMES])
    np.testing.assert_allclose(got, [ref[k] for k in STAT_NAMES], rtol=0, atol=1e-12)
    np.testing.assert_allclose(got, pycocotools_stats(gt, dets), rtol=0, atol=1e-12)
    assert ev["dead_letters"] == 0 and ev["stats"]["AP50"] > 0


def test_category_mapping_and_helpers():
    pred = {"image_id": "000012", "boxes": np.array([[1.0, 2.0, 3.0, 4.0], [0, 0, 1, 1]]),
            "scores": np.array([0.9, 0.01]), "classes": np.array([2, 1])}
    res = pipeline.to_results(pred, category_ids=[7, 11, 13], min_score=0.05)
    assert res == [{"image_id": 12, "category_id": 11, "bbox": [1.0, 2.0, 3.0, 4.0], "score": 0.9}]
    assert pipeline.to_results(pred, image_id_type="str")[0]["image_id"] == "000012"
    np.testing.assert_allclose(pipeline.to_pixels([[0.1, 0.2, 0.5, 1.0]], 100, 50), [[10, 10, 40, 40]])
    assert pipeline.parse_category_ids("1, 3,5") == [1, 3, 5]


def test_tfrecord_input_and_failed_batches_are_dead_letters(saved_model, image_dir, tmp_path):
    from keras_det.beam import tf_example

    records = str(tmp_path / "images.tfrecord")
    with tf.io.TFRecordWriter(records) as writer:
        for name in ("1.png", "2.jpg", "5.jpg"):
            writer.write(tf_example.make_example({"image/encoded": [(image_dir / name).read_bytes()],
                                              "image/source_id": [name.split(".")[0].encode()]}))
    out = str(tmp_path / "tfrecord")
    summary = pipeline.run(["--model", saved_model, "--input", records, "--output", out, "--direct_num_workers=1",
                            "--category_ids", "10,20,30", "--image_id_type", "str"])
    dets = _lines(os.path.join(out, "detections-*.jsonl"))
    assert summary["images"] == 2 and summary["failures"] == 1
    assert {d["image_id"] for d in dets} == {"1", "2"} and {d["category_id"] for d in dets} <= {10, 20, 30}
    # A batch the model rejects (strings fed to the uint8 signature): one dead letter per image.
    out = str(tmp_path / "failing")
    summary = pipeline.run(["--model", saved_model, "--input", str(image_dir / "*"), "--output", out,
                            "--signature", "serving_tensor", "--max_batch_size", "2", "--direct_num_workers=1"])
    dead = _lines(os.path.join(out, "dead_letter-*.jsonl"))
    assert summary["images"] == 0 and summary["failures"] == 5 == len(dead)
    assert sorted(d["stage"] for d in dead) == ["decode"] + ["inference"] * 4
    assert all(d["reason"].startswith("InvalidArgumentError") for d in dead if d["stage"] == "inference")


def test_predict_over_a_folder_then_evaluate_against_the_folder(saved_model, tmp_path):
    """Predicting ``JPEGImages/`` gives the ids ``load(devkit)`` gives: evaluate joins every detection (issue 13.2)."""
    from keras_det import data

    from ..data.folders import write_voc_devkit

    root = write_voc_devkit(str(tmp_path / "voc"))
    out = str(tmp_path / "predict")
    pipeline.run(["--model", saved_model, "--input", os.path.join(root, "VOC2007", "JPEGImages", "*.jpg"),
                  "--output", out, "--direct_num_workers=1"])
    dets = _lines(os.path.join(out, "detections-*.jsonl"))
    _, info = data.load(root, "train", with_info=True)
    by_name = dict(zip(info.file_names, info.image_ids))
    train = [d for d in dets if d["file_name"] in by_name]
    assert train and all(d["image_id"] == by_name[d["file_name"]] for d in train)
    ev = evaluate_pipeline.run(["--gt", root, "--gt_split", "train", "--detections", os.path.join(out, "detections-*.jsonl"),
                                "--output", str(tmp_path / "eval"), "--direct_num_workers=1"])
    # Only the val image's detections are not in the train split: dead letters, counted, nothing else.
    assert ev["detections"] == len(train)
    assert ev["dead_letters"] == len(dets) - len(train)
