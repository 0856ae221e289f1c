"""`keras-det data` and `keras-det train` on small folders and on BCCD (tiny backbone, a few steps)."""

import json
import os

import numpy as np
import pytest

from keras_det import cli
from tests.data import folders

BCCD = folders.bccd_path()


@pytest.mark.skipif(BCCD is None, reason="BCCD not found: no shared/datasets/bccd above this checkout (set KERAS_DET_BCCD)")
def test_data_command_on_bccd(tmp_path, capsys):
    out = str(tmp_path / "bccd.json")
    assert cli.main(["data", BCCD, "--image-size", "160", "--num-anchors", "4", "--output", out]) == 0
    text = capsys.readouterr().out
    d = json.load(open(out))
    assert d["class_names"] == ["Platelets", "RBC", "WBC"]
    # ImageSets/Main: train 205, val 87, test 72 images (364 in all, 4,888 boxes).
    sizes = {s: (v["images"], v["boxes"]) for s, v in d["splits"].items()}
    assert {s: v[0] for s, v in sizes.items()} == {"train": 205, "validation": 87, "test": 72}
    assert sum(v[1] for v in sizes.values()) == 4888
    train = d["splits"]["train"]
    assert train["image_sizes"] == {"480x640": 205}
    assert sum(c["boxes"] for c in train["per_class"].values()) == train["boxes"]
    assert all(c["images"] <= 205 for c in train["per_class"].values())
    # 640x480 -> 160x120 (scale 1/4): the percentiles are a quarter of the
    # original pixels', which `describe` without resizing gives.
    from keras_det.data import describe

    original = describe(BCCD, image_size=None, num_anchors=0, splits=("train",))["splits"]["train"]
    for key in ("sqrt_wh", "w", "h"):
        np.testing.assert_allclose(train[key], np.asarray(original[key]) / 4, rtol=1e-5)
    assert len(d["anchor_sizes"]) == 4 and d["anchor_sizes"] == sorted(d["anchor_sizes"])
    assert d["anchor_sizes"][0] < train["sqrt_wh"][2] < d["anchor_sizes"][-1]
    assert "RBC" in text and "suggested anchor sizes" in text and "--anchor-sizes" in text


def test_data_command_on_a_labelimg_folder_with_fractions(tmp_path, capsys):
    root = folders.write_labelimg(str(tmp_path / "photos"))
    out = str(tmp_path / "d.json")
    assert cli.main(["data", root, "--image-size", "64", "--num-anchors", "2", "--val-fraction", "0.25",
                     "--test-fraction", "0", "--output", out]) == 0
    d = json.load(open(out))
    assert d["splits"]["test"] is None and "test: missing" in capsys.readouterr().out
    assert d["splits"]["train"]["images"] == 3 and d["splits"]["validation"]["images"] == 1
    from keras_det.data import describe

    # Photos are 128 px wide -> 64 (x scale 1/2); an 85-px height becomes
    # round(42.5) = 42 (half to even, as tf.round), y scale 42 / 85: resize_pad's exact factors.
    whole = describe(root, image_size=64, num_anchors=0, splits=("all",))["splits"]["all"]
    sides = []
    for n in folders.TRAIN + folders.VAL:
        height, width = folders.photo(n).shape[:2]
        sy = np.round(height * 64 / width) / height
        sides += [((x2 - x1) / 2, (y2 - y1) * sy) for _, (x1, y1, x2, y2) in folders.OBJECTS[n]]
    w, h = np.array(sides).T
    assert whole["boxes"] == 7
    np.testing.assert_allclose(whole["w"], np.percentile(w, [5, 25, 50, 75, 95]), atol=0.02)
    np.testing.assert_allclose(whole["sqrt_wh"], np.percentile(np.sqrt(w * h), [5, 25, 50, 75, 95]), atol=0.02)
    assert whole["per_class"]["rocket"] == {"images": 2, "boxes": 2}


def _train(argv, tmp_path, name="run"):
    run = str(tmp_path / name)
    # --verbose: user errors raise (the tests match them) instead of printing one line.
    base = ["--verbose", "train", "--image-size", "64", "--batch-size", "2", "--epochs", "2", "--steps-per-epoch", "2",
            "--output-dir", run]
    assert cli.main(base + argv) == 0
    return run


def _event_tags(logdir):
    import tensorflow as tf

    tags = set()
    for root, _, files in os.walk(logdir):
        for f in files:
            if "tfevents" in f:
                for record in tf.data.TFRecordDataset(os.path.join(root, f)):
                    event = tf.compat.v1.Event.FromString(record.numpy())
                    tags.update(v.tag for v in event.summary.value)
    return tags


