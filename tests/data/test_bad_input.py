"""Every bad input gives an error naming the file and the problem, or is dropped and counted."""

import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from keras_det import data as kd
from tests.data import folders


def _edit_coco(root, split, fn):
    path = os.path.join(root, "annotations", f"instances_{split}.json")
    with open(path) as f:
        coco = json.load(f)
    fn(coco)
    with open(path, "w") as f:
        json.dump(coco, f)
    return path


def _edit_xml(root, name, old, new):
    path = os.path.join(root, "VOC2007", "Annotations", name + ".xml")
    with open(path) as f:
        text = f.read()
    assert old in text
    with open(path, "w") as f:
        f.write(text.replace(old, new, 1))
    return path


@pytest.fixture
def coco_dir(tmp_path):
    return folders.write_coco(str(tmp_path / "coco"), splits=(("val", folders.VAL),))


@pytest.fixture
def voc_dir(tmp_path):
    return folders.write_voc_devkit(str(tmp_path / "voc"))


def test_corrupt_image_named_at_load(coco_dir):
    path = os.path.join(coco_dir, "images", "val", "rocket.jpg")
    with open(path, "wb") as f:
        f.write(b"this is not an image at all")
    with pytest.raises(ValueError, match=re.escape(path) + ".*corrupt or not a JPEG"):
        kd.load(coco_dir, "val")


def test_truncated_jpeg_named_at_load(coco_dir):
    path = os.path.join(coco_dir, "images", "val", "rocket.jpg")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(ValueError, match=re.escape(path) + ".*truncated"):
        kd.load(coco_dir, "val")


def test_missing_image_file(coco_dir):
    path = os.path.join(coco_dir, "images", "val", "rocket.jpg")
    os.remove(path)
    with pytest.raises(ValueError, match="rocket.jpg"):
        kd.load(coco_dir, "val")


def test_decode_time_size_mismatch_names_file(coco_dir):
    def grow(coco):
        coco["images"][0]["width"] = 200

    _edit_coco(coco_dir, "val", grow)
    ds = kd.load(coco_dir, "val")
    with pytest.raises(tf.errors.InvalidArgumentError, match="rocket.jpg"):
        list(ds)


def test_inverted_box_coco(coco_dir):
    def invert(coco):
        coco["annotations"][1]["bbox"] = [100.0, 60.0, -10.0, 20.0]

    path = _edit_coco(coco_dir, "val", invert)
    with pytest.raises(ValueError, match=re.escape(path) + r".*rocket\.jpg.*object 1.*inverted"):
        kd.load(coco_dir, "val")


def test_nan_box_voc(voc_dir):
    path = _edit_xml(voc_dir, "chelsea", "<xmin>31</xmin>", "<xmin>nan</xmin>")
    with pytest.raises(ValueError, match=re.escape(path) + ": object 0.*NaN"):
        kd.load(voc_dir, "train")


def test_inverted_box_voc(voc_dir):
    path = _edit_xml(voc_dir, "chelsea", "<xmax>100</xmax>", "<xmax>20</xmax>")
    with pytest.raises(ValueError, match=re.escape(path) + ": object 0.*inverted"):
        kd.load(voc_dir, "train")


def test_box_outside_image_is_error(voc_dir):
    path = _edit_xml(
        voc_dir,
        "chelsea",
        "<xmin>31</xmin><ymin>6</ymin><xmax>100</xmax>",
        "<xmin>301</xmin><ymin>6</ymin><xmax>400</xmax>",
    )
    with pytest.raises(
        ValueError, match=re.escape(path) + ": object 0.*entirely outside the 128 x 85 image"
    ):
        kd.load(voc_dir, "train")


def test_drop_invalid_counts_instead(voc_dir, caplog):
    _edit_xml(voc_dir, "chelsea", "<xmax>100</xmax>", "<xmax>20</xmax>")
    with caplog.at_level("WARNING", logger="keras_det.data"):
        ds, info = kd.load(voc_dir, "train", with_info=True, drop_invalid=True)
    assert info.stats["invalid_dropped"] == 1 and "invalid box" in caplog.text
    assert len(next(iter(ds))["bounding_boxes"]["labels"]) == 0


def test_partly_outside_box_is_clipped_and_counted(voc_dir, caplog):
    path = _edit_xml(voc_dir, "chelsea", "<xmax>100</xmax>", "<xmax>150</xmax>")
    with caplog.at_level("WARNING", logger="keras_det.data"):
        ds, info = kd.load(voc_dir, "train", with_info=True)
    assert info.stats["clipped"] == 1
    assert "clipped 1 box" in caplog.text and path in caplog.text
    np.testing.assert_allclose(next(iter(ds))["bounding_boxes"]["boxes"][0], [30, 5, 128, 84])


def test_zero_area_box_dropped_and_counted(coco_dir, caplog):
    def flatten(coco):
        coco["annotations"][0]["bbox"] = [45.0, 4.0, 0.0, 30.0]

    _edit_coco(coco_dir, "val", flatten)
    with caplog.at_level("WARNING", logger="keras_det.data"):
        ds, info = kd.load(coco_dir, "val", with_info=True)
    assert info.stats["zero_area_dropped"] == 1
    assert "dropped 1 zero-area box" in caplog.text and "rocket.jpg" in caplog.text
    labels = next(iter(ds))["bounding_boxes"]["labels"].numpy()
    assert len(labels) == 2


