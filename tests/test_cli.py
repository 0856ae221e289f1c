import subprocess
import sys

import pytest

from keras_det import cli


def test_help_lists_every_subcommand(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    for name in ("train", "evaluate", "export", "predict", "proposals", "demo", "bench"):
        assert name in out


def test_bench_names_the_available_benchmarks(capsys):
    import re

    assert cli.main(["bench", "nope"]) == 2
    assert re.search("no benchmark 'nope'; available: .*eval_speed", capsys.readouterr().err)


def test_bench_outside_a_checkout_says_it_needs_one(capsys, monkeypatch, tmp_path):
    # An installed wheel has no benchmarks/ beside keras_det/.
    monkeypatch.setattr(cli, "__file__", str(tmp_path / "site-packages" / "keras_det" / "cli.py"))
    assert cli.main(["bench", "peers"]) == 2
    assert "ship with a source checkout, not with an installed package" in capsys.readouterr().err


def test_console_script_help():
    out = subprocess.run(
        [sys.executable, "-m", "keras_det.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "keras-det" in out.stdout


def test_train_classifier_on_a_folder(tmp_path, capsys):
    import keras
    import numpy as np
    import skimage.data
    import tensorflow as tf

    for name, image in (("cat", skimage.data.chelsea()), ("coffee", skimage.data.coffee())):
        folder = tmp_path / "data" / name
        folder.mkdir(parents=True)
        for i in range(3):
            crop = tf.image.resize(image[i * 20 : i * 20 + 200, i * 30 : i * 30 + 200], (48, 48)).numpy()
            keras.utils.save_img(str(folder / f"{i}.png"), crop.astype(np.uint8))
    out = str(tmp_path / "clf.keras")
    argv = ["train", "--task", "classify", "--data", str(tmp_path / "data"), "--backbone", "tiny", "--image-size", "48",
            "--batch-size", "2", "--epochs", "1", "--steps-per-epoch", "2", "--fine-tune", "2", "--output", out]
    assert cli.main(argv) == 0
    said = capsys.readouterr().out
    assert "6 images of 2 classes" in said and "fine-tuning the top 2" in said
    model = keras.saving.load_model(out)
    assert model.predict(np.zeros((1, 48, 48, 3), np.float32), verbose=0).shape == (1, 2)


@pytest.mark.parametrize("model", ["faster_rcnn", "yolo_v1", "classify_localize"])
def test_train_export_predict_round_trip(tmp_path, capsys, model):
    import json
    import os

    import numpy as np
    import tensorflow as tf

    run = str(tmp_path / "run")
    argv = ["train", "--model", model, "--data", "shapes", "--train-images", "8", "--image-size", "64",
            "--batch-size", "4", "--epochs", "2", "--steps-per-epoch", "2", "--output-dir", run]
    assert cli.main(argv) == 0
    assert {"model.keras", "checkpoint.keras", "logs"} <= set(os.listdir(run))
    export_dir = str(tmp_path / "saved")
    assert cli.main(["export", os.path.join(run, "model.keras"), export_dir, "--image-size", "64"]) == 0
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        (images / name).write_bytes(tf.io.encode_png(rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)).numpy())
    out = str(tmp_path / "pred")
    assert cli.main(["predict", os.path.join(export_dir, "1"), str(images), "--output", out, "--score-threshold", "0"]) == 0
    detections = json.load(open(os.path.join(out, "detections.json")))  # a COCO results list
    assert {d["file_name"] for d in detections} <= {"a.png", "b.png"} and detections
    assert set(detections[0]) == {"image_id", "category_id", "bbox", "score", "file_name", "category_name"}
    assert detections[0]["category_name"] in ("circle", "square", "triangle", "star", "cross")
    assert os.path.isfile(os.path.join(out, "a_pred.png"))
    capsys.readouterr()
    assert cli.main(["predict", os.path.join(export_dir, "1"), str(tmp_path / "missing.jpg")]) == 2
    assert "missing.jpg: no such file or folder" in capsys.readouterr().err
    assert cli.main(["predict", str(tmp_path), str(images)]) == 2
    assert "not a SavedModel" in capsys.readouterr().err


def test_evaluate_coco_and_voc_tables(tmp_path, capsys):
    import json

    gt = {
        "images": [{"id": 1, "height": 50, "width": 50}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 20], "area": 400, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "thing"}],
    }
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dets.json").write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 20], "score": 0.9}]))
    assert cli.main(["evaluate", "--gt", str(tmp_path / "gt.json"), "--results", str(tmp_path / "dets.json")]) == 0
    assert "AP50    1.0000" in capsys.readouterr().out
    assert cli.main(["evaluate", "--gt", str(tmp_path / "gt.json"), "--results", str(tmp_path / "dets.json"), "--metric", "voc"]) == 0
    assert "AP[1]" in capsys.readouterr().out