def test_train_on_a_voc_folder_validates_remembers_and_exports(tmp_path, capsys, monkeypatch):
    import keras

    import keras_det.models  # noqa: F401
    from keras_det.ops.anchors import kmeans_anchor_sizes

    root = folders.write_voc_devkit(str(tmp_path / "voc"))
    run = _train(["--data", root], tmp_path)
    out = capsys.readouterr().out
    assert {"model.keras", "best.keras", "checkpoint.keras", "summary.json", "logs"} <= set(os.listdir(run))
    summary = json.load(open(os.path.join(run, "summary.json")))
    assert summary["best_epoch"] in (1, 2) and 0 <= summary["best_val_AP50"] <= 1
    assert "val_AP:" in out and "val_AP50:" in out  # in Keras' progress line
    assert "best epoch" in out and "best.keras" in out
    # Keras' TensorBoard writes the val_ logs to logs/validation as epoch_<name>.
    assert {"epoch_AP", "epoch_AP50"} <= _event_tags(os.path.join(run, "logs", "validation"))
    # Anchors: k-means (k=4) on the train split's boxes after resize_pad to 64
    # (photos 128 wide: x scale 1/2; an 85-px height -> round(42.5) = 42).
    wh = []
    for n in folders.TRAIN:
        height, width = folders.photo(n).shape[:2]
        sy = np.round(height * 64 / width) / height
        wh += [((x2 - x1) / 2, (y2 - y1) * sy) for _, (x1, y1, x2, y2) in folders.OBJECTS[n]]
    np.testing.assert_allclose(summary["anchor_sizes"], kmeans_anchor_sizes(np.array(wh), 4, seed=0), atol=0.051)
    model = keras.saving.load_model(os.path.join(run, "model.keras"))
    assert model.image_size == (64, 64)
    assert model.class_names == folders.SORTED_NAMES  # not all VOC names: sorted
    np.testing.assert_allclose(model.get_config()["anchor_sizes"], summary["anchor_sizes"])
    best = keras.saving.load_model(os.path.join(run, "best.keras"))
    assert best.class_names == model.class_names

    # export: the training size by default; another size warns; 3 values are an error.
    import tensorflow as tf

    import keras_det.export

    sizes = []
    real_export = keras_det.export.export_saved_model

    def spy(model, export_dir, **kwargs):
        sizes.append(tuple(kwargs["image_size"]))
        return real_export(model, export_dir, **kwargs)

    monkeypatch.setattr(keras_det.export, "export_saved_model", spy)
    export = str(tmp_path / "saved")
    assert cli.main(["export", os.path.join(run, "model.keras"), export]) == 0
    assert sizes == [(64, 64)] and "warning" not in capsys.readouterr().out
    assert tf.saved_model.load(os.path.join(export, "1")).signatures["serving_default"] is not None
    labels = open(os.path.join(export, "1", "assets", "label_map.pbtxt")).read()
    assert "rocket" in labels and "person" in labels
    assert cli.main(["export", os.path.join(run, "model.keras"), export, "--image-size", "96"]) == 0
    assert "trained at 64x64: accuracy may change" in capsys.readouterr().out and sizes[-1] == (96, 96)
    with pytest.raises(ValueError, match=r"--image-size must be one positive integer S \(square\) or two, height and width; got \[64, 64, 3\]"):
        cli.main(["--verbose", "export", os.path.join(run, "model.keras"), export, "--image-size", "64", "64", "3"])


def test_classify_localize_trains_on_one_object_images_only(tmp_path, capsys):
    # shapes: one object per image unless told otherwise (said), and the model trains.
    run = _train(["--model", "classify_localize", "--data", "shapes", "--train-images", "4", "--val-images", "2"],
                 tmp_path)
    assert "one object per image for --model classify_localize" in capsys.readouterr().out
    assert os.path.isfile(os.path.join(run, "model.keras"))
    # A folder with a two-object training image: an error naming it, not the first box learnt and the rest dropped.
    root = folders.write_voc_devkit(str(tmp_path / "voc"))
    with pytest.raises(ValueError, match=r"one object per image.*1 of the 3 images.*astronaut\.jpg, 2 boxes"):
        _train(["--model", "classify_localize", "--data", root], tmp_path, "voc_run")
    with pytest.raises(ValueError, match="--max-objects sets how many objects `shapes` draws"):
        _train(["--data", root, "--max-objects", "1"], tmp_path, "voc_run2")
    with pytest.raises(ValueError, match="--max-objects must be >= 1"):
        _train(["--data", "shapes", "--max-objects", "0"], tmp_path, "shapes_run")


def test_check_one_object_counts_boxes_per_image():
    cli.check_one_object("classify_localize", "train", [0, 1, 2], 3)  # one each: fine
    with pytest.raises(ValueError, match=r"2 of the 4 images .*first: b.jpg, 2 boxes"):
        cli.check_one_object("classify_localize", "train", [0, 1, 1, 3], 4, ["a.jpg", "b.jpg", "c.jpg", "d.jpg"])
    with pytest.raises(ValueError, match=r"first: image 1, 0 boxes"):
        cli.check_one_object("classify_localize", "train", [0, 2], 3)