def test_crowd_dropped_or_kept(coco_dir):
    def crowd(coco):
        coco["annotations"][2]["iscrowd"] = 1

    _edit_coco(coco_dir, "val", crowd)
    ds, info = kd.load(coco_dir, "val", with_info=True)
    assert info.stats["crowd_dropped"] == 1
    assert len(next(iter(ds))["bounding_boxes"]["labels"]) == 2
    e = next(iter(kd.load(coco_dir, "val", include_crowd=True)))
    np.testing.assert_array_equal(e["bounding_boxes"]["is_crowd"], [False, False, True])


def test_unknown_class_name_voc(voc_dir):
    path = _edit_xml(voc_dir, "chelsea", "<name>cat</name>", "<name>dragon</name>")
    with pytest.raises(
        ValueError, match=re.escape(path) + ": object 0 has unknown class name 'dragon'"
    ):
        kd.load(voc_dir, "train", class_names=folders.SORTED_NAMES)


def test_unknown_category_coco(coco_dir):
    def unknown(coco):
        coco["annotations"][0]["category_id"] = 999

    path = _edit_coco(coco_dir, "val", unknown)
    with pytest.raises(ValueError, match=re.escape(path) + ".*unknown category_id 999"):
        kd.load(coco_dir, "val")


def test_unknown_class_id_yolo(tmp_path):
    root = folders.write_yolo(str(tmp_path))
    path = os.path.join(root, "labels", "val", "rocket.txt")
    with open(path, "a") as f:
        f.write("7 0.5 0.5 0.1 0.1\n")
    with pytest.raises(ValueError, match=re.escape(path) + " line 4: unknown class id 7"):
        kd.load(root, "val")


def test_malformed_yolo_line(tmp_path):
    root = folders.write_yolo(str(tmp_path))
    path = os.path.join(root, "labels", "val", "rocket.txt")
    with open(path, "a") as f:
        f.write("1 0.5 0.5\n")
    with pytest.raises(ValueError, match=re.escape(path) + " line 4: expected `class cx cy w h`"):
        kd.load(root, "val")


def test_yolo_box_outside_image(tmp_path):
    root = folders.write_yolo(str(tmp_path))
    path = os.path.join(root, "labels", "val", "rocket.txt")
    with open(path, "a") as f:
        f.write("1 1.5 0.5 0.2 0.2\n")
    with pytest.raises(ValueError, match=re.escape(path) + ": object 3.*entirely outside"):
        kd.load(root, "val")


def test_missing_annotation_file_voc(voc_dir):
    path = os.path.join(voc_dir, "VOC2007", "Annotations", "coffee.xml")
    os.remove(path)
    with pytest.raises(
        ValueError, match=re.escape(path) + r" \(listed in .*train.txt\) does not exist"
    ):
        kd.load(voc_dir, "train")


def test_missing_split_files(coco_dir, voc_dir):
    with pytest.raises(ValueError, match=r"instances_test\.json does not exist"):
        kd.load(coco_dir, "test")
    with pytest.raises(
        ValueError, match=r"test\.txt does not exist \(found splits: \['train', 'val'\]\)"
    ):
        kd.load(voc_dir, "test")
    with pytest.raises(ValueError, match="COCO annotation file .*nope.json does not exist"):
        kd.load(os.path.join(coco_dir, "annotations", "nope.json"), "val")


def test_yolo_missing_class_names(tmp_path):
    root = folders.write_yolo(str(tmp_path))
    os.remove(os.path.join(root, "data.yaml"))
    with pytest.raises(ValueError, match="no data.yaml, classes.txt or obj.names"):
        kd.load(root, "val")


def test_malformed_xml_and_json(voc_dir, coco_dir):
    path = os.path.join(voc_dir, "VOC2007", "Annotations", "chelsea.xml")
    with open(path, "w") as f:
        f.write("<annotation><object>")
    with pytest.raises(ValueError, match=re.escape(path) + " is not valid XML"):
        kd.load(voc_dir, "train")
    path = os.path.join(coco_dir, "annotations", "instances_val.json")
    with open(path, "w") as f:
        f.write("{")
    with pytest.raises(ValueError, match=re.escape(path) + " is not valid JSON"):
        kd.load(coco_dir, "val")


def test_unknown_source_and_layout(tmp_path):
    with pytest.raises(ValueError, match="Dataset folder .*does_not_exist does not exist"):
        kd.load(str(tmp_path / "does_not_exist"), "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="Cannot detect the dataset layout"):
        kd.load(str(tmp_path / "empty"), "train")
    with pytest.raises(ValueError, match="not a known box format"):
        kd.load("shapes", "train", "xyxz")


def test_check_images_option_is_validated(coco_dir):
    with pytest.raises(ValueError, match="check_images must be True, False or 'header'"):
        kd.load(coco_dir, "val", check_images="full")
