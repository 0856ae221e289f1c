"""The whole CLI workflow on real photos (a BCCD subset at 160 px, issue 13's proof):

data → train (2 short epochs) → evaluate --model → export → predict → evaluate --results.
"""

import glob
import json
import os
import shutil

import pytest

from keras_det import cli
from keras_det.identity import file_image_id
from tests.data import folders

BCCD = folders.bccd_path()
SIZES = {"train": 24, "val": 8, "test": 8}  # images per split of the subset


def _subset(root):
    """A VOC devkit with the first images of each BCCD split (XMLs copied, photos linked)."""
    for d in ("Annotations", "JPEGImages", os.path.join("ImageSets", "Main")):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for split, n in SIZES.items():
        ids = open(os.path.join(BCCD, "ImageSets", "Main", f"{split}.txt")).read().split()[:n]
        with open(os.path.join(root, "ImageSets", "Main", f"{split}.txt"), "w") as f:
            f.write("\n".join(ids) + "\n")
        for i in ids:
            shutil.copy(os.path.join(BCCD, "Annotations", i + ".xml"), os.path.join(root, "Annotations"))
            os.symlink(os.path.join(BCCD, "JPEGImages", i + ".jpg"), os.path.join(root, "JPEGImages", i + ".jpg"))
    return root


@pytest.mark.skipif(BCCD is None, reason="BCCD not found: no shared/datasets/bccd above this checkout (set KERAS_DET_BCCD)")
def test_bccd_workflow_through_the_cli(tmp_path, capsys):
    data = _subset(str(tmp_path / "bccd"))
    assert cli.main(["data", data, "--image-size", "160"]) == 0
    assert "RBC" in capsys.readouterr().out

    run = str(tmp_path / "run")
    assert cli.main(["train", "--data", data, "--image-size", "160", "--epochs", "2", "--steps-per-epoch", "6",
                     "--batch-size", "4", "--output-dir", run]) == 0
    summary = json.load(open(os.path.join(run, "summary.json")))
    assert os.path.isfile(os.path.join(run, "model.keras")) and os.path.isfile(os.path.join(run, "best.keras"))
    assert "best_val_AP" in summary

    ev_model = str(tmp_path / "ev_model")
    assert cli.main(["evaluate", "--model", os.path.join(run, "model.keras"), "--data", data, "--split", "test",
                     "--output", ev_model]) == 0
    text = capsys.readouterr().out
    by_model = json.load(open(os.path.join(ev_model, "metrics.json")))
    assert set(by_model["per_class"]) == {"Platelets", "RBC", "WBC"}
    assert all(name in text for name in ("Platelets", "RBC", "WBC"))
    for key in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"):
        assert 0.0 <= by_model[key] <= 1.0 or by_model[key] == -1.0, key

    export = str(tmp_path / "export")
    assert cli.main(["export", os.path.join(run, "model.keras"), export]) == 0
    capsys.readouterr()
    version = glob.glob(os.path.join(export, "*"))
    assert len(version) == 1
    # The export's default size is the training size (160), not 128.
    import tensorflow as tf

    serving = tf.saved_model.load(version[0]).signatures["serving_tensor"]
    assert tuple(serving.structured_input_signature[1]["images"].shape[1:3]) in ((160, 160), (None, None))

    test_ids = open(os.path.join(data, "ImageSets", "Main", "test.txt")).read().split()
    images = os.path.join(data, "JPEGImages")
    pred = str(tmp_path / "pred")
    inputs = [os.path.join(images, i + ".jpg") for i in test_ids]
    assert cli.main(["predict", export, *inputs, "--output", pred]) == 0
    detections = json.load(open(os.path.join(pred, "detections.json")))
    assert {d["file_name"] for d in detections} <= {i + ".jpg" for i in test_ids}
    assert all(d["image_id"] == file_image_id(d["file_name"]) for d in detections)
    assert all(len(d["bbox"]) == 4 and d["bbox"][2] >= 0 and d["bbox"][3] >= 0 for d in detections)

    ev_results = str(tmp_path / "ev_results")
    assert cli.main(["evaluate", "--results", os.path.join(pred, "detections.json"), "--data", data, "--split", "test",
                     "--output", ev_results]) == 0
    by_results = json.load(open(os.path.join(ev_results, "metrics.json")))
    assert abs(by_results["AP"] - by_model["AP"]) <= 0.01
    assert abs(by_results["AP50"] - by_model["AP50"]) <= 0.01

    # A second predict into another folder overwrites nothing of the first.
    before = {p: os.path.getmtime(p) for p in glob.glob(os.path.join(pred, "**"), recursive=True) if os.path.isfile(p)}
    pred2 = str(tmp_path / "pred2")
    assert cli.main(["predict", export, images, "--output", pred2]) == 0
    after = {p: os.path.getmtime(p) for p in before}
    assert before == after
    assert len(json.load(open(os.path.join(pred2, "detections.json")))) >= len(detections)