def test_train_init_from_copies_the_weights(tmp_path):
    import keras

    import keras_det.models  # noqa: F401

    root = folders.write_labelimg(str(tmp_path / "photos"))
    flags = ["--data", root, "--anchor-sizes", "8", "16", "32", "64", "--no-augment", "--val-split", "none"]
    first = _train(flags, tmp_path, "first")
    # learning rate 0: the second run's trainable weights are exactly the ones it
    # started from (BatchNorm's moving statistics still move in training).
    # Without --anchor-sizes it keeps the anchors the RPN learnt (not k-means ones).
    second = _train(["--data", root, "--no-augment", "--val-split", "none", "--init-from", os.path.join(first, "model.keras"),
                     "--learning-rate", "0", "--epochs", "1", "--steps-per-epoch", "1"], tmp_path, "second")
    a = keras.saving.load_model(os.path.join(first, "model.keras"))
    b = keras.saving.load_model(os.path.join(second, "model.keras"))
    assert "best.keras" not in os.listdir(second)  # --val-split none
    assert tuple(b.get_config()["anchor_sizes"]) == (8.0, 16.0, 32.0, 64.0)
    assert len(a.trainable_weights) == len(b.trainable_weights) > 20
    for x, y in zip(a.trainable_weights, b.trainable_weights):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    with pytest.raises(ValueError, match="--init-from: model file '.*missing.keras' does not exist"):
        _train(flags + ["--init-from", str(tmp_path / "missing.keras")], tmp_path, "third")
    from keras_det.data import DataError

    with pytest.raises(DataError, match="--val-split test: .*split 'test' has no images.*--val-split none"):
        _train(["--data", root, "--val-split", "test", "--test-fraction", "0"], tmp_path, "fourth")


def test_backbone_weights_are_honoured_by_every_detector(tmp_path):
    from keras_det.backbones import tiny_cnn

    missing = str(tmp_path / "missing.weights.h5")
    with pytest.raises(ValueError, match=f"--backbone-weights: weights file '{missing}' does not exist"):
        cli.main(["--verbose", "train", "--data", "shapes", "--backbone-weights", missing, "--output-dir", str(tmp_path / "r")])
    source = tiny_cnn(input_shape=(None, None, 3))
    path = str(tmp_path / "tiny.weights.h5")
    source.save_weights(path)
    for name in ("faster_rcnn", "ssd", "yolo"):
        # The detector's backbone keeps the layers up to its taps (Faster R-CNN: C3).
        features = cli.build_detector(name, 2, "tiny", 64, backbone_weights=path).backbone.get_layer("tiny")
        layers = [layer for layer in features.layers if layer.weights]
        assert len(layers) >= 5
        for layer in layers:
            for x, y in zip(layer.get_weights(), source.get_layer(layer.name).get_weights()):
                np.testing.assert_array_equal(x, y)
        fresh = cli.build_detector(name, 2, "tiny", 64).backbone.get_layer("tiny")
        kernel = layers[0].get_weights()[0]
        assert not np.array_equal(fresh.get_layer(layers[0].name).get_weights()[0], kernel)  # without the file: random


def test_an_interrupted_run_resumes_and_keeps_the_best_of_all_epochs(tmp_path, monkeypatch):
    """BackupAndRestore resumes an interrupted run; best.keras and summary.json
    then judge every epoch (history.csv), not only those after the restart."""
    import csv

    import keras

    root = folders.write_voc_devkit(str(tmp_path / "voc"))
    made = []
    real = cli._train_callbacks

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("interrupted")

    def interrupted(*args):
        made.append(real(*args))
        return made[-1] + [Interrupt()]

    argv = ["--verbose", "train", "--data", root, "--image-size", "64", "--batch-size", "2", "--epochs", "3",
            "--steps-per-epoch", "2", "--output-dir", str(tmp_path / "run")]
    monkeypatch.setattr(cli, "_train_callbacks", interrupted)
    with pytest.raises(RuntimeError, match="interrupted"):
        cli.main(argv)
    run = str(tmp_path / "run")
    assert os.path.isdir(os.path.join(run, "backup")) and not os.path.exists(os.path.join(run, "summary.json"))
    before = [float(r["val_AP"]) for r in csv.DictReader(open(os.path.join(run, "history.csv")))]
    assert len(before) == 2

    def resumed(*args):
        made.append(real(*args))
        return made[-1]

    monkeypatch.setattr(cli, "_train_callbacks", resumed)
    assert cli.main(argv) == 0
    rows = list(csv.DictReader(open(os.path.join(run, "history.csv"))))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]  # each epoch once, the first two kept
    aps = [float(r["val_AP"]) for r in rows]
    assert aps[:2] == before
    best = [c for c in made[-1] if isinstance(c, keras.callbacks.ModelCheckpoint) and c.monitor == "val_AP"][0]
    assert best.best == max(aps)  # started from the best of the epochs before the restart
    summary = json.load(open(os.path.join(run, "summary.json")))
    assert summary["best_epoch"] == int(np.argmax(aps)) + 1 and summary["best_val_AP"] == max(aps)
    assert summary["resumed_at_epoch"] == 3
    # A new run in the same folder starts a new history.
    monkeypatch.setattr(cli, "_train_callbacks", real)
    assert cli.main(argv[:-6] + ["--epochs", "1", "--steps-per-epoch", "2", "--output-dir", run]) == 0
    assert [int(r["epoch"]) for r in csv.DictReader(open(os.path.join(run, "history.csv")))] == [0]
