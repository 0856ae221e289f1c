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
