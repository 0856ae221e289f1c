"""keras-det predict → detections.json (COCO results) → keras-det evaluate, both ways (issue 13).

One tiny Faster R-CNN (tiny backbone, 64 px) is trained once on `shapes`; a VOC
devkit folder is written from `shapes` images (lossless PNG, so the folder's
pixels are the generator's) with a `test` split.
"""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from keras_det import cli, data
from keras_det.identity import file_image_id
from keras_det.metrics import evaluate_coco
from keras_det.ops.boxes import convert_format
from keras_det.results import STAT_KEYS

from .data.folders import voc_xml

SIZE = 64
CLASSES = ("circle", "square", "triangle", "star", "cross")


def write_shapes_voc(root, split="test", num_images=8, seed=0, extra_objects=None):
    """``root/VOC2007`` with ``num_images`` shapes images (PNG) listed in ``ImageSets/Main/<split>.txt``.

    ``extra_objects(image) -> [(class_name, [x1, y1, x2, y2]), ...]`` adds
    annotations to each image's true shapes.
    """
    base = os.path.join(root, "VOC2007")
    for d in ("Annotations", "JPEGImages", os.path.join("ImageSets", "Main")):
        os.makedirs(os.path.join(base, d), exist_ok=True)
    ds, info = data.load("shapes", "train", bounding_box_format="xyxy", num_images=num_images, image_size=SIZE,
                         with_masks=False, seed=seed, with_info=True)
    ids = []
    for i, element in enumerate(ds.as_numpy_iterator()):
        name = f"img_{i:02d}"
        image = element["images"].astype(np.uint8)
        tf.io.write_file(os.path.join(base, "JPEGImages", name + ".png"), tf.io.encode_png(image))
        objects = [(info.class_names[c], [float(v) for v in b])
                   for b, c in zip(element["bounding_boxes"]["boxes"], element["bounding_boxes"]["labels"])]
        if extra_objects is not None:
            objects += extra_objects(image)
        with open(os.path.join(base, "Annotations", name + ".xml"), "w") as f:
            f.write(voc_xml(name + ".png", image.shape, objects))
        ids.append(name)
    with open(os.path.join(base, "ImageSets", "Main", f"{split}.txt"), "w") as f:
        f.write("".join(f"{n}\n" for n in ids))
    return base


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    import keras

    root = tmp_path_factory.mktemp("cli_pe")
    keras.utils.set_random_seed(0)
    run = str(root / "run")
    argv = ["train", "--model", "faster_rcnn", "--data", "shapes", "--train-images", "16", "--image-size", str(SIZE),
            "--batch-size", "4", "--epochs", "1", "--steps-per-epoch", "40", "--output-dir", run]
    assert cli.main(argv) == 0
    # 40 steps leave AR100 near 0.02, and a CI run's thread timing took it to 0: the folder also labels each image's
    # top detection (at least 8 px a side) of this model, so AR > 0 checks the equalities below are not vacuous.
    trained = keras.saving.load_model(os.path.join(run, "model.keras"))

    def own_top_detection(image):
        out = trained.predict_on_batch(np.asarray(image, np.float32)[None])
        boxes = np.asarray(convert_format(out["boxes"][0], trained.bounding_box_format, "xyxy"))
        for i in range(int(out["num_detections"][0])):
            x1, y1, x2, y2 = (float(v) for v in boxes[i])
            if min(x2 - x1, y2 - y1) >= 8:
                labelled.append(i)
                return [(trained.class_names[int(out["labels"][0][i])], [round(x1), round(y1), round(x2), round(y2)])]
        return []

    labelled = []
    voc = write_shapes_voc(str(root / "voc"), extra_objects=own_top_detection)
    assert labelled, "the tiny model kept no detection of 8 px or more"
    assert cli.main(["export", os.path.join(run, "model.keras"), str(root / "saved"), "--image-size", str(SIZE)]) == 0
    return {"root": root, "model": os.path.join(run, "model.keras"), "saved": str(root / "saved"), "voc": voc}


def _metrics(path):
    with open(os.path.join(path, "metrics.json")) as f:
        return json.load(f)


@pytest.mark.parametrize("kind", ["keras", "saved_model"])
def test_predict_writes_coco_results_that_evaluate_scores_like_evaluate_model(workdir, kind, capsys):
    root, voc = workdir["root"], workdir["voc"]
    model = workdir["model"] if kind == "keras" else workdir["saved"]  # the SavedModel's base dir: its latest version
    size = ["--image-size", str(SIZE)] if kind == "keras" else []
    pred = str(root / f"pred_{kind}")
    assert cli.main(["predict", model, os.path.join(voc, "JPEGImages"), "--output", pred, *size]) == 0
    results = json.load(open(os.path.join(pred, "detections.json")))
    assert results and set(results[0]) == {"image_id", "category_id", "bbox", "score", "file_name", "category_name"}
    # Named by the identity data.load gives the same files; every detection the model returns is kept.
    _, info = data.load(voc, "test", with_info=True)
    by_name = dict(zip(info.file_names, info.image_ids))
    assert {r["file_name"] for r in results} <= set(by_name)
    assert all(r["image_id"] == by_name[r["file_name"]] == file_image_id(r["file_name"]) for r in results)
    assert min(r["score"] for r in results) < 0.5  # below the drawing threshold, still in the file
    assert {r["category_name"] for r in results} <= set(CLASSES)
    # A COCO results file: pycocotools-exact evaluate_coco reads it against the split's COCO ground truth.
    gt = data.to_coco(*data.load(voc, "test", bounding_box_format="xywh", with_info=True))
    by_class = {c["name"]: c["id"] for c in gt["categories"]}  # the folder's class order is its sorted names
    reference = [{"image_id": r["image_id"], "category_id": by_class[r["category_name"]], "bbox": r["bbox"], "score": r["score"]}
                 for r in results if r["category_name"] in by_class]
    stats = evaluate_coco(gt, reference)

    ev_model, ev_results = str(root / f"ev_model_{kind}"), str(root / f"ev_results_{kind}")
    capsys.readouterr()
    assert cli.main(["evaluate", "--model", model, "--data", voc, "--split", "test", "--output", ev_model, *size]) == 0
    printed = capsys.readouterr().out
    assert cli.main(["evaluate", "--results", os.path.join(pred, "detections.json"), "--data", voc, "--split", "test",
                     "--output", ev_results]) == 0
    a, b = _metrics(ev_model), _metrics(ev_results)
    assert set(STAT_KEYS) | {"per_class"} <= set(a)
    for key in STAT_KEYS:  # same images, same model, same resize: identical numbers
        assert a[key] == b[key] == pytest.approx(stats[key], abs=1e-12), key
    assert a["AR100"] > 0 and a["detections"] == len(reference)  # not a vacuous equality
    assert a["per_class"] == b["per_class"] and set(a["per_class"]) <= set(CLASSES) and a["per_class"]
    assert all(set(v) == {"AP", "AP50"} for v in a["per_class"].values())
    assert "AP50" in printed and next(iter(a["per_class"])) in printed
    assert a["outside_split"] == b["outside_split"] == 0


def test_keras_and_saved_model_predict_agree(workdir):
    root = workdir["root"]
    for kind in ("keras", "saved_model"):
        if not os.path.exists(os.path.join(root, f"pred_{kind}", "detections.json")):
            pytest.skip("needs the predict test of both kinds")
    a = json.load(open(os.path.join(root, "pred_keras", "detections.json")))
    b = json.load(open(os.path.join(root, "pred_saved_model", "detections.json")))
    assert len(a) == len(b)
    np.testing.assert_allclose([r["bbox"] for r in a], [r["bbox"] for r in b], atol=1e-2)


def test_detections_outside_the_split_are_counted_not_dropped(workdir, tmp_path, capsys):
    voc = workdir["voc"]
    results = [
        {"image_id": file_image_id("img_00.png"), "file_name": "img_00.png", "category_id": 1, "bbox": [1, 1, 20, 20], "score": 0.9},
        {"image_id": 12345, "file_name": "elsewhere/x.png", "category_id": 1, "bbox": [1, 1, 20, 20], "score": 0.9},
        {"image_id": 777, "category_id": 2, "bbox": [1, 1, 20, 20], "score": 0.5},
    ]
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(results))
    assert cli.main(["evaluate", "--results", str(path), "--data", voc, "--split", "test", "--output", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "2 detections are of images outside" in err and "elsewhere/x.png" in err
    m = _metrics(str(tmp_path))
    assert m["outside_split"] == 2 and m["detections"] == 1


def test_drawings_mirror_the_tree_and_a_second_predict_overwrites_nothing(workdir, tmp_path, capsys):
    src = workdir["voc"]
    tree = tmp_path / "photos"
    for sub, name in (("a", "img_00.png"), ("b", "img_00.png"), ("", "img_01.png"), ("", "img_01.jpg")):
        (tree / sub).mkdir(parents=True, exist_ok=True)
        image = tf.io.decode_png(tf.io.read_file(os.path.join(src, "JPEGImages", name.replace(".jpg", ".png"))))
        data_ = tf.io.encode_jpeg(image) if name.endswith(".jpg") else tf.io.encode_png(image)
        tf.io.write_file(str(tree / sub / name), data_)
    (tree / "b" / "notes.jpg").write_text("not an image")  # a text file named .jpg among the inputs
    out1, out2 = str(tmp_path / "out1"), str(tmp_path / "out2")
    assert cli.main(["predict", workdir["saved"], str(tree), "--output", out1, "--score-threshold", "0.0"]) == 1
    err = capsys.readouterr().err
    assert "notes.jpg" in err and len([line for line in err.splitlines() if "notes.jpg" in line]) == 1
    found = sorted(os.path.relpath(os.path.join(d, f), out1) for d, _, fs in os.walk(out1) for f in fs)
    assert found == ["a/img_00_pred.png", "b/img_00_pred.png", "detections.json", "failed.json",
                     "img_01.jpg_pred.png", "img_01.png_pred.png"]
    results = json.load(open(os.path.join(out1, "detections.json")))
    assert {r["file_name"] for r in results} == {"a/img_00.png", "b/img_00.png", "img_01.png", "img_01.jpg"}
    assert json.load(open(os.path.join(out1, "failed.json")))[0]["file_name"] == "b/notes.jpg"
    before = {f: os.path.getmtime(os.path.join(out1, f)) for f in found}
    shutil.rmtree(tree / "b")
    assert cli.main(["predict", workdir["saved"], str(tree), "--output", out2]) == 0
    assert {f: os.path.getmtime(os.path.join(out1, f)) for f in found} == before
    assert os.path.isfile(os.path.join(out2, "a", "img_00_pred.png"))


def test_empty_split_is_one_line_error_naming_it(workdir, capsys):
    code = cli.main(["evaluate", "--model", workdir["saved"], "--data", workdir["voc"], "--split", "val"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("keras-det: error:") and "val" in err
